"""An uploaded body in; a checked report and the row that indexes it out, or a clear refusal.

The order of checks is the order of cost, and nothing is decoded before it is bounded:

1. the bytes are walked without allocating (depth, value count, container sizes:
   :mod:`edgeprof.report.bounds`), so a hostile body costs memory in proportion to its size;
2. msgpack decodes, refusing a map that names a key twice (the envelope: msgpack, schema, major
   version);
3. the v1 validation of every field: types, physical ranges (no negative or non-finite time,
   energy, memory, power), a canonical lower-case UUIDv7 report id;
4. the summary recomputed from the per-inference latencies (:mod:`edgeprof.report.consistency`)
   and ``created_ns`` within a window of the collector's clock (:class:`IngestPolicy`);
5. the signatures against the enrolled keys (:func:`check_signature`), computed over the
   canonical encoding of the decoded wire form; the body stored is the exact bytes uploaded,
   and since no key may repeat, the decoded form is the only reading of those bytes.

Each refusal carries the HTTP status and a message that names the problem, so a device's
``rejected/`` folder says why; nothing in here can raise anything but :class:`Refused` for bad
input.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy.engine import Connection

from edgeprof.collector.keys import (
    ED25519,
    allowed_boards,
    devices_of_key,
    live_keys,
    token_devices_of,
)
from edgeprof.errors import InputError, SchemaVersionError
from edgeprof.report.codec import decode_wire, from_wire
from edgeprof.report.consistency import check_summary
from edgeprof.report.signing import key_id, verify_wire

NS: Final = 1_000_000_000
DAY_NS: Final = 86_400 * NS


@dataclass(frozen=True)
class IngestPolicy:
    """How far a report's ``created_ns`` may be from the collector's clock.

    Ahead: a few minutes of clock skew; a report "from the future" would sort after every real
    run and be picked as the newest candidate. Behind: a device may hold its spool for weeks
    offline, so a year by default (``edgeprof serve --max-report-age-days``; 0 = no bound).
    """

    max_ahead_ns: int = 5 * 60 * NS
    max_age_ns: int | None = 365 * DAY_NS

    def check_created(self, created_ns: int, now_ns: int | None = None) -> None:
        now = time.time_ns() if now_ns is None else now_ns
        if created_ns > now + self.max_ahead_ns:
            ahead = (created_ns - now) / NS
            raise Refused(
                422,
                f"created_ns is {ahead:.0f} s ahead of the collector's clock (at most "
                f"{self.max_ahead_ns // NS} s allowed): fix the device's clock",
            )
        if self.max_age_ns is not None and created_ns < now - self.max_age_ns:
            days = (now - created_ns) / DAY_NS
            raise Refused(
                422,
                f"created_ns is {days:.0f} days old; this collector takes reports up to "
                f"{self.max_age_ns / DAY_NS:g} days old",
            )


DEFAULT_POLICY: Final = IngestPolicy()

_LIMITS = {"model_name": 256, "board_id": 128, "device_id": 256, "runner": 64}
_TAG_KEY_MAX = 128
_TAG_VALUE_MAX = 1024


@dataclass
class Refused(Exception):  # noqa: N818 - an outcome (HTTP 4xx), named as the API says it
    """Why an upload is not stored, as an HTTP status and a message for people."""

    status: int
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class IngestRow:
    """The columns of a stored report (see :data:`edgeprof.collector.db.reports`)."""

    id: str
    created_ns: int
    schema_minor: int
    model_name: str
    model_sha256: str
    board_id: str
    device_id: str
    runner: str
    count: int
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    rss_peak_bytes: float | None
    energy_per_inference_j: float | None
    power_mean_w: float | None
    size_bytes: int
    sha256: str
    signed_by: str
    tags: dict[str, str] = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        del out["tags"]
        return out


def _number(value: Any) -> float | None:
    """A finite float, else None: NaN (not measured) is not stored as a sortable value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _bounded(name: str, value: str) -> str:
    limit = _LIMITS[name]
    if "\x00" in value:
        raise Refused(422, f"{name} contains a NUL character")
    if len(value) > limit:
        raise Refused(422, f"{name} is {len(value)} characters; the collector keeps up to {limit}")
    return value


