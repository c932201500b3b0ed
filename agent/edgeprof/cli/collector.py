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
    for module in ("sqlalchemy", "starlette", "uvicorn", "prometheus_client", "cryptography"):
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
@click.option(
    "--public-metrics",
    is_flag=True,
    help="Serve /metrics without a token (by default it needs a pipeline or admin token).",
)
@click.option(
    "--max-report-age-days",
    type=click.IntRange(min=0),
    default=365,
    show_default=True,
    help="Refuse reports whose created_ns is older than this (0: no bound).",
)
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
    public_metrics: bool,
    max_report_age_days: int,
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
        public_metrics=public_metrics,
        max_report_age_days=max_report_age_days,
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
@click.option(
    "--device",
    "devices",
    multiple=True,
    metavar="ID",
    help="Device tokens: the device id it uploads for (repeatable; required for --role device).",
)
@click.option("--name", help="Who holds it, e.g. the rig name (default: the first --device).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the token to this file (mode 0600) instead of stdout.",
)
def token_create(
    db: str | None, role: str, devices: tuple[str, ...], name: str | None, out: Path | None
) -> None:
    """Create a token; the secret is shown once (only its hash is stored)."""
    from edgeprof.atomic import write_atomic
    from edgeprof.collector.tokens import create_token, parse_role

    if name is None:
        if not devices:
            raise InputError("--name: who holds the token")
        name = devices[0][:128]
    engine = _engine(db)
    try:
        info, secret = create_token(engine, parse_role(role), name, devices)
    finally:
        engine.dispose()
    bound = f", for {', '.join(info.devices)}" if info.devices else ""
    if out is not None:
        try:
            write_atomic(out, (secret + "\n").encode())
            out.chmod(0o600)
        except OSError as exc:
            raise InputError(f"cannot write {out}: {exc.strerror or exc}") from None
        click.echo(
            f"token {info.id} ({info.role.value}, {info.name}{bound}) written to {out}", err=True
        )
    else:
        click.echo(secret)
        click.echo(f"token {info.id} ({info.role.value}, {info.name}{bound}): shown once", err=True)


@token_group.command("bind")
@_db_option
@click.argument("token_id")
@click.option("--device", "devices", multiple=True, required=True, metavar="ID")
def token_bind(db: str | None, token_id: str, devices: tuple[str, ...]) -> None:
    """Let a device token upload for more devices (tokens made before schema 2 need this)."""
    from edgeprof.collector.tokens import bind_token

    engine = _engine(db)
    try:
        info = bind_token(engine, token_id, devices)
    finally:
        engine.dispose()
    click.echo(f"token {info.id} ({info.name}) uploads for {', '.join(info.devices)}")


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
        devices = f"  devices: {', '.join(t.devices)}" if t.devices else ""
        click.echo(f"{t.id}  {t.role.value:<8}  {state:<7}  {t.name}{devices}")


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


@collector_group.group("device")
def device_group() -> None:
    """Device identity: the Ed25519 public keys (and boards) each device id may report with."""


@device_group.command("enrol")
@_db_option
@click.option("--device-id", required=True, help="The device id its reports carry.")
@click.option(
    "--key-from",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="The device's `edgeprof keys` directory (its ed25519.pub is read; no secret is).",
)
@click.option("--public-key", metavar="FILE|HEX", help="Its ed25519.pub file, or the key in hex.")
@click.option(
    "--board", "boards", multiple=True, help="A board it may report (repeatable; default: any)."
)
def device_enrol(
    db: str | None,
    device_id: str,
    key_from: Path | None,
    public_key: str | None,
    boards: tuple[str, ...],
) -> None:
    """Bind a device's Ed25519 public key to its device id: its reports are accepted from now."""
    from edgeprof.collector import keys as identity

    if (key_from is None) == (public_key is None):
        raise InputError("give one of --key-from DIR or --public-key FILE|HEX")
    public = (
        identity.public_key_from_dir(key_from)
        if key_from is not None
        else identity.public_key_from(str(public_key))
    )
    engine = _engine(db)
    try:
        key = identity.enrol_device(engine, device_id, public, boards)
    finally:
        engine.dispose()
    where = f" on board(s) {', '.join(boards)}" if boards else ""
    click.echo(f"enrolled ed25519 key {key.key_id} for device {device_id}{where}")


