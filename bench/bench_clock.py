"""Tick read cost in C, and a region mark through cffi, against time.perf_counter_ns().

Goals (issue 2): <= 25 ns per tick read in C; a region mark through cffi no slower than one
perf_counter_ns() call. The mark is timed both as edgeprof calls it (edgeprof.native.mark_begin:
the C function in the cffi module, reached through the edgeprof._marks builtin) and through
cffi's own generated wrapper (GIL release + errno save per call), to show why. All Python-side
loops are the same shape (two calls per iteration, functions bound to locals), so the loop
overhead cancels in the ratio; an empty loop of the
same shape is timed too and subtracted for the absolute figures.

    .venv/bin/python bench/bench_clock.py [--n 1000000] [--rounds 10]
"""

from __future__ import annotations

import argparse
import time

from _common import abab, save, summary

from edgeprof import native


def per_call_marks(n: int, cffi_direct: bool = False) -> float:
    r = native.Regions(n)
    r.activate()
    if cffi_direct:
        begin, end = native.cffi_mark_begin, native.cffi_mark_end
    else:
        begin, end = native.mark_begin, native.mark_end
    clock = time.perf_counter_ns
    t0 = clock()
    for _ in range(n):
        begin()
        end()
    t1 = clock()
    r.deactivate()
    assert r.count == n
    return (t1 - t0) / (2 * n)


def per_call_perf_counter(n: int) -> float:
    pc = time.perf_counter_ns
    t0 = pc()
    for _ in range(n):
        pc()
        pc()
    t1 = pc()
    return (t1 - t0) / (2 * n)


def per_call_empty(n: int) -> float:
    def nop() -> None:
        return None

    pc = time.perf_counter_ns
    t0 = pc()
    for _ in range(n):
        nop()
        nop()
    t1 = pc()
    return (t1 - t0) / (2 * n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    info = native.clock_info()
    runs = abab(
        [
            ("c_tick_read_ns", lambda: native.measure_read_cost(args.n)),
            ("region_mark_ns", lambda: per_call_marks(args.n)),
            ("cffi_wrapper_region_mark_ns", lambda: per_call_marks(args.n, cffi_direct=True)),
            ("perf_counter_ns_call_ns", lambda: per_call_perf_counter(args.n)),
            ("python_empty_call_ns", lambda: per_call_empty(args.n)),
        ],
        args.rounds,
    )
    res = {k: summary(v) for k, v in runs.items()}
    mark = res["region_mark_ns"]["median"]
    pc = res["perf_counter_ns_call_ns"]["median"]
    ratio = mark / pc
    out = {
        "tick_source": info.source.name.lower(),
        "tick_hz": info.hz,
        "n": args.n,
        "rounds": args.rounds,
        "results": res,
        "ratio_mark_over_perf_counter_ns": ratio,
        "goal_tick_read_le_25ns": res["c_tick_read_ns"]["median"] <= 25.0,
        "goal_mark_le_perf_counter_ns": ratio <= 1.0,
    }
    path = save("clock", out)
    print(f"tick source: {info.source.label} at {info.hz / 1e6:.1f} MHz")
    for k, v in res.items():
        print(f"  {k:<26} median {v['median']:7.1f} ns  (min {v['min']:.1f}, max {v['max']:.1f})")
    print(f"  region mark / perf_counter_ns() = {ratio:.3f}")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
