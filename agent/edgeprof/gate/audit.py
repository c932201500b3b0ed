"""An append-only, hash-chained audit log of gate decisions (framework section 8.2).

Why a hash chain: the log lives on ordinary disks that people can edit; what must be
guaranteed is that an edit cannot go unnoticed. Each line is one entry in canonical JSON
(sorted keys, no spaces, UTF-8) carrying ``sha256``, the hash of itself without that key (so an
edit is named at the edited line), ``prev``, the sha256 of the previous line's bytes (the first
line chains to :data:`GENESIS`), and ``seq``, counting from 0. Editing, deleting,
inserting or reordering an entry breaks the chain at or after that entry; :func:`verify_log`
names the first broken line. Truncating the *end* of the log cannot be seen from the log
alone: keep the head hash (``verify_log(...).head``) somewhere else, e.g. in the CI output.

Appends take an exclusive ``flock`` (two gates on one log never chain to the same entry), write
the line with one ``write`` on an ``O_APPEND`` descriptor and ``fsync`` before releasing it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edgeprof.errors import InputError

LOG_VERSION = 1
GENESIS = "0" * 64  # what the first entry's ``prev`` is


def canonical(entry: dict[str, Any]) -> bytes:
    """The one byte form of an entry: sorted keys, compact, UTF-8, no NaN."""
    return json.dumps(
        entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def entry_hash(line: bytes) -> str:
    """sha256 of an entry's canonical bytes (the line without its newline)."""
    return hashlib.sha256(line).hexdigest()


def json_safe(obj: Any) -> Any:
    """JSON-ready: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        return json_safe(obj.item())
    return obj


def _last_line(fd: int) -> bytes | None:
    """The last non-empty line of the open file, read backwards from the end."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    chunk = 4096
    buf = b""
    pos = size
    while pos > 0:
        step = min(chunk, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
        stripped = buf.rstrip(b"\n")
        if b"\n" in stripped:
            return stripped.rsplit(b"\n", 1)[1]
    stripped = buf.rstrip(b"\n")
    return stripped or None


def append(path: str | os.PathLike[str], body: dict[str, Any]) -> dict[str, Any]:
    """Append one entry (``body`` plus v, seq, time, prev) and return it as written."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise InputError(f"{os.fspath(path)}: cannot open the audit log: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        last = _last_line(fd)
        if last is None:
            prev, seq = GENESIS, 0
        else:
            try:
                seq = int(json.loads(last)["seq"]) + 1
            except (ValueError, KeyError, TypeError):
                raise InputError(
                    f"{os.fspath(path)}: the last entry is not an audit entry; "
                    "run `edgeprof gate verify-log`"
                ) from None
            prev = entry_hash(last)
        now = time.time_ns()
        entry = {
            **json_safe(body),
            "v": LOG_VERSION,
            "seq": seq,
            "time": datetime.fromtimestamp(now / 1e9, UTC).isoformat(timespec="milliseconds"),
            "time_ns": now,
            "prev": prev,
        }
        entry["sha256"] = entry_hash(canonical(entry))
        line = canonical(entry) + b"\n"
        written = os.write(fd, line)
        if written != len(line):  # pragma: no cover - a full disk
            raise InputError(f"{os.fspath(path)}: short write to the audit log")
        os.fsync(fd)
        return entry
    finally:
        os.close(fd)  # closing releases the lock


@dataclass(frozen=True)
class LogCheck:
    """The result of :func:`verify_log`: ok, how many entries, the head hash, or the break."""

    ok: bool
    entries: int
    head: str
    bad_line: int | None = None
    reason: str = ""

    def message(self) -> str:
        if self.ok:
            return f"ok: {self.entries} entries, chain intact, head {self.head}"
        return f"broken at line {self.bad_line}: {self.reason}"


def verify_log(path: str | os.PathLike[str]) -> LogCheck:
    """Walk the chain; the first line that is not canonical, out of sequence or mis-chained."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise InputError(f"{os.fspath(path)}: cannot read the audit log: {exc.strerror}") from None
    prev, count = GENESIS, 0
    if data and not data.endswith(b"\n"):
        lines = data.split(b"\n")
        return LogCheck(False, 0, prev, len(lines), "the last line is incomplete (no newline)")
    for n, line in enumerate(data.split(b"\n")[:-1] if data else [], 1):

        def broken(why: str, n: int = n, count: int = count, prev: str = prev) -> LogCheck:
            return LogCheck(False, count, prev, n, why)

        try:
            entry = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            return broken("not a JSON object")
        if not isinstance(entry, dict):
            return broken("not a JSON object")
        try:
            if canonical(entry) != line:
                return broken("not in canonical form (edited by hand?)")
        except ValueError:
            return broken("holds a value JSON cannot carry")
        own = {k: v for k, v in entry.items() if k != "sha256"}
        if entry.get("sha256") != entry_hash(canonical(own)):
            return broken("its content does not match its own sha256 (edited)")
        if entry.get("seq") != count:
            return broken(
                f"seq is {entry.get('seq')!r}, expected {count} (an entry deleted or reordered)"
            )
        if entry.get("prev") != prev:
            return broken(
                "prev does not match the sha256 of the entry before it "
                "(that entry was edited, deleted or reordered)"
            )
        prev, count = entry_hash(line), count + 1
    return LogCheck(True, count, prev)
