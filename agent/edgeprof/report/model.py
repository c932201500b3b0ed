"""Report v1 as typed msgspec Structs: the schema, its checks and its field table in one place.

Why msgspec: its ``convert`` checks a decoded map against these classes in C (types,
required/optional, ranges), the same mechanism board and policy files use, and it measured
no slower than the hand-written walker it replaces (docs/benchmarks.md, issue 12). Rules that
types cannot say (UUIDv7, hex digests, array shapes and lengths, signature sizes) live in each
Struct's ``__post_init__``, which msgspec runs while converting, so one call checks everything.

A report stays a plain map in memory and on the wire: unknown keys (a newer minor version) are
kept by whoever holds the map, while :func:`check` returns the typed view of the known fields.
Error messages name the field path and the problem on one line (``traces.fast.t_ns: times go
backwards``); map keys appear in the path, not msgspec's ``[...]``.

Field metadata (``doc(unit, note)``) feeds the Markdown table of docs/report-format.md.
"""

from __future__ import annotations

import re
import types
import typing
import uuid
from typing import Annotated, Any, ClassVar

import msgspec
import numpy as np
import numpy.typing as npt
from msgspec import UNSET, Meta, UnsetType

from edgeprof.report.envelope import MAJOR, MINOR

Array = npt.NDArray[Any]  # a typed binary array on the wire, numpy once decoded


class Blob(bytes):
    """Raw bytes that must arrive as bytes (msgspec would otherwise accept base64 text)."""


def doc(unit: str = "", note: str = "") -> Meta:
    """Unit and note of a field, for the Markdown table."""
    return Meta(extra={"unit": unit, "note": note})


NonNeg = Meta(ge=0)
# Physical quantities (time, energy, memory, power, rates) are finite and never negative: a
# float outside [0, max float] (negative, infinite or NaN) is refused where it is read.
Amount = Annotated[float, Meta(ge=0.0, le=1.7976931348623157e308)]
Count = Annotated[int, NonNeg]
Fraction = Annotated[float, Meta(ge=0.0, le=1.0)]
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX16 = re.compile(r"[0-9a-f]{16}")


class FieldError(ValueError):
    """A rule a Struct checks itself: ``path`` is relative to that Struct."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


class _S(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Every section: keyword construction, absent optional fields stay absent."""


class Agent(_S, kw_only=True):
    name: str
    version: str


class Mcu(_S, kw_only=True):
    cycle_source: Annotated[str | UnsetType, doc(note="what the counter counts")] = UNSET
    cycle_hz: Annotated[Count | UnsetType, doc("hz")] = UNSET


class Device(_S, kw_only=True):
    board_id: Annotated[str, doc(note="from boards/*.toml")]
    device_id: Annotated[str, doc(note="stable across reboots, e.g. machine-id:…")]
    os: str
    kernel: str
    machine: Annotated[str, doc(note="CPU architecture (uname -m)")]
    cpu_model: str | UnsetType | None = UNSET
    cpu_count: Count | None
    memory_total_bytes: Annotated[Count | UnsetType | None, doc("bytes")] = UNSET
    runtimes: Annotated[dict[str, str | None] | UnsetType, doc(note="runtime name -> version")] = (
        UNSET
    )
    host_board_id: Annotated[
        str | UnsetType, doc(note="mcu runs: the machine driving the board")
    ] = UNSET
    mcu: Annotated[
        Mcu | UnsetType, doc(note="mcu runs: the firmware's INFO (protocol, counter)")
    ] = UNSET


class Tensor(_S, kw_only=True):
    name: str
    shape: list[Any]
    dtype: str
    scale: Annotated[float, doc(note="0 = not quantized")]
    zero_point: int


class Registry(_S, kw_only=True):
    model_id: str | UnsetType = UNSET
    version: str | UnsetType = UNSET
    base_model: str | UnsetType = UNSET
    quantization: str | UnsetType = UNSET
    training_data_version: str | UnsetType = UNSET


class Model(_S, kw_only=True):
    name: str
    sha256: Annotated[str, doc(note="64 lowercase hex digits")]
    size_bytes: Annotated[int, NonNeg, doc("bytes")]
    format: Annotated[str, doc(note='"tflite"')]
    quantization: Annotated[
        str | UnsetType, doc(note="dtype of the quantized I/O tensors, or none")
    ] = UNSET
    inputs: list[Tensor]
    outputs: list[Tensor]
    registry: Annotated[Registry | UnsetType, doc(note="what the model registry says")] = UNSET

    def __post_init__(self) -> None:
        if not _HEX64.fullmatch(self.sha256):
            raise FieldError("sha256", "not 64 lowercase hex digits")


