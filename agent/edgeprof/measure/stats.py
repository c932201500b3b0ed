"""Latency summaries with bootstrap confidence intervals and honest warnings.

A tail percentile from a few hundred inferences is mostly noise, so every percentile comes with
a bootstrap confidence interval, and the summary says when there are too few samples beyond a
percentile for it to mean much (the spirit of pyperf's warnings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from edgeprof.errors import InputError

F64 = npt.NDArray[np.float64]

PERCENTILES: tuple[int, ...] = (50, 90, 95, 99)
TAIL_SAMPLES = 10  # samples that must lie beyond a percentile for it to count as supported
CV_LIMIT = 0.1  # robust coefficient of variation above which the run is called noisy
# MAD times this estimates the standard deviation of a normal sample, so the robust CV and
# the classic std/mean agree on well-behaved data and the limit keeps its meaning.
MAD_TO_STD = 1.4826
P50_CI_LIMIT = 0.1  # p50's CI width, as a fraction of p50, above which the run is called noisy


def _as_samples(x: npt.ArrayLike, what: str) -> F64:
    """``x`` as a 1-D float64 array of finite values, or an InputError saying what is wrong."""
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} must be numbers: {exc}") from None
    if a.ndim != 1:
        raise InputError(f"{what} must be a 1-D array, not shape {list(a.shape)}")
    if a.size == 0:
        raise InputError(f"no {what} to summarize")
    bad = int(np.count_nonzero(~np.isfinite(a)))
    if bad:
        raise InputError(f"{bad} of {a.size} {what} are not finite (NaN or infinity)")
    return a


def min_samples_for(q: float) -> int:
    """Samples needed for ``TAIL_SAMPLES`` of them to lie beyond percentile ``q`` (0-100)."""
    if not 0 <= q < 100:
        raise InputError(f"percentile must be in [0, 100), not {q:g}")
    # n * (1 - q/100) >= TAIL_SAMPLES; rounded first so that 99 -> 1000 and 99.9 -> 10000.
    return math.ceil(round(TAIL_SAMPLES * 100 / (100 - q), 6))


def _bootstrap_percentiles(s: F64, q: float, n_boot: int, rng: np.random.Generator) -> F64:
    """``n_boot`` bootstrap replicates of percentile ``q`` of the sorted sample ``s``.

    Resampling n indices with replacement and taking a percentile only ever looks at two order
    statistics of the resample, so they are drawn directly instead of materialising n_boot x n
    indices: with U_(k) the k-th smallest of n uniforms (Beta(k+1, n-k)), floor(n U_(k)) is
    distributed exactly as the k-th smallest resampled index, and U_(k+1) follows as the
    smallest of the n-k-1 uniforms above U_(k). Same distribution as the textbook bootstrap,
    O(n_boot) time and memory whatever n is (a 100k-inference run on a Pi included).
    """
    n = s.size
    h = (n - 1) * (q / 100.0)  # numpy's default "linear" method
    k = min(math.floor(h), n - 1)
    frac = h - k
    u_k = rng.beta(k + 1, n - k, size=n_boot)
    i_k = np.minimum((u_k * n).astype(np.int64), n - 1)
    lo = s[i_k]
    if frac == 0.0 or k + 1 >= n:
        return lo
    u_next = u_k + (1.0 - u_k) * rng.beta(1, n - k - 1, size=n_boot)
    i_next = np.minimum((u_next * n).astype(np.int64), n - 1)
    hi = s[i_next]
    return lo + frac * (hi - lo)


def percentile_ci(
    x: npt.ArrayLike,
    q: float,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Percentile ``q`` (0-100) of ``x`` and its percentile-bootstrap confidence interval.

    Returns ``(estimate, low, high)``; the estimate is ``np.percentile`` with the default linear
    method, the interval the central ``confidence`` of ``n_boot`` bootstrap replicates.
    Deterministic for a given ``seed``.
    """
    a = _as_samples(x, "samples")
    if not 0 <= q <= 100:
        raise InputError(f"percentile must be in [0, 100], not {q:g}")
    if n_boot < 10:
        raise InputError(f"n_boot must be at least 10, not {n_boot}")
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be in (0, 1), not {confidence:g}")
    s = np.sort(a)
    estimate = float(np.percentile(s, q))
    if s.size == 1:
        return estimate, estimate, estimate
    reps = _bootstrap_percentiles(s, q, n_boot, np.random.default_rng(seed))
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(reps, [tail, 1.0 - tail])
    # Replicates are interpolated between order statistics, so the interval is in the data's
    # range, but keep it around the estimate even for degenerate samples.
    return estimate, float(min(low, estimate)), float(max(high, estimate))


def _finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None


