"""The fake sysfs writer: value-file format, waveform math, and the separate writer process."""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from edgeprof.errors import InputError
from edgeprof.testing import fake_sysfs as fs
from edgeprof.testing.fake_sysfs import WaveformWriter, expected_raw, expected_value

pytestmark = pytest.mark.integration  # real processes (tests/conftest.py: tiers)

S = 1_000_000_000  # ns per second
T0 = 5 * S  # an arbitrary writer start instant


def now_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW)


# --------------------------------------------------------------------------------------------
# Value files
# --------------------------------------------------------------------------------------------


def test_format_is_fixed_width() -> None:
    assert fs.format_value(42) == b" " * 18 + b"42\n"
    assert len(fs.format_value(-(2**63))) == fs.VALUE_SIZE
    assert len(fs.format_value(2**64 - 1)) == fs.VALUE_SIZE
    with pytest.raises(ValueError, match="does not fit"):
        fs.format_value(10**20)
    with pytest.raises(TypeError):
        fs.format_value(True)


def test_rewrite_is_in_place_and_seen_by_an_open_reader(tmp_path: Path) -> None:
    p = tmp_path / "power1_input"
    fs.write_value(p, 1_000_000)
    inode = p.stat().st_ino
    fd = os.open(p, os.O_RDONLY)
    try:
        for v in (5, 123_456_789, -3, 0):
            fs.write_value(p, v)
            assert int(os.pread(fd, 64, 0)) == v
            assert p.stat().st_ino == inode
            assert p.stat().st_size == fs.VALUE_SIZE
    finally:
        os.close(fd)
    assert fs.read_value(p) == 0


def test_rewrite_shrinks_a_longer_file(tmp_path: Path) -> None:
    p = tmp_path / "v"
    p.write_text("x" * 100)
    fs.write_value(p, 7)
    assert p.read_bytes() == fs.format_value(7)


# --------------------------------------------------------------------------------------------
# Waveform math
# --------------------------------------------------------------------------------------------


def test_steps() -> None:
    w = {"kind": "steps", "levels": [1, 2, 3], "period_s": 0.1}
    at = [0.0, 0.099, 0.1, 0.25, 0.3, 1.0, -0.05]
    assert [expected_value(w, T0 + round(t * S), T0) for t in at] == [1, 1, 2, 3, 1, 2, 3]


