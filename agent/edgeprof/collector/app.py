"""The collector's HTTP API (Starlette): reports in from devices, out to pipelines.

Every handler answers bad input with a 4xx and a JSON ``{"error": "..."}`` that names the
problem; a 5xx means a bug or a database outage, never a malformed request: numbers in the query
and headers are ASCII digits within a range (``str.isdigit`` also takes "²", which ``int``
refuses), repeated filters are capped (:data:`MAX_TAGS`), report ids are canonical lower-case
UUIDs. ``/metrics`` needs a pipeline or admin token unless the collector was started with
``--public-metrics``. Database work is
synchronous SQLAlchemy run in the thread pool, so one slow query does not stall the loop.
The published contract is :mod:`edgeprof.collector.openapi` (``GET /openapi.json``).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgpack
import sqlalchemy as sa
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edgeprof import __version__
from edgeprof.collector import decisions, signed_decision
from edgeprof.collector import repository as repo
from edgeprof.collector.ingest import DEFAULT_POLICY, IngestPolicy, Refused
from edgeprof.collector.openapi import openapi_document
from edgeprof.collector.signed_decision import MAX_BODY_BYTES as MAX_DECISION_BYTES
from edgeprof.collector.tokens import (
    Role,
    TokenInfo,
    authenticate,
    create_token,
    list_tokens,
    parse_role,
    revoke_token,
)
from edgeprof.errors import InputError

log = logging.getLogger("edgeprof.collector")

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")
_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SHA_RE = re.compile(r"[0-9a-f]{64}")
_KID_RE = re.compile(r"[0-9a-f]{16}")
_MAX_DECISION_BYTES = 4 * 1024 * 1024
MAX_TAGS = 32  # tag= filters per query: each is a join, and 2,000 overflow SQLite's parser
TEXT_MAX = 256
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@dataclass(frozen=True)
class Settings:
    """What ``edgeprof serve`` configures: body limit, ingest window, open metrics."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    ingest: IngestPolicy = DEFAULT_POLICY
    public_metrics: bool = False


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class _Metrics:
    """Prometheus series of one app (its own registry: several apps can live in one process)."""

    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "edgeprof_collector_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "edgeprof_collector_request_seconds",
            "Time to answer a request",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.uploads = Counter(
            "edgeprof_collector_uploads",
            "Uploaded reports by outcome (created, duplicate, refused)",
            ["outcome"],
            registry=self.registry,
        )
        self.upload_bytes = Counter(
            "edgeprof_collector_upload_bytes",
            "Bytes of accepted report bodies",
            registry=self.registry,
        )
        stored = Gauge(
            "edgeprof_collector_reports_stored",
            "Reports in the database",
            registry=self.registry,
        )
        stored.set_function(lambda: float(repo.count_reports(engine)))


Handler = Callable[[Request], Awaitable[Response]]