@dataclass
class LatencySummary:
    """Latency statistics in seconds; each percentile is ``(value, ci_low, ci_high)``."""

    count: int
    mean: float
    std: float
    min: float
    max: float
    p50: tuple[float, float, float]
    p90: tuple[float, float, float]
    p95: tuple[float, float, float]
    p99: tuple[float, float, float]
    confidence: float = 0.95
    n_boot: int = 2000
    unstable: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    mad: float = math.nan  # median absolute deviation from the median

    @property
    def cv(self) -> float:
        """Coefficient of variation (std / mean); NaN where undefined."""
        return self.std / self.mean if self.mean > 0 and math.isfinite(self.std) else math.nan

    @property
    def robust_cv(self) -> float:
        """1.4826 MAD / median: the spread of the bulk, which a few outliers (a page fault, a
        preemption) cannot inflate the way they inflate std/mean. NaN where undefined."""
        p50 = self.p50[0]
        if p50 > 0 and math.isfinite(self.mad):
            return MAD_TO_STD * self.mad / p50
        return math.nan

    def percentile(self, name: str) -> tuple[float, float, float]:
        """One of ``"p50"``, ``"p90"``, ``"p95"``, ``"p99"``."""
        if name not in {f"p{q}" for q in PERCENTILES}:
            raise KeyError(f"no percentile {name!r} (have p50, p90, p95, p99)")
        value: tuple[float, float, float] = getattr(self, name)
        return value

    def describe(self) -> dict[str, Any]:
        """A plain dict with ``_s`` (seconds) in the key names, for reports and ``--json``."""
        out: dict[str, Any] = {
            "count": self.count,
            "mean_s": self.mean,
            "std_s": _finite_or_none(self.std),
            "min_s": self.min,
            "max_s": self.max,
            "cv": _finite_or_none(self.cv),
            "mad_s": _finite_or_none(self.mad),
            "robust_cv": _finite_or_none(self.robust_cv),
        }
        for q in PERCENTILES:
            value, low, high = self.percentile(f"p{q}")
            out[f"p{q}_s"] = value
            out[f"p{q}_ci_s"] = [low, high]
        out["ci_confidence"] = self.confidence
        out["ci_method"] = f"percentile bootstrap, {self.n_boot} resamples"
        out["unstable_percentiles"] = list(self.unstable)
        return out


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _sample_size_warning(n: int, unstable: list[int]) -> str:
    parts = [f"p{unstable[0]} needs at least {min_samples_for(unstable[0])}"]
    parts += [f"p{q} at least {min_samples_for(q)}" for q in unstable[1:]]
    return f"only {n} samples: {_join(parts)} for a stable estimate"


def summarize(
    latencies_s: npt.ArrayLike,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> LatencySummary:
    """Summarize per-inference latencies (seconds): moments, percentiles with CIs, warnings."""
    a = _as_samples(latencies_s, "latencies")
    negative = int(np.count_nonzero(a < 0))
    if negative:
        raise InputError(f"{negative} of {a.size} latencies are negative (min {a.min():g} s)")
    n = int(a.size)
    pct = {
        q: percentile_ci(a, q, n_boot=n_boot, confidence=confidence, seed=seed) for q in PERCENTILES
    }
    unstable = [q for q in PERCENTILES if n < min_samples_for(q)]
    summary = LatencySummary(
        count=n,
        mean=float(a.mean()),
        std=float(a.std(ddof=1)) if n > 1 else math.nan,
        min=float(a.min()),
        max=float(a.max()),
        p50=pct[50],
        p90=pct[90],
        p95=pct[95],
        p99=pct[99],
        confidence=confidence,
        n_boot=n_boot,
        unstable=[f"p{q}" for q in unstable],
        mad=float(np.median(np.abs(a - np.median(a)))),
    )
    if unstable:
        summary.warnings.append(_sample_size_warning(n, unstable))
    noisy = []
    if summary.robust_cv > CV_LIMIT:
        noisy.append(
            f"robust coefficient of variation {summary.robust_cv:.3g} (1.4826 MAD/median) "
            f"exceeds {CV_LIMIT:g}"
        )
    p50, low, high = summary.p50
    width = high - low
    if width > P50_CI_LIMIT * p50:
        share = f"{width / p50 * 100:.0f} % of p50" if p50 > 0 else "more than p50 itself"
        noisy.append(
            f"p50's {confidence * 100:g} % confidence interval spans {share} "
            f"(limit {P50_CI_LIMIT * 100:g} %)"
        )
    if noisy:
        summary.warnings.append(
            f"high variance: {'; '.join(noisy)}; check for frequency scaling, thermal "
            "throttling or background load, or run longer"
        )
    return summary