class RunnerInfo(_S, kw_only=True):
    runner: Annotated[str, doc(note='"tflite", "tflm", …')]
    runtime: str | UnsetType | None = UNSET
    runtime_version: str | UnsetType | None = UNSET


class Run(_S, kw_only=True):
    warmup_count: Count
    min_count: Count
    min_s: Annotated[Amount, doc("s")]
    max_s: Annotated[Amount, doc("s")]
    delay_s: Annotated[Amount, doc("s")]
    sampler_rate_hz: Annotated[Amount, doc("hz")]
    input_source: str
    seed: int


class Clock(_S, kw_only=True):
    source: str | UnsetType = UNSET
    hz: Annotated[Amount | UnsetType, doc("hz")] = UNSET


class Anchor(_S, kw_only=True):
    realtime_ns: Annotated[int, doc("ns", "CLOCK_REALTIME: Unix time, as created_ns")]
    monotonic_ns: Annotated[int, doc("ns", "CLOCK_MONOTONIC (slewed by NTP)")]
    monotonic_raw_ns: Annotated[
        int | UnsetType, doc("ns", "CLOCK_MONOTONIC_RAW: the clock of begin_ns and t_ns")
    ] = UNSET
    tick: Annotated[int, NonNeg, doc(note="the native tick (clock.hz), midpoint of its bracket")]
    width_ticks: Annotated[
        Count | UnsetType, doc(note="ticks between the two tick reads around the clocks")
    ] = UNSET


class TimeAnchors(_S, kw_only=True):
    start: Annotated[Anchor, doc(note="before the model loads")]
    end: Annotated[Anchor, doc(note="after the last measured inference")]

    def __post_init__(self) -> None:
        for name in ("realtime_ns", "monotonic_ns", "tick"):
            if getattr(self.end, name) < getattr(self.start, name):
                raise FieldError(f"end.{name}", "before start")


class Counters(_S, kw_only=True):
    available: bool | UnsetType = UNSET


class Init(_S, kw_only=True):
    time_s: Annotated[Amount | UnsetType, doc("s")] = UNSET
    tool_buffers_bytes: Annotated[
        Count | UnsetType, doc("bytes", "edgeprof's own, inside every RSS figure")
    ] = UNSET


class Environment(_S, kw_only=True):
    governors: Annotated[dict[str, str], doc(note="cpu -> governor")]
    load_average: Annotated[list[Any], doc(note="1, 5, 15 min")]
    other_load_cores: float | UnsetType | None = UNSET
    steal_fraction: Annotated[
        Fraction | UnsetType | None, doc(note="hypervisor steal / all CPU time, measured phase")
    ] = UNSET
    cpu_freq_hz: Annotated[
        dict[str, Any] | UnsetType, doc(note="channel -> {start, end, min, max}")
    ] = UNSET
    temperature_c: Annotated[
        dict[str, Any] | UnsetType, doc(note="channel -> {start, end, min, max}")
    ] = UNSET


class Latency(_S, kw_only=True):
    mean_s: Annotated[Amount, doc("s")]
    min_s: Annotated[Amount, doc("s")]
    max_s: Annotated[Amount, doc("s")]
    p50_s: Annotated[Amount, doc("s")]
    p90_s: Annotated[Amount, doc("s")]
    p95_s: Annotated[Amount, doc("s")]
    p99_s: Annotated[Amount, doc("s")]


class HostRoundTrip(_S, kw_only=True):
    p50_s: Annotated[Amount | UnsetType, doc("s")] = UNSET


class DeviceSummary(_S, kw_only=True):
    heap_peak_bytes: Annotated[Count | UnsetType | None, doc("bytes")] = UNSET
    stack_peak_bytes: Annotated[Count | UnsetType | None, doc("bytes")] = UNSET


class Rail(_S, kw_only=True):
    power_mean_w: Annotated[Amount | None, doc("w")]
    power_peak_w: Annotated[Amount | UnsetType | None, doc("w")] = UNSET
    energy_per_inference_j: Annotated[Amount | None, doc("j")]