class _Api:
    """The handlers, bound to one engine and its settings."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.metrics = _Metrics(engine)

    # -- plumbing ------------------------------------------------------------------------

    def route(self, path: str, handlers: dict[str, Handler]) -> Route:
        """One route per path (so 405 answers list every method in Allow), its answers counted
        and timed, and its expected failures turned into 4xx."""
        allow = ", ".join(sorted({*handlers, *(["HEAD"] if "GET" in handlers else [])}))

        async def endpoint(request: Request) -> Response:
            start = time.perf_counter()
            method = "GET" if request.method == "HEAD" else request.method
            handler = handlers.get(method)
            response: Response
            try:
                if handler is None:
                    response = _error(
                        405, f"{request.method} is not allowed here", {"Allow": allow}
                    )
                else:
                    response = await handler(request)
            except Refused as exc:
                headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
                response = _error(exc.status, exc.message, headers)
            except InputError as exc:
                response = _error(400, str(exc))
            except ClientDisconnect:
                response = _error(400, "the client closed the connection mid-request")
            except sa.exc.OperationalError as exc:
                log.error("database unavailable: %s", exc)
                response = _error(
                    503, "the database is unavailable; retry later", {"Retry-After": "5"}
                )
            self.metrics.requests.labels(path, request.method, str(response.status_code)).inc()
            self.metrics.seconds.labels(path).observe(time.perf_counter() - start)
            return response

        return Route(path, endpoint, methods=_ALL_METHODS)

    async def auth(self, request: Request, *roles: Role) -> TokenInfo:
        header = request.headers.get("authorization", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise _Unauthorized("missing bearer token (Authorization: Bearer <token>)")
        token = await run_in_threadpool(authenticate, self.engine, secret.strip())
        if token is None:
            raise _Unauthorized("unknown or revoked token")
        if token.role not in roles:
            allowed = " or ".join(r.value for r in roles)
            raise Refused(403, f"a {token.role.value} token cannot do this (needs {allowed})")
        return token

    async def read_body(self, request: Request, limit: int) -> bytes:
        length = request.headers.get("content-length")
        if length is not None:
            if not _digits(length) or len(length) > 19:
                raise Refused(400, "Content-Length is not a number")
            if int(length) > limit:
                raise Refused(413, f"body of {int(length)} bytes; the limit is {limit}")
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refused(413, f"body over the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    # -- reports -------------------------------------------------------------------------

    async def post_report(self, request: Request) -> Response:
        token = await self.auth(request, Role.DEVICE)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in MSGPACK_TYPES:
            raise Refused(415, f"send the report as application/msgpack, not {ctype or 'nothing'}")
        body = await self.read_body(request, self.settings.max_body_bytes)
        if not body:
            raise Refused(400, "empty body: expected a msgpack report")
        try:
            stored = await run_in_threadpool(
                repo.ingest, self.engine, body, token.id, self.settings.ingest
            )
        except Refused:
            self.metrics.uploads.labels("refused").inc()
            raise
        if stored.created:
            self.metrics.uploads.labels("created").inc()
            self.metrics.upload_bytes.inc(len(body))
            return JSONResponse(
                {"id": stored.id, "duplicate": False},
                status_code=201,
                headers={"Location": f"/v1/reports/{stored.id}"},
            )
        self.metrics.uploads.labels("duplicate").inc()
        return JSONResponse({"id": stored.id, "duplicate": True}, status_code=200)

    async def list_reports(self, request: Request) -> Response:
        await self.auth(request, Role.PIPELINE, Role.ADMIN)
        q = request.query_params
        known = {
            "model", "model_sha256", "board", "device", "runner", "created_after",
            "created_before", "tag", "gate_status", "limit", "cursor", "format", "order",
        }  # fmt: skip
        unknown = sorted(set(q.keys()) - known)
        if unknown:
            raise InputError(f"unknown query parameter {unknown[0]!r}")
        sha = q.get("model_sha256")
        if sha is not None and not _SHA_RE.fullmatch(sha):
            raise InputError("model_sha256: 64 lowercase hex digits")
        gate = q.get("gate_status")
        if gate is not None and gate not in repo.GATE_STATUSES:
            raise InputError(f"gate_status: one of {', '.join(repo.GATE_STATUSES)}")
        flt = repo.ReportFilter(
            model=q.get("model"),
            model_sha256=sha,
            board=q.get("board"),
            device=q.get("device"),
            runner=q.get("runner"),
            created_after_ns=_time_ns(q.get("created_after"), "created_after"),
            created_before_ns=_time_ns(q.get("created_before"), "created_before"),
            tags=[_tag(t) for t in _capped_tags(q.getlist("tag"))],
            gate_status=gate,
        )
        for name in ("model", "board", "device", "runner"):
            value = q.get(name)
            if value is not None and ("\x00" in value or len(value) > TEXT_MAX):
                raise InputError(f"{name}: at most {TEXT_MAX} characters, no NUL")
        order = q.get("order", "asc")
        if order not in ("asc", "desc"):
            raise InputError("order: asc (oldest first, the default) or desc")
        limit_text = q.get("limit", "100")
        if not _digits(limit_text) or len(limit_text) > 6:
            raise InputError(f"limit: a whole number from 1 to {repo.MAX_PAGE}")
        page, cursor = await run_in_threadpool(
            lambda: repo.list_reports(
                self.engine,
                flt,
                limit=int(limit_text),
                cursor=q.get("cursor"),
                newest_first=order == "desc",
            )
        )
        body = {"reports": page, "next_cursor": cursor}
        if _wants_msgpack(request):
            return Response(msgpack.packb(body, use_bin_type=True), media_type=MSGPACK_TYPES[0])
        return JSONResponse(body)

    async def get_report(self, request: Request) -> Response:
        await self.auth(request, Role.PIPELINE, Role.ADMIN)
        report_id = _report_id(request)
        body = await run_in_threadpool(repo.get_body, self.engine, report_id)
        if body is None:
            return _error(404, f"no report {report_id}")
        return Response(body, media_type=MSGPACK_TYPES[0])

    async def report_decisions(self, request: Request) -> Response:
        await self.auth(request, Role.PIPELINE, Role.ADMIN)
        report_id = _report_id(request)
        if not await run_in_threadpool(repo.exists, self.engine, report_id):
            return _error(404, f"no report {report_id}")
        found = await run_in_threadpool(decisions.decisions_for, self.engine, report_id)
        return JSONResponse({"report_id": report_id, "decisions": found})

    async def post_decision(self, request: Request) -> Response:
        token = await self.auth(request, Role.PIPELINE, Role.ADMIN)
        body = await self.read_body(request, MAX_DECISION_BYTES)
        record = signed_decision.parse_body(body)
        decision_id, created = await run_in_threadpool(
            decisions.add_decision, self.engine, record, token.id
        )
        return JSONResponse(
            {"id": decision_id, "duplicate": not created}, status_code=201 if created else 200
        )

    async def get_decisions(self, request: Request) -> Response:
        await self.auth(request, Role.PIPELINE, Role.ADMIN)
        unknown = sorted(set(request.query_params.keys()) - {"gate_key"})
        if unknown:
            raise InputError(f"unknown query parameter {unknown[0][:40]!r}")
        kid = request.query_params.get("gate_key", "")
        if not _KID_RE.fullmatch(kid):
            raise InputError("gate_key: the gate key id, 16 lowercase hex digits")
        found = await run_in_threadpool(decisions.anchors, self.engine, kid)
        return JSONResponse({"gate_key": kid, "anchors": found})

    async def model_summary(self, request: Request) -> Response:
        await self.auth(request, Role.PIPELINE, Role.ADMIN)
        name = request.path_params["name"]
        if "\x00" in name or len(name) > TEXT_MAX:
            raise InputError("model name too long or holds a NUL character")
        summary = await run_in_threadpool(repo.model_summary, self.engine, name)
        if summary is None:
            return _error(404, f"no reports of model {name!r}")
        return JSONResponse(summary)

    # -- tokens --------------------------------------------------------------------------

    async def get_tokens(self, request: Request) -> Response:
        await self.auth(request, Role.ADMIN)
        found = await run_in_threadpool(list_tokens, self.engine)
        return JSONResponse({"tokens": [t.as_dict() for t in found]})

    async def post_token(self, request: Request) -> Response:
        await self.auth(request, Role.ADMIN)
        record = _json_object(await self.read_body(request, 64 * 1024))
        role, name = record.get("role"), record.get("name")
        devices = record.get("devices", [])
        if (
            not isinstance(role, str)
            or not isinstance(name, str)
            or not isinstance(devices, list)
            or not all(isinstance(d, str) for d in devices)
        ):
            raise InputError(
                'body: {"role": "device|pipeline|admin", "name": "...", "devices": ["ID", ...]}'
            )
        info, secret = await run_in_threadpool(
            create_token, self.engine, parse_role(role), name, devices
        )
        return JSONResponse({**info.as_dict(), "token": secret}, status_code=201)

    async def delete_token(self, request: Request) -> Response:
        await self.auth(request, Role.ADMIN)
        token_id = request.path_params["token_id"]
        if not _ID_RE.fullmatch(token_id):
            return _error(404, f"no token {token_id[:40]!r}")
        try:
            info = await run_in_threadpool(revoke_token, self.engine, token_id)
        except InputError as exc:
            return _error(404, str(exc))
        return JSONResponse(info.as_dict())

    # -- operations ----------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        def check() -> None:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

        await run_in_threadpool(check)
        return JSONResponse({"status": "ok", "version": __version__})

    async def metrics_endpoint(self, request: Request) -> Response:
        if not self.settings.public_metrics:
            await self.auth(request, Role.PIPELINE, Role.ADMIN)
        data = await run_in_threadpool(generate_latest, self.metrics.registry)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document())


class _Unauthorized(Refused):
    def __init__(self, message: str) -> None:
        super().__init__(401, message)


def _report_id(request: Request) -> str:
    """The path's report id, canonical (lower-case UUID, as stored) or a 400 saying so."""
    report_id: str = request.path_params["report_id"]
    if not _ID_RE.fullmatch(report_id):
        raise Refused(
            400, f"report id {report_id[:40]!r} is not a lower-case UUID (the only form stored)"
        )
    return report_id


