"""The native sampler end to end, on real files rewritten by a separate process.

A helper process (edgeprof.testing.fake_sysfs.WaveformWriter) writes known waveforms into a fake
sysfs tree; the sampler reads them through the same C code path as /sys. Each sample must match
the waveform at its own timestamp, give or take the lag between writer and reader.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgeprof import native
from edgeprof.device.channels import ChannelSpec, ReadKind
from edgeprof.device.roots import SystemRoots
from edgeprof.device.sampler import Sampler
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

# A sample may show the value the writer wrote up to this long before the sample's tick: the
# writer's update period plus scheduling delays on a busy 2-core machine.
MAX_LAG_NS = 5_000_000


def _follows(
    wave: dict[str, object], t_ns: np.ndarray, values: np.ndarray, t0: int, tol: float
) -> float:
    """The fraction of samples equal (within tol) to the waveform somewhere in [t - lag, t]."""
    ok = 0
    for t, v in zip(t_ns.tolist(), values.tolist(), strict=True):
        window = np.linspace(t - MAX_LAG_NS, t, 41)
        expect = np.array([expected_value(wave, int(w), t0) for w in window])
        if expect.min() - tol <= v <= expect.max() + tol:
            ok += 1
    return ok / len(values)


def test_samples_follow_steps_and_sine(tmp_path: Path) -> None:
    roots = fake_roots(tmp_path)
    hw0 = make_hwmon_ina219(roots.sysfs, 0, device="1-0040")
    hw1 = make_hwmon_ina219(roots.sysfs, 3, device="1-0041")
    channels = [c for c in discover_power(roots) if c.quantity == "power"]
    assert len(channels) == 2
    steps = {"kind": "steps", "levels": [1_000_000, 3_000_000, 2_000_000], "period_s": 0.05}
    sine = {"kind": "sine", "offset": 2_000_000, "amplitude": 1_000_000, "freq_hz": 5.0}
    files = {hw0 / "power1_input": steps, hw1 / "power1_input": sine}
    by_dir = {str(hw0): steps, str(hw1): sine}
    with WaveformWriter(files) as writer:
        with Sampler(channels, rate_hz=1000.0) as sampler:
            time.sleep(0.6)
        t0 = writer.t0_ns
    trace = sampler.trace
    assert trace is not None
    assert 400 <= len(trace) <= 700
    t_ns = trace.times_ns()
    assert np.all(np.diff(t_ns) > 0)
    for i, spec in enumerate(trace.specs):
        wave = next(w for d, w in by_dir.items() if spec.paths[0].startswith(d))
        watts_to_raw = 1e6  # the files hold microwatts; the sampler gives watts
        frac = _follows(wave, t_ns, trace.values[:, i] * watts_to_raw, t0, tol=2.0)
        assert frac >= 0.98, f"{spec.name}: only {frac:.1%} of samples match the waveform"
    # Every level of the step waveform was seen: the samples are live, not a stale value.
    step_col = next(i for i, s in enumerate(trace.specs) if s.paths[0].startswith(str(hw0)))
    seen = set(np.round(trace.values[:, step_col], 3).tolist())
    assert {1.0, 2.0, 3.0} <= seen
    assert trace.stats.samples == len(trace)
    assert trace.channel_errors == {}


def test_rapl_counter_unwraps(tmp_path: Path) -> None:
    roots = fake_roots(tmp_path)
    wrap = 1_000_000  # uJ: wraps twice a second at 2 W
    (zone,) = make_rapl(roots.sysfs, {"intel-rapl:0": "package-0"}, max_energy_range_uj=wrap)
    (spec,) = [c for c in discover_power(roots) if c.kind is ReadKind.COUNTER]
    assert spec.wrap == wrap
    assert spec.unit == "J"
    ramp = {"kind": "ramp", "start": 900_000, "rate_per_s": 2_000_000, "wrap": wrap}
    with WaveformWriter({zone / "energy_uj": ramp}), Sampler([spec], rate_hz=500.0) as sampler:
        time.sleep(1.2)
    trace = sampler.trace
    assert trace is not None
    energy = trace.values[:, 0]
    seconds = trace.times_ns() / 1e9
    # Unwrapped: never decreases, although the raw counter wrapped at least twice.
    assert np.all(np.diff(energy) >= -1e-6)
    watts = (energy[-1] - energy[0]) / (seconds[-1] - seconds[0])
    assert watts == pytest.approx(2.0, rel=0.05)
    assert energy[-1] - energy[0] > 2.0 * wrap * 1e-6  # crossed more than two wraps


def test_rss_of_a_child_process(tmp_path: Path) -> None:
    # The target pid is a parameter: watch a child that allocates 128 MiB after 0.3 s.
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; time.sleep(0.3); b = bytearray(128 << 20); time.sleep(0.6)",
        ]
    )
    try:
        spec = rss_channel(SystemRoots(), child.pid)
        with Sampler([spec], rate_hz=200.0) as sampler:
            time.sleep(0.8)
    finally:
        child.wait(timeout=10)
    trace = sampler.trace
    assert trace is not None
    rss = trace.values[:, 0]
    rss = rss[np.isfinite(rss)]
    assert rss.max() - rss.min() > 120 * 2**20


def test_malformed_values_become_nan_and_are_counted(tmp_path: Path) -> None:
    good = tmp_path / "good"
    bad = tmp_path / "bad"
    write_value(good, 42)
    bad.write_text("12abc\n")
    specs = [
        ChannelSpec("good", "power", "W", ReadKind.VALUE, (str(good),), scale=1e-6),
        ChannelSpec("bad", "power", "W", ReadKind.VALUE, (str(bad),), scale=1e-6),
    ]
    with Sampler(specs, rate_hz=200.0) as sampler:
        time.sleep(0.1)
    trace = sampler.trace
    assert trace is not None
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
    time.sleep(0.05)
    sampler.stop()
    stats = sampler.stats()
    assert stats.overflows > 0
    ticks, values = sampler.drain()
    assert len(ticks) == 16
    assert values.shape == (16, 1)


def test_rates_up_to_10khz_are_sustained() -> None:
    # Not a performance assertion (bench/ measures that): at 10 kHz the thread must keep up
    # well enough to produce most samples and to account for every one it missed.
    spec = rss_channel(SystemRoots(), os.getpid())
    with Sampler([spec], rate_hz=10_000.0) as sampler:
        time.sleep(0.5)
    trace = sampler.trace
    assert trace is not None
    stats = trace.stats
    assert stats.samples == len(trace)
    assert 2_500 < stats.samples + stats.missed <= 5_100
    assert stats.overflows == 0


def test_first_tick_in_a_fresh_process_is_calibrated() -> None:
    # Regression: a sampler started before anything asked for the clock took its ticks from an
    # uncalibrated source, and every timestamp was off by minutes. Run it in a fresh process.
    code = (
        "import os, time\n"
        "from edgeprof.device.sampler import Sampler\n"
        "from edgeprof.device.roots import SystemRoots\n"
        "from edgeprof.device.sources.system import rss_channel\n"
        "from edgeprof import native\n"
        "with Sampler([rss_channel(SystemRoots(), os.getpid())], 100.0) as s:\n"
        "    time.sleep(0.1)\n"
        "print(int(s.trace.times_ns()[-1]), native.monoraw_ns())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    last_sample, now = map(int, out.stdout.split())
    assert 0 <= now - last_sample < 200_000_000
