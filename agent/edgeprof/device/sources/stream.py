"""Stream sources: samples read by Python on a thread of their own, stamped with native ticks.

Two shapes cover what comes next (I2C sensors, external meters, NVML): :class:`LineStream`, for
a device or helper process that *pushes* lines of numbers into a file descriptor (a pipe, a pty,
a serial port), and :class:`PolledStream`, for a value Python must *ask* for at a rate.
:class:`ProcStatusStream` is one of the latter for real: the kernel's own peak RSS (``VmHWM``),
which catches a peak between two samples of the statm channel.

A sample's tick is taken when Python has it, so it lags the event by the read's latency; that
is why the native sampler, not a stream, reads whatever a file can give.
"""

from __future__ import annotations

import errno
import os
import select
import threading
from collections.abc import Sequence

import numpy as np

from edgeprof import native
from edgeprof.device.channels import ChannelSpec, ReadKind
from edgeprof.device.roots import SystemRoots
from edgeprof.device.sources.base import StreamSamples
from edgeprof.errors import InputError, UnavailableError
from edgeprof.native import F64

__all__ = ["LineStream", "PolledStream", "ProcStatusStream", "stream_channel"]

_MAX_LINE = 4096  # a longer "line" is garbage, not a sample


def stream_channel(
    name: str,
    quantity: str,
    unit: str,
    source: str,
    *,
    scale: float = 1.0,
    label: str = "",
    extra: dict[str, str] | None = None,
) -> ChannelSpec:
    """The spec of one stream column: no paths, a scale from the raw number to ``unit``."""
    return ChannelSpec(
        name=name,
        quantity=quantity,
        unit=unit,
        kind=ReadKind.STREAM,
        paths=(),
        scale=scale,
        source=source,
        label=label,
        extra=dict(extra or {}),
    )


class _Collector:
    """Rows appended by one thread, taken by another at stop."""

    def __init__(self, ncols: int) -> None:
        self.ncols = ncols
        self.ticks: list[int] = []
        self.rows: list[list[float]] = []
        self.errors = 0
        self.last_error = ""

    def add(self, tick: int, row: F64) -> None:
        self.ticks.append(tick)
        self.rows.append([float(v) for v in row])

    def refuse(self, why: str) -> None:
        self.errors += 1
        self.last_error = why

    def samples(self) -> StreamSamples:
        if not self.ticks:
            out = StreamSamples.empty(self.ncols)
        else:
            out = StreamSamples(
                np.array(self.ticks, dtype=np.uint64),
                np.array(self.rows, dtype=np.float64).reshape(len(self.rows), self.ncols),
            )
        out.errors, out.last_error = self.errors, self.last_error
        return out


def _check_channels(channels: Sequence[ChannelSpec]) -> tuple[ChannelSpec, ...]:
    if not channels:
        raise InputError("a stream source needs at least one channel")
    for c in channels:
        if c.kind is not ReadKind.STREAM:
            raise InputError(f"channel {c.name!r} is a {c.kind.value} channel, not a stream one")
    return tuple(channels)


