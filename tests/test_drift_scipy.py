"""edgeprof.gate.drift against scipy.stats, on random samples.

drift.py writes its statistics by hand because the device side has no scipy; scipy (the `test`
extra) is the reference they must agree with. Tolerances: each statistic here is the same
formula as scipy's, evaluated in double precision, so the two differ only by rounding.
Counts (U, D) must be equal exactly. p-values go through exp(a ln x - lgamma(a) - x) or erfc,
whose relative rounding error grows with the size of the exponent (|x| * 2**-52, about 1e-13
at x = 1000, the largest used here); rel=1e-9 leaves four orders of magnitude for that while
any wrong formula, tie or continuity correction would be off by 1e-3 or more. Below 1e-300
both sides are denormal or zero, hence the absolute 1e-300.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pytest
from scipy import special, stats

from edgeprof.gate import drift

pytestmark = pytest.mark.unit

REL, ABS = 1e-9, 1e-300
Array = npt.NDArray[Any]


def samples(kind: str, n1: int, n2: int, seed: int) -> tuple[Array, Array]:
    """Two samples: equal, shifted, skewed (latency-like) or heavily tied (discrete)."""
    rng = np.random.default_rng(seed)
    if kind == "equal":
        return rng.normal(0, 1, n1), rng.normal(0, 1, n2)
    if kind == "shifted":
        return rng.normal(0, 1, n1), rng.normal(0.3, 1.2, n2)
    if kind == "lognormal":
        return 0.01 * rng.lognormal(0, 0.2, n1), 0.0105 * rng.lognormal(0, 0.25, n2)
    return rng.integers(0, 6, n1).astype(float), rng.integers(1, 7, n2).astype(float)


KINDS = ["equal", "shifted", "lognormal", "tied"]
SIZES = [(5, 7), (20, 30), (200, 150), (2000, 1000)]
CASES = [(k, n1, n2, seed) for k in KINDS for (n1, n2) in SIZES for seed in (1, 2)]


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize(("kind", "n1", "n2", "seed"), CASES)
def test_mann_whitney_matches_scipy(
    kind: str,
    n1: int,
    n2: int,
    seed: int,
    alternative: Literal["two-sided", "greater", "less"],
) -> None:
    a, b = samples(kind, n1, n2, seed)
    ours = drift.mann_whitney_u(a, b, alternative)
    ref = stats.mannwhitneyu(
        a, b, alternative=alternative, use_continuity=True, method="asymptotic"
    )
    assert ours.u == ref.statistic  # U of the first sample, ties at half: exact
    assert ours.p == pytest.approx(ref.pvalue, rel=REL, abs=ABS)


@pytest.mark.parametrize(("kind", "n1", "n2", "seed"), CASES)
def test_ks_statistic_matches_scipy_and_p_is_the_kolmogorov_limit(
    kind: str, n1: int, n2: int, seed: int
) -> None:
    a, b = samples(kind, n1, n2, seed)
    d, p = drift.ks_2samp(a, b)
    assert d == stats.ks_2samp(a, b, method="asymp").statistic
    # drift.py's p is the limiting Kolmogorov distribution at sqrt(n1 n2 / (n1 + n2)) D
    # (scipy.stats.kstwobign). scipy's own ks_2samp(method="asymp") uses the finite-n
    # distribution kstwo at round(n1 n2 / (n1 + n2)) instead, which differs by O(1/sqrt(n)):
    # the same test, a different approximation, so the p-value is checked against kstwobign.
    en = n1 * n2 / (n1 + n2)
    assert p == pytest.approx(stats.kstwobign.sf(math.sqrt(en) * d), rel=REL, abs=ABS)


@pytest.mark.parametrize("lam", [0.01, 0.19, 0.2, 0.25, 0.3, 0.5, 0.8, 1.0, 1.36, 2.0, 5.0, 12.0])
def test_kolmogorov_sf_matches_kstwobign(lam: float) -> None:
    # below 0.2 drift.py returns 1 outright: kstwobign.sf(0.2) is 1 - 5e-13
    assert drift.kolmogorov_sf(lam) == pytest.approx(stats.kstwobign.sf(lam), rel=REL, abs=ABS)


@pytest.mark.parametrize("a", [0.5, 1.0, 2.5, 10.0, 49.5, 500.0])
@pytest.mark.parametrize("ratio", [1e-4, 0.1, 0.5, 0.9, 1.0, 1.1, 2.0, 5.0, 20.0])
def test_gamma_q_matches_gammaincc(a: float, ratio: float) -> None:
    x = a * ratio  # both branches: the series (x < a + 1) and the continued fraction
    assert drift.gamma_q(a, x) == pytest.approx(special.gammaincc(a, x), rel=REL, abs=ABS)


@pytest.mark.parametrize("dof", [1, 2, 3, 9, 99, 999])
@pytest.mark.parametrize("q", [1e-6, 0.01, 0.5, 0.95, 0.999999])
def test_chi2_sf_matches_scipy(dof: int, q: float) -> None:
    x = float(stats.chi2.ppf(q, dof))
    assert drift.chi2_sf(x, dof) == pytest.approx(stats.chi2.sf(x, dof), rel=REL, abs=ABS)


@pytest.mark.parametrize(("kind", "n1", "n2", "seed"), CASES)
@pytest.mark.parametrize("bins", [4, 10])
def test_chi2_homogeneity_matches_chi2_contingency(
    kind: str, n1: int, n2: int, seed: int, bins: int
) -> None:
    a, b = samples(kind, n1, n2, seed)
    stat, dof, p = drift.chi2_2samp(a, b, bins)
    edges = drift.quantile_edges(a, bins)
    table = np.vstack([drift.binned_counts(a, edges), drift.binned_counts(b, edges)])
    table = table[:, table.sum(axis=0) > 0]  # scipy refuses a zero expected count
    if table.shape[1] < 2:
        assert (stat, dof, p) == (0.0, 0, 1.0)
        return
    ref = stats.chi2_contingency(table, correction=False)
    assert dof == ref.dof
    assert stat == pytest.approx(ref.statistic, rel=1e-12, abs=1e-12)
    assert p == pytest.approx(ref.pvalue, rel=REL, abs=ABS)


@pytest.mark.parametrize("z", [-8.0, -1.0, 0.0, 0.5, 1.96, 5.0, 10.0, 20.0, 37.0])
def test_normal_tail_matches_norm_sf(z: float) -> None:
    assert drift._norm_sf(z) == pytest.approx(stats.norm.sf(z), rel=REL, abs=ABS)


@pytest.mark.parametrize(("kind", "n1", "n2", "seed"), CASES)
def test_psi_is_the_symmetric_kl_divergence(kind: str, n1: int, n2: int, seed: int) -> None:
    # scipy has no PSI; it is KL(a||e) + KL(e||a) on the floored bin fractions
    a, b = samples(kind, n1, n2, seed)
    edges = drift.quantile_edges(a, 10)
    e = drift.binned_counts(a, edges).astype(float)
    c = drift.binned_counts(b, edges).astype(float)
    ef = np.maximum(e / e.sum(), drift.PSI_FLOOR)
    cf = np.maximum(c / c.sum(), drift.PSI_FLOOR)
    want = float(np.sum(special.rel_entr(cf, ef) + special.rel_entr(ef, cf)))
    assert drift.psi(a, b) == pytest.approx(want, rel=1e-12, abs=1e-15)
