"""Perturbation: does profiling change what it measures?

For each demo model, the median latency of one inference as `edgeprof run` measures it (native
regions, sampler at 1 kHz, RSS + power channels) against a bare Python loop of
``interpreter.invoke()`` timed with ``time.perf_counter_ns`` — the same runtime and options, in
the same process, interleaved round by round (ABAB). Also the wall time per iteration of each
loop, whose difference is the per-inference overhead edgeprof adds around invoke (setting the
input, two marks, the loop).

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
from edgeprof.inputs import random_inputs
from edgeprof.profile import ProfileRequest, profile
from edgeprof.runners import ModelFile, RunnerOptions, make_runner
from edgeprof.session import RunPlan
from edgeprof.stats import percentile_ci

MODELS = ("kws_mlp_int8", "ds_cnn_int8")


def bare_loop(model: Path, count: int) -> tuple[np.ndarray, float]:
    """invoke() timed by perf_counter_ns in a plain loop; returns latencies (s) and wall/iter."""
    runner = make_runner("tflite", ModelFile.load(model), RunnerOptions())
    runner.prepare()
    runner.set_inputs(random_inputs(runner.inputs, 1, seed=0)[0])
    invoke = runner._invoke  # type: ignore[attr-defined]  # the interpreter's own method
    clock = time.perf_counter_ns
    for _ in range(10):
        invoke()
    out = np.empty(count, dtype=np.int64)
    start = clock()
    for i in range(count):
        t0 = clock()
        invoke()
        out[i] = clock() - t0
    wall = (clock() - start) / count
    runner.close()
    return out / 1e9, wall / 1e9


def edgeprof_loop(model: Path, count: int) -> tuple[np.ndarray, float]:
    """The same model under edgeprof run's session (no report file)."""
    req = ProfileRequest(
        model=model,
        plan=RunPlan(warmup_count=10, min_count=count, min_seconds=0, max_count=count),
        save=False,
    )
    outcome = profile(req)
    wall = outcome.report["summary"]["measured_wall_s"] / outcome.session.count
    return outcome.session.latency_s, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--count", type=int, default=2000)
    args = ap.parse_args()
    out: dict[str, Any] = {"rounds": args.rounds, "count": args.count, "models": {}}
    for name in MODELS:
        path = Path(edgeprof.models.DIRECTORY) / f"{name}.tflite"
        runs: dict[str, list[tuple[np.ndarray, float]]] = {"edgeprof": [], "bare": []}
        for r in range(args.rounds):
            order = ["edgeprof", "bare"] if r % 2 == 0 else ["bare", "edgeprof"]
            for which in order:
                fn = edgeprof_loop if which == "edgeprof" else bare_loop
                runs[which].append(fn(path, args.count))
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
