"""The calibrated tick clock, through the same bindings the agent uses."""

from __future__ import annotations

import platform
import time
from collections.abc import Iterator

import numpy as np
import pytest

from edgeprof import native
from edgeprof.errors import NativeError
from edgeprof.native import ClockSource


@pytest.fixture
def restore_clock() -> Iterator[None]:
    """Tests that switch the process-wide source put the default back."""
    yield
    native.clock_init(ClockSource.AUTO, 50)


def test_auto_source_is_calibrated() -> None:
    info = native.clock_info()
    assert info.hz > 1e6
    assert 0 < info.resolution_ns < 10_000
    assert 0 < info.read_cost_ns < 10_000
    assert info.calib_ppm < 2_000
    if platform.machine() == "x86_64" and native.tsc_invariant():
        assert info.source is ClockSource.TSC
    d = info.describe()
    assert d["reference"] == "CLOCK_MONOTONIC_RAW"
    assert set(d) >= {"hz", "resolution_ns", "read_cost_ns", "source"}


def test_ticks_convert_to_monotonic_raw_ns() -> None:
    info = native.clock_info()
    # A tick taken between two CLOCK_MONOTONIC_RAW reads converts to a time between them
    # (give or take the calibration error accumulated since calibration: microseconds).
    before = native.monoraw_ns()
    t = native.tick()
    after = native.monoraw_ns()
    ns = int(info.ticks_to_ns(np.array([t], dtype=np.uint64))[0])
    assert before - 50_000 <= ns <= after + 50_000


def test_durations_agree_with_monotonic_raw() -> None:
    # Each tick is bracketed by two CLOCK_MONOTONIC_RAW reads, so a preemption between them
    # widens the bracket rather than failing; the tolerance is the calibration's own reported
    # disagreement plus 0.1 %, never a bound on how long the sleep took.
    info = native.clock_info()
    n0a, t0, n0b = native.monoraw_ns(), native.tick(), native.monoraw_ns()
    time.sleep(0.2)
    n1a, t1, n1b = native.monoraw_ns(), native.tick(), native.monoraw_ns()
    tick_ns = float(info.ticks_to_seconds(t1 - t0)) * 1e9
    lo, hi = n1a - n0b, n1b - n0a
    tol = (1e-3 + 2e-6 * info.calib_ppm) * hi + info.resolution_ns
    assert lo - tol <= tick_ns <= hi + tol


def test_forced_monotonic_raw_fallback(restore_clock: None) -> None:
    info = native.clock_init(ClockSource.MONORAW, 20)
    assert info.source is ClockSource.MONORAW
    assert abs(info.hz - 1e9) / 1e9 < 1e-3  # one tick is one nanosecond
    a = native.tick()
    b = native.tick()
    assert b >= a


def test_unsupported_source_is_a_clear_error(restore_clock: None) -> None:
    wrong = ClockSource.CNTVCT if platform.machine() == "x86_64" else ClockSource.TSC
    with pytest.raises(NativeError, match="unavailable"):
        native.clock_init(wrong, 10)


def test_read_cost_measurement_is_positive() -> None:
    # a cost, not a speed limit: bench/bench_clock.py measures how small it is
    cost = native.measure_read_cost(10_000)
    assert 0 < cost < float("inf")
