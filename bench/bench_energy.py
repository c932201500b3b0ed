"""Energy and peak power per region over a long trace: what tests/test_energy.py used to time.

A minute of samples at 10 kHz (600,000) and 10,000 regions of 3 ms, as a run with many
inferences produces; the goal is well under a second for both together, so that charging
energy to inferences never dominates the end of a run.

    .venv/bin/python bench/bench_energy.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import save, summary

from edgeprof.measure.energy import energy_in_regions, peak_in_regions

MS = 1_000_000


def once() -> float:
    """Seconds for energy_in_regions + peak_in_regions on the minute-long trace."""
    n, m = 600_000, 10_000
    t = np.arange(n, dtype=np.int64) * 100_000 + 1_234_567
    p = 2.0 + np.sin(np.arange(n) / 500.0)
    begin = np.sort(np.random.default_rng(0).integers(t[0], t[-1] - 5 * MS, m))
    end = begin + 3 * MS
    started = time.perf_counter()
    energy_in_regions(t, p, begin, end)
    peak_in_regions(t, p, begin, end)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    res = summary([once() for _ in range(args.rounds)])
    path = save("energy", {"rounds": args.rounds, "seconds": res, "goal_le_1s": res["median"] < 1})
    print(f"10,000 regions over 600,000 samples: median {res['median'] * 1e3:.1f} ms")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