class Summary(_S, kw_only=True):
    count: Annotated[int, NonNeg, doc(note="measured inferences")]
    latency: Latency
    inferences_per_s: Annotated[Amount | None, doc("per_s")]
    measured_wall_s: Annotated[Amount, doc("s")]
    init_time_s: Annotated[Amount | UnsetType, doc("s")] = UNSET
    model_size_bytes: Annotated[Count | UnsetType, doc("bytes")] = UNSET
    rss_peak_bytes: Annotated[Amount | None, doc("bytes")]
    rss_steady_bytes: Annotated[Amount | UnsetType | None, doc("bytes")] = UNSET
    latency_source: Annotated[str | UnsetType, doc(note='"device" when a device timed itself')] = (
        UNSET
    )
    host_round_trip: Annotated[
        HostRoundTrip | UnsetType, doc(note="mcu runs: like latency, host-timed")
    ] = UNSET
    device: Annotated[
        DeviceSummary | UnsetType, doc(note="mcu runs: counter, heap and stack peaks, layers")
    ] = UNSET
    rails: Annotated[dict[str, Rail], doc(note="rail name -> its figures")]
    primary_rail: str | None
    energy_per_inference_j: Annotated[Amount | UnsetType | None, doc("j")] = UNSET
    power_mean_w: Annotated[Amount | UnsetType | None, doc("w")] = UNSET


class Channel(_S, kw_only=True):
    name: str
    unit: Annotated[str, doc(note="SI unit of the column")]


class Trace(_S, kw_only=True):
    rate_hz: Annotated[Amount, doc("hz")]
    channels: list[Channel]
    t_ns: Annotated[Array, doc("ns", "int64, shape (n,); CLOCK_MONOTONIC_RAW, from the tick")]
    values: Annotated[Array, doc(note="shape (n, channels)")]

    def __post_init__(self) -> None:
        t_ns, values = self.t_ns, self.values
        if t_ns.ndim != 1 or t_ns.dtype.kind not in "iu":
            raise FieldError("t_ns", f"{describe(t_ns)}, expected 1-D int64")
        expected = (len(t_ns), len(self.channels))
        if values.shape != expected:
            raise FieldError(
                "values",
                f"shape {list(values.shape)}, expected [{expected[0]}, {expected[1]}] "
                f"(len(t_ns), len(channels))",
            )
        if len(t_ns) > 1 and bool(np.any(np.diff(t_ns.astype(np.int64)) < 0)):
            raise FieldError("t_ns", "times go backwards")


class HmacSignature(_S, kw_only=True):
    key_id: Annotated[str, doc(note="16 hex: sha256(key)[:16]")]
    value: Annotated[Blob, doc(note="32 bytes")]

    def __post_init__(self) -> None:
        if not _HEX16.fullmatch(self.key_id):
            raise FieldError("key_id", "not 16 lowercase hex digits")
        if len(self.value) != 32:
            raise FieldError("value", f"{len(self.value)} bytes, expected 32")


class Ed25519Signature(_S, kw_only=True):
    public_key: Annotated[Blob, doc(note="32 bytes, raw")]
    value: Annotated[Blob, doc(note="64 bytes")]

    def __post_init__(self) -> None:
        if len(self.public_key) != 32:
            raise FieldError("public_key", "expected 32 bytes")
        if len(self.value) != 64:
            raise FieldError("value", f"{len(self.value)} bytes, expected 64")


class Signature(_S, kw_only=True):
    hmac_sha256: HmacSignature | UnsetType = UNSET
    ed25519: Ed25519Signature | UnsetType = UNSET

    def __post_init__(self) -> None:
        if self.hmac_sha256 is UNSET and self.ed25519 is UNSET:
            raise FieldError("", "holds no known signature (hmac_sha256, ed25519)")


# The per-inference map is open (energy_j.<rail>, cycles, device_* …): these are its rows.
PER_INFERENCE_ROWS: tuple[tuple[str, bool, str, str], ...] = (
    ("begin_ns", True, "ns", "int64, CLOCK_MONOTONIC_RAW from the tick, as traces t_ns"),
    ("latency_s", True, "s", ""),
    ("peak_rss_bytes", True, "bytes", ""),
    (
        "*",
        False,
        "",
        "energy_j.<rail>, cycles, instructions, output_top1, output_top_score, "
        "host_round_trip_s, device_*",
    ),
)