def _digits(text: str) -> bool:
    """Only ASCII digits: ``str.isdigit`` also accepts "²" and other digits ``int`` refuses."""
    return text.isascii() and text.isdigit()


def _capped_tags(values: list[str]) -> list[str]:
    if len(values) > MAX_TAGS:
        raise InputError(f"tag: at most {MAX_TAGS} tag filters, got {len(values)}")
    return values


def _wants_msgpack(request: Request) -> bool:
    fmt = request.query_params.get("format")
    if fmt is not None:
        if fmt not in ("json", "msgpack"):
            raise InputError("format: json or msgpack")
        return fmt == "msgpack"
    accept = request.headers.get("accept", "")
    return any(t in accept for t in MSGPACK_TYPES)


def _time_ns(value: str | None, name: str) -> int | None:
    """Unix nanoseconds, or an ISO 8601 time with its zone (``2026-12-02T10:00:00Z``)."""
    if value is None:
        return None
    if _digits(value):
        if len(value) > 19 or int(value) >= 2**63:
            raise InputError(f"{name}: out of range")
        return int(value)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{name}: Unix nanoseconds or an ISO 8601 time") from None
    if when.tzinfo is None:
        raise InputError(f"{name}: give the time zone (e.g. 2026-12-02T10:00:00Z)")
    try:
        ns = int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000
    except (OverflowError, OSError, ValueError):  # year 1 or 9999 shifted by its zone
        raise InputError(f"{name}: out of range") from None
    if not 0 <= ns < 2**63:
        raise InputError(f"{name}: out of range")
    return ns


