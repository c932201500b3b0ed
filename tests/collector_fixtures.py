"""Fixtures for the collector tests: a real ``edgeprof serve`` on loopback over SQLite or a real
PostgreSQL, with a device token, a pipeline token, an admin token and an enrolled device key.

PostgreSQL comes from ``scripts/pg-test-server`` (the test command starts it and sets
``$EDGEPROF_TEST_PG_URL``). Without it the PostgreSQL cases fail in CI and skip locally.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeprof.testing.collector_server import ENV_PG, Deployment, deploy, fresh_database

__all__ = ["Deployment", "backend", "collector", "deploy"]

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
