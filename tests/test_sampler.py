"""The native sampler end to end, on real files rewritten by a separate process.

A helper process (edgeprof.testing.fake_sysfs.WaveformWriter) writes known waveforms into a fake
sysfs tree; the sampler reads them through the same C code path as /sys. No assertion bounds a
duration or a rate (bench/bench_sampler.py measures those): each sample is checked against
causality (the value the writer wrote at some instant the sample could have seen) and the
counts are the ones the sampler reports about itself. Runs last until what a check needs was
observed, in rounds bounded only so that a dead writer or sampler ends the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from edgeprof import native
from edgeprof.device.channels import ChannelSpec, ReadKind
from edgeprof.device.roots import SystemRoots
from edgeprof.device.sampler import Sampler, Trace
from edgeprof.device.sources.power import discover_power
from edgeprof.device.sources.system import rss_channel
from edgeprof.errors import InputError, NativeError
from edgeprof.testing.fake_sysfs import (
    WaveformWriter,
    expected_value,
    fake_roots,
    make_hwmon_ina219,
    make_rapl,
    write_value,
)

pytestmark = pytest.mark.integration

ROUNDS = 60  # a bound on waiting for a condition, never a check of how long it took
# Tick-to-ns conversion error since calibration (test_clock.py bounds it the same way).
CLOCK_SLACK_NS = 50_000
# The writer's clock: a ramp file holding ns since the writer's t0, written last in each update.
CLOCK_WAVE = {"kind": "ramp", "start": 0, "rate_per_s": 1e9}


def clock_channel(path: Path) -> ChannelSpec:
    """The writer's clock file as a channel (read first in every sample: column 0)."""
    return ChannelSpec("writer.clock", "time", "ns", ReadKind.VALUE, (str(path),), scale=1.0)


def sample_until(
    channels: Sequence[ChannelSpec],
    rate_hz: float,
    done: Callable[[Trace], bool],
    round_s: float = 0.3,
) -> list[Trace]:
    """Sampler sessions of round_s (doubling) until ``done(trace)``; every trace is returned,
    so that each is checked, not only the last."""
    traces = []
    for k in range(ROUNDS):
        with Sampler(channels, rate_hz=rate_hz) as sampler:
            time.sleep(min(round_s * 2**k, 5.0))
        trace = sampler.trace
        assert trace is not None
        assert trace.stats.samples == len(trace)  # nothing lost between thread and trace
        traces.append(trace)
        if done(trace):
            return traces
    raise AssertionError(f"condition not met in {ROUNDS} sampler sessions")


