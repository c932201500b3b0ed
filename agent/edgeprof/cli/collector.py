"""``edgeprof serve`` and ``edgeprof collector ...``: the upstream side.

Both need the ``edgeprof[collector]`` extra and say so when it is missing (``edgeprof pull``,
the pipelines' client, is :mod:`edgeprof.cli.pull` and needs no extra).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from edgeprof.errors import InputError

_DB_HELP = (
    "Database: a file path (SQLite, the default is in the XDG data dir) or postgresql://... "
    "(also $EDGEPROF_COLLECTOR_DB)."
)


def _need_extra() -> None:
    missing = []
    for module in ("sqlalchemy", "starlette", "uvicorn", "prometheus_client"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise InputError(
            f"the collector needs {', '.join(missing)}: pip install 'edgeprof[collector]'"
        )


def _engine(db: str | None) -> Any:
    _need_extra()
    from edgeprof.collector.db import open_database
    from edgeprof.collector.server import default_database

    return open_database(db or default_database())


def _db_option(f: Any) -> Any:
    return click.option("--db", envvar="EDGEPROF_COLLECTOR_DB", default=None, help=_DB_HELP)(f)


@click.command("serve")
@_db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8600, show_default=True)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=1024),
    default=64 * 1024 * 1024,
    show_default=True,
    help="Largest report accepted (413 above it).",
)
@click.option(
    "--header-timeout-s",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Close (408) a connection whose request headers are not complete in this time.",
)
@click.option(
    "--body-timeout-s",
    type=click.FloatRange(min=0, min_open=True),
    default=20.0,
    show_default=True,
    help="Close (408) a request whose body brings less than --body-min-rate over this window.",
)
@click.option(
    "--body-min-rate",
    type=click.IntRange(min=1),
    default=1024,
    show_default=True,
    help="Slowest body accepted, in bytes per second (averaged over --body-timeout-s).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=2048,
    show_default=True,
    help="Open connections in all; at the limit the longest-waiting half-open one is closed.",
)
@click.option(
    "--max-connections-per-client",
    type=click.IntRange(min=0),
    default=64,
    show_default=True,
    help="Open connections per client address (503 above it); 0: no cap (behind a proxy).",
)
@click.option("--access-log", is_flag=True, help="Log every request.")
def serve(
    db: str | None,
    host: str,
    port: int,
    max_body_bytes: int,
    header_timeout_s: float,
    body_timeout_s: float,
    body_min_rate: int,
    max_connections: int,
    max_connections_per_client: int,
    access_log: bool,
) -> None:
    """Run the collector: devices upload reports, pipelines pull them (HTTP API)."""
    _need_extra()
    from edgeprof.collector.limits import Limits
    from edgeprof.collector.server import default_database
    from edgeprof.collector.server import serve as run

    limits = Limits(
        header_timeout_s=header_timeout_s,
        body_timeout_s=body_timeout_s,
        body_min_rate=body_min_rate,
        max_connections=max_connections,
        max_connections_per_client=max_connections_per_client,
    )
    run(
        db or default_database(),
        host,
        port,
        max_body_bytes=max_body_bytes,
        limits=limits,
        access_log=access_log,
    )


@click.group("collector")
def collector_group() -> None:
    """Administer a collector's database: tokens, trusted signing keys, migrations."""


@collector_group.command("migrate")
@_db_option
def migrate(db: str | None) -> None:
    """Create or upgrade the database schema (serve does this too)."""
    from edgeprof.collector.db import SCHEMA_VERSION

    _engine(db).dispose()
    click.echo(f"database at schema version {SCHEMA_VERSION}")


@collector_group.group("token")
def token_group() -> None:
    """Bearer tokens: device (upload), pipeline (read), admin (manage tokens)."""


