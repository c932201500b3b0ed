"""The collector's tables, its engine for SQLite or PostgreSQL, and its schema migrations.

One code path for both databases (SQLAlchemy Core). SQLite is the embedded default that needs
no server: one file in WAL mode with ``synchronous=FULL`` (a 201 means the report survives a
power cut) and a busy timeout so concurrent writers queue instead of failing. PostgreSQL is the
way to scale out: several collector processes behind a load balancer sharing one database.

Report bodies live in their own table so that listing and filtering never read megabytes of
traces; the ``reports`` row carries the fields pipelines filter and sort on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from edgeprof.errors import InputError

metadata = sa.MetaData()

reports = sa.Table(
    "reports",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("created_ns", sa.BigInteger, nullable=False),
    sa.Column("received_ns", sa.BigInteger, nullable=False),
    sa.Column("schema_minor", sa.Integer, nullable=False),
    sa.Column("model_name", sa.String(256), nullable=False),
    sa.Column("model_sha256", sa.String(64), nullable=False),
    sa.Column("board_id", sa.String(128), nullable=False),
    sa.Column("device_id", sa.String(256), nullable=False),
    sa.Column("runner", sa.String(64), nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("p50_s", sa.Float, nullable=True),
    sa.Column("p95_s", sa.Float, nullable=True),
    sa.Column("p99_s", sa.Float, nullable=True),
    sa.Column("rss_peak_bytes", sa.Float, nullable=True),
    sa.Column("energy_per_inference_j", sa.Float, nullable=True),
    sa.Column("power_mean_w", sa.Float, nullable=True),
    sa.Column("size_bytes", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("signed_by", sa.String(256), nullable=False),  # "hmac_sha256:<key id>,..."
    sa.Column("uploaded_by", sa.String(36), nullable=False),  # token id
    sa.Column("gate_status", sa.String(16), nullable=False, server_default="none"),
    sa.Index("ix_reports_created", "created_ns", "id"),
    sa.Index("ix_reports_model", "model_name", "created_ns"),
    sa.Index("ix_reports_model_sha", "model_sha256", "created_ns"),
    sa.Index("ix_reports_board", "board_id", "created_ns"),
    sa.Index("ix_reports_device", "device_id", "created_ns"),
)

report_bodies = sa.Table(
    "report_bodies",
    metadata,
    sa.Column("id", sa.String(36), sa.ForeignKey("reports.id"), primary_key=True),
    sa.Column("body", sa.LargeBinary, nullable=False),
)

report_tags = sa.Table(
    "report_tags",
    metadata,
    sa.Column("report_id", sa.String(36), sa.ForeignKey("reports.id"), primary_key=True),
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("value", sa.String(1024), nullable=False),
    sa.Index("ix_report_tags_kv", "key", "value"),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created_ns", sa.BigInteger, nullable=False),
    sa.Column("revoked_ns", sa.BigInteger, nullable=True),
)

# Version 1 kept enrolled keys here, HMAC secrets among them; migration 2 drops it. Defined apart
# from ``metadata`` so that migration 1 still creates what it created then.
_legacy = sa.MetaData()
_v1_signing_keys = sa.Table(
    "signing_keys",
    _legacy,
    sa.Column("key_id", sa.String(16), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # "hmac_sha256" | "ed25519"
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("material", sa.LargeBinary, nullable=False),  # HMAC secret or Ed25519 public key
    sa.Column("created_ns", sa.BigInteger, nullable=False),
    sa.Column("revoked_ns", sa.BigInteger, nullable=True),
)

# An Ed25519 public key enrolled for one device id: reports naming that device must carry a
# signature by one of its live keys. Public keys only: nothing here can sign as a device.
device_keys = sa.Table(
    "device_keys",
    metadata,
    sa.Column("device_id", sa.String(256), primary_key=True),
    sa.Column("key_id", sa.String(16), primary_key=True),  # sha256(public_key)[:16] hex
    sa.Column("public_key", sa.LargeBinary, nullable=False),  # 32 bytes, raw
    sa.Column("created_ns", sa.BigInteger, nullable=False),
    sa.Column("revoked_ns", sa.BigInteger, nullable=True),
    sa.Index("ix_device_keys_key", "key_id"),
)

# The boards a device may report; a device with no row here may report any board.
device_boards = sa.Table(
    "device_boards",
    metadata,
    sa.Column("device_id", sa.String(256), primary_key=True),
    sa.Column("board_id", sa.String(128), primary_key=True),
)

# The devices a device token may upload for; a device token with no row uploads nothing.
token_devices = sa.Table(
    "token_devices",
    metadata,
    sa.Column("token_id", sa.String(36), sa.ForeignKey("tokens.id"), primary_key=True),
    sa.Column("device_id", sa.String(256), primary_key=True),
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("received_ns", sa.BigInteger, nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("severity", sa.String(16), nullable=True),
    sa.Column("record", sa.Text, nullable=False),  # the audit-log entry, JSON
    sa.Column("posted_by", sa.String(36), nullable=False),
)

decision_reports = sa.Table(
    "decision_reports",
    metadata,
    sa.Column("decision_id", sa.String(36), sa.ForeignKey("decisions.id"), primary_key=True),
    sa.Column("report_id", sa.String(36), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),  # "candidate" | "baseline" | "window"
    sa.Index("ix_decision_reports_report", "report_id"),
)

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_ns", sa.BigInteger, nullable=False),
    sa.Column("description", sa.String(256), nullable=False),
)


@dataclass(frozen=True)
class Migration:
    """One step of the schema; applied once, in order, inside a transaction."""

    version: int
    description: str
    apply: Callable[[Connection], None]


def _v1_initial(conn: Connection) -> None:
    for table in (
        reports,
        report_bodies,
        report_tags,
        tokens,
        _v1_signing_keys,
        decisions,
        decision_reports,
    ):
        table.create(conn, checkfirst=True)


def _v2_device_identity(conn: Connection) -> None:
    """Keys bound to devices, boards to devices, device tokens to devices; no secret kept.

    Version 1's ``signing_keys`` held every device's raw HMAC key (whoever reads the database
    could sign as any device) and Ed25519 keys bound to no device. Both are dropped: an unbound
    key cannot say which device ids it may sign for, and guessing that from the reports it
    signed would bind a forger to the device it forged. Every device is enrolled again
    (``edgeprof collector device enrol``) and its token bound (``collector token bind``);
    until then its uploads get 403 naming the step. On SQLite ``secure_delete`` zeroes the
    freed pages, so the secrets do not linger in the file either.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA secure_delete=ON")
    for table in (device_keys, device_boards, token_devices):
        table.create(conn, checkfirst=True)
    _v1_signing_keys.drop(conn, checkfirst=True)


