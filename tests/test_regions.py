"""Region marks in the preallocated native buffer."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edgeprof import native
from edgeprof.errors import InputError


def test_marks_record_durations() -> None:
    r = native.Regions(16)
    clock = native.clock_info()
    spans = []
    for _ in range(3):
        before = native.monoraw_ns()
        assert r.begin() >= 0
        time.sleep(0.01)
        assert r.end() >= 0
        spans.append(native.monoraw_ns() - before)
    arrays = r.arrays()
    assert arrays["begin_tick"].dtype == np.uint64
    durations = clock.ticks_to_seconds(arrays["end_tick"] - arrays["begin_tick"])
    assert len(durations) == 3
    assert np.all(durations >= 0.0099)  # sleep never returns early
    # each region lies inside the reference reads around it (50 us: calibration error)
    assert np.all(durations <= np.array(spans) / 1e9 + 50e-6)
    assert np.all(arrays["begin_tick"][1:] >= arrays["end_tick"][:-1])


def test_zero_argument_marks_write_the_active_buffer() -> None:
    r = native.Regions(4)
    r.activate()
    try:
        begin, end = native.mark_begin, native.mark_end
        for _ in range(6):
            begin()
            end()
    finally:
        r.deactivate()
    assert r.count == 4
    assert r.dropped == 2
    begin()  # deactivated: a no-op
    end()
    assert r.count == 4


def test_misuse_is_counted_not_recorded() -> None:
    r = native.Regions(4)
    assert r.end() < 0
    assert r.begin() == 0
    assert r.begin() < 0  # nested begin refused
    assert r.end() == 0
    assert r.unmatched == 2
    assert r.count == 1
    r.reset()
    assert r.count == 0
    assert r.unmatched == 0


def test_counters_are_real_or_explained() -> None:
    r = native.Regions(2, counters=True)
    ok, reason = native.counters_probe()
    assert r.has_counters == ok
    if not ok:
        assert r.counters_reason
        assert reason
        assert "cycles" not in r.arrays()
        return
    r.begin()
    sum(range(100_000))
    r.end()
    arrays = r.arrays()
    assert arrays["cycles"][0] > 10_000
    assert arrays["instructions"][0] > 100_000


def test_bad_capacity() -> None:
    with pytest.raises(InputError):
        native.Regions(0)