def test_sine() -> None:
    w = {"kind": "sine", "offset": 5000, "amplitude": 1000, "freq_hz": 2.0}
    assert expected_value(w, T0, T0) == pytest.approx(5000)
    assert expected_value(w, T0 + S // 8, T0) == pytest.approx(6000)  # quarter period
    assert expected_value(w, T0 + S // 4, T0) == pytest.approx(5000, abs=1e-9)
    assert expected_value(w, T0 + 3 * S // 8, T0) == pytest.approx(4000)
    shifted = {**w, "phase_rad": math.pi / 2}
    assert expected_value(shifted, T0, T0) == pytest.approx(6000)


def test_ramp_and_wrap() -> None:
    w: dict[str, Any] = {"kind": "ramp", "start": 90, "rate_per_s": 10}
    assert expected_value(w, T0 + S // 2, T0) == pytest.approx(95)
    assert expected_value(w, T0 + 3 * S // 2, T0) == pytest.approx(105)
    w["wrap"] = 100
    assert expected_value(w, T0 + 3 * S // 2, T0) == pytest.approx(5)
    assert expected_value(w, T0 + 21 * S, T0) == pytest.approx(0, abs=1e-9)
    # a counter never reads ``wrap`` itself: rounding up to it reads as zero
    assert expected_raw(w, T0 + round(0.997 * S), T0) == 0
    big = {"kind": "ramp", "start": 262_143_328_000, "rate_per_s": 15e6, "wrap": 262_143_328_850}
    assert 0 <= expected_raw(big, T0 + S, T0) < 262_143_328_850
    assert expected_raw(big, T0 + S, T0) == 262_143_328_000 + 15_000_000 - 262_143_328_850


def test_const() -> None:
    assert expected_value({"kind": "const", "value": 7}, T0 + S, T0) == 7.0


@pytest.mark.parametrize(
    "wave",
    [
        {"kind": "square", "levels": [1]},
        {"kind": "steps", "levels": [], "period_s": 1},
        {"kind": "steps", "levels": [1, True], "period_s": 1},
        {"kind": "steps", "levels": [1], "period_s": 0},
        {"kind": "sine", "offset": 1, "amplitude": 1},
        {"kind": "ramp", "start": 0, "rate_per_s": 1, "wrap": -5},
        {"kind": "ramp", "start": "0", "rate_per_s": 1},
        {"kind": "const", "value": float("nan")},
    ],
)
def test_validate_rejects_malformed_waves(wave: Mapping[str, Any]) -> None:
    with pytest.raises(InputError):
        fs.validate_wave(wave)


# --------------------------------------------------------------------------------------------
# The writer process
# --------------------------------------------------------------------------------------------


def process_gone(pid: int) -> bool:
    """True once ``pid`` is neither running nor a zombie (it was reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def wrapped(values: list[int]) -> bool:
    """A later read holds a smaller value than the one before it: the ramp wrapped."""
    return any(b < a for a, b in itertools.pairwise(values))


def test_writer_process_tracks_expected_values(tmp_path: Path) -> None:
    """Values read by an independent reader are what the writer computes for its write time.

    The ramp file holds the writer's own clock (ns since t0), so each read names the instant
    of the update it saw; every other file read after it must hold its waveform's value at
    some instant between that update (less two update periods: the files are written one after
    another) and the end of the read. Only causality is asserted, never a lag: a loaded machine
    may delay the writer, but never make it write a wrong value.
    """
    ramp_p, steps_p, sine_p, wrap_p = (tmp_path / n for n in ("ramp", "steps", "sine", "wrap"))
    ramp = {"kind": "ramp", "start": 0, "rate_per_s": 1e9}  # the value is ns since t0
    steps = {"kind": "steps", "levels": [10, 20, 30], "period_s": 0.02}
    sine = {"kind": "sine", "offset": 5000, "amplitude": 1000, "freq_hz": 5.0}
    wrap = {"kind": "ramp", "start": 0, "rate_per_s": 20_000, "wrap": 1000}
    files = {ramp_p: ramp, steps_p: steps, sine_p: sine, wrap_p: wrap}
    with WaveformWriter(files, rate_hz=2000) as w:
        assert w.running()
        assert w.update_period_ns == 500_000
        slack = 2 * w.update_period_ns
        fds = {p: os.open(p, os.O_RDONLY) for p in files}
        seen_steps: set[int] = set()
        wrap_values: list[int] = []
        try:
            # at least 60 reads, and on until every step level and a wrap were seen (a bound
            # on waiting for the writer, not a check of its speed)
            for i in range(60_000):
                if i >= 60 and seen_steps == {10, 20, 30} and wrapped(wrap_values):
                    break
                vals = {p: int(os.pread(fd, 64, 0)) for p, fd in fds.items()}
                r1 = now_ns()
                written = w.t0_ns + vals[ramp_p]  # the instant of the update the ramp read saw
                assert w.t0_ns <= written <= r1
                window = range(written - slack, r1 + 1, 50_000)
                assert vals[steps_p] in {expected_raw(steps, t, w.t0_ns) for t in window}
                seen_steps.add(vals[steps_p])
                nearest = min(abs(w.expected(sine_p, t) - vals[sine_p]) for t in window)
                assert nearest <= 2 * math.pi * 5.0 * 1000 * 50e-6 + 1
                assert 0 <= vals[wrap_p] < 1000
                wrap_values.append(vals[wrap_p])
                time.sleep(0.004)
        finally:
            for fd in fds.values():
                os.close(fd)
        pid = w.pid
        assert pid is not None
    assert seen_steps == {10, 20, 30}
    assert wrapped(wrap_values)
    assert not w.running()
    assert process_gone(pid)


def test_writer_exits_cleanly_on_sigterm_and_stop_is_idempotent(tmp_path: Path) -> None:
    w = WaveformWriter({tmp_path / "v": {"kind": "const", "value": 3}}, t0_file=tmp_path / "t0")
    with w:
        assert fs.read_value(tmp_path / "v") == 3
        assert int((tmp_path / "t0").read_text()) == w.t0_ns
        assert w.t0_ns <= now_ns()
        pid = w.pid
        assert pid is not None
        assert w.stop() == 0  # graceful: the SIGTERM handler ends the loop
    assert w.stop() is None
    assert process_gone(pid)


def test_writer_stops_itself_after_max_seconds(tmp_path: Path) -> None:
    with WaveformWriter({tmp_path / "v": {"kind": "const", "value": 1}}, max_seconds=0.1) as w:
        deadline = time.monotonic() + 10
        while w.running() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not w.running()


def test_bad_wave_is_rejected_before_spawning(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        WaveformWriter({tmp_path / "v": {"kind": "steps", "levels": []}})


def test_child_failure_reports_its_stderr(tmp_path: Path) -> None:
    w = WaveformWriter(
        {tmp_path / "v": {"kind": "const", "value": 1}},
        t0_file=tmp_path / "missing-dir" / "t0",
    )
    with pytest.raises(RuntimeError, match="exited"), w:
        pass
    assert not w.running()


def test_cli_spec_from_file_and_make(tmp_path: Path) -> None:
    spec = {"files": [], "t0_file": str(tmp_path / "t0"), "max_seconds": 0}
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    assert fs.main(["waveform", "--spec", str(spec_file)]) == 0
    assert (tmp_path / "t0").exists()
    assert fs.main(["waveform", "--spec", "{not json"]) == 2
    assert fs.main(["make", "rpi", str(tmp_path / "rpi")]) == 0
    assert (tmp_path / "rpi" / "class" / "hwmon" / "hwmon3" / "power1_input").is_file()