# -- migration 3: signed gate decisions (gate keys, each decision's signature and audit anchor)

gate_keys = sa.Table(
    "gate_keys",
    metadata,
    sa.Column("key_id", sa.String(16), primary_key=True),  # sha256(public key)[:16]
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("public_key", sa.LargeBinary, nullable=False),  # Ed25519, 32 bytes
    sa.Column("created_ns", sa.BigInteger, nullable=False),
    sa.Column("revoked_ns", sa.BigInteger, nullable=True),
)

decision_proofs = sa.Table(
    "decision_proofs",
    metadata,
    sa.Column("decision_id", sa.String(36), sa.ForeignKey("decisions.id"), primary_key=True),
    sa.Column("gate_key_id", sa.String(16), nullable=False),
    sa.Column("decided_ns", sa.BigInteger, nullable=False),  # the gate's time, signed
    sa.Column("policy_sha256", sa.String(64), nullable=False),
    sa.Column("signed", sa.Text, nullable=False),  # the signed part, canonical JSON
    sa.Column("signature", sa.String(128), nullable=False, unique=True),  # a replay is a repeat
    sa.Column("audit_log_id", sa.String(64), nullable=True),
    sa.Column("audit_seq", sa.BigInteger, nullable=True),
    sa.Column("audit_sha256", sa.String(64), nullable=True),
    sa.Index("ix_decision_proofs_key", "gate_key_id", "audit_log_id", "audit_seq"),
)


