"""``edgeprof pull``: the governance pipeline's client for the collector.

Lists reports by filter (following the cursor to the end or to ``limit``), then fetches each
whole report, checks that its bytes hash to what the listing said and that it decodes and
validates as a report, and writes it atomically as ``<dir>/<id>.msgpack`` (a file already
there with the same hash is kept). HTTP through :mod:`edgeprof.uplink.http`: every request
bounded in time and size, reads retried with backoff.

:class:`CollectorApi` is also the gate's way in (:mod:`edgeprof.gate.inputs`).
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeprof.atomic import write_atomic
from edgeprof.errors import CollectorError, CollectorUnreachableError, InputError
from edgeprof.uplink.http import DEFAULT_ATTEMPTS, HttpClient

FILTER_KEYS = (
    "model",
    "model_sha256",
    "board",
    "device",
    "runner",
    "created_after",
    "created_before",
    "gate_status",
)
DEFAULT_TIMEOUT_S = 30.0
MAX_REPORT_BYTES = 64 * 1024 * 1024  # the collector's own upload limit
MAX_JSON_BYTES = 16 * 1024 * 1024  # a listing page of 1,000 reports is well under 1 MiB


@dataclass(frozen=True)
class CollectorApi:
    """The collector's read API (and decisions) over one :class:`HttpClient`."""

    http: HttpClient

    @classmethod
    def make(
        cls,
        url: str,
        token: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        attempts: int = DEFAULT_ATTEMPTS,
    ) -> CollectorApi:
        return cls(HttpClient.make(url, token, timeout_s=timeout_s, attempts=attempts))

    def report_url(self, report_id: str) -> str:
        """Where a report lives (for messages and the audit log)."""
        return self.http.display(f"/v1/reports/{report_id}")

    def json(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """A JSON request; :class:`CollectorError` for an error status, no answer or no JSON."""
        data = json.dumps(body).encode() if body is not None else None
        resp = self._request(method, path, data, "application/json" if data else None)
        if resp[0] >= 300:
            raise CollectorError(f"{method} {path}: HTTP {resp[0]}: {_message(resp[1])}")
        try:
            return json.loads(resp[1])
        except ValueError:
            raise CollectorError(f"{method} {path}: the collector sent no JSON") from None

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        ctype: str | None = None,
        limit: int = MAX_JSON_BYTES,
    ) -> tuple[int, bytes]:
        try:
            resp = self.http.request(method, path, body, ctype, limit=limit)
        except CollectorUnreachableError as exc:
            raise CollectorUnreachableError(
                f"collector at {self.http.display()}: {exc}", transient=exc.transient
            ) from None
        return resp.status, resp.body

    def listings(
        self,
        filters: Mapping[str, str],
        tags: Sequence[str],
        *,
        page: int = 500,
        limit: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every matching listing, oldest first (at most ``limit``)."""
        cursor: str | None = None
        seen = 0
        while True:
            params: list[tuple[str, str]] = [(k, v) for k, v in filters.items() if v is not None]
            params += [("tag", t) for t in tags]
            params.append(("limit", str(page)))
            if cursor:
                params.append(("cursor", cursor))
            body = self.json("GET", "/v1/reports?" + urllib.parse.urlencode(params))
            for item in body.get("reports", []):
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield item
            cursor = body.get("next_cursor")
            if not cursor:
                return

    def fetch(self, report_id: str, sha256: str | None = None) -> bytes:
        """A report's bytes, checked against the listing's hash and the v1 format."""
        from edgeprof.report.codec import decode  # numpy: only once a report is fetched

        status, data = self._request(
            "GET", f"/v1/reports/{urllib.parse.quote(report_id)}", limit=MAX_REPORT_BYTES
        )
        if status != 200:
            raise CollectorError(f"report {report_id}: HTTP {status}: {_message(data)}")
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            raise CollectorError(f"report {report_id}: the bytes do not match the listed sha256")
        try:
            decode(data, f"report {report_id}")
        except InputError as exc:
            raise CollectorError(str(exc)) from None
        return data


def _message(raw: bytes) -> str:
    try:
        return str(json.loads(raw).get("error", raw[:200]))
    except (ValueError, AttributeError):
        return raw[:200].decode("utf-8", "replace")


def save(directory: Path, report_id: str, data: bytes) -> tuple[Path, bool]:
    """Write ``<id>.msgpack`` atomically; (path, False) when an identical file was there."""
    if not report_id or "/" in report_id or report_id.startswith("."):
        raise CollectorError(f"the collector listed a bad report id {report_id[:40]!r}")
    path = directory / f"{report_id}.msgpack"
    try:
        if path.exists() and path.read_bytes() == data:
            return path, False
        write_atomic(path, data)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path, True


@dataclass(frozen=True)
class PullQuery:
    """Which reports: filters (see :data:`FILTER_KEYS`), ``KEY:VALUE`` tags, at most ``limit``."""

    filters: Mapping[str, str]
    tags: tuple[str, ...] = ()
    limit: int | None = None


@dataclass(frozen=True)
class PullResult:
    """What :func:`pull` left in the folder: new files written, identical files kept."""

    directory: Path
    written: int
    kept: int


def fetch_all(api: CollectorApi, query: PullQuery) -> Iterator[tuple[str, bytes]]:
    """(id, checked bytes) of every matching report, oldest first."""
    for item in api.listings(query.filters, query.tags, limit=query.limit):
        yield item["id"], api.fetch(item["id"], item.get("sha256"))


def pull(api: CollectorApi, query: PullQuery, directory: Path) -> PullResult:
    """Fetch every matching report into ``directory`` (created), each checked byte for byte."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {directory}: {exc.strerror or exc}") from None
    written = kept = 0
    for report_id, data in fetch_all(api, query):
        _, new = save(directory, report_id, data)
        written += new
        kept += not new
    return PullResult(directory, written, kept)
