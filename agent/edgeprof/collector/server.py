"""``edgeprof serve``: the collector app under uvicorn, on a socket bound before start.

Binding first lets ``--port 0`` work (the chosen port is printed on the first line of stdout,
for tests and for supervisors that hand out ports) and makes a port already in use an
InputError with the port in it instead of a uvicorn traceback.
"""

from __future__ import annotations

import os
import resource
import socket
import sys
from pathlib import Path

from edgeprof.collector.app import Settings, make_app
from edgeprof.collector.db import open_database
from edgeprof.collector.ingest import DAY_NS, IngestPolicy
from edgeprof.collector.limits import Limits, guarded_protocol
from edgeprof.errors import InputError

ENV_DB = "EDGEPROF_COLLECTOR_DB"


def default_database() -> str:
    """$EDGEPROF_COLLECTOR_DB, else an SQLite file in the XDG data directory."""
    if os.environ.get(ENV_DB):
        return os.environ[ENV_DB]
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    directory = Path(base) / "edgeprof"
    directory.mkdir(parents=True, exist_ok=True)
    return str(directory / "collector.sqlite3")


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit TCP_NODELAY from the listening one. Without it a response's
    # headers and body go out as two segments and the second waits for the client's delayed
    # ACK: 40 ms added to every request on a keep-alive connection (measured here).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def raise_open_files(needed: int) -> None:
    """Lift the soft limit on open files towards ``needed`` (each connection is one): at the
    limit, accept() fails and asyncio stops accepting anyone for a second at a time."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        sys.stderr.write(
            f"edgeprof serve: warning: open files limited to {target} (ulimit -n), below the "
            f"{needed} that --max-connections needs\n"
        )


def serve(
    database: str,
    host: str = "127.0.0.1",
    port: int = 8600,
    *,
    max_body_bytes: int,
    limits: Limits | None = None,
    access_log: bool = False,
    public_metrics: bool = False,
    max_report_age_days: int = 365,
) -> None:
    """Migrate the database, then serve until SIGINT/SIGTERM."""
    import uvicorn

    limits = limits or Limits()
    raise_open_files(limits.max_connections + 256)
    engine = open_database(database)
    policy = IngestPolicy(max_age_ns=max_report_age_days * DAY_NS or None)
    settings = Settings(max_body_bytes=max_body_bytes, ingest=policy, public_metrics=public_metrics)
    app = make_app(engine, settings)
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    sys.stdout.write(f"edgeprof collector listening on http://{shown}:{bound}\n")
    sys.stdout.flush()
    config = uvicorn.Config(
        app,
        # h11 always (not httptools when installed): our deadlines and caps live in it.
        http=guarded_protocol(limits),
        ws="none",
        log_level="warning",
        access_log=access_log,
        timeout_keep_alive=30,
        # The total is capped by the protocol (limits.max_connections), which evicts half-open
        # connections first; uvicorn's own cap would answer 503 to everyone once they fill it.
        limit_concurrency=None,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        engine.dispose()
