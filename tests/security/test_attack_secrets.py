"""Secrets at rest (issue 13, item 6): the collector's database is owner-only, and no secret that
can sign as a device is kept upstream, not even by a database upgraded from version 1."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from edgeprof.collector.db import (
    MIGRATIONS,
    SCHEMA_VERSION,
    current_version,
    make_engine,
    open_database,
    schema_migrations,
)
from edgeprof.report.signing import init_keys, key_id
from edgeprof.testing.attacks import Attack
from edgeprof.testing.collector_server import CollectorProcess, Deployment, fresh_database
from edgeprof.testing.reports import make_report

SIDE = ("", "-wal", "-shm")


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _modes(db: Path) -> dict[str, int]:
    return {s: stat.S_IMODE(Path(f"{db}{s}").stat().st_mode) for s in SIDE}


def test_database_wal_and_shm_are_created_owner_only_under_umask_022(
    tmp_path: Path, attack: Any
) -> None:
    a: Attack = attack("collector DB, -wal and -shm readable by other local users (umask 022)")
    with umask(0o022):
        db = tmp_path / "in-process.sqlite3"
        engine = open_database(str(db), pool_size=1)
        with engine.connect() as conn:  # held open: the -wal and -shm files exist meanwhile
            conn.exec_driver_sql("SELECT count(*) FROM reports")
            a.attempt(held=_modes(db) == dict.fromkeys(SIDE, 0o600))
        engine.dispose()
        served = tmp_path / "served.sqlite3"
        with CollectorProcess(str(served)):  # `edgeprof serve` creates it
            a.attempt(held=_modes(served) == dict.fromkeys(SIDE, 0o600))
        # A database left 0644 by an older collector is tightened when opened.
        old = tmp_path / "old.sqlite3"
        old.touch(mode=0o644)
        old.chmod(0o644)
        open_database(str(old), pool_size=1).dispose()
        a.attempt(held=stat.S_IMODE(old.stat().st_mode) == 0o600)
    assert a.failed == 0


def _rows_hold(engine: sa.Engine, needles: list[bytes]) -> list[str]:
    """Every table and column whose value holds one of ``needles`` (raw, or as hex text)."""
    found = []
    with engine.connect() as conn:
        meta = sa.MetaData()
        meta.reflect(conn)
        for table in meta.sorted_tables:
            for row in conn.execute(sa.select(table)):
                for column, value in row._mapping.items():
                    raw = value if isinstance(value, bytes) else str(value).encode()
                    if any(n in raw or n.hex().encode() in raw for n in needles):
                        found.append(f"{table.name}.{column}")
    return found


def test_no_table_holds_a_devices_hmac_secret(
    collector: Deployment, attack: Any, tmp_path: Path
) -> None:
    a: Attack = attack("HMAC secret readable from the collector database")
    secret = collector.keys.hmac_key
    assert secret is not None
    for _ in range(3):  # reports signed with both keys: HMAC and Ed25519
        assert collector.upload(collector.signed(make_report()))[0] == 201
    a.attempt(held=_rows_hold(collector.engine, [secret]) == [])
    if collector.engine.dialect.name == "sqlite":
        db = Path(collector.server.db)
        raw = b"".join(Path(f"{db}{s}").read_bytes() for s in SIDE if Path(f"{db}{s}").exists())
        a.attempt(held=secret not in raw and secret.hex().encode() not in raw)
    assert a.failed == 0


def _secure_delete_off(dbapi_conn: Any, _record: Any) -> None:
    if type(dbapi_conn).__module__.startswith("sqlite3"):
        dbapi_conn.execute("PRAGMA secure_delete=OFF")


@contextmanager
def sqlite_without_secure_delete() -> Iterator[None]:
    """As on an SQLite built without SECURE_DELETE (Debian's has it on by default): freed
    pages keep their old bytes unless the migration asks for them to be zeroed."""
    sa.event.listen(sa.engine.Engine, "connect", _secure_delete_off)
    try:
        yield
    finally:
        sa.event.remove(sa.engine.Engine, "connect", _secure_delete_off)


def _version_1_database(url: str, secret: bytes, public: bytes) -> None:
    """A database as version 1 left it: every device's raw HMAC key in ``signing_keys``."""
    engine = make_engine(url, pool_size=1)
    with engine.begin() as conn:
        assert current_version(conn) == 0
        MIGRATIONS[0].apply(conn)
        conn.execute(
            schema_migrations.insert().values(version=1, applied_ns=time.time_ns(), description="1")
        )
        for kind, material in (("hmac_sha256", secret), ("ed25519", public)):
            conn.execute(
                sa.text(
                    "INSERT INTO signing_keys (key_id, kind, name, material, created_ns) "
                    "VALUES (:k, :kind, 'rig-7', :m, :t)"
                ),
                {"k": key_id(material), "kind": kind, "m": material, "t": time.time_ns()},
            )
    engine.dispose()


def test_upgrading_a_version_1_database_drops_the_hmac_secrets(
    backend: str, tmp_path: Path, attack: Any
) -> None:
    a: Attack = attack("HMAC secrets left by a version-1 database after the upgrade")
    keys = init_keys(directory=tmp_path / "rig-7")
    assert keys.hmac_key is not None
    public = keys.ed25519_public_key or b"\x01" * 32
    with fresh_database(backend, tmp_path) as url, sqlite_without_secure_delete():
        _version_1_database(url, keys.hmac_key, public)
        engine = open_database(url, pool_size=1)
        try:
            with engine.connect() as conn:
                version = conn.exec_driver_sql("SELECT max(version) FROM schema_migrations")
                assert version.scalar() == SCHEMA_VERSION
                tables = set(sa.inspect(conn).get_table_names())
            assert "signing_keys" not in tables
            a.attempt(held=_rows_hold(engine, [keys.hmac_key]) == [])
            if backend == "sqlite":  # nor in the file's free pages or its WAL
                raw = b"".join(
                    Path(f"{url}{s}").read_bytes() for s in SIDE if Path(f"{url}{s}").exists()
                )
                a.attempt(held=keys.hmac_key not in raw)
        finally:
            engine.dispose()
    assert a.failed == 0
