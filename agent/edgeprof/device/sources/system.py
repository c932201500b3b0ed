"""Low-rate system channels (CPU frequency, thermal zones, process memory) and report facts.

Frequency and temperature explain power and latency: a run at a throttled clock or a hot SoC
is a different experiment. The ``read_*`` helpers capture the settings that decide the clocks
(governor, limits) once, for the report's environment section.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from edgeprof.device.channels import ChannelSpec, ReadKind
from edgeprof.device.roots import SystemRoots
from edgeprof.device.sources.power import safe_component, unique_stem
from edgeprof.device.sources.sysfs_read import probe_int, read_sysfs_int, read_sysfs_text
from edgeprof.errors import InputError, UnavailableError

__all__ = [
    "CpufreqSource",
    "ThermalSource",
    "cpufreq_channels",
    "discover_system",
    "discover_system_with_notes",
    "pss_channel",
    "read_freq_limits",
    "read_governors",
    "rss_channel",
    "thermal_channels",
]

_CPU_RE = re.compile(r"cpu(\d+)", re.ASCII)
_ZONE_RE = re.compile(r"thermal_zone(\d+)", re.ASCII)

# Report keys (Hz) and the cpufreq files (kHz) they come from.
_FREQ_LIMIT_FILES = {
    "cpuinfo_min_hz": "cpuinfo_min_freq",
    "cpuinfo_max_hz": "cpuinfo_max_freq",
    "scaling_min_hz": "scaling_min_freq",
    "scaling_max_hz": "scaling_max_freq",
}


def _numbered(base: Path, pattern: str, regex: re.Pattern[str]) -> list[tuple[int, Path]]:
    """Entries of ``base`` whose names match ``regex`` exactly, sorted by their number.

    Numeric, not lexical, so cpu10 comes after cpu9.
    """
    out = []
    for p in base.glob(pattern):
        m = regex.fullmatch(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


def _cpufreq_dirs(roots: SystemRoots) -> list[tuple[int, Path]]:
    """(N, cpuN/cpufreq) for every CPU with cpufreq (offline CPUs have none)."""
    cpus = _numbered(roots.sys("devices", "system", "cpu"), "cpu[0-9]*", _CPU_RE)
    return [(n, p / "cpufreq") for n, p in cpus if (p / "cpufreq").is_dir()]


def cpufreq_channels(roots: SystemRoots, notes: list[str] | None = None) -> list[ChannelSpec]:
    """``cpu<N>.freq`` in Hz from ``scaling_cur_freq`` (kHz), numerically by N."""
    notes = notes if notes is not None else []
    out: list[ChannelSpec] = []
    for n, freq_dir in _cpufreq_dirs(roots):
        path = freq_dir / "scaling_cur_freq"
        if not path.exists() or not probe_int(str(path), notes, f"cpu{n} frequency"):
            continue
        out.append(
            ChannelSpec(
                name=f"cpu{n}.freq",
                quantity="frequency",
                unit="Hz",
                kind=ReadKind.VALUE,
                paths=(str(path),),
                scale=1e3,
                source="cpufreq",
                label=f"cpu{n}",
                extra={"cpu": str(n)},
            )
        )
    return out


def thermal_channels(roots: SystemRoots, notes: list[str] | None = None) -> list[ChannelSpec]:
    """``thermal.<type>`` in degC from each zone's ``temp`` (m°C), numerically by zone."""
    notes = notes if notes is not None else []
    used: set[str] = set()
    out: list[ChannelSpec] = []
    base = roots.sys("class", "thermal")
    for n, zone in _numbered(base, "thermal_zone[0-9]*", _ZONE_RE):
        what = f"thermal {zone.name}"
        try:
            ztype = read_sysfs_text(zone / "type")
        except InputError as e:
            notes.append(f"{what}: skipped, {e}")
            continue
        path = zone / "temp"
        if not probe_int(str(path), notes, f"{what} ({ztype})"):
            continue  # e.g. iwlwifi answers ENODATA while the interface is down
        out.append(
            ChannelSpec(
                name=unique_stem(f"thermal.{safe_component(ztype)}", used),
                quantity="temperature",
                unit="degC",
                kind=ReadKind.VALUE,
                paths=(str(path),),
                scale=1e-3,
                source="thermal",
                label=ztype,
                extra={"zone": zone.name, "index": str(n)},
            )
        )
    return out


