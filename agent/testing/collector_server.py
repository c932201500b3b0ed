"""The real collector (``edgeprof serve``) as a child process, and fresh databases for it.

Tests and benchmarks run the collector exactly as deployed: a uvicorn process on loopback over
SQLite or PostgreSQL. :func:`fresh_database` gives each test its own database: a new SQLite
file, or a new database on the PostgreSQL server named by ``$EDGEPROF_TEST_PG_URL`` (started by
``scripts/pg-test-server``), dropped afterwards.
"""

from __future__ import annotations

import http.client
import os
import secrets
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgeprof.testing.child import ChildServer

ENV_PG = "EDGEPROF_TEST_PG_URL"


class CollectorProcess(ChildServer):
    """``python -m edgeprof serve --db DB --port 0``; ``url`` once started."""

    what = "collector"

    def __init__(self, db: str, *, max_body_bytes: int | None = None) -> None:
        cmd = [sys.executable, "-m", "edgeprof", "serve", "--db", db, "--port", "0"]
        if max_body_bytes is not None:
            cmd += ["--max-body-bytes", str(max_body_bytes)]
        super().__init__(cmd)
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
