"""Sampler: sustained rate and missed deadlines, native thread against a Python thread.

Both sample the same work: RSS of this process (/proc/self/statm) plus 4 power channels in a
fake sysfs tree (ina219 hwmon files), read from pre-opened descriptors with pread, on absolute
deadlines, skipping (and counting) deadlines they wake too late for. The Python sampler is the
best a Python thread does: plain os.pread and int(), no psutil, deadlines from
time.perf_counter_ns, SCHED_FIFO when granted (as the native one asks for).

Goals (issue 2): 10 kHz with < 0.1 % missed deadlines, and >= 10x the Python sampler's
sustained rate.

    .venv/bin/python bench/bench_sampler.py [--seconds 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import save

from edgeprof.device.roots import SystemRoots
from edgeprof.device.sampler import Sampler
from edgeprof.device.sources.power import discover_power
from edgeprof.device.sources.system import rss_channel
from edgeprof.testing.fake_sysfs import fake_roots, make_hwmon_ina219

RATES = (1_000, 5_000, 10_000, 20_000)


def hold(seconds: float, busy: bool) -> None:
    """The profiled work: idle, or a Python loop holding the GIL (as TFLM's invoke does)."""
    if not busy:
        time.sleep(seconds)
        return
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        for i in range(1000):
            x += i


def native_run(
    channels: list[Any], rate: int, seconds: float, realtime: bool, busy: bool
) -> dict[str, Any]:
    with Sampler(channels, rate_hz=rate, realtime=realtime) as s:
        hold(seconds, busy)
    assert s.trace is not None
    st = s.trace.stats
    return {
        "samples": st.samples,
        "missed": st.missed,
        "missed_ratio": st.missed_ratio,
        "rate_hz": st.samples / seconds,
        "lateness_mean_ns": st.lateness_mean_ns,
        "realtime": st.realtime,
        "read_errors": st.read_errors,
    }


def python_run(
    paths: list[str], statm: str, rate: int, seconds: float, busy: bool
) -> dict[str, Any]:
    fds = [os.open(p, os.O_RDONLY) for p in paths]
    sfd = os.open(statm, os.O_RDONLY)
    page = os.sysconf("SC_PAGE_SIZE")
    result: dict[str, Any] = {}
    stop = threading.Event()

    def loop() -> None:
        rt = False
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
            rt = True
        except (PermissionError, OSError):
            pass
        period = round(1e9 / rate)
        clock = time.perf_counter_ns
        deadline = clock() + period
        samples = missed = 0
        rows: list[tuple[int, float, list[int]]] = []
        while not stop.is_set():
            now = clock()
            if deadline > now:
                time.sleep((deadline - now) / 1e9)
            t = clock()
            rss = int(os.pread(sfd, 128, 0).split()[1]) * page
            vals = [int(os.pread(fd, 64, 0)) for fd in fds]
            rows.append((t, float(rss), vals))
            samples += 1
            done = clock()
            deadline += period
            if done >= deadline:
                skip = (done - deadline) // period + 1
                missed += skip
                deadline += skip * period
        result.update(samples=samples, missed=missed, realtime=rt)

    th = threading.Thread(target=loop)
    th.start()
    hold(seconds, busy)
    stop.set()
    th.join()
    for fd in [*fds, sfd]:
        os.close(fd)
    total = result["samples"] + result["missed"]
    result["missed_ratio"] = result["missed"] / total if total else 0.0
    result["rate_hz"] = result["samples"] / seconds
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        roots = fake_roots(Path(tmp))
        for i in range(4):
            make_hwmon_ina219(roots.sysfs, i, device=f"1-004{i}")
        power = [c for c in discover_power(roots) if c.quantity == "power"]
        assert len(power) == 4, power
        channels = [rss_channel(SystemRoots(), os.getpid()), *power]
        paths = [c.paths[0] for c in power]
        statm = f"/proc/{os.getpid()}/statm"
        out: dict[str, Any] = {
            "seconds": args.seconds,
            "rounds": args.rounds,
            "channels": "RSS (statm) + 4 fake-sysfs ina219 power files",
        }
        for scenario in ("idle", "gil_busy"):
            busy = scenario == "gil_busy"
            print(f"main thread {scenario}:")
            out[scenario] = run_scenario(channels, paths, statm, args, busy)
    path = save("sampler", out)
    print(f"results: {path}")


def run_scenario(
    channels: list[Any], paths: list[str], statm: str, args: argparse.Namespace, busy: bool
) -> dict[str, Any]:
    """Every rate, ABAB over native (SCHED_FIFO), Python thread, native (normal priority)."""
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for rate in RATES:
        per: dict[str, list[dict[str, Any]]] = {"native": [], "native_no_rt": [], "python": []}
        for r in range(args.rounds):
            order = ["native", "python", "native_no_rt"]
            if r % 2:
                order.reverse()
            for name in order:
                if name == "python":
                    per[name].append(python_run(paths, statm, rate, args.seconds, busy))
                else:
                    rt = name == "native"
                    per[name].append(native_run(channels, rate, args.seconds, rt, busy))
        results[str(rate)] = per
        line = [f"{rate:>6} Hz"]
        for name, runs in per.items():
            achieved = statistics.median(x["rate_hz"] for x in runs)
            missed = statistics.median(x["missed_ratio"] for x in runs)
            line.append(f"{name}: {achieved:8.0f}/s missed {missed:7.3%}")
        print("  ".join(line), flush=True)
    summary: dict[str, Any] = {}
    for rate_key, per in results.items():
        nat = statistics.median(x["rate_hz"] for x in per["native"])
        py = statistics.median(x["rate_hz"] for x in per["python"])
        summary[rate_key] = {
            "native_rate_hz": nat,
            "native_missed_ratio_median": statistics.median(
                x["missed_ratio"] for x in per["native"]
            ),
            "native_missed_ratio_max": max(x["missed_ratio"] for x in per["native"]),
            "native_no_rt_missed_ratio_median": statistics.median(
                x["missed_ratio"] for x in per["native_no_rt"]
            ),
            "python_rate_hz": py,
            "python_missed_ratio_median": statistics.median(
                x["missed_ratio"] for x in per["python"]
            ),
            "ratio_native_over_python": nat / py if py else None,
        }
    best_py = max(v["python_rate_hz"] for v in summary.values())
    best_native = max(v["native_rate_hz"] for v in summary.values())
    print(
        f"  best sustained: native {best_native:.0f}/s, python {best_py:.0f}/s "
        f"(x{best_native / best_py:.1f})"
    )
    return {
        "runs": results,
        "summary": summary,
        "best_sustained_native_hz": best_native,
        "best_sustained_python_hz": best_py,
        "ratio_best_sustained": best_native / best_py,
    }


if __name__ == "__main__":
    main()
