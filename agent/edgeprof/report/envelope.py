"""The report's envelope: msgpack bytes in, a map that says it is report v1 out — without numpy.

Every reader starts here: :mod:`edgeprof.report.codec` before it validates the whole report, and
``edgeprof push`` (:mod:`edgeprof.uplink.spool`), which only has to tell a report from what a disk
or a crash can leave in the spool (garbage, a truncated file, another program's msgpack, a major
version nobody upstream reads) and must not import numpy when run from cron.

Decoding is bounded and strict for every reader alike (the collector, the gate, ``report``
commands, push): :func:`edgeprof.report.bounds.check_bounds` walks the bytes first without
allocating (depth, object count, container sizes), so a hostile body cannot make msgpack build
millions of objects; then msgpack decodes with a duplicate-key check on every map, because a map
that names a key twice decodes to its last value while a signature or a reader may have seen
the first.
"""

from __future__ import annotations

from typing import Any, Final

import msgpack

from edgeprof.errors import InputError, SchemaVersionError
from edgeprof.report.bounds import DEFAULT_BOUNDS, Bounds, check_bounds

SCHEMA: Final = "edgeprof.report"
MAJOR: Final = 1
MINOR: Final = 2  # History: 0 first release; 1 MCU runs (device.mcu, summary.host_round_trip)
# 2: issue 14 fields


class _DuplicateKeyError(ValueError):
    def __init__(self, key: object) -> None:
        super().__init__(f"a map names the key {str(key)[:60]!r} twice")


def _no_duplicates(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """A map from its pairs, refusing a key given twice (msgpack would keep the last)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[Any] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKeyError(key)
            seen.add(key)
    return out


def unpack_envelope(data: bytes, origin: str, bounds: Bounds = DEFAULT_BOUNDS) -> dict[str, Any]:
    """msgpack bytes -> the report's top-level map, its schema name and major version checked.

    The bytes are walked within ``bounds`` before anything is decoded; a duplicate map key is
    refused. Truncation, trailing bytes and other damage are told apart in the message; an
    unknown major version raises :class:`SchemaVersionError`.
    """
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    check_bounds(data, origin, bounds)
    try:
        obj: Any = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            object_pairs_hook=_no_duplicates,
            max_bin_len=len(data),
            max_str_len=len(data),
            max_array_len=bounds.max_container,
            max_map_len=bounds.max_container,
            max_ext_len=0,
        )
    except _DuplicateKeyError as exc:
        raise InputError(f"{origin}: refused: {exc}") from None
    except msgpack.ExtraData:
        raise InputError(f"{origin}: corrupted: trailing bytes after the report") from None
    except (ValueError, msgpack.UnpackException, TypeError) as exc:
        if "incomplete input" in str(exc):
            raise InputError(
                f"{origin}: truncated: the file ends inside the report ({len(data)} bytes)"
            ) from None
        raise InputError(f"{origin}: not a msgpack report (corrupted?): {exc}") from None
    if not isinstance(obj, dict) or obj.get("schema") != SCHEMA:
        raise InputError(f"{origin}: not an edgeprof report")
    version = obj.get("schema_version")
    if not isinstance(version, list) or not version or version[0] != MAJOR:
        raise SchemaVersionError(
            f"{origin}: unsupported report schema version {version!r} "
            f"(this reader knows major {MAJOR})"
        )
    return obj


def report_id(data: bytes, origin: str) -> str:
    """The id of the report in ``data`` (envelope checked); :class:`InputError` says why not."""
    rid = unpack_envelope(data, origin).get("report_id")
    if not isinstance(rid, str) or not rid:
        raise InputError(f"{origin}: the report has no report_id")
    return rid