class CpufreqSource:
    """Each online core's current frequency (the file source of :func:`cpufreq_channels`)."""

    name = "cpufreq"

    def discover(self, roots: SystemRoots, notes: list[str] | None = None) -> list[ChannelSpec]:
        return cpufreq_channels(roots, notes)


class ThermalSource:
    """Each thermal zone's temperature (the file source of :func:`thermal_channels`)."""

    name = "thermal"

    def discover(self, roots: SystemRoots, notes: list[str] | None = None) -> list[ChannelSpec]:
        return thermal_channels(roots, notes)


def discover_system_with_notes(roots: SystemRoots) -> tuple[list[ChannelSpec], list[str]]:
    """The registry's system channels (CPU frequency, then thermal), and why any candidate was
    skipped."""
    from edgeprof.device.sources.registry import SYSTEM_SOURCES

    notes: list[str] = []
    channels = [c for source in SYSTEM_SOURCES for c in source.discover(roots, notes)]
    return channels, notes


def discover_system(roots: SystemRoots) -> list[ChannelSpec]:
    """CPU frequency then thermal channels."""
    return discover_system_with_notes(roots)[0]


def read_governors(roots: SystemRoots) -> dict[str, str]:
    """``{"cpu0": "schedutil", ...}``; CPUs whose governor cannot be read are left out."""
    out: dict[str, str] = {}
    for n, freq_dir in _cpufreq_dirs(roots):
        try:
            out[f"cpu{n}"] = read_sysfs_text(freq_dir / "scaling_governor")
        except InputError:
            continue
    return out


def read_freq_limits(roots: SystemRoots) -> dict[str, dict[str, int]]:
    """Per CPU, the hardware and policy frequency limits in Hz.

    Keys: ``cpuinfo_min_hz``, ``cpuinfo_max_hz``, ``scaling_min_hz``, ``scaling_max_hz``;
    missing or malformed files are left out rather than guessed.
    """
    out: dict[str, dict[str, int]] = {}
    for n, freq_dir in _cpufreq_dirs(roots):
        limits: dict[str, int] = {}
        for key, fname in _FREQ_LIMIT_FILES.items():
            try:
                limits[key] = read_sysfs_int(freq_dir / fname) * 1000
            except InputError:
                continue
        if limits:
            out[f"cpu{n}"] = limits
    return out


def _check_pid(pid: int) -> None:
    """A pid is a positive int; anything else would build a path outside /proc/<pid>."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise InputError(f"not a process id: {pid!r}")


def rss_channel(roots: SystemRoots, pid: int) -> ChannelSpec:
    """Resident set size of ``pid`` in bytes, from ``statm`` (cheap enough for every tick).

    The C core multiplies resident pages by the page size, so ``scale`` stays 1.
    """
    _check_pid(pid)
    path = roots.proc(str(pid), "statm")
    if not path.exists():
        raise UnavailableError(f"no process {pid}: {path} does not exist")
    return ChannelSpec(
        name="mem.rss",
        quantity="memory",
        unit="B",
        kind=ReadKind.STATM_RSS,
        paths=(str(path),),
        source="procfs:statm",
        extra={"pid": str(pid)},
    )


def pss_channel(roots: SystemRoots, pid: int) -> ChannelSpec | None:
    """Proportional set size of ``pid`` in bytes from ``smaps_rollup``, or None.

    ``smaps_rollup`` needs Linux >= 4.14 and ptrace access to the process; without it there is
    simply no PSS channel (the RSS one still works).
    """
    _check_pid(pid)
    path = roots.proc(str(pid), "smaps_rollup")
    if not path.is_file() or not os.access(path, os.R_OK):
        return None
    return ChannelSpec(
        name="mem.pss",
        quantity="memory",
        unit="B",
        kind=ReadKind.SMAPS_PSS,
        paths=(str(path),),
        source="procfs:smaps_rollup",
        extra={"pid": str(pid)},
    )