def _v3_signed_decisions(conn: Connection) -> None:
    gate_keys.create(conn, checkfirst=True)
    decision_proofs.create(conn, checkfirst=True)
    # Statuses set by unsigned decisions (before this version) prove nothing: forget them, so
    # that `last-approved` never picks a run a bare pipeline token marked. The decisions stay.
    conn.execute(reports.update().values(gate_status="none"))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "reports, bodies, tags, tokens, signing keys, gate decisions", _v1_initial),
    Migration(
        2,
        "device identity: keys, boards and tokens bound to devices; HMAC secrets dropped",
        _v2_device_identity,
    ),
    Migration(
        3, "signed gate decisions: gate keys, signatures, audit anchors", _v3_signed_decisions
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


def normalise_url(url: str) -> str:
    """A database URL for SQLAlchemy: a plain path means SQLite; postgresql:// uses psycopg 3."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("sqlite://", "postgresql+psycopg://")):
        return url
    raise InputError(f"unsupported database URL {url!r}: give a file path or postgresql://...")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def private_sqlite_file(path: Path) -> None:
    """Make the database file owner-only (0600) before SQLite opens it, whatever the umask.

    SQLite creates its -wal and -shm files with the main file's mode, so they follow. A file
    left 0644 by an older collector is tightened, with its side files.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for p in (path, *(Path(f"{path}{s}") for s in SQLITE_SIDE_FILES)):
            try:
                if p.stat().st_mode & 0o077:
                    p.chmod(0o600)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise InputError(f"{p}: cannot make it private: {exc.strerror or exc}") from None
        return
    except OSError as exc:
        raise InputError(f"cannot create the database {path}: {exc.strerror or exc}") from None
    os.close(fd)


def make_engine(url: str, *, pool_size: int = 8) -> Engine:
    """An engine for ``url`` (file path, sqlite:///..., or postgresql://...)."""
    full = normalise_url(url)
    if full.startswith("sqlite"):
        path = full.removeprefix("sqlite:///")
        if path and path != ":memory:" and not path.startswith("file:"):
            parent = Path(path).parent
            if not parent.is_dir():
                raise InputError(f"database directory {parent} does not exist")
            private_sqlite_file(Path(path))
        engine = sa.create_engine(
            full,
            pool_size=pool_size,
            max_overflow=pool_size * 4,
            connect_args={"timeout": 30, "check_same_thread": False},
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return sa.create_engine(
            full,
            pool_size=pool_size,
            max_overflow=pool_size * 4,
            pool_pre_ping=True,
            connect_args={"connect_timeout": 10},
        )
    except ModuleNotFoundError as exc:
        raise InputError(
            f"PostgreSQL needs psycopg: pip install 'edgeprof[collector]' ({exc})"
        ) from None


def current_version(conn: Connection) -> int:
    """The newest applied migration, 0 for an empty database."""
    schema_migrations.create(conn, checkfirst=True)
    value = conn.execute(sa.select(sa.func.max(schema_migrations.c.version))).scalar()
    return int(value or 0)


def migrate(engine: Engine) -> int:
    """Apply every migration not yet applied; returns the schema version.

    Several collectors may start at once against one PostgreSQL database: a transaction-scoped
    advisory lock lets one of them migrate while the others wait. SQLite's ``BEGIN IMMEDIATE``
    equivalent is its write lock, taken by the first DDL statement.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(727001)"))
        version = current_version(conn)
        if version > SCHEMA_VERSION:
            raise InputError(
                f"the database has schema version {version}; this collector knows up to "
                f"{SCHEMA_VERSION}: upgrade edgeprof"
            )
        start = version
        for m in MIGRATIONS:
            if m.version > version:
                m.apply(conn)
                conn.execute(
                    schema_migrations.insert().values(
                        version=m.version, applied_ns=time.time_ns(), description=m.description
                    )
                )
                version = m.version
    if engine.dialect.name == "sqlite" and start < 2 <= version:
        # Migration 2 dropped secrets: move the zeroed pages into the file and empty the WAL,
        # so no old copy of a page is left in either.
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return version


def open_database(url: str, *, pool_size: int = 8) -> Engine:
    """Engine plus migrations: what ``edgeprof serve`` and the admin commands start with."""
    engine = make_engine(url, pool_size=pool_size)
    try:
        migrate(engine)
    except sa.exc.OperationalError as exc:
        engine.dispose()
        raise InputError(f"cannot open the database {_display(url)}: {exc.orig}") from None
    return engine


def _display(url: str) -> str:
    """The URL without a password, for messages."""
    try:
        return sa.engine.make_url(normalise_url(url)).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<bad URL>"
