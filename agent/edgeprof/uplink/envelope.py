"""What ``push`` checks of a spooled file before sending it, without numpy or the report schema.

The whole report was validated when it was written (and is validated again by the collector,
which files a bad one under ``rejected/`` with its reason); the spool only has to tell a report
from what a disk or a crash can leave behind: garbage, a truncated file, another program's
msgpack, a major version nobody upstream reads. That takes msgpack alone, so ``edgeprof push``
from cron never imports numpy (``tests/test_cli_lazy.py`` holds it to that).
"""

from __future__ import annotations

from typing import Any, Final

import msgpack

# The report format's envelope (docs/report-format.md); tests check these against
# edgeprof.report.schema, which is the source of truth but imports numpy.
SCHEMA: Final = "edgeprof.report"
MAJOR: Final = 1


class NotAReportError(Exception):
    """A spooled file that is not a report; the message is the reason."""


def report_id(data: bytes, origin: str) -> str:
    """The id of the report in ``data``, or :class:`NotAReportError` saying what is wrong."""
    try:
        obj: Any = msgpack.unpackb(data, raw=False, strict_map_key=True, max_bin_len=len(data))
    except msgpack.ExtraData:
        raise NotAReportError(f"{origin}: corrupted: trailing bytes after the report") from None
    except (ValueError, msgpack.UnpackException, TypeError) as exc:
        if "incomplete input" in str(exc):
            raise NotAReportError(
                f"{origin}: truncated: the file ends inside the report ({len(data)} bytes)"
            ) from None
        raise NotAReportError(f"{origin}: not a msgpack report (corrupted?): {exc}") from None
    if not isinstance(obj, dict) or obj.get("schema") != SCHEMA:
        raise NotAReportError(f"{origin}: not an edgeprof report")
    version = obj.get("schema_version")
    if not isinstance(version, list) or not version or version[0] != MAJOR:
        raise NotAReportError(
            f"{origin}: unsupported report schema version {version!r} "
            f"(this reader knows major {MAJOR})"
        )
    rid = obj.get("report_id")
    if not isinstance(rid, str) or not rid:
        raise NotAReportError(f"{origin}: the report has no report_id")
    return rid
