"""Two-sample statistics for the gate, in numpy and math only (the device side has no scipy).

Why these: the governance framework (section 5.1) names KS, chi-square and PSI for drift, with
PSI thresholds 0.05 (alert) and 0.10 (retraining trigger); regression against a baseline uses
Mann-Whitney U, which needs no distribution assumption (latency is skewed and multi-modal).

- :func:`ks_2samp`: the KS statistic D and its asymptotic p-value from the limiting Kolmogorov
  distribution (scipy.stats.kstwobign; scipy's ``ks_2samp(method="asymp")`` uses the finite-n
  distribution instead, which differs by O(1/sqrt(n))).
- :func:`chi2_2samp`: chi-square homogeneity test of two samples binned on common edges; the
  p-value is the regularized upper incomplete gamma Q(k/2, x/2) (:func:`chi2_sf`).
- :func:`psi`: the population stability index on quantile bins of the reference.
- :func:`mann_whitney_u`: U with the normal approximation, tie correction and continuity
  correction; one- or two-sided.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
PSI_FLOOR = 1e-4  # an empty bin counts as this fraction, so PSI stays finite


def _sample(x: npt.ArrayLike, what: str) -> F64:
    a = np.asarray(x, dtype=np.float64).ravel()
    a = a[np.isfinite(a)]
    if a.size == 0:
        raise ValueError(f"{what}: no finite values")
    return a


def kolmogorov_sf(lam: float) -> float:
    """P(K > lam) for the Kolmogorov distribution: 2 sum (-1)^(k-1) exp(-2 k^2 lam^2)."""
    if lam <= 0:
        return 1.0
    if lam < 0.2:  # the alternating series converges slowly here and the value is 1 to 1e-40
        return 1.0
    total = 0.0
    for k in range(1, 101):
        term = math.exp(-2.0 * k * k * lam * lam)
        total += term if k % 2 else -term
        if term < 1e-17:
            break
    return min(1.0, max(0.0, 2.0 * total))


def ks_2samp(a: npt.ArrayLike, b: npt.ArrayLike) -> tuple[float, float]:
    """(D, asymptotic p): the largest gap between the two empirical CDFs."""
    x, y = np.sort(_sample(a, "a")), np.sort(_sample(b, "b"))
    grid = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, grid, side="right") / x.size
    cdf_y = np.searchsorted(y, grid, side="right") / y.size
    d = float(np.max(np.abs(cdf_x - cdf_y)))
    en = x.size * y.size / (x.size + y.size)
    return d, kolmogorov_sf(math.sqrt(en) * d)


def _gamma_p_series(a: float, x: float) -> float:
    """Regularized lower incomplete gamma P(a, x) by its power series (x < a + 1)."""
    term = total = 1.0 / a
    ap = a
    for _ in range(10_000):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * 1e-16:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _gamma_q_cf(a: float, x: float) -> float:
    """Regularized upper incomplete gamma Q(a, x) by Lentz's continued fraction (x >= a + 1)."""
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return h * math.exp(-x + a * math.log(x) - math.lgamma(a))


def gamma_q(a: float, x: float) -> float:
    """Regularized upper incomplete gamma Q(a, x) = Gamma(a, x) / Gamma(a)."""
    if a <= 0:
        raise ValueError("a must be > 0")
    if x <= 0:
        return 1.0
    if x < a + 1.0:
        return 1.0 - _gamma_p_series(a, x)
    return _gamma_q_cf(a, x)


def chi2_sf(x: float, dof: int) -> float:
    """P(X > x) for a chi-square variable with ``dof`` degrees of freedom."""
    return gamma_q(dof / 2.0, x / 2.0)


def quantile_edges(reference: npt.ArrayLike, bins: int) -> F64:
    """Inner bin edges at the reference's quantiles (duplicates dropped: ties, discrete data)."""
    ref = _sample(reference, "reference")
    inner = np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(inner)


def binned_counts(x: npt.ArrayLike, edges: F64) -> npt.NDArray[np.int64]:
    """Counts in the bins (-inf, e0], (e0, e1], ..., (e_last, inf)."""
    idx = np.searchsorted(edges, _sample(x, "sample"), side="left")
    return np.bincount(idx, minlength=edges.size + 1).astype(np.int64)


def chi2_counts(obs_a: npt.ArrayLike, obs_b: npt.ArrayLike) -> tuple[float, int, float]:
    """(statistic, dof, p) of the 2 x k homogeneity test on two count vectors."""
    table = np.vstack([np.asarray(obs_a, np.float64), np.asarray(obs_b, np.float64)])
    table = table[:, table.sum(axis=0) > 0]  # a bin empty in both says nothing
    if table.shape[1] < 2:
        return 0.0, 0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    dof = table.shape[1] - 1
    return stat, dof, chi2_sf(stat, dof)


