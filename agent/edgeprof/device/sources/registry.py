"""Every source of samples, in one place: the file families the native sampler reads, the
per-process files, and the stream sources Python feeds into the same trace.

Discovery iterates these tuples (:func:`~edgeprof.device.sources.power.discover_power_with_notes`,
:func:`~edgeprof.device.sources.system.discover_system_with_notes`); adding a family of rail
files is a class with ``discover`` and one line here. Streams are built by whoever knows what
feeds them (a pipe, a pid), so they are registered by name and class.
"""

from __future__ import annotations

from collections.abc import Callable

from edgeprof.device.channels import ChannelSpec
from edgeprof.device.roots import SystemRoots
from edgeprof.device.sources.base import FileSource, StreamSource
from edgeprof.device.sources.power import HwmonSource, IioIna3221Source, RaplSource
from edgeprof.device.sources.stream import LineStream, ProcStatusStream
from edgeprof.device.sources.system import CpufreqSource, ThermalSource, pss_channel, rss_channel

# Power rails and energy counters: the fast sampler, every run.
POWER_SOURCES: tuple[FileSource, ...] = (HwmonSource(), IioIna3221Source(), RaplSource())
# What explains power and latency: the slow sampler.
SYSTEM_SOURCES: tuple[FileSource, ...] = (CpufreqSource(), ThermalSource())
# Memory of one process, by the file the native sampler reads (None: not readable here).
PROCESS_SOURCES: dict[str, Callable[[SystemRoots, int], ChannelSpec | None]] = {
    "statm": rss_channel,
    "smaps_rollup": pss_channel,
}
# Samples Python delivers, merged into the trace on the native clock's ticks.
STREAM_SOURCES: dict[str, type[StreamSource]] = {
    "lines": LineStream,  # numbers pushed into a pipe, pty or serial port
    "proc-status": ProcStatusStream,  # the kernel's peak RSS (VmHWM) of a process, polled
}
