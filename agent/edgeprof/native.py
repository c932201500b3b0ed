"""The only module that touches the C core (``edgeprof._native``).

It turns negative errno returns into :class:`~edgeprof.errors.NativeError` with the path or
parameter involved, C enums into Python enums, and native buffers into numpy arrays. Everything
else in edgeprof goes through the small classes here.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from edgeprof.device.channels import ChannelSpec, ReadKind
from edgeprof.errors import InputError, NativeError

try:
    import edgeprof._marks as _marks
    from edgeprof._native import ffi, lib
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        "edgeprof's C core (edgeprof._native) is not built. Install the package with "
        "`pip install .` (or `pip install -e .`), which compiles it; see the build output for "
        "a missing compiler or header."
    ) from exc

U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]

MAX_CHANNELS: int = int(lib.EP_MAX_CHANNELS)


class ClockSource(IntEnum):
    """Mirrors ``enum ep_clock_source``."""

    AUTO = lib.EP_CLOCK_AUTO
    TSC = lib.EP_CLOCK_TSC
    CNTVCT = lib.EP_CLOCK_CNTVCT
    MONORAW = lib.EP_CLOCK_MONORAW

    @property
    def label(self) -> str:
        """How people name this source."""
        return {
            ClockSource.AUTO: "auto",
            ClockSource.TSC: "x86 TSC (rdtsc)",
            ClockSource.CNTVCT: "arm64 CNTVCT_EL0",
            ClockSource.MONORAW: "clock_gettime(CLOCK_MONOTONIC_RAW)",
        }[self]


_KIND_TO_C = {
    ReadKind.VALUE: lib.EP_CH_VALUE,
    ReadKind.PRODUCT: lib.EP_CH_PRODUCT,
    ReadKind.COUNTER: lib.EP_CH_COUNTER,
    ReadKind.STATM_RSS: lib.EP_CH_STATM_RSS,
    ReadKind.SMAPS_PSS: lib.EP_CH_SMAPS_PSS,
}


def _errmsg(rc: int) -> str:
    code = -rc
    name = errno.errorcode.get(code, str(code))
    return f"{os.strerror(code)} ({name})"


@dataclass(frozen=True)
class ClockInfo:
    """The calibration in force: which tick, how fast, how fine and how costly to read."""

    source: ClockSource
    invariant: bool
    hz: float
    nominal_hz: float
    ref_tick: int
    ref_ns: int
    resolution_ns: float
    read_cost_ns: float
    calib_ppm: float
    calib_span_ns: float
    pair_width_ns: float

    def describe(self) -> dict[str, Any]:
        """A plain dict with units in the key names, for reports and ``--json``."""
        return {
            "source": self.source.name.lower(),
            "source_label": self.source.label,
            "invariant": self.invariant,
            "hz": self.hz,
            "nominal_hz": self.nominal_hz or None,
            "resolution_ns": self.resolution_ns,
            "read_cost_ns": self.read_cost_ns,
            "calibration_ppm": self.calib_ppm,
            "calibration_span_ns": self.calib_span_ns,
            "calibration_pair_width_ns": self.pair_width_ns,
            "reference": "CLOCK_MONOTONIC_RAW",
        }

    def ticks_to_ns(self, ticks: U64 | Sequence[int]) -> npt.NDArray[np.int64]:
        """Ticks to CLOCK_MONOTONIC_RAW nanoseconds (int64), through the reference pair."""
        t = np.asarray(ticks, dtype=np.uint64)
        delta = t.astype(np.int64) - np.int64(self.ref_tick)
        ns = np.rint(delta.astype(np.float64) * (1e9 / self.hz))
        return ns.astype(np.int64) + np.int64(self.ref_ns)

    def ticks_to_seconds(self, delta_ticks: U64 | npt.NDArray[np.int64] | float) -> F64:
        """A tick difference (a duration) in seconds."""
        return np.asarray(delta_ticks, dtype=np.float64) / self.hz


def _clock_from_c(c: Any) -> ClockInfo:
    return ClockInfo(
        source=ClockSource(c.source),
        invariant=bool(c.invariant),
        hz=float(c.hz),
        nominal_hz=float(c.nominal_hz),
        ref_tick=int(c.ref_tick),
        ref_ns=int(c.ref_ns),
        resolution_ns=float(c.resolution_ns),
        read_cost_ns=float(c.read_cost_ns),
        calib_ppm=float(c.calib_ppm),
        calib_span_ns=float(c.calib_span_ns),
        pair_width_ns=float(c.pair_width_ns),
    )


def clock_init(source: ClockSource = ClockSource.AUTO, calib_ms: int = 100) -> ClockInfo:
    """Select and calibrate the process-wide tick source."""
    out = ffi.new("ep_clock_info *")
    rc = lib.ep_clock_init(int(source), calib_ms, out)
    if rc < 0:
        raise NativeError(f"tick source {source.name} unavailable on this CPU: {_errmsg(rc)}")
    return _clock_from_c(out)


def clock_info() -> ClockInfo:
    """The calibration in force (calibrating with defaults on first use)."""
    out = ffi.new("ep_clock_info *")
    rc = lib.ep_clock_get(out)
    if rc < 0:
        raise NativeError(f"could not calibrate the tick clock: {_errmsg(rc)}")
    return _clock_from_c(out)


tick: Callable[[], int] = lib.ep_tick
monoraw_ns: Callable[[], int] = lib.ep_monoraw_ns


def measure_read_cost(n: int = 1_000_000) -> float:
    """Mean ns per tick read over n back-to-back reads in C."""
    return float(lib.ep_clock_measure_read_cost(n))


def tsc_invariant() -> bool:
    """Whether CPUID reports an invariant TSC (always False off x86_64)."""
    return bool(lib.ep_tsc_invariant())


def counters_probe() -> tuple[bool, str]:
    """Whether hardware cycle/instruction counters work for this thread, and if not, why."""
    reason = ffi.new("char[512]")
    c = lib.ep_counters_open(reason, 512)
    if c == ffi.NULL:
        return False, ffi.string(reason).decode(errors="replace")
    lib.ep_counters_close(c)
    return True, ""


def parse_int64(data: bytes) -> int:
    """The C core's strict integer parser, exposed for tests and fuzzing."""
    out = ffi.new("int64_t *")
    rc = lib.ep_parse_int64(data, len(data), out)
    if rc < 0:
        raise InputError(f"not an integer: {data[:40]!r} ({_errmsg(rc)})")
    return int(out[0])


