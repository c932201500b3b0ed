"""Start-up of ``edgeprof --help`` and ``edgeprof push --help`` against ``import click``.

Whole processes, as cron starts them: each round runs ``python -c "import click"`` (the floor:
an interpreter plus the CLI library), ``python -m edgeprof --help`` and
``python -m edgeprof push --help``, in alternating order (ABAB), and records each process's wall
time and CPU time (user + sys, from ``wait4``). The ratio is taken round by round against the
floor of the same round, so drift on a shared machine hits both sides alike; medians are quoted.

Which edgeprof is measured is whichever the interpreter imports: set ``PYTHONPATH`` to a
checkout's ``agent/`` to compare two trees (docs/benchmarks.md, issue 12).

    .venv/bin/python bench/bench_cli_startup.py [--rounds 20] [--python PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from _common import abab, save, summary

COMMANDS = {
    "import click": ["-c", "import click"],
    "edgeprof --help": ["-m", "edgeprof", "--help"],
    "edgeprof push --help": ["-m", "edgeprof", "push", "--help"],
}


def run_once(argv: list[str], cpu: dict[str, list[float]], name: str) -> float:
    """Wall seconds of one whole process; its CPU seconds go into ``cpu[name]``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read() if proc.stderr else b""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {err.decode()[-500:]}")
    cpu[name].append(usage.ru_utime + usage.ru_stime)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--python", default=sys.executable, help="interpreter to start")
    args = parser.parse_args()
    cpu: dict[str, list[float]] = {name: [] for name in COMMANDS}

    def variant(name: str) -> Callable[[], float]:
        return lambda: run_once([args.python, *COMMANDS[name]], cpu, name)

    for name in COMMANDS:  # warm the page cache and .pyc files once, uncounted
        variant(name)()
        cpu[name].clear()
    wall = abab([(name, variant(name)) for name in COMMANDS], args.rounds)
    floor = "import click"
    results: dict[str, dict[str, object]] = {}
    print(f"{args.rounds} rounds, PYTHONPATH={os.environ.get('PYTHONPATH', '')!r}")
    print(f"{'command':<22}{'wall ms':>10}{'cpu ms':>10}{'wall / click':>14}{'cpu / click':>13}")
    for name in COMMANDS:
        wall_ratio = [a / b for a, b in zip(wall[name], wall[floor], strict=True)]
        cpu_ratio = [a / b for a, b in zip(cpu[name], cpu[floor], strict=True) if b > 0]
        results[name] = {
            "wall_s": summary(wall[name]),
            "cpu_s": summary(cpu[name]),
            "wall_ratio": summary(wall_ratio),
            "cpu_ratio": summary(cpu_ratio) if cpu_ratio else None,
        }
        print(
            f"{name:<22}{statistics.median(wall[name]) * 1e3:>10.1f}"
            f"{statistics.median(cpu[name]) * 1e3:>10.1f}"
            f"{statistics.median(wall_ratio):>14.2f}"
            f"{statistics.median(cpu_ratio) if cpu_ratio else float('nan'):>13.2f}"
        )
    path = save(
        "cli_startup",
        {"rounds": args.rounds, "pythonpath": os.environ.get("PYTHONPATH"), "results": results},
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
