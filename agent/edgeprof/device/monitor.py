"""Everything sampled around a run, at two rates.

The fast sampler takes what changes within one inference: RSS of the target process and every
power rail (1 kHz by default). The slow one takes what is costly to read or changes slowly:
PSS (smaps_rollup walks the page tables), each core's frequency and the thermal zones (10 Hz),
so a report can show throttling without the fast sampler paying for it. Stream sources (an
external meter, a sensor Python reads) join the fast trace as extra columns.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from edgeprof.device.channels import ChannelSpec
from edgeprof.device.roots import SystemRoots
from edgeprof.device.sampler import Sampler, Trace
from edgeprof.device.sources.base import StreamSource
from edgeprof.device.sources.power import discover_power_with_notes
from edgeprof.device.sources.system import discover_system_with_notes, pss_channel, rss_channel
from edgeprof.lifecycle import StartStop


@dataclass
class MonitorTraces:
    """The two traces of one monitored stretch, and why any channel was left out."""

    fast: Trace
    slow: Trace | None
    notes: list[str]


class Monitor(StartStop):
    """Fast (RSS + power + any streams) and slow (PSS + CPU frequency + thermal) samplers for one
    process. ``reserve_seconds``: how long a trace both preallocate (see :class:`Sampler`)."""

    def __init__(
        self,
        roots: SystemRoots | None = None,
        pid: int | None = None,
        *,
        rate_hz: float = 1000.0,
        slow_rate_hz: float = 10.0,
        power: bool = True,
        realtime: bool = True,
        streams: Sequence[StreamSource] = (),
        reserve_seconds: float = 0.0,
    ) -> None:
        roots = roots or SystemRoots.from_env()
        pid = os.getpid() if pid is None else pid
        self.notes: list[str] = []
        fast: list[ChannelSpec] = [rss_channel(roots, pid)]
        if power:
            rails, notes = discover_power_with_notes(roots)
            fast.extend(rails)
            self.notes.extend(notes)
        slow: list[ChannelSpec] = []
        pss = pss_channel(roots, pid)
        if pss is None:
            self.notes.append(f"PSS unavailable: no readable smaps_rollup for pid {pid}")
        else:
            slow.append(pss)
        system, notes = discover_system_with_notes(roots)
        slow.extend(system)
        self.notes.extend(notes)
        self.fast = Sampler(
            fast, rate_hz, realtime=realtime, streams=streams, reserve_seconds=reserve_seconds
        )
        self.slow = (
            Sampler(slow, slow_rate_hz, realtime=False, reserve_seconds=reserve_seconds)
            if slow
            else None
        )
        self.traces: MonitorTraces | None = None

    def start(self) -> Monitor:
        """Start both samplers."""
        self.fast.start()
        if self.slow is not None:
            self.slow.start()
        return self

    def stop(self) -> MonitorTraces:
        """Stop both samplers and return their traces."""
        fast = self.fast.stop()
        slow = self.slow.stop() if self.slow is not None else None
        self.traces = MonitorTraces(fast=fast, slow=slow, notes=self.notes)
        return self.traces

    @property
    def reserved_bytes(self) -> int:
        """Bytes both samplers preallocated for their traces."""
        return self.fast.reserved_bytes + (self.slow.reserved_bytes if self.slow else 0)
