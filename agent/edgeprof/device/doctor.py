"""``edgeprof doctor``: what this machine offers for profiling, and why not where it doesn't.

It reports, it does not judge: every probe records what it found or the reason it found
nothing, and the command exits 0 either way. The same dict is printed as text for people and
as JSON for machines.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from edgeprof import __version__, native
from edgeprof.device.channels import ChannelSpec, ReadKind
from edgeprof.device.detect import detect_board, stable_device_id
from edgeprof.device.ports import list_serial_ports, list_usb_devices
from edgeprof.device.roots import SystemRoots
from edgeprof.device.sources.power import discover_power_with_notes, missing_rails
from edgeprof.device.sources.system import (
    discover_system_with_notes,
    pss_channel,
    read_governors,
    rss_channel,
)
from edgeprof.errors import EdgeprofError

# Distribution names of the inference runtimes edgeprof can drive (now or in later issues).
RUNTIMES = ("ai-edge-litert", "tflite-runtime", "tflite-micro", "tensorflow")

# How long to watch a cumulative energy counter to turn it into a live power reading.
ENERGY_WINDOW_S = 0.25


def _guard(fn: Callable[[], Any]) -> Any:
    """Run one probe; a failure becomes ``{"error": ...}`` instead of ending the report."""
    try:
        return fn()
    except (OSError, EdgeprofError, ValueError) as exc:
        return {"error": str(exc)}


def _read_first_line(path: os.PathLike[str] | str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline(256).strip() or None
    except OSError:
        return None


def probe_clock(roots: SystemRoots) -> dict[str, Any]:
    """The tick source with its measured resolution and per-read cost."""
    info = native.clock_info().describe()
    info["kernel_clocksource"] = _read_first_line(
        roots.sys("devices", "system", "clocksource", "clocksource0", "current_clocksource")
    )
    return info


def probe_counters(roots: SystemRoots) -> dict[str, Any]:
    """Hardware cycle/instruction counters: available, or why not."""
    ok, reason = native.counters_probe()
    paranoid = _read_first_line(roots.proc("sys", "kernel", "perf_event_paranoid"))
    return {"available": ok, "reason": reason or None, "perf_event_paranoid": paranoid}


def live_readings(channels: list[ChannelSpec]) -> list[dict[str, Any]]:
    """Each channel's spec with one live reading in its unit (or the error that prevented it).

    Cumulative energy counters are read twice, ENERGY_WINDOW_S apart, and shown as power.
    """
    if not channels:
        return []
    sampler = native.NativeSampler(rate_hz=1.0, ring_capacity=1)
    for spec in channels:
        sampler.add(spec)
    t0, v0 = sampler.read_now()
    v1 = v0
    t1 = t0
    if any(c.kind is ReadKind.COUNTER for c in channels):
        time.sleep(ENERGY_WINDOW_S)
        t1, v1 = sampler.read_now()
    dt = native.clock_info().ticks_to_seconds(float(t1 - t0))
    out = []
    for i, spec in enumerate(channels):
        row = spec.describe()
        errors, last = sampler.channel_errors(i)
        if errors:
            row["reading"] = None
            row["error"] = last
        elif spec.kind is ReadKind.COUNTER:
            row["reading"] = float((v1[i] - v0[i]) / dt) if dt > 0 else None
            row["reading_unit"] = "W"
            row["reading_note"] = f"average over {ENERGY_WINDOW_S:g} s of {spec.unit}"
        else:
            value = float(v0[i])
            row["reading"] = value if np.isfinite(value) else None
            row["reading_unit"] = spec.unit
        out.append(row)
    return out


def probe_memory(roots: SystemRoots) -> dict[str, Any]:
    """Which memory sources work for a process (this one)."""
    pid = os.getpid()
    chans: list[ChannelSpec] = [rss_channel(roots, pid)]
    pss = pss_channel(roots, pid)
    result: dict[str, Any] = {}
    if pss is None:
        result["pss"] = {"available": False, "reason": "no readable smaps_rollup (kernel < 4.14?)"}
    else:
        chans.append(pss)
    for row in _guard(lambda: live_readings(chans)) or []:
        if isinstance(row, dict) and "name" in row:
            key = "rss" if row["name"] == "mem.rss" else "pss"
            result[key] = {
                "available": row.get("error") is None,
                "path": row["paths"][0],
                "reading_bytes": row.get("reading"),
                "error": row.get("error"),
            }
    return result


def probe_power(roots: SystemRoots) -> dict[str, Any]:
    """Every power channel found, with a live reading, and why candidates were skipped; on a
    board whose file names its rails, any of them that discovery did not find."""
    channels, notes = discover_power_with_notes(roots)
    board = detect_board(roots).board
    expected = board.power.rails if board is not None and board.power is not None else ()
    missing = missing_rails(expected, channels)
    notes.extend(
        f"expected rail {rail} not found (boards/{board.id}.toml names it)"
        for rail in missing
        if board is not None
    )
    return {
        "channels": live_readings(channels),
        "notes": notes,
        "expected_rails": list(expected),
        "missing_rails": missing,
    }


def probe_system(roots: SystemRoots) -> dict[str, Any]:
    """CPU frequency and thermal channels (sampled at a low rate in a run), and governors."""
    channels, notes = discover_system_with_notes(roots)
    return {
        "channels": live_readings(channels),
        "governors": read_governors(roots),
        "notes": notes,
    }


def probe_runtimes() -> dict[str, str | None]:
    """Installed inference runtimes and their versions (None: not installed)."""
    found: dict[str, str | None] = {}
    for dist in RUNTIMES:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = None
    return found


def probe_ports() -> dict[str, Any]:
    """Serial ports and USB devices seen, matched to known boards where the ids say so."""
    usb = list_usb_devices()
    return {
        "serial": [asdict(p) for p in list_serial_ports()],
        "usb": usb if isinstance(usb, str) else [asdict(d) for d in usb],
    }


def probe_board(roots: SystemRoots) -> dict[str, Any]:
    """The board the agent believes it is on, with the evidence."""
    found = detect_board(roots)
    return {
        "board_id": found.board_id,
        "name": found.board.name if found.board else None,
        "confidence": found.confidence,
        "l4t_release": found.l4t_release,
        "evidence": found.evidence,
        "device_id": stable_device_id(roots),
    }


def collect(roots: SystemRoots) -> dict[str, Any]:
    """Everything doctor knows, as one JSON-ready dict."""
    uname = platform.uname()
    return {
        "edgeprof": __version__,
        "python": sys.version.split()[0],
        "os": {"system": uname.system, "release": uname.release, "machine": uname.machine},
        "roots": {"sysfs": str(roots.sysfs), "procfs": str(roots.procfs), "etc": str(roots.etc)},
        "board": _guard(lambda: probe_board(roots)),
        "clock": _guard(lambda: probe_clock(roots)),
        "perf_counters": _guard(lambda: probe_counters(roots)),
        "memory": _guard(lambda: probe_memory(roots)),
        "power": _guard(lambda: probe_power(roots)),
        "system": _guard(lambda: probe_system(roots)),
        "runtimes": probe_runtimes(),
        "ports": _guard(probe_ports),
    }
