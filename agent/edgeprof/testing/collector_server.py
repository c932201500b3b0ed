"""The real collector (``edgeprof serve``) as a child process, and fresh databases for it.

Tests and benchmarks run the collector exactly as deployed: a uvicorn process on loopback over
SQLite or PostgreSQL. :func:`fresh_database` gives each test its own database: a new SQLite
file, or a new database on the PostgreSQL server named by ``$EDGEPROF_TEST_PG_URL`` (started by
``scripts/pg-test-server``), dropped afterwards.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from edgeprof.collector.db import open_database
from edgeprof.collector.keys import enrol_device, public_key_from_dir
from edgeprof.collector.tokens import Role, create_token
from edgeprof.report.codec import encode
from edgeprof.report.signing import Keys, init_keys, sign
from edgeprof.testing.child import ChildServer

ENV_PG = "EDGEPROF_TEST_PG_URL"


class CollectorProcess(ChildServer):
    """``python -m edgeprof serve --db DB --port 0``; ``url`` once started."""

    what = "collector"

    def __init__(
        self, db: str, *, max_body_bytes: int | None = None, args: Sequence[str] = ()
    ) -> None:
        cmd = [sys.executable, "-m", "edgeprof", "serve", "--db", db, "--port", "0"]
        if max_body_bytes is not None:
            cmd += ["--max-body-bytes", str(max_body_bytes)]
        super().__init__([*cmd, *args])  # args: more `edgeprof serve` options
        self.db = db
        self.url = ""
        self.port = 0

    def ready(self, line: str) -> bool:
        prefix = "edgeprof collector listening on "
        if not line.startswith(prefix):
            return False
        self.url = line[len(prefix) :].strip()
        self.port = int(self.url.rsplit(":", 1)[1])
        return True

    def start(self) -> None:
        super().start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the socket is bound before uvicorn serves
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("the collector did not answer /healthz")


@contextmanager
def fresh_database(backend: str, tmp: Path) -> Iterator[str]:
    """A database URL nobody else uses: ``sqlite`` (a file in ``tmp``) or ``postgresql``."""
    if backend == "sqlite":
        yield str(tmp / f"collector-{secrets.token_hex(4)}.sqlite3")
        return
    base = os.environ.get(ENV_PG)
    if not base:
        raise RuntimeError(f"${ENV_PG} is not set: start scripts/pg-test-server")
    import psycopg
    from psycopg import sql

    name = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# The device ids of edgeprof.testing.reports.make_report (plain and detailed): the deployment's
# device is enrolled under both, so factory reports upload without naming one.
DEVICE_IDS = ("machine-id:test", "machine-id:0123456789abcdef")


@dataclass
class Deployment:
    """A running collector with its database, tokens and one enrolled device (its key bound to
    :data:`DEVICE_IDS`, its device token too)."""

    server: CollectorProcess
    engine: sa.Engine
    keys: Keys
    device_token: str
    pipeline_token: str
    admin_token: str
    device_ids: tuple[str, ...] = DEVICE_IDS

    def enrol(
        self, device_id: str, keys: Keys | None = None, boards: tuple[str, ...] = ()
    ) -> tuple[Keys, str]:
        """Another device: its keys (fresh unless given) enrolled for ``device_id``, and a
        device token bound to it."""
        if keys is None:
            keys = init_keys(
                directory=Path(self.keys.directory).parent / f"keys-{secrets.token_hex(4)}"
            )
        enrol_device(self.engine, device_id, public_key_from_dir(keys.directory), boards)
        _, token = create_token(self.engine, Role.DEVICE, device_id[:100], [device_id])
        return keys, token

    @property
    def url(self) -> str:
        return self.server.url

    def signed(self, report: dict[str, Any]) -> bytes:
        return encode(sign(report, self.keys))

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: bytes | None = None,
        ctype: str | None = "application/msgpack",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, dict[str, str]]:
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        if body is not None and ctype is not None:
            h["Content-Type"] = ctype
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()

    def upload(self, body: bytes, token: str | None = None) -> tuple[int, Any]:
        status, data, _ = self.request(
            "POST", "/v1/reports", token=token or self.device_token, body=body
        )
        return status, json.loads(data)

    def get_json(self, path: str, token: str | None = None) -> tuple[int, Any]:
        status, data, _ = self.request("GET", path, token=token or self.pipeline_token)
        return status, json.loads(data)

    def stored(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM reports")).scalar() or 0)


def deploy(db: str, tmp: Path, keys: Keys | None = None, **server_options: Any) -> Deployment:
    """Migrate ``db``, enrol a device's Ed25519 key (fresh unless given) for :data:`DEVICE_IDS`
    and create tokens; the server is not started yet (``with d.server:``)."""
    engine = open_database(db, pool_size=2)
    if keys is None:
        keys = init_keys(directory=tmp / f"device-keys-{secrets.token_hex(4)}")
    public = public_key_from_dir(keys.directory)
    for device_id in DEVICE_IDS:
        enrol_device(engine, device_id, public)
    _, device = create_token(engine, Role.DEVICE, "device", DEVICE_IDS)
    _, pipeline = create_token(engine, Role.PIPELINE, "pipeline")
    _, admin = create_token(engine, Role.ADMIN, "admin")
    return Deployment(CollectorProcess(db, **server_options), engine, keys, device, pipeline, admin)
