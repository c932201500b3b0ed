"""The run report as a versioned msgpack map, with arrays as typed binary blobs.

Report v1 (``schema_version`` [1, 0], specified in ``docs/report-format.md``): a map with the
schema version, a time-sortable report id, the agent, device, model, runner, run configuration,
environment, summary (units in the key names), per-inference arrays, raw traces, warnings, tags
and a signature block. Arrays are never lists of floats: each is
``{"__array__": 1, "dtype": "<f8", "shape": [n], "data": bytes}``, so a 10,000-inference run with
a minute of 1 kHz traces stays small and fast to read.

Reading is strict because pipelines gate on these files: :func:`decode` says whether a file is
not msgpack, truncated, of an unknown major version, or fails validation at a named field;
:func:`read_report` also checks the signatures (:mod:`edgeprof.report.signing`).
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from typing import TYPE_CHECKING, Any

import msgpack
import numpy as np

from edgeprof.atomic import write_atomic as write_atomic
from edgeprof.errors import InputError
from edgeprof.report.envelope import MAJOR, MINOR, SCHEMA, unpack_envelope
from edgeprof.report.schema import validate

if TYPE_CHECKING:
    from edgeprof.report.signing import Keys

SCHEMA_VERSION = (MAJOR, MINOR)


ARRAY_MARK = "__array__"
_ALLOWED_DTYPES = {"<f8", "<f4", "<i8", "<u8", "<i4", "<u4", "<i2", "<u2", "|i1", "|u1", "|b1"}


def uuid7() -> str:
    """A UUIDv7: 48 bits of Unix milliseconds then randomness, so ids sort by creation time."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(secrets.token_bytes(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 68) & 0xFFF) << 64  # rand_a
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b
    return str(uuid.UUID(int=value))


def pack_array(a: np.ndarray) -> dict[str, Any]:
    """A numpy array as a typed binary map (little-endian, C order)."""
    arr = np.ascontiguousarray(a)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    dtype = arr.dtype.str
    if dtype not in _ALLOWED_DTYPES:
        raise InputError(f"cannot store an array of dtype {arr.dtype} in a report")
    return {ARRAY_MARK: 1, "dtype": dtype, "shape": list(arr.shape), "data": arr.tobytes()}


def unpack_array(m: dict[str, Any]) -> np.ndarray:
    """The inverse of pack_array, checking that dtype, shape and byte count agree."""
    dtype = m.get("dtype")
    shape = m.get("shape")
    data = m.get("data")
    if dtype not in _ALLOWED_DTYPES or not isinstance(shape, list) or not isinstance(data, bytes):
        raise InputError(f"malformed array in report (dtype={dtype!r})")
    if not all(isinstance(s, int) and s >= 0 for s in shape):
        raise InputError(f"malformed array shape {shape!r} in report")
    dt = np.dtype(dtype)
    if int(np.prod(shape, dtype=np.int64)) * dt.itemsize != len(data):
        raise InputError(f"array of shape {shape} and dtype {dtype} has {len(data)} bytes")
    return np.frombuffer(data, dtype=dt).reshape(shape)


def _to_msgpack(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return pack_array(obj)
    if isinstance(obj, dict):
        return {str(k): _to_msgpack(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_msgpack(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (str, int, float, bool, bytes)):
        return obj  # NaN and inf included: msgpack carries them as floats
    raise InputError(f"cannot store a {type(obj).__name__} in a report")


def _from_msgpack(obj: Any) -> Any:
    if isinstance(obj, dict):
        if obj.get(ARRAY_MARK) == 1:
            return unpack_array(obj)
        return {k: _from_msgpack(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_msgpack(v) for v in obj]
    return obj


def to_wire(report: dict[str, Any]) -> dict[str, Any]:
    """The report as msgpack-ready objects (arrays as typed maps), with the v1 envelope.

    A report that already names its schema version keeps it (re-encoding a decoded report of a
    newer minor must not relabel it); otherwise it gets this writer's version.
    """
    body = {"schema": SCHEMA, "schema_version": list(SCHEMA_VERSION), **report}
    wire: dict[str, Any] = _to_msgpack(body)
    return wire


def encode(report: dict[str, Any]) -> bytes:
    """The report as msgpack bytes (schema and version added when absent)."""
    return bytes(msgpack.packb(to_wire(report), use_bin_type=True))


def decode_wire(data: bytes, origin: str = "report") -> dict[str, Any]:
    """Bytes -> the report as msgpack objects (arrays still typed maps), envelope checked.

    Signatures are computed over this form, so :mod:`edgeprof.report.signing` verifies it, not the
    numpy form.
    """
    return unpack_envelope(data, origin)


def from_wire(wire: dict[str, Any], origin: str = "report") -> dict[str, Any]:
    """Wire objects -> the report with numpy arrays, validated against v1."""
    try:
        result: dict[str, Any] = _from_msgpack(wire)
        validate(result)
    except InputError as exc:
        raise InputError(f"{origin}: fails validation at {exc}") from None
    return result


def decode(data: bytes, origin: str = "report", *, validate: bool = True) -> dict[str, Any]:
    """Parse, check the envelope and validate; arrays come back as numpy arrays.

    ``validate=False`` only for low-level uses (inspecting a damaged file, container tests).
    """
    wire = decode_wire(data, origin)
    if not validate:
        result: dict[str, Any] = _from_msgpack(wire)
        return result
    return from_wire(wire, origin)


def read_report(
    path: str | os.PathLike[str], *, verify: bool = True, keys: Keys | None = None
) -> dict[str, Any]:
    """Read, decode, validate and (with ``verify``) check the signatures of a report file.

    An unsigned report passes (v1 allows them locally; the collector refuses them); a signature
    that does not match raises InputError saying which one. ``keys`` default to this device's
    (:func:`edgeprof.report.signing.load_keys`).
    """
    from edgeprof.report.signing import load_keys, verify_wire

    origin = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise InputError(f"{origin}: cannot read: {exc.strerror or exc}") from None
    wire = decode_wire(data, origin)
    report = from_wire(wire, origin)
    if verify and "signature" in wire:
        result = verify_wire(wire, keys if keys is not None else load_keys())
        if result.failed:
            raise InputError(f"{origin}: signature mismatch: {result.message()}")
    return report


def summary_json(report: dict[str, Any], path: os.PathLike[str] | str | None) -> dict[str, Any]:
    """The report without arrays, JSON-ready (NaN/inf become None, bytes hex): for ``--json``."""

    def clean(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [clean(v) for v in obj]
        if isinstance(obj, np.generic):
            obj = obj.item()
        if isinstance(obj, float) and not np.isfinite(obj):
            return None
        if isinstance(obj, bytes):
            return obj.hex()  # signature values and keys
        return obj

    body = {k: v for k, v in report.items() if k not in ("per_inference", "traces")}
    body["report_path"] = os.fspath(path) if path is not None else None
    body["per_inference_arrays"] = sorted(report.get("per_inference", {}))
    result: dict[str, Any] = clean(body)
    return result