@device_group.command("list")
@_db_option
@click.option("--json", "as_json", is_flag=True)
def device_list(db: str | None, as_json: bool) -> None:
    """Enrolled devices, their keys and boards."""
    from edgeprof.collector.keys import list_devices

    engine = _engine(db)
    found = list_devices(engine)
    engine.dispose()
    if as_json:
        click.echo(json.dumps([d.as_dict() for d in found]))
        return
    for d in found:
        boards = ", ".join(d.boards) or "any board"
        for k in d.keys:
            state = "revoked" if k.revoked_ns else "active"
            click.echo(f"{k.key_id}  ed25519  {state:<7}  {d.device_id}  ({boards})")


@collector_group.group("key")
def key_group() -> None:
    """Enrolled signing keys (enrol with `edgeprof collector device enrol`)."""


@key_group.command("add", hidden=True, context_settings={"ignore_unknown_options": True})
@click.argument("ignored", nargs=-1, type=click.UNPROCESSED)
def key_add(ignored: tuple[str, ...]) -> None:
    """Gone in schema 2: keys are bound to a device id now."""
    raise InputError(
        "`collector key add` is gone: a key is enrolled for a device id now, with "
        "`edgeprof collector device enrol --device-id ID --key-from DIR` (HMAC keys stay on "
        "the device)"
    )


@key_group.command("list")
@_db_option
def key_list(db: str | None) -> None:
    """The live enrolled keys: key id, kind, device id."""
    from edgeprof.collector.keys import list_devices

    engine = _engine(db)
    for d in list_devices(engine):
        for k in d.keys:
            if k.revoked_ns is None:
                click.echo(f"{k.key_id}  ed25519  {d.device_id}")
    engine.dispose()


@key_group.command("revoke")
@_db_option
@click.argument("key_id")
@click.option("--device-id", help="Only for this device (default: every device it signs for).")
def key_revoke(db: str | None, key_id: str, device_id: str | None) -> None:
    """Stop trusting a key (stored reports stay stored)."""
    from edgeprof.collector.keys import revoke_key

    engine = _engine(db)
    try:
        n = revoke_key(engine, key_id, device_id)
    finally:
        engine.dispose()
    click.echo(f"revoked key {key_id} ({n} device binding{'s' if n != 1 else ''})")


@collector_group.group("gate-key")
def gate_key_group() -> None:
    """Gate keys: whose signed decisions this collector accepts (and counts as approvals)."""


@gate_key_group.command("add")
@_db_option
@click.option("--name", required=True, help="Which gate (pipeline) the key belongs to.")
@click.option(
    "--public-key",
    "public_key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="The gate's public key file (`edgeprof gate keygen` writes gate.ed25519.pub).",
)
def gate_key_add(db: str | None, name: str, public_key: Path) -> None:
    """Enrol a gate's public key."""
    from edgeprof.collector.gate_keys import add_gate_key
    from edgeprof.gate.keys import read_public_key

    public = read_public_key(public_key)
    engine = _engine(db)
    info = add_gate_key(engine, public, name)
    engine.dispose()
    click.echo(f"enrolled gate key {info.key_id} ({info.name})")


@gate_key_group.command("list")
@_db_option
@click.option("--all", "show_all", is_flag=True, help="Include revoked keys.")
@click.option("--json", "as_json", is_flag=True)
def gate_key_list(db: str | None, show_all: bool, as_json: bool) -> None:
    """The enrolled gate keys."""
    from edgeprof.collector.gate_keys import list_gate_keys

    engine = _engine(db)
    found = list_gate_keys(engine, revoked=show_all)
    engine.dispose()
    if as_json:
        click.echo(json.dumps([k.as_dict() for k in found]))
        return
    for k in found:
        state = "revoked" if k.revoked_ns else "active"
        click.echo(f"{k.key_id}  {state:<7}  {k.name}")


@gate_key_group.command("revoke")
@_db_option
@click.argument("key_id")
def gate_key_revoke(db: str | None, key_id: str) -> None:
    """Stop trusting a gate key: its decisions stay, but approve nothing any more."""
    from edgeprof.collector.gate_keys import revoke_gate_key

    engine = _engine(db)
    info = revoke_gate_key(engine, key_id)
    engine.dispose()
    click.echo(f"revoked gate key {info.key_id} ({info.name})")
