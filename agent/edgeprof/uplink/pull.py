"""``edgeprof pull``: the governance pipeline's client for the collector.

Lists reports by filter (following the cursor to the end or to ``--max``), then fetches each
whole report, checks that its bytes hash to what the listing said and that it decodes and
validates as a report, and writes it atomically as ``<dir>/<id>.msgpack`` (a file already
there with the same hash is kept). Standard library HTTP only, every socket operation bounded.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeprof.atomic import write_atomic
from edgeprof.errors import EdgeprofError, InputError
from edgeprof.report.codec import decode
from edgeprof.uplink.spool import Endpoint

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


class CollectorError(EdgeprofError):
    """The collector answered with an error or not at all."""


@dataclass(frozen=True)
class Client:
    """A collector base URL and a read token."""

    base: Endpoint  # its path is ``<base>/v1/reports``
    token: str
    timeout_s: float = 30.0

    @classmethod
    def make(cls, url: str, token: str, timeout_s: float = 30.0) -> Client:
        return cls(Endpoint.parse(url), token, timeout_s)

    def _root(self) -> str:
        return self.base.path.removesuffix("/v1/reports")

    def request(
        self, method: str, path: str, body: bytes | None = None, ctype: str | None = None
    ) -> tuple[int, str, bytes]:
        """One request on its own connection: (status, content type, body)."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if ctype is not None:
            headers["Content-Type"] = ctype
        conn = self.base.connection(self.timeout_s)
        try:
            conn.request(method, self._root() + path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.getheader("Content-Type") or "", data
        except (OSError, ValueError) as exc:
            raise CollectorError(f"collector at {self.base.display()}: {exc}") from None
        finally:
            conn.close()

    def json(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        status, _, raw = self.request(method, path, data, "application/json" if data else None)
        if status >= 300:
            raise CollectorError(f"{method} {path}: HTTP {status}: {_message(raw)}")
        try:
            return json.loads(raw)
        except ValueError:
            raise CollectorError(f"{method} {path}: the collector sent no JSON") from None

    def listings(
        self, filters: dict[str, str], tags: list[str], *, page: int = 500, limit: int | None = None
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
        status, _, data = self.request("GET", f"/v1/reports/{urllib.parse.quote(report_id)}")
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
