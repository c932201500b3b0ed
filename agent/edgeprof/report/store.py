"""The local report store: a directory of msgpack reports, written atomically.

The default is the XDG data directory (``$XDG_DATA_HOME/edgeprof/reports``, else
``~/.local/share/edgeprof/reports``); ``--store`` or ``EDGEPROF_STORE`` moves it.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgeprof.atomic import write_atomic
from edgeprof.errors import InputError

ENV_STORE = "EDGEPROF_STORE"


def default_store() -> Path:
    """Where reports go when nothing says otherwise."""
    if os.environ.get(ENV_STORE):
        return Path(os.environ[ENV_STORE])
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(base) / "edgeprof" / "reports"


def save_report(data: bytes, report_id: str, store: Path | None = None) -> Path:
    """Write one report into the store; returns its path."""
    directory = store or default_store()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{report_id}.msgpack"
        write_atomic(path, data)
    except OSError as exc:
        raise InputError(
            f"cannot write the report into {directory}: {exc.strerror or exc}"
        ) from None
    return path
