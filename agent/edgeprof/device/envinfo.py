"""The machine's state around a run: what a careful engineer checks before trusting a number.

Counters read once before and once after a run (CPU time of the whole machine and of the
profiled process), plus the settings that decide the clocks. Everything goes through
SystemRoots, like every other system read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from edgeprof.device.roots import SystemRoots

_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSnapshot:
    """Busy CPU seconds of the machine and of one process at an instant."""

    machine_busy_s: float | None
    process_cpu_s: float | None
    ncpu: int
    # All CPU time of the machine (user to steal) and the part a hypervisor stole for other
    # guests; steal is None where the kernel does not report it (before 2.6.11).
    machine_total_s: float | None = None
    steal_s: float | None = None


def _proc_stat_cpu(roots: SystemRoots) -> list[int] | None:
    """The aggregate ``cpu`` line of /proc/stat as integers (USER_HZ ticks), or None."""
    try:
        with open(roots.proc("stat"), encoding="ascii") as f:
            first = f.readline().split()
    except OSError:
        return None
    if len(first) < 5 or first[0] != "cpu":
        return None
    try:
        return [int(x) for x in first[1:]]
    except ValueError:
        return None


def _machine_busy_s(fields: list[int] | None) -> float | None:
    """Busy time (everything but idle and iowait) summed over all CPUs."""
    if fields is None:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    # guest time is already counted in user/nice
    busy = sum(fields[:8]) - idle if len(fields) >= 8 else sum(fields) - idle
    return busy / _CLK_TCK


def _machine_total_s(fields: list[int] | None) -> float | None:
    """All CPU time, idle and steal included (guest is inside user/nice: not added again)."""
    return sum(fields[:8]) / _CLK_TCK if fields is not None else None


def _steal_s(fields: list[int] | None) -> float | None:
    """Time the hypervisor ran other guests while this machine's CPUs wanted to run."""
    return fields[7] / _CLK_TCK if fields is not None and len(fields) >= 8 else None


def _process_cpu_s(roots: SystemRoots, pid: int) -> float | None:
    """utime + stime of all threads of pid, from /proc/<pid>/stat."""
    try:
        with open(roots.proc(str(pid), "stat"), encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    # the command name is in parentheses and may contain spaces: split after the last ')'
    rest = text.rsplit(")", 1)[-1].split()
    try:
        return (int(rest[11]) + int(rest[12])) / _CLK_TCK
    except (IndexError, ValueError):
        return None


def cpu_snapshot(roots: SystemRoots, pid: int) -> CpuSnapshot:
    """Take the counters now."""
    fields = _proc_stat_cpu(roots)
    return CpuSnapshot(
        _machine_busy_s(fields),
        _process_cpu_s(roots, pid),
        os.cpu_count() or 1,
        machine_total_s=_machine_total_s(fields),
        steal_s=_steal_s(fields),
    )


def steal_fraction(before: CpuSnapshot, after: CpuSnapshot) -> float | None:
    """The share of all CPU time between two snapshots that the hypervisor stole.

    On a virtual machine a stolen slice delays whatever was running, the sampler's deadlines
    and the inference alike, so a few percent explains missed deadlines and a slower tail.
    None where the kernel does not report steal or no CPU time passed between the snapshots.
    """
    if None in (before.steal_s, after.steal_s, before.machine_total_s, after.machine_total_s):
        return None
    assert before.steal_s is not None
    assert after.steal_s is not None
    assert before.machine_total_s is not None
    assert after.machine_total_s is not None
    total = after.machine_total_s - before.machine_total_s
    if total <= 0:
        return None
    return min(1.0, max(0.0, (after.steal_s - before.steal_s) / total))


def other_load(before: CpuSnapshot, after: CpuSnapshot, wall_s: float) -> float | None:
    """CPU cores' worth of work done by other processes between two snapshots."""
    if wall_s <= 0 or None in (
        before.machine_busy_s,
        after.machine_busy_s,
        before.process_cpu_s,
        after.process_cpu_s,
    ):
        return None
    assert before.machine_busy_s is not None
    assert after.machine_busy_s is not None
    assert before.process_cpu_s is not None
    assert after.process_cpu_s is not None
    machine = after.machine_busy_s - before.machine_busy_s
    ours = after.process_cpu_s - before.process_cpu_s
    return max(0.0, machine - ours) / wall_s


def load_average(roots: SystemRoots) -> tuple[float, float, float] | None:
    """The 1/5/15-minute load averages."""
    try:
        with open(roots.proc("loadavg"), encoding="ascii") as f:
            parts = f.read().split()
        return float(parts[0]), float(parts[1]), float(parts[2])
    except (OSError, ValueError, IndexError):
        return None
