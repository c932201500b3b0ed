"""Perturbation: does profiling change what it measures?

For each demo model, the median latency of one inference as `edgeprof run` measures it (its
measured loop: native regions around invoke, the monitor sampling at 1 kHz) against a bare
Python loop of ``interpreter.invoke()`` timed with ``time.perf_counter_ns`` — the same
interpreter instance, in the same process, interleaved round by round (ABAB). A third variant,
the same loop with the monitor off, tells the marks' share from the sampler's. Also the wall
time per iteration of each loop, whose difference is the per-inference overhead edgeprof adds
around invoke (setting the input, two marks, the loop).

Goal (issue 3): medians within 2 %, and edgeprof's p50 inside the bare loop's 95 % CI.

    .venv/bin/python bench/bench_perturbation.py [--rounds 6] [--count 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import save

import edgeprof.models
from edgeprof import native
from edgeprof.device.monitor import Monitor
from edgeprof.device.roots import SystemRoots
from edgeprof.measure.inputs import random_inputs
from edgeprof.measure.session import OutputBuffers, RunPlan, _measure
from edgeprof.measure.stats import percentile_ci
from edgeprof.runners import ModelFile, Runner, RunnerOptions, make_runner

MODELS = ("kws_mlp_int8", "ds_cnn_int8")
THREADS = 1  # one interpreter thread on both sides: the question is perturbation, not scaling


def bare_loop(runner: Runner, count: int) -> tuple[np.ndarray, float]:
    """invoke() timed by perf_counter_ns in a plain loop; returns latencies (s) and wall/iter."""
    invoke = runner._invoke  # type: ignore[attr-defined]  # the interpreter's own method
    clock = time.perf_counter_ns
    out = np.empty(count, dtype=np.int64)
    start = clock()
    for i in range(count):
        t0 = clock()
        invoke()
        out[i] = clock() - t0
    wall = (clock() - start) / count
    return out / 1e9, wall / 1e9


def edgeprof_loop(runner: Runner, count: int, sampling: bool = True) -> tuple[np.ndarray, float]:
    """edgeprof run's measured loop (session._measure: set input, marks around invoke) with
    the monitor sampling RSS and power at 1 kHz on its native threads."""
    plan = RunPlan(warmup_count=0, min_count=count, min_seconds=0, max_count=count)
    examples = random_inputs(runner.inputs, 1, seed=0)
    regions = native.Regions(count)
    clock = native.clock_info()
    if sampling:
        with Monitor(SystemRoots.from_env(), rate_hz=1000.0):
            wall, _ = _measure(runner, examples, plan, regions, None, OutputBuffers.allocate(count))
    else:
        wall, _ = _measure(runner, examples, plan, regions, None, OutputBuffers.allocate(count))
    marks = regions.arrays()
    return clock.ticks_to_seconds(marks["end_tick"] - marks["begin_tick"]), wall / count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--count", type=int, default=2000)
    args = ap.parse_args()
    out: dict[str, Any] = {"rounds": args.rounds, "count": args.count, "models": {}}
    for name in MODELS:
        path = Path(edgeprof.models.DIRECTORY) / f"{name}.tflite"
        runs: dict[str, list[tuple[np.ndarray, float]]] = {
            "edgeprof": [],
            "bare": [],
            "marks_only": [],
        }
        # One interpreter for both: a new interpreter instance alone moves a 3 us inference by
        # up to +-30 % (buffer placement), which would drown what is being measured here.
        runner = make_runner("tflite", ModelFile.load(path), RunnerOptions(threads=THREADS))
        runner.prepare()
        runner.set_inputs(random_inputs(runner.inputs, 1, seed=0)[0])
        for _ in range(100):
            runner.invoke()
        for r in range(args.rounds):
            order = ["edgeprof", "bare", "marks_only"]
            for which in order if r % 2 == 0 else reversed(order):
                if which == "bare":
                    runs[which].append(bare_loop(runner, args.count))
                else:
                    sampling = which == "edgeprof"
                    runs[which].append(edgeprof_loop(runner, args.count, sampling))
        runner.close()
        ep = np.concatenate([x[0] for x in runs["edgeprof"]])
        bare = np.concatenate([x[0] for x in runs["bare"]])
        ep_p50 = float(np.median(ep))
        bare_p50, lo, hi = percentile_ci(bare, 50)
        ep_wall = statistics.median(x[1] for x in runs["edgeprof"])
        bare_wall = statistics.median(x[1] for x in runs["bare"])
        res = {
            "edgeprof_p50_s": ep_p50,
            "bare_p50_s": bare_p50,
            "bare_p50_ci_s": [lo, hi],
            "ratio_p50": ep_p50 / bare_p50,
            "edgeprof_p50_inside_bare_ci": lo <= ep_p50 <= hi,
            "per_round_p50_ratio": [
                float(np.median(a[0]) / np.median(b[0]))
                for a, b in zip(runs["edgeprof"], runs["bare"], strict=True)
            ],
            "median_per_round_p50_ratio": statistics.median(
                float(np.median(a[0]) / np.median(b[0]))
                for a, b in zip(runs["edgeprof"], runs["bare"], strict=True)
            ),
            "marks_only_p50_s": float(
                np.median(np.concatenate([x[0] for x in runs["marks_only"]]))
            ),
            "edgeprof_wall_per_inference_s": ep_wall,
            "bare_wall_per_inference_s": bare_wall,
            "overhead_per_inference_ns": (ep_wall - bare_wall) * 1e9,
        }
        out["models"][name] = res
        print(
            f"{name:<14} edgeprof p50 {ep_p50 * 1e6:9.2f} us   bare p50 {bare_p50 * 1e6:9.2f} us "
            f"[{lo * 1e6:.2f}, {hi * 1e6:.2f}]   ratio {res['ratio_p50']:.4f}   "
            f"overhead/inference {res['overhead_per_inference_ns']:.0f} ns",
            flush=True,
        )
    print(f"results: {save('perturbation', out)}")


if __name__ == "__main__":
    main()