def parse_statm_resident(data: bytes) -> int:
    """Resident pages from a /proc/<pid>/statm line (the C sampler's parser)."""
    out = ffi.new("int64_t *")
    rc = lib.ep_parse_statm_resident(data, len(data), out)
    if rc < 0:
        raise InputError(f"not a statm line: {data[:60]!r} ({_errmsg(rc)})")
    return int(out[0])


def parse_smaps_pss_kb(data: bytes) -> int:
    """The Pss: value in kB from /proc/<pid>/smaps_rollup (the C sampler's parser)."""
    out = ffi.new("int64_t *")
    rc = lib.ep_parse_smaps_pss_kb(data, len(data), out)
    if rc < 0:
        raise InputError(f"no Pss line in smaps_rollup data ({_errmsg(rc)})")
    return int(out[0])


class Regions:
    """A preallocated native buffer of begin/end marks.

    ``begin()``/``end()`` mark this buffer; after :meth:`activate`, the module-level
    :data:`mark_begin`/:data:`mark_end` take no arguments and are the cheapest marks cffi can
    make (bind them to locals in a hot loop).
    """

    def __init__(self, capacity: int, counters: bool = False) -> None:
        if capacity <= 0:
            raise InputError(f"region capacity must be positive, not {capacity}")
        ptr = lib.ep_regions_new(capacity, 1 if counters else 0)
        if ptr == ffi.NULL:
            raise NativeError(f"could not allocate a region buffer of {capacity} entries")
        self._ptr = ffi.gc(ptr, lib.ep_regions_free)
        self.capacity = capacity

    def begin(self) -> int:
        """Open a region; returns its index (negative errno when full or already open)."""
        return int(lib.ep_region_begin(self._ptr))

    def end(self) -> int:
        """Close the open region; returns its index (negative errno when none is open)."""
        return int(lib.ep_region_end(self._ptr))

    def activate(self) -> None:
        """Make this the buffer that :data:`mark_begin`/:data:`mark_end` write to."""
        lib.ep_regions_activate(self._ptr)

    def deactivate(self) -> None:
        """Stop the zero-argument marks from writing anywhere."""
        lib.ep_regions_activate(ffi.NULL)

    def reset(self) -> None:
        """Forget all marks, keep the buffer."""
        lib.ep_regions_reset(self._ptr)

    @property
    def count(self) -> int:
        """Closed regions recorded."""
        return int(lib.ep_regions_count(self._ptr))

    @property
    def dropped(self) -> int:
        """Regions that did not fit in the buffer."""
        return int(lib.ep_regions_dropped(self._ptr))

    @property
    def unmatched(self) -> int:
        """Begin without end (or end without begin) marks."""
        return int(lib.ep_regions_unmatched(self._ptr))

    @property
    def has_counters(self) -> bool:
        """Whether cycle and instruction counts are recorded."""
        return bool(lib.ep_regions_has_counters(self._ptr))

    @property
    def counters_reason(self) -> str:
        """Why there are no counters (empty when there are)."""
        return str(ffi.string(lib.ep_regions_counters_reason(self._ptr)).decode())

    def arrays(self) -> dict[str, U64]:
        """Begin and end ticks (and cycles, instructions when counted) as numpy arrays."""
        n = self.count
        begin = np.empty(n, dtype=np.uint64)
        end = np.empty(n, dtype=np.uint64)
        cycles = np.empty(n, dtype=np.uint64)
        instr = np.empty(n, dtype=np.uint64)

        def buf(a: U64) -> Any:
            return ffi.from_buffer("uint64_t[]", a, require_writable=True)

        got = lib.ep_regions_copy(self._ptr, buf(begin), buf(end), buf(cycles), buf(instr), n)
        out = {"begin_tick": begin[:got], "end_tick": end[:got]}
        if self.has_counters:
            out["cycles"] = cycles[:got]
            out["instructions"] = instr[:got]
        return out