class Report(_S, kw_only=True):
    """Report v1. Field order is the order a writer emits (the golden file's order)."""

    schema: Annotated[str, doc(note='always "edgeprof.report"')]
    schema_version: Annotated[list[Any], doc(note=f"[major, minor] = [{MAJOR}, {MINOR}]")]
    report_id: Annotated[str, doc(note="UUIDv7, sorts by creation time")]
    created_ns: Annotated[int, NonNeg, doc("ns", "CLOCK_REALTIME (Unix time) the run started")]
    agent: Agent
    device: Device
    model: Model
    runner: RunnerInfo
    run: Annotated[Run, doc(note="the run configuration")]
    interrupted: Annotated[
        bool | UnsetType,
        doc(note="true: Ctrl-C ended the measurement; the report holds what was measured"),
    ] = UNSET
    clock: Clock | UnsetType = UNSET
    time_anchors: Annotated[
        TimeAnchors | UnsetType, doc(note="one instant on every clock, at start and end")
    ] = UNSET
    counters: Counters | UnsetType = UNSET
    init: Init | UnsetType = UNSET
    environment: Environment
    summary: Summary
    quality: Annotated[
        dict[str, Any] | UnsetType | None, doc(note="null without --reference/--data")
    ] = UNSET
    per_inference: Annotated[dict[str, Array], doc(note="one value per measured inference")]
    traces: Annotated[dict[str, Trace], doc(note='"fast", "slow": raw sampler traces')]
    warnings: list[str]
    tags: dict[str, str]
    signature: Annotated[Signature | UnsetType, doc(note="absent = unsigned; see Signing")] = UNSET

    OPEN_ROWS: ClassVar[dict[str, tuple[tuple[str, bool, str, str], ...]]] = {
        "per_inference": PER_INFERENCE_ROWS
    }

    def __post_init__(self) -> None:
        try:
            u = uuid.UUID(self.report_id)
        except ValueError:
            raise FieldError("report_id", f"{self.report_id!r} is not a UUID") from None
        if u.version != 7:
            raise FieldError("report_id", f"UUID version {u.version}, expected 7")
        if str(u) != self.report_id:  # the only spelling stores and URLs look up
            raise FieldError(
                "report_id", f"{self.report_id[:60]!r} is not written as a lower-case UUID ({u})"
            )
        self._check_per_inference()

    def _check_per_inference(self) -> None:
        per = self.per_inference
        for name, _required, _unit, _note in PER_INFERENCE_ROWS[:3]:
            if name not in per:
                raise FieldError(f"per_inference.{name}", "missing")
        latency = per["latency_s"]
        count = self.summary.count
        if latency.ndim != 1:
            shape = list(latency.shape)
            raise FieldError("per_inference.latency_s", f"shape {shape}, expected (n,)")
        n = len(latency)
        if n != count:
            raise FieldError("per_inference.latency_s", f"{n} values, summary.count is {count}")
        for name, arr in per.items():
            path = f"per_inference.{name}"
            if arr.ndim != 1:
                raise FieldError(path, f"shape {list(arr.shape)}, expected ({n},)")
            if len(arr) != n:
                raise FieldError(path, f"{len(arr)} values, latency_s has {n}")
        if per["begin_ns"].dtype.kind not in "iu":
            dtype = per["begin_ns"].dtype
            raise FieldError("per_inference.begin_ns", f"dtype {dtype}, expected int64")
        if latency.dtype.kind != "f":
            raise FieldError("per_inference.latency_s", f"dtype {latency.dtype}, expected float")
        if n and not bool(np.all(np.isfinite(latency))):
            raise FieldError("per_inference.latency_s", "holds NaN or infinity")
        for name, arr in per.items():  # NaN is "not measured" in the other rows
            amount = name in _NON_NEGATIVE_ROWS or name.startswith("energy_j.")
            if amount and arr.dtype.kind in "fi" and bool((arr < 0).any()):  # NaN < 0 is False
                raise FieldError(f"per_inference.{name}", f"negative ({np.nanmin(arr):g})")


# Rows of physical amounts that are never negative (besides every energy_j.<rail>).
_NON_NEGATIVE_ROWS = frozenset({"latency_s", "peak_rss_bytes", "host_round_trip_s"})


# --- converting a decoded map, with errors that name the field ------------------------------------


