"""Fixtures for the collector tests: a real ``edgeprof serve`` on loopback over SQLite or a real
PostgreSQL, with a device token, a pipeline token, an admin token and an enrolled device key.

PostgreSQL comes from ``scripts/pg-test-server`` (the test command starts it and sets
``$EDGEPROF_TEST_PG_URL``). Without it the PostgreSQL cases fail in CI and skip locally.
"""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from edgeprof.collector.db import open_database
from edgeprof.collector.keys import add_key, keys_from_dir
from edgeprof.collector.tokens import Role, create_token
from edgeprof.report import encode
from edgeprof.signing import Keys, init_keys, sign
from edgeprof.testing.collector_server import ENV_PG, CollectorProcess, fresh_database

BACKENDS = ["sqlite", "postgresql"]


def require_backend(backend: str) -> None:
    """PostgreSQL needs its server: a failure in CI, a skip with a hint elsewhere."""
    if backend == "postgresql" and not os.environ.get(ENV_PG):
        message = (
            f"${ENV_PG} is not set: run `export {ENV_PG}=$(scripts/pg-test-server start)` "
            "(./scripts/test does it)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class Deployment:
    """A running collector with its database, tokens and one enrolled device."""

    server: CollectorProcess
    engine: sa.Engine
    keys: Keys
    device_token: str
    pipeline_token: str
    admin_token: str

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


def deploy(db: str, tmp: Path, **server_options: Any) -> Deployment:
    """Migrate ``db``, enrol a fresh device key and create tokens (not yet started)."""
    engine = open_database(db, pool_size=2)
    keys = init_keys(directory=tmp / "device-keys")
    for kind, material in keys_from_dir(keys.directory):
        add_key(engine, kind, material, "test-device")
    _, device = create_token(engine, Role.DEVICE, "device")
    _, pipeline = create_token(engine, Role.PIPELINE, "pipeline")
    _, admin = create_token(engine, Role.ADMIN, "admin")
    return Deployment(CollectorProcess(db, **server_options), engine, keys, device, pipeline, admin)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    require_backend(value)
    return value


@pytest.fixture
def collector(backend: str, tmp_path: Path) -> Iterator[Deployment]:
    """A started collector over a fresh database of each backend."""
    with fresh_database(backend, tmp_path) as db:
        d = deploy(db, tmp_path, max_body_bytes=4 * 1024 * 1024)
        try:
            with d.server:
                yield d
        finally:
            d.engine.dispose()