def decode_upload(
    body: bytes, policy: IngestPolicy = DEFAULT_POLICY
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(wire form, validated report) of an uploaded body, or Refused (400 or 422).

    400: not a bounded, well-formed msgpack map without repeated keys; 422: a report that
    fails validation, contradicts itself, or was created outside the policy's window.
    """
    try:
        wire = decode_wire(body, "upload")
    except SchemaVersionError as exc:
        raise Refused(422, str(exc)) from None
    except InputError as exc:
        raise Refused(400, str(exc)) from None
    try:
        report = from_wire(wire, "upload")
        check_summary(report, "upload")
    except InputError as exc:
        raise Refused(422, str(exc)) from None
    policy.check_created(int(report["created_ns"]))
    return wire, report


def check_signature(
    conn: Connection, wire: dict[str, Any], report: dict[str, Any], token_id: str
) -> str:
    """Who signed, as ``ed25519:<key id>``, once the report is bound to its device; else Refused.

    Stored only when the uploading token is bound to the device the report names, an Ed25519
    key enrolled (and live) for that device signed it, and its board is one the device may
    report (when boards were bound). Identity failures are 403, content failures 422; an
    HMAC signature is the device's own business (the collector holds no HMAC secret).
    """
    device = report["device"]["device_id"]
    board = report["device"]["board_id"]
    sig = wire.get("signature")
    if not isinstance(sig, dict) or not sig:
        raise Refused(422, "unsigned report: this collector accepts only signed reports")
    ed = sig.get(ED25519)
    if not isinstance(ed, dict) or not isinstance(ed.get("public_key"), bytes):
        raise Refused(
            422,
            "no Ed25519 signature (HMAC is checked only on the device): install "
            "'edgeprof[sign]' on the device and run `edgeprof keys init --if-missing`",
        )
    allowed = token_devices_of(conn, token_id)
    if device not in allowed:
        mine = ", ".join(repr(d) for d in allowed[:4]) or "no device"
        raise Refused(
            403,
            f"this token uploads for {mine}, not for device {device[:80]!r} "
            "(`edgeprof collector token bind TOKEN_ID --device ID`)",
        )
    public: bytes = ed["public_key"]
    kid = key_id(public)
    result = verify_wire(
        {**wire, "signature": {ED25519: ed}}, trusted_public_keys=live_keys(conn, device)
    )
    if result.failed:
        raise Refused(422, f"signature mismatch: {result.message()}")
    if not result.verified:
        owners = devices_of_key(conn, public)
        where = f"enrolled for {owners[0]!r}" if owners else "not enrolled"
        raise Refused(
            403,
            f"key {kid} is {where}, not for device {device[:80]!r}: "
            "enrol it with `edgeprof collector device enrol --device-id ID --key-from DIR`",
        )
    boards = allowed_boards(conn, device)
    if boards and board not in boards:
        raise Refused(
            403,
            f"device {device[:80]!r} may report board(s) {', '.join(boards[:8])}, "
            f"not {board[:80]!r}",
        )
    return f"{ED25519}:{kid}"


def index_row(report: dict[str, Any], body: bytes, signed_by: str) -> IngestRow:
    """The indexed columns of a validated report."""
    summary = report["summary"]
    latency = summary["latency"]
    tags = report.get("tags") or {}
    for key, value in tags.items():
        if "\x00" in key or "\x00" in value:
            raise Refused(422, f"tag {key[:40]!r} contains a NUL character")
        if len(key) > _TAG_KEY_MAX or len(value) > _TAG_VALUE_MAX:
            raise Refused(
                422,
                f"tag {key[:40]!r}: keys are kept up to {_TAG_KEY_MAX} characters, "
                f"values up to {_TAG_VALUE_MAX}",
            )
    version = report["schema_version"]
    if not 0 <= report["created_ns"] < 2**63 or not 0 <= version[1] < 2**31:
        raise Refused(422, "created_ns or schema_version out of range")
    return IngestRow(
        id=report["report_id"],
        created_ns=int(report["created_ns"]),
        schema_minor=int(version[1]),
        model_name=_bounded("model_name", report["model"]["name"]),
        model_sha256=report["model"]["sha256"],
        board_id=_bounded("board_id", report["device"]["board_id"]),
        device_id=_bounded("device_id", report["device"]["device_id"]),
        runner=_bounded("runner", report["runner"]["runner"]),
        count=int(summary["count"]),
        p50_s=_number(latency.get("p50_s")),
        p95_s=_number(latency.get("p95_s")),
        p99_s=_number(latency.get("p99_s")),
        rss_peak_bytes=_number(summary.get("rss_peak_bytes")),
        energy_per_inference_j=_number(summary.get("energy_per_inference_j")),
        power_mean_w=_number(summary.get("power_mean_w")),
        size_bytes=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        signed_by=signed_by,
        tags=dict(tags),
    )