class LineStream:
    """Lines of whitespace-separated numbers from a file descriptor, one per channel and line.

    The reader owns nothing it did not open: the caller closes ``fd``. End of file (the writer
    exited, a pty's other side closed) ends the stream; a malformed line is refused and counted.
    """

    def __init__(self, fd: int, channels: Sequence[ChannelSpec], name: str = "lines") -> None:
        self.name = name
        self._channels = _check_channels(channels)
        self._fd = fd
        self._scales = np.array([c.scale for c in self._channels], dtype=np.float64)
        self._out = _Collector(len(self._channels))
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None

    @property
    def channels(self) -> tuple[ChannelSpec, ...]:
        return self._channels

    def start(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name=f"edgeprof-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> StreamSamples:
        """Take what is buffered in the descriptor now, then stop the thread."""
        if self._thread is not None:
            os.write(self._wake_w, b"x")
            self._thread.join()
            self._thread = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        return self._out.samples()

    def _run(self) -> None:
        pending = b""
        stopping = False
        while True:
            # After a stop request, drain what the writer already wrote, without waiting.
            ready, _, _ = select.select([self._fd, self._wake_r], [], [], 0 if stopping else None)
            if self._wake_r in ready:
                stopping = True
            if self._fd not in ready:
                if stopping:
                    return
                continue
            try:
                chunk = os.read(self._fd, 65536)
            except OSError as e:
                if e.errno != errno.EIO:  # EIO: a pty whose other side closed
                    self._out.refuse(f"read failed: {e.strerror}")
                chunk = b""
            if not chunk:
                if pending.strip():
                    self._line(pending)
                return
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                self._line(line)
            if len(pending) > _MAX_LINE:
                self._out.refuse(f"a line longer than {_MAX_LINE} bytes")
                pending = b""

    def _line(self, raw: bytes) -> None:
        tick = native.tick()
        text = raw.decode("ascii", "replace").strip()
        if not text:
            return
        fields = text.split()
        if len(fields) != len(self._channels):
            self._out.refuse(f"{len(fields)} values in a line, {len(self._channels)} channels")
            return
        try:
            values = np.array([float(f) for f in fields], dtype=np.float64)
        except ValueError:
            self._out.refuse(f"not a number in {text[:40]!r}")
            return
        if not np.all(np.isfinite(values)):
            self._out.refuse(f"not a finite number in {text[:40]!r}")
            return
        self._out.add(tick, values * self._scales)


class PolledStream:
    """A Python read at ``rate_hz`` on a thread (period measured from each read's start).

    Subclasses implement :meth:`read` returning one raw value per channel; an OSError or
    InputError from it is a refused sample, counted, and the stream goes on.
    """

    def __init__(self, channels: Sequence[ChannelSpec], rate_hz: float, name: str) -> None:
        if not 0 < rate_hz <= 1000:
            raise InputError(f"a polled stream runs at (0, 1000] Hz, not {rate_hz:g}")
        self.name = name
        self.rate_hz = float(rate_hz)
        self._channels = _check_channels(channels)
        self._scales = np.array([c.scale for c in self._channels], dtype=np.float64)
        self._out = _Collector(len(self._channels))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def channels(self) -> tuple[ChannelSpec, ...]:
        return self._channels

    def read(self) -> Sequence[float]:
        raise NotImplementedError

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"edgeprof-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> StreamSamples:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        return self._out.samples()

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        while True:
            self._sample()
            if self._stop.wait(period):
                self._sample()  # one last reading at stop: the stream covers the whole stretch
                return

    def _sample(self) -> None:
        try:
            row = self.read()
        except (OSError, InputError) as e:
            self._out.refuse(str(e))
            return
        self._out.add(native.tick(), np.asarray(row, dtype=np.float64) * self._scales)


class ProcStatusStream(PolledStream):
    """``VmHWM`` (peak resident set since start) and ``VmRSS`` of a process, in bytes, from
    ``/proc/<pid>/status``: the kernel tracks the peak on every page fault, so a spike between
    two polls still shows."""

    FIELDS = ("VmHWM", "VmRSS")

    def __init__(self, roots: SystemRoots, pid: int, rate_hz: float = 50.0) -> None:
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            raise InputError(f"not a process id: {pid!r}")
        self.path = roots.proc(str(pid), "status")
        if not self.path.exists():
            raise UnavailableError(f"no process {pid}: {self.path} does not exist")
        channels = [
            stream_channel(
                f"mem.{field.lower()}",
                "memory",
                "B",
                "procfs:status",
                scale=1024.0,
                label=field,
                extra={"pid": str(pid)},
            )
            for field in self.FIELDS
        ]
        super().__init__(channels, rate_hz, "proc-status")

    def read(self) -> Sequence[float]:
        """The two fields in kB, as the kernel writes them."""
        found: dict[str, float] = {}
        with open(self.path, "rb") as f:
            for line in f:
                key, _, rest = line.partition(b":")
                name = key.decode("ascii", "replace")
                if name in self.FIELDS:
                    parts = rest.split()
                    if len(parts) != 2 or parts[1] != b"kB" or not parts[0].isdigit():
                        raise InputError(f"{self.path}: malformed {name} line")
                    found[name] = float(int(parts[0]))
        missing = [k for k in self.FIELDS if k not in found]
        if missing:
            raise InputError(f"{self.path}: no {', '.join(missing)} line")
        return [found[k] for k in self.FIELDS]