def chi2_2samp(
    reference: npt.ArrayLike, current: npt.ArrayLike, bins: int = 10
) -> tuple[float, int, float]:
    """Chi-square homogeneity of two samples on quantile bins of the reference."""
    edges = quantile_edges(reference, bins)
    return chi2_counts(binned_counts(reference, edges), binned_counts(current, edges))


def psi_fractions(expected: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """PSI = sum (a - e) ln(a / e) over bins, fractions floored at :data:`PSI_FLOOR`."""
    e = np.asarray(expected, np.float64)
    a = np.asarray(actual, np.float64)
    e = np.maximum(e / e.sum(), PSI_FLOOR)
    a = np.maximum(a / a.sum(), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def psi(reference: npt.ArrayLike, current: npt.ArrayLike, bins: int = 10) -> float:
    """The population stability index of ``current`` against quantile bins of ``reference``."""
    edges = quantile_edges(reference, bins)
    return psi_fractions(binned_counts(reference, edges), binned_counts(current, edges))


@dataclass(frozen=True)
class DriftResult:
    """All three drift measures of one metric; the gate decides on PSI (framework §5.1)."""

    psi: float
    ks_d: float
    ks_p: float
    chi2: float
    chi2_dof: int
    chi2_p: float
    n_reference: int
    n_current: int


def drift(reference: npt.ArrayLike, current: npt.ArrayLike, bins: int = 10) -> DriftResult:
    """PSI, KS and chi-square of ``current`` against ``reference`` on shared quantile bins."""
    ref, cur = _sample(reference, "reference"), _sample(current, "current")
    edges = quantile_edges(ref, bins)
    c_ref, c_cur = binned_counts(ref, edges), binned_counts(cur, edges)
    d, p = ks_2samp(ref, cur)
    stat, dof, chi_p = chi2_counts(c_ref, c_cur)
    return DriftResult(psi_fractions(c_ref, c_cur), d, p, stat, dof, chi_p, ref.size, cur.size)


def drift_categorical(reference: npt.ArrayLike, current: npt.ArrayLike) -> DriftResult:
    """PSI and chi-square over the categories (e.g. predicted classes) either run produced.

    KS compares orderings, which class indices do not have: it is NaN here.
    """
    ref = np.asarray(reference).ravel()
    cur = np.asarray(current).ravel()
    if ref.size == 0 or cur.size == 0:
        raise ValueError("categorical drift needs values in both samples")
    cats = np.union1d(ref, cur)
    c_ref = np.bincount(np.searchsorted(cats, ref), minlength=cats.size)
    c_cur = np.bincount(np.searchsorted(cats, cur), minlength=cats.size)
    stat, dof, chi_p = chi2_counts(c_ref, c_cur)
    nan = float("nan")
    return DriftResult(
        psi_fractions(c_ref, c_cur), nan, nan, stat, dof, chi_p, int(ref.size), int(cur.size)
    )


def _norm_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


@dataclass(frozen=True)
class MannWhitney:
    """U of the first sample, its z score and p-value."""

    u: float
    z: float
    p: float


def mann_whitney_u(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    alternative: Literal["greater", "less", "two-sided"] = "two-sided",
) -> MannWhitney:
    """Mann-Whitney U of ``a`` vs ``b``, normal approximation with tie and continuity correction.

    ``greater``: the alternative that values of ``a`` tend to be larger than those of ``b``.
    """
    x, y = _sample(a, "a"), _sample(b, "b")
    n1, n2 = x.size, y.size
    both = np.concatenate([x, y])
    order = np.argsort(both, kind="mergesort")
    sorted_vals = both[order]
    # average ranks for ties
    _, first, counts = np.unique(sorted_vals, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0  # 1-based average rank of each distinct value
    ranks = np.empty(both.size)
    ranks[order] = np.repeat(avg, counts)
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2.0)
    n = n1 + n2
    mean = n1 * n2 / 2.0
    tie = float(np.sum(counts.astype(np.float64) ** 3 - counts))
    var = n1 * n2 / 12.0 * ((n + 1) - tie / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return MannWhitney(u1, 0.0, 1.0)
    sd = math.sqrt(var)
    if alternative == "greater":
        z = (u1 - mean - 0.5) / sd
        p = _norm_sf(z)
    elif alternative == "less":
        z = (u1 - mean + 0.5) / sd
        p = _norm_sf(-z)  # the lower tail itself: 1 - sf(z) rounds small p to 0
    else:
        z = (abs(u1 - mean) - 0.5) / sd
        p = min(1.0, 2.0 * _norm_sf(z))
    return MannWhitney(u1, z, p)
