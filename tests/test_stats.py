"""Latency summaries: bootstrap CIs against the textbook bootstrap, and the warnings' thresholds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeprof.errors import InputError
from edgeprof.measure.stats import (
    _bootstrap_percentiles,
    min_samples_for,
    percentile_ci,
    summarize,
)


def steady(n: int, seed: int = 0) -> np.ndarray:
    """Latencies around 10 ms with 0.1 % jitter: never noisy enough to warn about variance."""
    return 0.01 * (1 + 0.001 * np.random.default_rng(seed).standard_normal(n))


def test_estimate_is_numpys_percentile_and_inside_its_interval() -> None:
    x = np.random.default_rng(0).exponential(size=333)
    for q in (0, 12.5, 50, 90, 99, 100):
        est, low, high = percentile_ci(x, q)
        assert est == np.percentile(x, q)
        assert low <= est <= high


@pytest.mark.parametrize("q", [50, 90, 99])
def test_order_statistic_bootstrap_matches_resampling(q: float) -> None:
    """Same distribution as resampling n indices with replacement, without the n x n_boot."""
    x = np.sort(np.random.default_rng(1).lognormal(0, 0.5, 200))
    fast = _bootstrap_percentiles(x, q, 40_000, np.random.default_rng(2))
    idx = np.random.default_rng(3).integers(0, x.size, size=(20_000, x.size))
    slow = np.percentile(x[idx], q, axis=1)
    for v in np.quantile(slow, [0.05, 0.25, 0.5, 0.75, 0.95]):
        assert np.mean(fast <= v) == pytest.approx(np.mean(slow <= v), abs=0.02)


def test_deterministic_by_seed() -> None:
    x = np.random.default_rng(0).normal(size=500)
    assert percentile_ci(x, 90, seed=4) == percentile_ci(x, 90, seed=4)
    assert percentile_ci(x, 90, seed=4) != percentile_ci(x, 90, seed=5)


def test_interval_covers_the_true_percentile_in_most_runs() -> None:
    true_p90 = math.log(10)  # exponential(1)
    hits = 0
    for seed in range(60):
        x = np.random.default_rng(seed).exponential(size=400)
        _, low, high = percentile_ci(x, 90, n_boot=1000, seed=seed)
        hits += low <= true_p90 <= high
    assert hits >= 50  # nominal 95 %: 57 of 60


def test_interval_shrinks_with_more_samples() -> None:
    rng = np.random.default_rng(7)
    widths = []
    for n in (100, 1_000, 100_000):
        _, low, high = percentile_ci(rng.exponential(size=n), 50)
        widths.append(high - low)
    assert widths[0] > 2 * widths[1] > 4 * widths[2]


def test_one_sample_has_a_zero_width_interval() -> None:
    assert percentile_ci([0.25], 99) == (0.25, 0.25, 0.25)


@pytest.mark.parametrize(
    ("x", "kwargs", "message"),
    [
        ([], {}, "no samples"),
        ([[1.0, 2.0]], {}, "1-D"),
        ([1.0, math.nan], {}, "not finite"),
        ([1.0, math.inf], {}, "not finite"),
        (["a"], {}, "numbers"),
        ([1.0, 2.0], {"q": 101}, "percentile"),
        ([1.0, 2.0], {"confidence": 1.0}, "confidence"),
        ([1.0, 2.0], {"n_boot": 1}, "n_boot"),
    ],
)
def test_percentile_ci_refuses_bad_input(x: object, kwargs: dict[str, float], message: str) -> None:
    q = kwargs.pop("q", 50)
    with pytest.raises(InputError, match=message):
        percentile_ci(x, q, **kwargs)  # type: ignore[arg-type]


def test_required_sample_counts() -> None:
    assert [min_samples_for(q) for q in (50, 90, 95, 99, 99.9)] == [20, 100, 200, 1000, 10000]


@pytest.mark.parametrize(
    ("n", "unstable"),
    [
        (19, ["p50", "p90", "p95", "p99"]),
        (20, ["p90", "p95", "p99"]),
        (99, ["p90", "p95", "p99"]),
        (100, ["p95", "p99"]),
        (199, ["p95", "p99"]),
        (200, ["p99"]),
        (999, ["p99"]),
        (1000, []),
    ],
)
def test_sample_size_warnings_at_the_thresholds(n: int, unstable: list[str]) -> None:
    s = summarize(steady(n), n_boot=200)
    assert s.unstable == unstable
    if not unstable:
        assert s.warnings == []
        return
    (warning,) = s.warnings
    assert warning.startswith(f"only {n} samples: {unstable[0]} needs at least ")
    for p in unstable:
        assert p in warning
    assert warning.endswith("for a stable estimate")


def test_sample_size_warning_wording() -> None:
    assert summarize(steady(500), n_boot=200).warnings == [
        "only 500 samples: p99 needs at least 1000 for a stable estimate"
    ]
    assert summarize(steady(150), n_boot=200).warnings == [
        "only 150 samples: p95 needs at least 200 and p99 at least 1000 for a stable estimate"
    ]


def test_high_variance_from_the_robust_coefficient_of_variation() -> None:
    """A truly spread sample: its bulk is wide, so MAD/median says so too."""
    x = np.random.default_rng(0).lognormal(np.log(0.01), 0.5, 2000)
    s = summarize(x, n_boot=200)
    (warning,) = s.warnings
    assert warning.startswith("high variance: robust coefficient of variation")
    assert s.robust_cv > 0.1
    assert s.cv > 0.1


def test_a_few_outliers_are_not_high_variance() -> None:
    """A steady run with 1 % of inferences preempted 20x longer: std/mean exceeds the limit
    (the old warning fired), MAD/median does not, and the median is as steady as before."""
    rng = np.random.default_rng(1)
    x = rng.normal(0.001, 0.00001, 5000)
    x[rng.choice(x.size, 50, replace=False)] = 0.02
    s = summarize(x, n_boot=300)
    assert s.cv > 0.1  # the classic coefficient of variation would call this run noisy
    assert s.robust_cv < 0.05
    assert not [w for w in s.warnings if w.startswith("high variance")]
    d = s.describe()
    assert d["robust_cv"] == s.robust_cv
    assert d["mad_s"] == float(np.median(np.abs(x - np.median(x))))


def test_high_variance_from_a_wide_median_interval() -> None:
    """Two modes 12 % apart: robust CV under 0.1, but the median could be either."""
    x = np.repeat([0.0094, 0.0106], 15)
    s = summarize(x, n_boot=500)
    assert s.robust_cv < 0.1
    (warning,) = [w for w in s.warnings if w.startswith("high variance")]
    assert "p50's 95 % confidence interval spans" in warning
    assert "coefficient of variation" not in warning


def test_summary_values_and_describe() -> None:
    x = np.random.default_rng(3).gamma(400, 0.00002, 1500)
    s = summarize(x, n_boot=300)
    assert s.count == 1500
    assert s.mean == pytest.approx(x.mean())
    assert s.std == pytest.approx(x.std(ddof=1))
    assert (s.min, s.max) == (x.min(), x.max())
    assert s.p95[0] == np.percentile(x, 95)
    d = s.describe()
    assert d["count"] == 1500
    assert d["p95_s"] == s.p95[0]
    assert d["p95_ci_s"] == [s.p95[1], s.p95[2]]
    assert {"mean_s", "std_s", "min_s", "max_s", "p50_s", "p90_s", "p99_ci_s"} <= set(d)
    assert s.warnings == []


def test_a_single_latency() -> None:
    s = summarize(np.array([0.002]))
    assert s.std != s.std  # NaN
    d = s.describe()
    assert d["std_s"] is None
    assert d["cv"] is None
    assert d["p99_ci_s"] == [0.002, 0.002]


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.array([0.1, -0.001]), "negative"),
        (np.array([0.1, np.nan]), "not finite"),
        (np.zeros((3, 3)), "1-D"),
        (np.array([]), "no latencies"),
    ],
)
def test_summarize_refuses_bad_latencies(x: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        summarize(x)


def test_zero_latencies_do_not_divide_by_zero() -> None:
    s = summarize(np.zeros(50), n_boot=100)
    assert s.describe()["cv"] is None
    assert s.p50 == (0.0, 0.0, 0.0)