def describe(value: Any) -> str:
    """A value's kind for messages: arrays with dtype and shape."""
    if isinstance(value, np.ndarray):
        return f"array {value.dtype} {list(value.shape)}"
    return type(value).__name__


def _dec_hook(tp: Any, obj: Any) -> Any:
    """Arrays pass as numpy arrays (as the codec decodes them); blobs must be bytes."""
    if tp is Blob:
        if isinstance(obj, bytes):
            return Blob(obj)
        raise TypeError(f"expected bytes, got {describe(obj)}")
    if typing.get_origin(tp) is np.ndarray or tp is np.ndarray:
        if isinstance(obj, np.ndarray):
            return obj
        raise TypeError(f"expected array, got {describe(obj)}")
    raise TypeError(f"unsupported type {tp!r}")  # pragma: no cover - the model uses no others


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_SEG = re.compile(r"\.(\w+)|\[(\d+|\.\.\.)\]")
_MISSING = re.compile(r"^Object missing required field `(?P<f>[^`]+)`$")
_NEGATIVE = re.compile(r"^Expected `(int|float)` (>= 0(\.0)?|<= 1\.7976931348623157e\+308)$")
_SCHEMA_WORDS = {"object": "map", "float": "number", "array": "list"}
_WORDS = re.compile(r"\b(object|float|array)\b")
_OWN = re.compile(r"^(?P<f>[\w.\[\]]*): (?P<p>.*)$", re.S)


def _bare(tp: Any) -> Any:
    """The type without Annotated, None or UNSET: what a container holds."""
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    args = [a for a in typing.get_args(tp) if a not in (type(None), UnsetType)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        return _bare(args[0])
    return tp


def _child(tp: Any, seg: str) -> Any:
    """The type of one step into ``tp``: a field, a list item or a map value."""
    tp = _bare(tp)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return typing.get_type_hints(tp, include_extras=True)[seg]
    args = typing.get_args(tp)
    return args[-1] if args else Any


def _where(obj: Any, tp: Any, err: msgspec.ValidationError) -> str:
    """``path: problem`` for an error msgspec raised converting ``obj`` to ``tp``."""
    m = _AT.match(str(err))
    assert m is not None
    msg, raw = m["msg"], m["path"] or ""
    path = ""
    for seg in _SEG.finditer(raw):
        name, index = seg.group(1), seg.group(2)
        if index == "...":  # a map key: find which entry fails, and say its name
            vt = _child(tp, "")
            for key, value in obj.items():
                try:
                    msgspec.convert(value, vt, dec_hook=_dec_hook)
                except msgspec.ValidationError as inner:
                    return _join(f"{path}.{key}".lstrip("."), _where(value, vt, inner))
            return _join(f"{path}.*".lstrip("."), msg)  # pragma: no cover - one entry fails
        if index is not None:
            obj, tp, path = obj[int(index)], _child(tp, ""), f"{path}[{index}]"
        else:
            obj, tp, path = obj.get(name), _child(tp, name), f"{path}.{name}".lstrip(".")
    if mm := _MISSING.match(msg):
        return _join(path, f"{mm['f']}: missing")
    if _NEGATIVE.match(msg):
        what = "negative" if isinstance(obj, int) else "negative, infinite or NaN"
        return _join(path, f"{what} ({obj})")
    if _OWN.match(msg):  # a rule of the Struct itself: "field: problem", relative to path
        return _join(path, msg)
    if msg.startswith("Expected"):  # msgspec's words (JSON's) -> the table's
        msg = _WORDS.sub(lambda w: _SCHEMA_WORDS[w[0]], msg.replace("`", "")).replace("E", "e", 1)
    return _join(path, msg)


def _join(prefix: str, rest: str) -> str:
    """Prefix a ``path: problem`` (or a bare problem) with the path above it."""
    own = _OWN.match(rest)
    if own is None:
        return f"{prefix}: {rest}" if prefix else rest
    sub, problem = own["f"], own["p"]
    if not sub:
        return f"{prefix}: {problem}" if prefix else problem
    if not prefix:
        return rest
    return f"{prefix}{sub}: {problem}" if sub.startswith("[") else f"{prefix}.{sub}: {problem}"


def convert(report: dict[str, Any]) -> Report:
    """The typed view of a decoded report; ValueError("path: problem") when it is not valid."""
    try:
        return msgspec.convert(report, Report, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        raise ValueError(_where(report, Report, exc)) from None
