"""Time anchors: one instant on CLOCK_REALTIME, CLOCK_MONOTONIC(_RAW) and the tick, in reports.

A report's times are tick-derived CLOCK_MONOTONIC_RAW; external logs keep wall-clock time. The
anchors at start and end are what lets a reader line the two up from the report alone, so the
tests check what that alignment relies on: order, the bracket, and that ticks convert with the
clock's calibration.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeprof import native
from edgeprof.measure.anchors import read_anchor
from edgeprof.report.codec import decode, encode
from edgeprof.report.model import convert
from edgeprof.testing.reports import make_report

if not os.environ.get("CI"):  # in CI a missing runtime fails the tests instead
    pytest.importorskip("ai_edge_litert", reason="needs LiteRT: pip install 'edgeprof[litert]'")

import edgeprof.models

MLP = Path(edgeprof.models.DIRECTORY) / "kws_mlp_int8.tflite"


def _tick_ns_gap(start: dict[str, Any], end: dict[str, Any], clock: native.ClockInfo) -> float:
    """|tick-measured minus CLOCK_MONOTONIC_RAW-measured| time between two anchors, in ns."""
    by_tick = (end["tick"] - start["tick"]) / clock.hz * 1e9
    by_raw = end["monotonic_raw_ns"] - start["monotonic_raw_ns"]
    return float(abs(by_tick - by_raw))


def _allowed_ns(start: dict[str, Any], end: dict[str, Any], clock: native.ClockInfo) -> float:
    """The clock's own error over that span: its rate (the calibration's disagreement, plus what
    the width of its reference pairs allows over its span), the two anchors' brackets (the
    midpoint is within half the width of the true instant), and a tick's rounding at each end."""
    span = end["monotonic_raw_ns"] - start["monotonic_raw_ns"]
    rate_ppm = clock.calib_ppm + 2 * clock.pair_width_ns / clock.calib_span_ns * 1e6
    brackets = (start["width_ticks"] + end["width_ticks"]) / 2 / clock.hz * 1e9
    return float(rate_ppm * 1e-6 * span + brackets + 2 / clock.hz * 1e9 + 2 * clock.resolution_ns)


def test_an_anchor_brackets_its_clock_reads() -> None:
    first, second = read_anchor(), read_anchor()
    for key in ("realtime_ns", "monotonic_ns", "monotonic_raw_ns", "tick"):
        assert second[key] >= first[key], key  # a later anchor is later on every clock
    assert first["width_ticks"] >= 0
    # Read straight after: each clock now is past the anchor's reading of it.
    clock = native.clock_info()
    assert native.tick() >= first["tick"] + first["width_ticks"] // 2
    assert clock.hz > 0


def test_ticks_convert_between_anchors_within_the_calibration() -> None:
    clock = native.clock_info()
    start = read_anchor()
    x = np.random.default_rng(0).standard_normal(200_000)
    for _ in range(20):  # some work between the anchors, so the span is not only the reads
        x = np.sort(x)[::-1].copy()
    end = read_anchor()
    assert end["tick"] > start["tick"]
    assert _tick_ns_gap(start, end, clock) <= _allowed_ns(start, end, clock)
    # ticks_to_ns (how begin_ns and t_ns are made) puts the anchor's tick at its raw time.
    for a in (start, end):
        converted = int(clock.ticks_to_ns([a["tick"]])[0])
        raw = a["monotonic_raw_ns"]
        # The conversion's offset comes from its reference pair (pair_width) and its rate from
        # the calibration, over the time since that pair.
        since = abs(raw - clock.ref_ns)
        rate_ppm = clock.calib_ppm + 2 * clock.pair_width_ns / clock.calib_span_ns * 1e6
        allowed = (
            clock.pair_width_ns
            + a["width_ticks"] / clock.hz * 1e9
            + rate_ppm * 1e-6 * since
            + 2 / clock.hz * 1e9
            + 2 * clock.resolution_ns
        )
        assert abs(converted - raw) <= allowed


def test_the_model_takes_anchors_and_refuses_an_end_before_the_start() -> None:
    start, end = read_anchor(), read_anchor()
    report = make_report()
    report["time_anchors"] = {"start": start, "end": end}
    report["interrupted"] = False
    back = decode(encode(report))
    assert back["time_anchors"] == {"start": start, "end": end}
    report["time_anchors"] = {"start": end, "end": start}
    with pytest.raises(ValueError, match=r"time_anchors.end.realtime_ns: before start"):
        convert(report)


def test_a_run_report_carries_anchors_around_its_inferences(tmp_path: Path) -> None:
    from edgeprof.measure.profile import ProfileRequest, profile
    from edgeprof.measure.session import RunPlan

    req = ProfileRequest(
        model=MLP,
        plan=RunPlan(warmup_count=2, min_count=20, min_seconds=0),
        store=tmp_path / "store",
    )
    outcome = profile(req)
    assert outcome.path is not None
    report = decode(outcome.path.read_bytes())
    assert report["interrupted"] is False
    start, end = report["time_anchors"]["start"], report["time_anchors"]["end"]
    for key in ("realtime_ns", "monotonic_ns", "monotonic_raw_ns", "tick"):
        assert start[key] < end[key], key
    assert start["realtime_ns"] >= report["created_ns"]  # the run began, then the anchor
    # Every inference and every sample lies between the anchors on CLOCK_MONOTONIC_RAW.
    begin = report["per_inference"]["begin_ns"]
    assert start["monotonic_raw_ns"] < int(begin.min())
    assert int(begin.max()) < end["monotonic_raw_ns"]
    t_ns = report["traces"]["fast"]["t_ns"]
    assert start["monotonic_raw_ns"] < int(t_ns.min()) <= int(t_ns.max()) < end["monotonic_raw_ns"]
    clock = native.clock_info()
    assert report["clock"]["hz"] == clock.hz
    assert _tick_ns_gap(start, end, clock) <= _allowed_ns(start, end, clock)