def _fn_address(name: str) -> int:
    return int(ffi.cast("uintptr_t", ffi.addressof(lib, name)))


# The zero-argument marks on the active buffer. They are the C functions ep_mark_begin and
# ep_mark_end called through edgeprof._marks, which keeps the GIL: cffi's wrapper would release
# and retake it on every call, costing more than the mark itself (bench/bench_clock.py).
_marks.bind(_fn_address("ep_mark_begin"), _fn_address("ep_mark_end"))
mark_begin: Callable[[], None] = _marks.begin
mark_end: Callable[[], None] = _marks.end
cffi_mark_begin: Callable[[], None] = lib.ep_mark_begin
cffi_mark_end: Callable[[], None] = lib.ep_mark_end
region_begin: Callable[[Any], int] = lib.ep_region_begin
region_end: Callable[[Any], int] = lib.ep_region_end


@dataclass(frozen=True)
class SamplerStats:
    """What the sampler thread says about itself."""

    samples: int
    missed: int
    overflows: int
    read_errors: int
    lateness_mean_ns: float
    lateness_std_ns: float
    lateness_max_ns: float
    read_mean_ns: float
    read_max_ns: float
    lateness_hist: tuple[int, ...]
    spin_margin_ns: float
    realtime: bool
    running: bool

    @property
    def missed_ratio(self) -> float:
        """Missed deadlines over all deadlines."""
        total = self.samples + self.missed
        return self.missed / total if total else 0.0

    def describe(self) -> dict[str, Any]:
        """A plain dict with units in the key names."""
        return {
            "samples": self.samples,
            "missed_deadlines": self.missed,
            "missed_ratio": self.missed_ratio,
            "ring_overflows": self.overflows,
            "read_errors": self.read_errors,
            "lateness_mean_ns": self.lateness_mean_ns,
            "lateness_std_ns": self.lateness_std_ns,
            "lateness_max_ns": self.lateness_max_ns,
            "read_mean_ns": self.read_mean_ns,
            "read_max_ns": self.read_max_ns,
            "lateness_hist_log2_ns": list(self.lateness_hist),
            "spin_margin_ns": self.spin_margin_ns,
            "realtime": self.realtime,
        }