@token_group.command("create")
@_db_option
@click.option("--role", type=click.Choice(["device", "pipeline", "admin"]), required=True)
@click.option("--name", required=True, help="Who holds it, e.g. the device or rig name.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the token to this file (mode 0600) instead of stdout.",
)
def token_create(db: str | None, role: str, name: str, out: Path | None) -> None:
    """Create a token; the secret is shown once (only its hash is stored)."""
    from edgeprof.atomic import write_atomic
    from edgeprof.collector.tokens import create_token, parse_role

    engine = _engine(db)
    info, secret = create_token(engine, parse_role(role), name)
    engine.dispose()
    if out is not None:
        try:
            write_atomic(out, (secret + "\n").encode())
            out.chmod(0o600)
        except OSError as exc:
            raise InputError(f"cannot write {out}: {exc.strerror or exc}") from None
        click.echo(f"token {info.id} ({info.role.value}, {info.name}) written to {out}", err=True)
    else:
        click.echo(secret)
        click.echo(f"token {info.id} ({info.role.value}, {info.name}): shown once", err=True)


@token_group.command("list")
@_db_option
@click.option("--json", "as_json", is_flag=True)
def token_list(db: str | None, as_json: bool) -> None:
    """Every token, without secrets."""
    from edgeprof.collector.tokens import list_tokens

    engine = _engine(db)
    found = list_tokens(engine)
    engine.dispose()
    if as_json:
        click.echo(json.dumps([t.as_dict() for t in found]))
        return
    for t in found:
        state = "revoked" if t.revoked_ns else "active"
        click.echo(f"{t.id}  {t.role.value:<8}  {state:<7}  {t.name}")


@token_group.command("revoke")
@_db_option
@click.argument("token_id")
def token_revoke(db: str | None, token_id: str) -> None:
    """Revoke a token by id: it stops working at once."""
    from edgeprof.collector.tokens import revoke_token

    engine = _engine(db)
    info = revoke_token(engine, token_id)
    engine.dispose()
    click.echo(f"revoked {info.id} ({info.role.value}, {info.name})")


@collector_group.group("key")
def key_group() -> None:
    """Signing keys this collector trusts (reports signed by others are refused)."""


@key_group.command("add")
@_db_option
@click.option("--name", required=True, help="Which device the key belongs to.")
@click.option(
    "--from-key-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="A device's `edgeprof keys` directory: enrol its HMAC key and Ed25519 public key.",
)
@click.option("--hmac-key-file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--ed25519-public-key", metavar="HEX", help="32-byte public key in hex.")
def key_add(
    db: str | None,
    name: str,
    from_key_dir: Path | None,
    hmac_key_file: Path | None,
    ed25519_public_key: str | None,
) -> None:
    """Enrol a device's signing key(s)."""
    from edgeprof.collector import keys as trust

    pairs: list[tuple[str, bytes]] = []
    if from_key_dir is not None:
        pairs += trust.keys_from_dir(from_key_dir)
    if hmac_key_file is not None:
        try:
            pairs.append((trust.HMAC, hmac_key_file.read_bytes()))
        except OSError as exc:
            raise InputError(f"cannot read {hmac_key_file}: {exc.strerror or exc}") from None
    if ed25519_public_key is not None:
        try:
            pairs.append((trust.ED25519, bytes.fromhex(ed25519_public_key)))
        except ValueError:
            raise InputError("--ed25519-public-key: not hex") from None
    if not pairs:
        raise InputError("give --from-key-dir, --hmac-key-file or --ed25519-public-key")
    engine = _engine(db)
    for kind, material in pairs:
        key = trust.add_key(engine, kind, material, name)
        click.echo(f"trusted {key.kind} key {key.key_id} ({name})")
    engine.dispose()


@key_group.command("list")
@_db_option
def key_list(db: str | None) -> None:
    """The trusted keys."""
    from edgeprof.collector.keys import list_keys

    engine = _engine(db)
    for key in list_keys(engine):
        click.echo(f"{key.key_id}  {key.kind:<11}  {key.name}")
    engine.dispose()


@key_group.command("revoke")
@_db_option
@click.argument("key_id")
def key_revoke(db: str | None, key_id: str) -> None:
    """Stop trusting a key (stored reports stay stored)."""
    from edgeprof.collector.keys import revoke_key

    engine = _engine(db)
    revoke_key(engine, key_id)
    engine.dispose()
    click.echo(f"revoked key {key_id}")
