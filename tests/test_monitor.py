"""The two-rate monitor on a Jetson-like fake tree, with this process as the target."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from edgeprof.device.monitor import Monitor
from edgeprof.device.roots import SystemRoots
from edgeprof.testing.fake_sysfs import WaveformWriter, fake_roots, make_jetson_like


def test_fast_and_slow_channels_on_a_jetson_tree(tmp_path: Path) -> None:
    fake = fake_roots(tmp_path)
    make_jetson_like(fake.sysfs)
    roots = dataclasses.replace(SystemRoots(), sysfs=fake.sysfs)  # real /proc: this process
    freq = fake.sysfs / "devices" / "system" / "cpu" / "cpu0" / "cpufreq" / "scaling_cur_freq"
    # Throttling: cpu0 drops from 1.5 GHz to 0.73 GHz every 0.2 s.
    throttle = {"kind": "steps", "levels": [1_510_400, 729_600], "period_s": 0.2}
    with WaveformWriter({freq: throttle}), Monitor(roots, rate_hz=500.0, slow_rate_hz=50.0) as m:
        time.sleep(0.9)
    traces = m.traces
    assert traces is not None
    fast, slow = traces.fast, traces.slow
    assert slow is not None
    assert "mem.rss" in fast.names
    assert any(s.label == "VDD_IN" and s.quantity == "power" for s in fast.specs)
    assert 300 <= len(fast) <= 500
    assert np.all(fast.column("mem.rss") > 1 << 20)
    assert "mem.pss" in slow.names
    assert 25 <= len(slow) <= 50
    cpu0 = slow.column("cpu0.freq")
    assert set(np.unique(cpu0).tolist()) == {729_600_000.0, 1_510_400_000.0}  # Hz, both seen
    assert any(name.startswith("thermal.") for name in slow.names)
    assert fast.channel_errors == {}
    assert slow.channel_errors == {}
