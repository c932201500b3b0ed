"""Every read and write of the collector's database: one code path for SQLite and PostgreSQL.

Writes are one transaction each, so a collector killed mid-ingest leaves the report either
wholly stored (row, body, tags) or absent. De-duplication is the primary key: of concurrent
uploads of one report id exactly one insert wins; the others see the key taken and answer
"duplicate" when the bytes are the same, "conflict" when they are not.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from edgeprof.collector.db import report_bodies, report_tags, reports
from edgeprof.collector.ingest import (
    DEFAULT_POLICY,
    IngestPolicy,
    IngestRow,
    Refused,
    check_signature,
    decode_upload,
    index_row,
)
from edgeprof.errors import InputError

GATE_STATUSES = ("none", "pass", "fail", "incomplete")
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
_UUID_RE = re.compile(UUID_PATTERN)
_SHA_RE = re.compile(SHA256_PATTERN)
MAX_PAGE = 1000
TREND_POINTS = 50


@dataclass(frozen=True)
class Stored:
    """What an upload did: ``created`` (new) or a duplicate of a stored report."""

    id: str
    created: bool


def ingest(
    engine: Engine, body: bytes, uploaded_by: str, policy: IngestPolicy = DEFAULT_POLICY
) -> Stored:
    """Decode, validate, verify and store one uploaded report; Refused for bad input.

    One pooled connection does the key look-ups and the insert: SQLite takes its write lock
    only at the first INSERT, so the look-ups never hold it.
    """
    wire, report = decode_upload(body, policy)
    try:
        with engine.begin() as conn:
            row = index_row(report, body, check_signature(conn, wire, report, uploaded_by))
            _insert(conn, row, body, uploaded_by)
    except sa.exc.IntegrityError:
        return _taken(engine, index_row(report, body, ""))
    return Stored(row.id, created=True)


_INSERT_REPORT = reports.insert()
_INSERT_BODY = report_bodies.insert()
_INSERT_TAG = report_tags.insert()
_SHA_OF = sa.select(reports.c.sha256).where(reports.c.id == sa.bindparam("rid"))


def _insert(conn: Connection, row: IngestRow, body: bytes, uploaded_by: str) -> None:
    conn.execute(
        _INSERT_REPORT,
        {**row.columns(), "received_ns": time.time_ns(), "uploaded_by": uploaded_by},
    )
    conn.execute(_INSERT_BODY, {"id": row.id, "body": body})
    if row.tags:
        conn.execute(
            _INSERT_TAG, [{"report_id": row.id, "key": k, "value": v} for k, v in row.tags.items()]
        )


def _taken(engine: Engine, row: IngestRow) -> Stored:
    """The id is taken: the same bytes are a duplicate, other bytes a conflict."""
    with engine.connect() as conn:
        stored_sha = conn.execute(_SHA_OF, {"rid": row.id}).scalar()
    if stored_sha is None:  # cannot happen: a taken primary key belongs to a committed row
        raise RuntimeError(f"report {row.id}: insert refused but no row holds the id")
    if stored_sha != row.sha256:
        raise Refused(409, f"a different report with id {row.id} is already stored")
    return Stored(row.id, created=False)


def store(engine: Engine, row: IngestRow, body: bytes, uploaded_by: str) -> Stored:
    """Insert an already checked row, body and tags in one transaction (bulk loads, tests)."""
    try:
        with engine.begin() as conn:
            _insert(conn, row, body, uploaded_by)
    except sa.exc.IntegrityError:
        return _taken(engine, row)
    return Stored(row.id, created=True)


def get_body(engine: Engine, report_id: str) -> bytes | None:
    """The stored bytes, exactly as uploaded."""
    with engine.connect() as conn:
        body = conn.execute(
            sa.select(report_bodies.c.body).where(report_bodies.c.id == report_id)
        ).scalar()
    return bytes(body) if body is not None else None


@dataclass
class ReportFilter:
    """What ``GET /v1/reports`` and ``edgeprof pull`` select on; None means any."""

    model: str | None = None
    model_sha256: str | None = None
    board: str | None = None
    device: str | None = None
    runner: str | None = None
    created_after_ns: int | None = None
    created_before_ns: int | None = None
    tags: list[tuple[str, str]] = field(default_factory=list)
    gate_status: str | None = None

    def clauses(self) -> list[sa.ColumnElement[bool]]:
        c = reports.c
        out: list[sa.ColumnElement[bool]] = []
        for column, value in (
            (c.model_name, self.model),
            (c.model_sha256, self.model_sha256),
            (c.board_id, self.board),
            (c.device_id, self.device),
            (c.runner, self.runner),
            (c.gate_status, self.gate_status),
        ):
            if value is not None:
                out.append(column == value)
        if self.created_after_ns is not None:
            out.append(c.created_ns >= self.created_after_ns)
        if self.created_before_ns is not None:
            out.append(c.created_ns < self.created_before_ns)
        for key, value in self.tags:
            out.append(
                sa.exists().where(
                    report_tags.c.report_id == c.id,
                    report_tags.c.key == key,
                    report_tags.c.value == value,
                )
            )
        return out


CURSOR_PATTERN = r"^[0-8]?[0-9]{1,18}_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_CURSOR_RE = re.compile(CURSOR_PATTERN)


def encode_cursor(created_ns: int, report_id: str) -> str:
    """``<created_ns>_<id>``: the keyset position after which the next page starts.

    Not opaque on purpose: any position is a valid cursor (a report need not exist there), so
    the API can publish its exact pattern and a pipeline can resume from a stored position.
    """
    return f"{created_ns}_{report_id}"


def decode_cursor(cursor: str) -> tuple[int, str]:
    """A cursor back to (created_ns, id); InputError for anything else."""
    if not _CURSOR_RE.fullmatch(cursor):
        raise InputError("cursor: expected <created_ns>_<report id>, as next_cursor gives it")
    created, report_id = cursor.split("_", 1)
    return int(created), report_id


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def _listing(row: Any, tags: dict[str, str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "created_ns": row.created_ns,
        "received_ns": row.received_ns,
        "schema_version": [1, row.schema_minor],
        "model": {"name": row.model_name, "sha256": row.model_sha256},
        "board_id": row.board_id,
        "device_id": row.device_id,
        "runner": row.runner,
        "count": row.count,
        "latency_p50_s": _finite(row.p50_s),
        "latency_p95_s": _finite(row.p95_s),
        "latency_p99_s": _finite(row.p99_s),
        "rss_peak_bytes": _finite(row.rss_peak_bytes),
        "energy_per_inference_j": _finite(row.energy_per_inference_j),
        "power_mean_w": _finite(row.power_mean_w),
        "size_bytes": row.size_bytes,
        "sha256": row.sha256,
        "signed_by": row.signed_by.split(",") if row.signed_by else [],
        "gate_status": row.gate_status,
        "tags": tags,
    }


def _tags_of(conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {i: {} for i in ids}
    if ids:
        rows = conn.execute(
            sa.select(report_tags.c.report_id, report_tags.c.key, report_tags.c.value).where(
                report_tags.c.report_id.in_(list(ids))
            )
        )
        for r in rows:
            out[r.report_id][r.key] = r.value
    return out


def list_reports(
    engine: Engine,
    flt: ReportFilter,
    *,
    limit: int = 100,
    cursor: str | None = None,
    newest_first: bool = False,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of matching reports (oldest first, or newest first) and the next cursor."""
    if not 1 <= limit <= MAX_PAGE:
        raise InputError(f"limit must be between 1 and {MAX_PAGE}")
    c = reports.c
    query = sa.select(reports).where(*flt.clauses())
    if cursor is not None:
        at_ns, at_id = decode_cursor(cursor)
        if newest_first:
            after = sa.or_(c.created_ns < at_ns, sa.and_(c.created_ns == at_ns, c.id < at_id))
        else:
            after = sa.or_(c.created_ns > at_ns, sa.and_(c.created_ns == at_ns, c.id > at_id))
        query = query.where(after)
    if newest_first:
        query = query.order_by(c.created_ns.desc(), c.id.desc())
    else:
        query = query.order_by(c.created_ns, c.id)
    query = query.limit(limit + 1)
    with engine.connect() as conn:
        rows = list(conn.execute(query))
        more = len(rows) > limit
        rows = rows[:limit]
        tags = _tags_of(conn, [r.id for r in rows])
    page = [_listing(r, tags[r.id]) for r in rows]
    next_cursor = encode_cursor(rows[-1].created_ns, rows[-1].id) if more and rows else None
    return page, next_cursor


