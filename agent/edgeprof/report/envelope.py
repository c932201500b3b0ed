"""The report's envelope: msgpack bytes in, a map that says it is report v1 out — without numpy.

Every reader starts here: :mod:`edgeprof.report.codec` before it validates the whole report, and
``edgeprof push`` (:mod:`edgeprof.uplink.spool`), which only has to tell a report from what a disk
or a crash can leave in the spool (garbage, a truncated file, another program's msgpack, a major
version nobody upstream reads) and must not import numpy when run from cron.
"""

from __future__ import annotations

from typing import Any, Final

import msgpack

from edgeprof.errors import InputError, SchemaVersionError

SCHEMA: Final = "edgeprof.report"
MAJOR: Final = 1
MINOR: Final = 1  # History: 0 first release; 1 MCU runs (device.mcu, summary.host_round_trip)


def unpack_envelope(data: bytes, origin: str) -> dict[str, Any]:
    """msgpack bytes -> the report's top-level map, its schema name and major version checked.

    Truncation, trailing bytes and other damage are told apart in the message; an unknown major
    version raises :class:`SchemaVersionError`.
    """
    try:
        obj: Any = msgpack.unpackb(data, raw=False, strict_map_key=True, max_bin_len=len(data))
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