def wave_range(wave: dict[str, object], lo_ns: int, hi_ns: int, t0: int) -> tuple[float, float]:
    """The least and greatest value ``wave`` takes over [lo_ns, hi_ns] (sampled every 20 us,
    widened by what a sine can move between two such points)."""
    points = np.linspace(lo_ns, hi_ns, max(2, (hi_ns - lo_ns) // 20_000 + 2))
    values = [expected_value(wave, int(t), t0) for t in points]
    step = 0.0
    if wave["kind"] == "sine":
        amplitude, freq = float(wave["amplitude"]), float(wave["freq_hz"])  # type: ignore[arg-type]
        step = 2 * np.pi * freq * amplitude * 20e-6
    return min(values) - step - 1.0, max(values) + step + 1.0


def check_causal(trace: Trace, waves: dict[int, dict[str, object]], t0: int, end_ns: int) -> None:
    """Column 0 is the writer's clock; each other column ``c`` holds ``waves[c]`` in microwatts.

    In each writer update the clock is written last; in each sample it is read first. So a
    sample whose clock reads r saw, on every other file, an update made at or after t0 + r, and
    no later than the sample's reads ended: before the next sample's tick (or the stop)."""
    t_ns = trace.times_ns()
    clock = trace.values[:, 0]
    assert np.all(np.diff(t_ns) > 0)
    assert np.all(np.diff(clock) >= 0)  # a later sample never sees an older update
    upper = np.append(t_ns[1:], end_ns) + CLOCK_SLACK_NS
    assert np.all(t0 + clock <= upper)  # no sample saw an update from its future
    for col, wave in waves.items():
        raw = trace.values[:, col] * 1e6  # the files hold microwatts; the sampler gives watts
        for i in range(len(trace)):
            lo, hi = wave_range(wave, t0 + int(clock[i]), int(upper[i]), t0)
            assert lo <= raw[i] <= hi, f"{trace.specs[col].name}: sample {i} = {raw[i]}"


def test_samples_follow_steps_and_sine(tmp_path: Path) -> None:
    roots = fake_roots(tmp_path)
    hw0 = make_hwmon_ina219(roots.sysfs, 0, device="1-0040")
    hw1 = make_hwmon_ina219(roots.sysfs, 3, device="1-0041")
    power = [c for c in discover_power(roots) if c.quantity == "power"]
    assert len(power) == 2
    steps = {"kind": "steps", "levels": [1_000_000, 3_000_000, 2_000_000], "period_s": 0.05}
    sine = {"kind": "sine", "offset": 2_000_000, "amplitude": 1_000_000, "freq_hz": 5.0}
    clock_file = tmp_path / "writer_clock"
    files = {hw0 / "power1_input": steps, hw1 / "power1_input": sine, clock_file: CLOCK_WAVE}
    channels = [clock_channel(clock_file), *power]
    waves = {1 + i: steps if s.paths[0].startswith(str(hw0)) else sine for i, s in enumerate(power)}
    step_col = next(c for c, w in waves.items() if w is steps)
    seen: set[float] = set()

    def every_level_seen(trace: Trace) -> bool:
        seen.update(np.round(trace.values[:, step_col], 3).tolist())
        return {1.0, 2.0, 3.0} <= seen

    with WaveformWriter(files) as writer:
        traces = sample_until(channels, 1000.0, every_level_seen)
        end_ns = native.monoraw_ns()
        t0 = writer.t0_ns
    for trace in traces:
        check_causal(trace, waves, t0, end_ns)
        assert trace.channel_errors == {}
    # Every level of the step waveform was seen: the samples are live, not a stale value.
    assert seen == {1.0, 2.0, 3.0}


def test_rapl_counter_unwraps(tmp_path: Path) -> None:
    roots = fake_roots(tmp_path)
    wrap = 1_000_000  # uJ: wraps twice a second at 2 W
    (zone,) = make_rapl(roots.sysfs, {"intel-rapl:0": "package-0"}, max_energy_range_uj=wrap)
    (spec,) = [c for c in discover_power(roots) if c.kind is ReadKind.COUNTER]
    assert spec.wrap == wrap
    assert spec.unit == "J"
    ramp = {"kind": "ramp", "start": 900_000, "rate_per_s": 2_000_000, "wrap": wrap}
    clock_file = tmp_path / "writer_clock"
    files = {zone / "energy_uj": ramp, clock_file: CLOCK_WAVE}

    def two_wraps(trace: Trace) -> bool:
        energy = trace.values[:, 1]
        return len(trace) > 1 and bool(energy[-1] - energy[0] > 2.0 * wrap * 1e-6)

    with WaveformWriter(files) as writer:
        traces = sample_until([clock_channel(clock_file), spec], 500.0, two_wraps, round_s=1.2)
        end_ns = native.monoraw_ns()
        t0 = writer.t0_ns
    trace = traces[-1]
    energy, clock = trace.values[:, 1], trace.values[:, 0]
    upper = np.append(trace.times_ns()[1:], end_ns) + CLOCK_SLACK_NS - t0  # ns since t0
    # Unwrapped: never decreases, although the raw counter wrapped at least twice.
    assert np.all(np.diff(energy) >= -1e-6)
    # The value a sample saw was written at a writer instant between its clock reading and the
    # end of its reads (see check_causal). At 2 W the energy gained since the first sample is
    # therefore bounded by those instants: exact arithmetic (plus 1 uJ rounding per value),
    # whatever the load, instead of a rate estimated over wall-clock time.
    gained = energy - energy[0]
    lo = 2.0 * (clock - upper[0]) * 1e-9 - 2e-6
    hi = 2.0 * (upper - clock[0]) * 1e-9 + 2e-6
    assert np.all((lo <= gained) & (gained <= hi))


def test_rss_of_a_child_process() -> None:
    # The target pid is a parameter: watch a child that allocates 128 MiB when told to, and
    # sample it before and after (each session until it has samples).
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "sys.stdin.readline(); b = bytearray(128 << 20); print('ok', flush=True)\n"
            "sys.stdin.readline()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        spec = rss_channel(SystemRoots(), child.pid)
        before = sample_until([spec], 200.0, lambda t: len(t) > 0, round_s=0.05)[-1]
        child.stdin.write("allocate\n")
        child.stdin.flush()
        assert child.stdout.readline() == "ok\n"
        after = sample_until([spec], 200.0, lambda t: len(t) > 0, round_s=0.05)[-1]
        child.stdin.write("exit\n")
        child.stdin.flush()
    finally:
        child.wait(timeout=60)
    small, big = before.values[:, 0], after.values[:, 0]
    assert np.isfinite(small).all()
    assert np.isfinite(big).all()
    assert big.min() - small.max() > 120 * 2**20


def test_malformed_values_become_nan_and_are_counted(tmp_path: Path) -> None:
    good = tmp_path / "good"
    bad = tmp_path / "bad"
    write_value(good, 42)
    bad.write_text("12abc\n")
    specs = [
        ChannelSpec("good", "power", "W", ReadKind.VALUE, (str(good),), scale=1e-6),
        ChannelSpec("bad", "power", "W", ReadKind.VALUE, (str(bad),), scale=1e-6),
    ]
    (trace,) = sample_until(specs, 200.0, lambda t: len(t) > 0, round_s=0.1)[-1:]
    assert np.all(trace.column("good") == pytest.approx(42e-6))
    assert np.all(np.isnan(trace.column("bad")))
    assert trace.channel_errors["bad"][0] == len(trace)
    assert trace.channel_errors["bad"][1] == "not a number"
    assert "good" not in trace.channel_errors


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    spec = ChannelSpec("gone", "power", "W", ReadKind.VALUE, (str(tmp_path / "nope"),))
    with pytest.raises(NativeError, match="nope"):
        Sampler([spec])


@pytest.mark.parametrize("rate", [0.0, -1.0, 1e9])
def test_bad_rates_are_refused(rate: float) -> None:
    with pytest.raises(InputError):
        Sampler([], rate_hz=rate)


def test_ring_overflow_is_counted_not_blocking(tmp_path: Path) -> None:
    good = tmp_path / "v"
    write_value(good, 1)
    sampler = native.NativeSampler(rate_hz=2000.0, ring_capacity=16)
    sampler.add(ChannelSpec("v", "power", "W", ReadKind.VALUE, (str(good),)))
    sampler.start()
    try:  # nothing drains: once the thread has taken more than 16 samples, some were dropped
        for _ in range(ROUNDS * 100):
            if sampler.stats().samples > 16:
                break
            time.sleep(0.01)
    finally:
        sampler.stop()
    stats = sampler.stats()
    assert stats.samples > 16
    assert stats.overflows == stats.samples - 16  # every record the ring had no room for
    ticks, values = sampler.drain()
    assert len(ticks) == 16
    assert values.shape == (16, 1)


def test_every_deadline_at_10khz_is_sampled_or_counted_missed() -> None:
    # Not a performance assertion (bench/bench_sampler.py measures that): at 10 kHz the thread
    # accounts for every deadline between its first and last sample, sampled or missed, and
    # its ring (2 s of records, drained every 50 ms) loses nothing.
    spec = rss_channel(SystemRoots(), os.getpid())
    (trace,) = sample_until([spec], 10_000.0, lambda t: len(t) > 1, round_s=0.2)[-1:]
    stats = trace.stats
    assert stats.samples == len(trace)
    assert stats.overflows == 0
    # Deadlines are one period apart and a late wake-up skips the ones it overslept, so the
    # span between the first and the last sample's deadline is (samples - 1 + missed) periods;
    # each sample's tick lies between its deadline and that deadline plus its lateness.
    span_ns = int(np.diff(trace.times_ns()[[0, -1]])[0])
    periods = stats.samples - 1 + stats.missed
    slack = stats.lateness_max_ns + CLOCK_SLACK_NS
    assert periods * 100_000 - slack <= span_ns <= periods * 100_000 + slack


def test_first_tick_in_a_fresh_process_is_calibrated() -> None:
    # Regression: a sampler started before anything asked for the clock took its ticks from an
    # uncalibrated source, and every timestamp was off by minutes. Run it in a fresh process:
    # every sample's time lies between CLOCK_MONOTONIC_RAW read before the start and after the
    # stop (give or take the conversion's calibration error).
    code = (
        "import os, time\n"
        "from edgeprof.device.sampler import Sampler\n"
        "from edgeprof.device.roots import SystemRoots\n"
        "from edgeprof.device.sources.system import rss_channel\n"
        "from edgeprof import native\n"
        "n = 0\n"
        "while n == 0:\n"
        "    before = native.monoraw_ns()\n"
        "    with Sampler([rss_channel(SystemRoots(), os.getpid())], 100.0) as s:\n"
        "        time.sleep(0.1)\n"
        "    after = native.monoraw_ns()\n"
        "    n = len(s.trace)\n"
        "t = s.trace.times_ns()\n"
        "print(before, int(t[0]), int(t[-1]), after)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    before, first, last, after = map(int, out.stdout.split())
    assert before - CLOCK_SLACK_NS <= first <= last <= after + CLOCK_SLACK_NS
