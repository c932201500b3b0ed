"""Time anchors: one instant read on every clock a report uses, so outside logs can be aligned.

A report's per-inference and trace times are CLOCK_MONOTONIC_RAW nanoseconds derived from the
native tick (:meth:`edgeprof.native.ClockInfo.ticks_to_ns`); ``created_ns`` is Unix time. A power
meter, a camera or a lab log keeps wall-clock or CLOCK_MONOTONIC time instead. An anchor reads
CLOCK_REALTIME, CLOCK_MONOTONIC and CLOCK_MONOTONIC_RAW between two reads of the tick; the
tick it carries is the midpoint and ``width_ticks`` how far apart the brackets were (the
anchor's own uncertainty). The narrowest of a few tries is kept, so a preemption between two
reads does not widen it.
"""

from __future__ import annotations

import time
from typing import Any

from edgeprof import native

TRIES = 8  # reads per anchor; the narrowest bracket wins


def _once() -> dict[str, Any]:
    tick, get = native.tick, time.clock_gettime_ns
    t0 = tick()
    realtime = get(time.CLOCK_REALTIME)
    monotonic = get(time.CLOCK_MONOTONIC)
    monotonic_raw = get(time.CLOCK_MONOTONIC_RAW)
    t1 = tick()
    return {
        "realtime_ns": realtime,
        "monotonic_ns": monotonic,
        "monotonic_raw_ns": monotonic_raw,
        "tick": t0 + (t1 - t0) // 2,
        "width_ticks": t1 - t0,
    }


def read_anchor(tries: int = TRIES) -> dict[str, Any]:
    """``{"realtime_ns", "monotonic_ns", "monotonic_raw_ns", "tick", "width_ticks"}``: the
    narrowest-bracketed of ``tries`` reads."""
    return min((_once() for _ in range(max(1, tries))), key=lambda a: int(a["width_ticks"]))
