"""The sampler's cost to the profiled work: a CPU-bound loop with the sampler off, at 1 kHz
and at 10 kHz (RSS + 4 fake-sysfs power channels, as in bench_sampler.py).

Two kinds of work: a pure-Python loop (holds the GIL, so the Python drain thread competes
with it) and sha256 over a buffer in C (releases the GIL, like an inference runtime's invoke).
Variants run in ABAB order; each figure is the median of ``--rounds`` timings.

Goal (issue 2): < 1 % slowdown at 1 kHz.

    .venv/bin/python bench/bench_overhead.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import save

from edgeprof.device.channels import ChannelSpec
from edgeprof.device.roots import SystemRoots
from edgeprof.device.sampler import Sampler
from edgeprof.device.sources.power import discover_power
from edgeprof.device.sources.system import rss_channel
from edgeprof.testing.fake_sysfs import fake_roots, make_hwmon_ina219

BUF = os.urandom(1 << 20)


def python_work() -> None:
    x = 0
    for i in range(3_000_000):
        x += i * i


def native_work() -> None:
    for _ in range(200):
        hashlib.sha256(BUF).digest()


def timed(work: Callable[[], None], channels: list[ChannelSpec], rate: float | None) -> float:
    if rate is None:
        t0 = time.perf_counter()
        work()
        return time.perf_counter() - t0
    with Sampler(channels, rate_hz=rate):
        time.sleep(0.05)  # let the thread settle, as a run's warm-up would
        t0 = time.perf_counter()
        work()
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    out: dict[str, Any] = {"rounds": args.rounds}
    with tempfile.TemporaryDirectory() as tmp:
        roots = fake_roots(Path(tmp))
        for i in range(4):
            make_hwmon_ina219(roots.sysfs, i, device=f"1-004{i}")
        power = [c for c in discover_power(roots) if c.quantity == "power"]
        channels = [rss_channel(SystemRoots(), os.getpid()), *power]
        variants: list[tuple[str, float | None]] = [("off", None), ("1kHz", 1e3), ("10kHz", 1e4)]
        for work_name, work in (("python_loop", python_work), ("sha256_native", native_work)):
            times: dict[str, list[float]] = {name: [] for name, _ in variants}
            work()  # warm caches
            for r in range(args.rounds):
                order = variants if r % 2 == 0 else list(reversed(variants))
                for name, rate in order:
                    times[name].append(timed(work, channels, rate))
            med = {k: statistics.median(v) for k, v in times.items()}
            res = {
                "median_s": med,
                "min_s": {k: min(v) for k, v in times.items()},
                "slowdown_1kHz": med["1kHz"] / med["off"] - 1.0,
                "slowdown_10kHz": med["10kHz"] / med["off"] - 1.0,
            }
            out[work_name] = res
            print(
                f"{work_name:<14} off {med['off'] * 1e3:7.1f} ms  "
                f"1 kHz {med['1kHz'] * 1e3:7.1f} ms ({res['slowdown_1kHz']:+.2%})  "
                f"10 kHz {med['10kHz'] * 1e3:7.1f} ms ({res['slowdown_10kHz']:+.2%})",
                flush=True,
            )
    print(f"results: {save('overhead', out)}")


if __name__ == "__main__":
    main()
