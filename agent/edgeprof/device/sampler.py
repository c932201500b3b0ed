"""Sampling channels on a native thread, drained into numpy arrays.

The C thread samples on absolute deadlines into a lock-free ring; a Python thread here wakes a
few times a second and drains the ring in bulk, so the ring only has to hold the gap between
drains. Python never sits between the clock and a sample: if the drain thread is late (the GIL
is busy), records wait in the ring; only a ring that fills up loses records, and those are
counted and reported.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeprof.device.channels import ChannelSpec, ReadKind
from edgeprof.device.sources.base import StreamSamples, StreamSource, hold
from edgeprof.errors import InputError
from edgeprof.lifecycle import StartStop
from edgeprof.native import F64, U64, ClockInfo, NativeSampler, SamplerStats, clock_info

MAX_RATE_HZ = 100_000.0
MAX_RESERVE_BYTES = 64 << 20  # a reserved trace larger than this grows past it instead


@dataclass
class Trace:
    """Everything one sampler recorded: one row per sample, one column per channel.

    Stream channels come after the native ones; their column holds, at each native tick, the
    stream's latest sample by then (:func:`~edgeprof.device.sources.base.hold`), and
    ``streams`` keeps each stream's own samples, at their own ticks.
    """

    specs: list[ChannelSpec]
    rate_hz: float
    ticks: U64
    values: F64
    stats: SamplerStats
    channel_errors: dict[str, tuple[int, str]] = field(default_factory=dict)
    streams: dict[str, StreamSamples] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.ticks.shape[0])

    @property
    def names(self) -> list[str]:
        """Column names, in order."""
        return [s.name for s in self.specs]

    def column(self, name: str) -> F64:
        """One channel's values."""
        try:
            return self.values[:, self.names.index(name)]
        except ValueError:
            raise KeyError(f"no channel {name!r} in this trace (have {self.names})") from None

    def times_ns(self, clock: ClockInfo | None = None) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Sample times in CLOCK_MONOTONIC_RAW nanoseconds."""
        return (clock or clock_info()).ticks_to_ns(self.ticks)


class Sampler(StartStop):
    """Sample ``channels`` at ``rate_hz`` on a native thread; use as a context manager.

    ``buffer_seconds`` sizes the ring: how long the Python drain thread may be held off (by the
    GIL, a stalled interpreter) before records are dropped. ``realtime`` asks for SCHED_FIFO,
    which is what keeps 10 kHz sampling on time on a busy machine; where it is not granted
    (no CAP_SYS_NICE or RLIMIT_RTPRIO) the thread runs at normal priority and the trace's stats
    say so. ``spin_ns``: see :meth:`edgeprof.native.NativeSampler.configure`. ``streams`` run
    alongside, started after and stopped before the native thread, so their samples fall
    within the native ticks.

    ``reserve_seconds`` preallocates (and touches) the trace for that long at ``rate_hz``, up
    to :data:`MAX_RESERVE_BYTES`, so draining does not grow the process while it is sampled;
    a run longer than the reserve keeps sampling into growing chunks past it.
    """

    def __init__(
        self,
        channels: Sequence[ChannelSpec],
        rate_hz: float = 1000.0,
        *,
        buffer_seconds: float = 2.0,
        drain_interval_s: float = 0.05,
        cpu: int = -1,
        realtime: bool = True,
        spin_ns: int = -1,
        streams: Sequence[StreamSource] = (),
        reserve_seconds: float = 0.0,
    ) -> None:
        if not 0 < rate_hz <= MAX_RATE_HZ:
            raise InputError(f"sampling rate must be in (0, {MAX_RATE_HZ:g}] Hz, not {rate_hz:g}")
        if not 0 < drain_interval_s < buffer_seconds:
            raise InputError("the drain interval must be positive and shorter than the buffer")
        names = [c.name for c in channels] + [c.name for s in streams for c in s.channels]
        if len(set(names)) != len(names):
            raise InputError(f"duplicate channel names: {sorted(names)}")
        for c in channels:
            if c.kind is ReadKind.STREAM:
                raise InputError(f"channel {c.name!r} is a stream channel: pass its source")
        self._streams = tuple(streams)
        if len({s.name for s in self._streams}) != len(self._streams):
            raise InputError(f"two stream sources with one name: {[s.name for s in streams]}")
        capacity = max(1024, int(rate_hz * buffer_seconds))
        self._native = NativeSampler(rate_hz, capacity)
        for spec in channels:
            self._native.add(spec)
        self._native.configure(cpu=cpu, realtime=realtime, spin_ns=spin_ns)
        self.rate_hz = float(rate_hz)
        self._interval = drain_interval_s
        self._chunks: list[tuple[U64, F64]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drain_max = capacity
        self.trace: Trace | None = None
        ncols = self._native.ncols
        rows = int(min(rate_hz * max(reserve_seconds, 0.0), MAX_RESERVE_BYTES / (8 + 8 * ncols)))
        self._reserved_ticks = np.empty(rows, dtype=np.uint64)
        self._reserved_values = np.empty((rows, ncols), dtype=np.float64)
        self._reserved_ticks.fill(0)  # touch every page now, not while sampling
        self._reserved_values.fill(0.0)
        self._filled = 0

    @property
    def reserved_bytes(self) -> int:
        """Bytes of the preallocated trace (all resident)."""
        return int(self._reserved_ticks.nbytes + self._reserved_values.nbytes)

    def _keep(self, ticks: U64, values: F64) -> None:
        """Copy a drained block into the reserve while it has room; chunks past it."""
        room = self._reserved_ticks.shape[0] - self._filled
        k = min(room, len(ticks))
        if k:
            self._reserved_ticks[self._filled : self._filled + k] = ticks[:k]
            self._reserved_values[self._filled : self._filled + k] = values[:k]
            self._filled += k
        if k < len(ticks):
            self._chunks.append((ticks[k:], values[k:]))

    @property
    def specs(self) -> list[ChannelSpec]:
        """The channels, in column order: the native ones, then each stream's."""
        return [*self._native.specs, *(c for s in self._streams for c in s.channels)]

    def read_now(self) -> tuple[int, F64]:
        """One reading of every channel on this thread (only before start)."""
        return self._native.read_now()

    def _drain_all(self) -> None:
        while True:
            ticks, values = self._native.drain(self._drain_max)
            if len(ticks):
                self._keep(ticks, values)
            if len(ticks) < self._drain_max:
                return

    def _drain_loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._drain_all()

    def start(self) -> Sampler:
        """Start the native thread and the drain thread."""
        self._native.start()
        self._thread = threading.Thread(target=self._drain_loop, name="edgeprof-drain", daemon=True)
        self._thread.start()
        started: list[StreamSource] = []
        try:
            for s in self._streams:
                s.start()
                started.append(s)
        except BaseException:
            for s in started:
                s.stop()
            self._native.stop()
            self._stop.set()
            self._thread.join()
            raise
        return self

    def stop(self) -> Trace:
        """Stop the streams and both threads, drain what is left and return the trace."""
        streamed = {s.name: s.stop() for s in self._streams}
        self._native.stop()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._drain_all()
        ncols = self._native.ncols
        parts = [(self._reserved_ticks[: self._filled], self._reserved_values[: self._filled])]
        parts += self._chunks
        if self._filled or self._chunks:
            ticks = np.concatenate([c[0] for c in parts])
            values = np.concatenate([c[1] for c in parts], axis=0)
        else:
            ticks = np.empty(0, dtype=np.uint64)
            values = np.empty((0, ncols), dtype=np.float64)
        errors = {
            spec.name: self._native.channel_errors(i) for i, spec in enumerate(self._native.specs)
        }
        if streamed:
            values = np.hstack([values, *(hold(ticks, x) for x in streamed.values())])
        for s in self._streams:
            got = streamed[s.name]
            for c in s.channels:
                errors[c.name] = (got.errors, got.last_error)
        self.trace = Trace(
            specs=self.specs,
            rate_hz=self.rate_hz,
            ticks=ticks,
            values=values,
            stats=self._native.stats(),
            channel_errors={k: v for k, v in errors.items() if v[0]},
            streams=streamed,
        )
        return self.trace