class NativeSampler:
    """The C sampler thread: add channels, start, drain records in bulk, stop.

    Python only ever drains the ring; the thread itself never touches Python or the GIL.
    """

    def __init__(self, rate_hz: float, ring_capacity: int) -> None:
        if not 0 < rate_hz <= 1e6:
            raise InputError(f"sampling rate must be in (0, 1e6] Hz, not {rate_hz}")
        if ring_capacity <= 0:
            raise InputError(f"ring capacity must be positive, not {ring_capacity}")
        ptr = lib.ep_sampler_new(float(rate_hz), ring_capacity)
        if ptr == ffi.NULL:
            raise NativeError("could not allocate the sampler")
        self._ptr = ffi.gc(ptr, lib.ep_sampler_free)
        self.rate_hz = float(rate_hz)
        self.specs: list[ChannelSpec] = []
        self._drain_buf: tuple[U64, F64, Any, Any] | None = None

    @property
    def ncols(self) -> int:
        """Channels added so far."""
        return int(lib.ep_sampler_ncols(self._ptr))

    def add(self, spec: ChannelSpec) -> int:
        """Pre-open the channel's file(s); returns its column index."""
        a = spec.paths[0].encode()
        b = spec.paths[1].encode() if len(spec.paths) > 1 else ffi.NULL
        rc = lib.ep_sampler_add(self._ptr, _KIND_TO_C[spec.kind], a, b, spec.scale, spec.wrap)
        if rc < 0:
            where = " and ".join(spec.paths)
            raise NativeError(f"channel {spec.name}: cannot open {where}: {_errmsg(rc)}")
        self.specs.append(spec)
        return int(rc)

    def configure(self, cpu: int = -1, realtime: bool = False, spin_ns: int = -1) -> None:
        """Pin the thread to a CPU (-1: anywhere), ask for SCHED_FIFO, set the spin margin.

        spin_ns: -1 automatic (sleep-then-spin at rates >= 2 kHz), 0 sleep only, > 0 fixed.
        """
        rc = lib.ep_sampler_configure(self._ptr, cpu, 1 if realtime else 0, spin_ns)
        if rc < 0:
            raise NativeError(f"cannot configure a running sampler: {_errmsg(rc)}")

    def start(self) -> None:
        """Start the thread (once per sampler)."""
        rc = lib.ep_sampler_start(self._ptr)
        if rc < 0:
            raise NativeError(f"could not start the sampler thread: {_errmsg(rc)}")

    def stop(self) -> None:
        """Stop and join the thread (waits at most one period)."""
        lib.ep_sampler_stop(self._ptr)

    def read_now(self) -> tuple[int, F64]:
        """One sample on this thread (sampler not running); failed channels read NaN."""
        values = np.full(max(self.ncols, 1), np.nan, dtype=np.float64)
        tick_out = ffi.new("uint64_t *")
        rc = lib.ep_sampler_read_now(
            self._ptr, tick_out, ffi.from_buffer("double[]", values, require_writable=True)
        )
        if rc == -errno.EBUSY:
            raise NativeError("read_now needs the sampler stopped")
        return int(tick_out[0]), values[: self.ncols]

    def drain(self, max_records: int = 65536) -> tuple[U64, F64]:
        """Take up to max_records from the ring: ticks (n,) and values (n, ncols), as copies.

        The native side copies into buffers allocated once and reused, so a drain costs a
        memcpy of what is there, not an allocation the size of the ring.
        """
        ncols = self.ncols
        if self._drain_buf is None or self._drain_buf[0].shape[0] < max_records:
            ticks = np.empty(max_records, dtype=np.uint64)
            values = np.empty((max_records, max(ncols, 1)), dtype=np.float64)
            self._drain_buf = (
                ticks,
                values,
                ffi.from_buffer("uint64_t[]", ticks, require_writable=True),
                ffi.from_buffer("double[]", values, require_writable=True),
            )
        ticks, values, c_ticks, c_values = self._drain_buf
        n = lib.ep_sampler_drain(self._ptr, c_ticks, c_values, min(max_records, len(ticks)))
        return ticks[:n].copy(), values[:n, :ncols].copy()

    def stats(self) -> SamplerStats:
        """The thread's own statistics (published every few samples and at stop)."""
        st = ffi.new("ep_sampler_stats *")
        lib.ep_sampler_stats_get(self._ptr, st)
        return SamplerStats(
            samples=int(st.samples),
            missed=int(st.missed),
            overflows=int(st.overflows),
            read_errors=int(st.read_errors),
            lateness_mean_ns=float(st.lateness_mean_ns),
            lateness_std_ns=float(st.lateness_std_ns),
            lateness_max_ns=float(st.lateness_max_ns),
            read_mean_ns=float(st.read_mean_ns),
            read_max_ns=float(st.read_max_ns),
            lateness_hist=tuple(int(x) for x in st.lateness_hist),
            spin_margin_ns=float(st.spin_margin_ns),
            realtime=bool(st.realtime),
            running=bool(st.running),
        )

    def channel_errors(self, col: int) -> tuple[int, str]:
        """How many reads of a column failed, and the last error as text ("" if none)."""
        count = int(lib.ep_sampler_channel_errors(self._ptr, col))
        last = int(lib.ep_sampler_channel_last_error(self._ptr, col))
        if not last:
            return count, ""
        text = "not a number" if last == errno.EINVAL else os.strerror(last)
        if last == errno.ERANGE:
            text = "out of range"
        return count, text