def _tag(value: str) -> tuple[str, str]:
    key, sep, val = value.partition(":")
    if not sep or not key:
        raise InputError(f"tag: expected KEY:VALUE, got {value[:60]!r}")
    if "\x00" in value or len(key) > 128 or len(val) > 1024:
        raise InputError("tag: keys up to 128 characters, values up to 1024, no NUL")
    return key, val


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InputError("body: not JSON") from None
    if not isinstance(value, dict):
        raise InputError("body: expected a JSON object")
    return value


def make_app(engine: Engine, settings: Settings | None = None) -> Starlette:
    """The ASGI application over an engine whose schema is migrated."""
    api = _Api(engine, settings or Settings())
    r = api.route
    routes = [
        r("/v1/reports", {"POST": api.post_report, "GET": api.list_reports}),
        r("/v1/reports/{report_id}", {"GET": api.get_report}),
        r("/v1/reports/{report_id}/decisions", {"GET": api.report_decisions}),
        r("/v1/decisions", {"POST": api.post_decision, "GET": api.get_decisions}),
        r("/v1/models/{name}/summary", {"GET": api.model_summary}),
        r("/v1/tokens", {"GET": api.get_tokens, "POST": api.post_token}),
        r("/v1/tokens/{token_id}", {"DELETE": api.delete_token}),
        r("/healthz", {"GET": api.healthz}),
        r("/metrics", {"GET": api.metrics_endpoint}),
        r("/openapi.json", {"GET": api.openapi}),
    ]
    return Starlette(routes=routes)
