"""The two kinds of sample source, as interfaces.

A *file* source finds files the native sampler reads itself (hwmon, iio, powercap, cpufreq,
thermal, statm, smaps): the hot path, with Python nowhere near the clock. A *stream* source is
for what no file offers: an I2C sensor read through ioctls, an external meter printing lines on
a serial port, NVML. It delivers samples on a thread of its own, each stamped with the native
clock's tick when it arrived, and :class:`~edgeprof.device.sampler.Sampler` merges them into the
same trace. Both kinds are registered in :mod:`edgeprof.device.sources.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edgeprof.device.channels import ChannelSpec
from edgeprof.device.roots import SystemRoots
from edgeprof.native import F64, U64


class FileSource(Protocol):
    """One family of files for the native sampler. ``discover`` appends reasons for skipped
    items to ``notes`` instead of failing."""

    name: str

    def discover(self, roots: SystemRoots, notes: list[str] | None = None) -> list[ChannelSpec]: ...


@dataclass
class StreamSamples:
    """What one stream source delivered: one row per sample, one column per channel."""

    ticks: U64  # native clock ticks at arrival, non-decreasing
    values: F64  # (n, channels), already scaled to the channels' units
    errors: int = 0  # samples refused (malformed), counted, never guessed
    last_error: str = ""

    @classmethod
    def empty(cls, ncols: int) -> StreamSamples:
        return cls(np.empty(0, np.uint64), np.empty((0, ncols), np.float64))


class StreamSource(Protocol):
    """Samples that arrive rather than being read from a file: started and stopped with the
    sampler, their channels (``ReadKind.STREAM``) appended to the trace's columns."""

    name: str

    @property
    def channels(self) -> tuple[ChannelSpec, ...]: ...

    def start(self) -> None: ...

    def stop(self) -> StreamSamples: ...


def hold(ticks: U64, samples: StreamSamples) -> F64:
    """The stream's columns on the sampler's ticks: at each tick the latest sample that had
    arrived by then (NaN before the first). A trace keeps one time base, and a held value is
    what a reader of the stream knew at that instant, never an interpolation of the future."""
    ncols = samples.values.shape[1]
    out = np.full((len(ticks), ncols), np.nan, dtype=np.float64)
    if len(samples.ticks) == 0 or len(ticks) == 0:
        return out
    idx = np.searchsorted(samples.ticks, ticks, side="right") - 1
    have = idx >= 0
    out[have] = samples.values[idx[have]]
    return out