def count_reports(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(reports)).scalar() or 0)


def _point(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "created_ns": row.created_ns,
        "latency_p95_s": _finite(row.p95_s),
        "rss_peak_bytes": _finite(row.rss_peak_bytes),
        "energy_per_inference_j": _finite(row.energy_per_inference_j),
        "gate_status": row.gate_status,
    }


def _slope_per_day(points: list[dict[str, Any]], key: str) -> float | None:
    """Least-squares slope of ``key`` against time, in units per day (None under 2 points)."""
    xy: list[tuple[float, float]] = [
        (p["created_ns"] / 86_400e9, float(p[key])) for p in points if p[key] is not None
    ]
    if len(xy) < 2:
        return None
    n = len(xy)
    mx = sum(x for x, _ in xy) / n
    my = sum(y for _, y in xy) / n
    sxx = sum((x - mx) ** 2 for x, _ in xy)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in xy) / sxx


def model_summary(engine: Engine, name: str) -> dict[str, Any] | None:
    """Per board: the latest report, the best (lowest p95) and the trend of the last runs."""
    c = reports.c
    with engine.connect() as conn:
        boards = [
            r.board_id
            for r in conn.execute(
                sa.select(c.board_id).where(c.model_name == name).distinct().order_by(c.board_id)
            )
        ]
        if not boards:
            return None
        out: dict[str, Any] = {"model": name, "boards": {}}
        for board in boards:
            scope = sa.select(reports).where(c.model_name == name, c.board_id == board)
            recent = list(
                conn.execute(scope.order_by(c.created_ns.desc(), c.id.desc()).limit(TREND_POINTS))
            )
            best = conn.execute(
                scope.where(c.p95_s.is_not(None)).order_by(c.p95_s, c.created_ns).limit(1)
            ).first()
            total = conn.execute(
                sa.select(sa.func.count()).where(c.model_name == name, c.board_id == board)
            ).scalar()
            points = [_point(r) for r in reversed(recent)]
            out["boards"][board] = {
                "reports": int(total or 0),
                "latest": _point(recent[0]),
                "best_latency_p95": _point(best) if best is not None else None,
                "trend": {
                    "points": points,
                    "slope_per_day": {
                        key: _slope_per_day(points, key)
                        for key in ("latency_p95_s", "rss_peak_bytes", "energy_per_inference_j")
                    },
                },
            }
    return out


def exists(engine: Engine, report_id: str) -> bool:
    with engine.connect() as conn:
        return (
            conn.execute(sa.select(reports.c.id).where(reports.c.id == report_id)).first()
            is not None
        )
