"""Memory: is the tool in the RSS it reports?

A long `edgeprof run` of the bundled MLP (``--count N --min-seconds 0``: exactly N measured
inferences) against a bare LiteRT loop of the same N inferences (set the input, invoke), each
in a fresh process, alternated round by round (ABAB). Both peaks are taken the same way: the
native sampler reading ``/proc/self/statm`` at 1 kHz inside the process, the maximum sample of
the run (edgeprof's ``summary.rss_peak_bytes``; the bare child runs the same sampler around
its loop). Reported per round: the ratio of the two peaks, the same ratio with edgeprof's own
preallocated buffers (``init.tool_buffers_bytes``) taken out, and how much edgeprof's
per-inference peak RSS grew from the first tenth of the run to its end (bytes per 10,000
inferences: the loop must not allocate per inference).

Goal (issue 14): no growth with the count; peak within 1 % of the bare loop's once the tool's
buffers, which are sized to the plan and not to the model, are accounted for.

    .venv/bin/python bench/bench_memory.py [--rounds 2] [--count 1000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from _common import save, summary

import edgeprof.models
from edgeprof.report.codec import decode

MLP = Path(edgeprof.models.DIRECTORY) / "kws_mlp_int8.tflite"

BARE = """
import os, sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter
from edgeprof.device.roots import SystemRoots
from edgeprof.device.sampler import Sampler
from edgeprof.device.sources.system import rss_channel

count = int(sys.argv[2])
it = Interpreter(model_path=sys.argv[1])
it.allocate_tensors()
inp = it.get_input_details()[0]
x = np.zeros(inp["shape"], dtype=inp["dtype"])
idx, set_tensor, invoke = inp["index"], it.set_tensor, it.invoke
with Sampler([rss_channel(SystemRoots(), os.getpid())], 1000.0) as s:
    for _ in range(count):
        set_tensor(idx, x)
        invoke()
rss = s.trace.values[:, 0]
print(int(np.nanmax(rss)))
"""


def edgeprof_run(count: int, store: Path) -> dict[str, float]:
    """One `edgeprof run` of exactly ``count`` inferences: its reported memory figures."""
    args = ["--count", str(count), "--min-seconds", "0", "--warmup", "10"]
    proc = subprocess.run(
        [sys.executable, "-m", "edgeprof", "run", str(MLP), *args, "--json", "--store", str(store)],
        capture_output=True,
        text=True,
        check=True,
    )
    report: dict[str, Any] = decode(Path(json.loads(proc.stdout)["report_path"]).read_bytes())
    peaks = report["per_inference"]["peak_rss_bytes"]
    tenth = max(1, len(peaks) // 10)
    grown = float(np.nanmax(peaks[-tenth:]) - np.nanmax(peaks[:tenth]))
    init = report["init"]
    return {
        "peak": float(report["summary"]["rss_peak_bytes"]),
        "tool_buffers": float(init.get("tool_buffers_bytes", 0)),
        "load": float(init["rss_after_bytes"] - init["rss_before_bytes"]),
        "growth_per_10k": grown / max(1, len(peaks) - 2 * tenth) * 10_000,
    }


def bare_run(count: int) -> float:
    """The bare loop's peak RSS, sampled the same way."""
    proc = subprocess.run(
        [sys.executable, "-c", BARE, str(MLP), str(count)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(proc.stdout.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--store", type=Path, default=Path("/tmp/edgeprof-bench-memory"))
    args = ap.parse_args()
    rounds: list[dict[str, float]] = []
    for r in range(args.rounds):
        order = ("edgeprof", "bare") if r % 2 == 0 else ("bare", "edgeprof")
        ep: dict[str, float] = {}
        bare = 0.0
        for name in order:
            if name == "edgeprof":
                ep = edgeprof_run(args.count, args.store)
            else:
                bare = bare_run(args.count)
        row = {
            "edgeprof_peak_bytes": ep["peak"],
            "bare_peak_bytes": bare,
            "ratio": ep["peak"] / bare,
            "ratio_without_tool_buffers": (ep["peak"] - ep["tool_buffers"]) / bare,
            "tool_buffers_bytes": ep["tool_buffers"],
            "load_rss_bytes": ep["load"],
            "growth_bytes_per_10k_inferences": ep["growth_per_10k"],
        }
        rounds.append(row)
        print(json.dumps({"round": r, **row}), flush=True)
    out: dict[str, Any] = {"count": args.count, "model": MLP.name, "rounds": rounds}
    for key in ("ratio", "ratio_without_tool_buffers", "growth_bytes_per_10k_inferences"):
        out[key] = summary([row[key] for row in rounds])
    print(json.dumps({k: out[k] for k in ("ratio", "ratio_without_tool_buffers")}))
    print("saved", save("bench_memory", out))


if __name__ == "__main__":
    main()
