"""edgeprof.gate.drift against textbook values (chi-square and Kolmogorov tables, hand-worked U)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeprof.gate.drift import (
    binned_counts,
    chi2_counts,
    chi2_sf,
    drift,
    gamma_q,
    kolmogorov_sf,
    ks_2samp,
    mann_whitney_u,
    psi,
    psi_fractions,
    quantile_edges,
)


@pytest.mark.parametrize(
    ("x", "dof", "p"),
    [
        (3.841458820694124, 1, 0.05),  # chi-square table critical values
        (6.634896601021214, 1, 0.01),
        (5.991464547107979, 2, 0.05),
        (11.344866730144373, 3, 0.01),
        (18.307038053275146, 10, 0.05),
        (124.34211340400407, 100, 0.05),
        (2.0, 2, math.exp(-1.0)),  # dof 2: sf = exp(-x/2) exactly
    ],
)
def test_chi2_sf_matches_tables(x: float, dof: int, p: float) -> None:
    assert chi2_sf(x, dof) == pytest.approx(p, rel=1e-9)


def test_gamma_q_edges() -> None:
    assert gamma_q(1.0, 0.0) == 1.0
    assert gamma_q(1.0, 3.0) == pytest.approx(math.exp(-3.0))  # Q(1, x) = e^-x
    assert gamma_q(0.5, 2.0) == pytest.approx(math.erfc(math.sqrt(2.0)))  # Q(1/2, x) = erfc(√x)


def test_kolmogorov_critical_values() -> None:
    assert kolmogorov_sf(1.3580986393225505) == pytest.approx(0.05, rel=1e-6)
    assert kolmogorov_sf(1.6276236115189502) == pytest.approx(0.01, rel=1e-6)
    assert kolmogorov_sf(0.0) == 1.0


def test_ks_statistic_by_hand() -> None:
    # CDFs of {1,2,3,4} and {3,4,5,6} differ most at 2: 0.5 vs 0.
    d, p = ks_2samp([1, 2, 3, 4], [3, 4, 5, 6])
    assert d == 0.5
    assert p == pytest.approx(kolmogorov_sf(math.sqrt(2.0) * 0.5))
    d, p = ks_2samp(np.arange(100.0), np.arange(100.0))
    assert d == 0.0
    assert p == 1.0


def test_chi2_homogeneity_by_hand() -> None:
    # 2 x 2 table [[10, 20], [20, 10]]: expected 15 everywhere, statistic 4 * 25/15 = 6.667.
    stat, dof, p = chi2_counts([10, 20], [20, 10])
    assert stat == pytest.approx(20 / 3)
    assert dof == 1
    assert p == pytest.approx(chi2_sf(20 / 3, 1))
    assert chi2_counts([5, 0, 5], [5, 0, 5])[:2] == (0.0, 1)  # a bin empty in both is dropped


def test_psi_by_hand_and_thresholds() -> None:
    # (0.6 - 0.5) ln(0.6/0.5) + (0.4 - 0.5) ln(0.4/0.5) = 0.04054
    assert psi_fractions([50, 50], [60, 40]) == pytest.approx(
        0.1 * math.log(1.2) - 0.1 * math.log(0.8)
    )
    assert psi_fractions([50, 50], [50, 50]) == 0.0
    assert psi_fractions([1, 0], [0, 1]) > 1.0  # empty bins are floored, not infinite
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, 20000)
    assert psi(ref, rng.normal(0, 1, 20000)) < 0.01
    assert 0.05 < psi(ref, rng.normal(0.3, 1, 20000)) < 0.10
    assert psi(ref, rng.normal(0.45, 1, 20000)) > 0.10


def test_quantile_bins() -> None:
    edges = quantile_edges(np.arange(1000.0), 10)
    assert edges.size == 9
    assert binned_counts(np.arange(1000.0), edges).tolist() == [100] * 10
    assert quantile_edges(np.ones(50), 10).size == 1  # ties collapse


def test_drift_result_fields() -> None:
    r = drift(np.arange(100.0), np.arange(100.0) + 50)
    assert r.ks_d == 0.5
    assert r.ks_p < 1e-6
    assert r.chi2_p < 1e-6
    assert r.psi > 0.1
    assert (r.n_reference, r.n_current) == (100, 100)


def test_mann_whitney_by_hand() -> None:
    # no overlap: U1 = 0, mean 12.5, var 25 * 11 / 12; z = (12.5 - 0.5) / sqrt(22.9167)
    r = mann_whitney_u([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert r.u == 0.0
    assert r.p == pytest.approx(math.erfc(12.0 / math.sqrt(25 * 11 / 12) / math.sqrt(2)))
    assert mann_whitney_u([6, 7, 8, 9, 10], [1, 2, 3, 4, 5], "greater").p < 0.01
    assert mann_whitney_u([6, 7, 8, 9, 10], [1, 2, 3, 4, 5], "less").p > 0.99
    # ties: U1 counts half for each tie; all equal -> no evidence
    assert mann_whitney_u([1, 1, 2], [1, 2, 2]).u == 3.0
    assert mann_whitney_u([3, 3, 3], [3, 3]).p == 1.0
