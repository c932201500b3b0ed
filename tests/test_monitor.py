"""The two-rate monitor on a Jetson-like fake tree, with this process as the target.

No assertion bounds a duration or a rate: the run repeats until the slow channels have seen
both frequency levels, and the sample counts are checked against what each sampler reports.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest

from edgeprof.device.monitor import Monitor, MonitorTraces
from edgeprof.device.roots import SystemRoots
from edgeprof.testing.fake_sysfs import WaveformWriter, fake_roots, make_jetson_like

pytestmark = pytest.mark.integration

ROUNDS = 30  # a bound on waiting for the condition, never a check of how long it took


def test_fast_and_slow_channels_on_a_jetson_tree(tmp_path: Path) -> None:
    fake = fake_roots(tmp_path)
    make_jetson_like(fake.sysfs)
    roots = dataclasses.replace(SystemRoots(), sysfs=fake.sysfs)  # real /proc: this process
    freq = fake.sysfs / "devices" / "system" / "cpu" / "cpu0" / "cpufreq" / "scaling_cur_freq"
    # Throttling: cpu0 drops from 1.5 GHz to 0.73 GHz every 0.2 s.
    throttle = {"kind": "steps", "levels": [1_510_400, 729_600], "period_s": 0.2}
    levels = {729_600_000.0, 1_510_400_000.0}  # Hz
    runs: list[MonitorTraces] = []
    with WaveformWriter({freq: throttle}):
        for k in range(ROUNDS):
            with Monitor(roots, rate_hz=500.0, slow_rate_hz=50.0) as m:
                time.sleep(min(0.9 * 2**k, 5.0))
            assert m.traces is not None
            runs.append(m.traces)
            slow = m.traces.slow
            if slow is not None and set(np.unique(slow.column("cpu0.freq")).tolist()) == levels:
                break
        else:
            raise AssertionError(f"cpu0.freq never showed both levels in {ROUNDS} runs")
    for traces in runs:
        fast, slow = traces.fast, traces.slow
        assert slow is not None
        assert "mem.rss" in fast.names
        assert any(s.label == "VDD_IN" and s.quantity == "power" for s in fast.specs)
        # every sample each thread took is in its trace, none dropped
        assert fast.stats.samples == len(fast)
        assert fast.stats.overflows == 0
        assert slow.stats.samples == len(slow)
        assert slow.stats.overflows == 0
        assert np.all(fast.column("mem.rss") > 1 << 20)
        assert "mem.pss" in slow.names
        # only the levels the writer writes, never a torn or stale-garbage value
        assert set(np.unique(slow.column("cpu0.freq")).tolist()) <= levels
        assert any(name.startswith("thermal.") for name in slow.names)
        assert fast.channel_errors == {}
        assert slow.channel_errors == {}
    assert len(runs[-1].fast) > 0
