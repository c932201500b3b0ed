"""Uplink: deliver the spooled reports to a collector over HTTP(S) without ever losing one.

The spool is the report store itself: ``<store>/<report_id>.msgpack`` files written atomically by
:func:`edgeprof.report.store.save_report`. ``push`` sends each one as ``POST {url}/v1/reports``
(``Content-Type: application/msgpack``, ``Authorization: Bearer <token>``) and takes it out of
the spool only once the collector has acknowledged *its* id (``201`` stored or ``200``
duplicate, JSON body ``{"id": "<report_id>"}``). Delivery is at-least-once on the wire and
exactly-once upstream because the collector de-duplicates by report id: a push killed between
"collector stored it" and "moved it out of the spool" simply re-sends it next time and gets 200.

Where files go (all moves are ``rename`` within one file system, then ``fsync`` of the
directories, so a file is in exactly one place even across a power cut):

* acknowledged -> ``<store>/sent/`` (moved, not deleted: a local record of what went upstream
  that an operator can prune; deleting would leave nothing to check a collector's claim
  against);
* 4xx other than 401/403/408/429 -> ``<store>/rejected/`` with ``<name>.reason.txt`` beside it
  holding the status and the collector's message; never retried automatically (move it back);
* 401/403 (a wrong or revoked token) -> the run stops and every report stays in the spool: it
  is the device's configuration that is wrong, not the reports;
* not a report (garbage, a truncated file, not an edgeprof report, an unknown major version:
  :mod:`edgeprof.report.envelope`) -> ``<store>/corrupt/`` with a reason;
* hidden files (``write_atomic``'s ``.*.tmp`` temp files, the lock) and anything not named
  ``*.msgpack`` are never touched.

Transient failures (5xx, 408, 429, timeouts, refused/reset connections, a connection closed
before the answer) are retried with capped exponential backoff and full jitter; once one
report has used up its attempts the run stops, since the next reports would meet the same dead
collector. Every socket operation is bounded by ``timeout_s`` (:mod:`edgeprof.uplink.http`, the
client push, pull and the gate share).

Concurrency: ``fcntl.flock`` on ``<store>/.push.lock``, non-blocking by default (or polled for
at most ``lock_wait_s``). A second push raises :class:`PushBusyError` instead of waiting
behind the first, so overlapping cron runs end promptly; the lock dies with its process, so a
killed push never leaves a stale lock. The lock file is never deleted (deleting lock files
races with the next locker).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from edgeprof.atomic import fsync_dir, write_atomic
from edgeprof.errors import CollectorUnreachableError, InputError, PushBusyError
from edgeprof.report.envelope import report_id
from edgeprof.uplink.http import (
    BACKOFF_BASE_S,
    BACKOFF_CAP_S,
    DEFAULT_TIMEOUT_S,
    MAX_RESPONSE_BYTES,
    Backoff,
    HttpClient,
    Response,
    retry_after_s,
)

REPORTS_PATH = "/v1/reports"
SENT_DIR = "sent"
REJECTED_DIR = "rejected"
CORRUPT_DIR = "corrupt"
LOCK_NAME = ".push.lock"
REASON_SUFFIX = ".reason.txt"
REPORT_SUFFIX = ".msgpack"

DEFAULT_MAX_ATTEMPTS = 5
MAX_REPORT_BYTES = 64 * 1024 * 1024
_LOCK_POLL_S = 0.05


@dataclass(frozen=True)
class PushResult:
    """What one push did. ``remaining`` counts the reports still in the spool afterwards."""

    sent: int = 0
    duplicates: int = 0
    rejected: int = 0
    failed: int = 0
    remaining: int = 0
    corrupt: int = 0
    error: str | None = None

    @property
    def delivered_all(self) -> bool:
        """True when nothing is left behind, rejected or set aside as corrupt."""
        return not (self.remaining or self.rejected or self.failed or self.corrupt)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with ``ok`` for scripts."""
        return {**asdict(self), "ok": self.delivered_all}


class _Kind(Enum):
    ACKED = "acked"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True)
class _Outcome:
    kind: _Kind
    detail: str
    retry_after_s: float | None = None


def send_once(client: HttpClient, data: bytes, rid: str) -> _Outcome:
    """One POST; classifies the answer (or the lack of one)."""
    try:
        resp = client.once(
            "POST", REPORTS_PATH, data, "application/msgpack", limit=MAX_RESPONSE_BYTES
        )
    except CollectorUnreachableError as exc:
        return _Outcome(_Kind.RETRY if exc.transient else _Kind.FAILED, str(exc))
    return _classify(resp, rid)


def _classify(resp: Response, rid: str) -> _Outcome:
    status, text = resp.status, resp.text
    if status in (200, 201):
        try:
            acked = json.loads(text).get("id")
        except (ValueError, AttributeError):
            acked = None
        if acked != rid:
            # Not an acknowledgement of this report: keep it and try again.
            return _Outcome(_Kind.RETRY, f"HTTP {status} did not acknowledge id {rid}")
        kind = _Kind.ACKED if status == 201 else _Kind.DUPLICATE
        return _Outcome(kind, f"HTTP {status}")
    if status in (408, 429) or 500 <= status <= 599:
        after = retry_after_s(resp.header("Retry-After"))
        return _Outcome(_Kind.RETRY, f"HTTP {status} {text[:200]}".strip(), after)
    if status in (401, 403):
        # A wrong or revoked token is the device's configuration, not the report's fault:
        # stop the run and keep every report, instead of filing the whole spool as rejected.
        return _Outcome(
            _Kind.FAILED,
            f"the collector refused the token (HTTP {status}): check --token/--token-file; "
            "the reports stay in the spool",
        )
    if 400 <= status <= 499:
        return _Outcome(_Kind.REJECTED, f"HTTP {status}\n{text}")
    return _Outcome(_Kind.FAILED, f"unexpected HTTP {status} from the collector")


def _deliver(
    client: HttpClient, data: bytes, rid: str, *, max_attempts: int, backoff: Backoff
) -> _Outcome:
    outcome = _Outcome(_Kind.FAILED, "not attempted")
    for attempt in range(max_attempts):
        outcome = send_once(client, data, rid)
        if outcome.kind is not _Kind.RETRY:
            return outcome
        if attempt + 1 < max_attempts:
            backoff.wait(attempt, outcome.retry_after_s)
    return outcome


def _move_into(path: Path, subdir: str, reason: str | None = None) -> Path:
    """Rename into ``<store>/<subdir>/`` (the reason file first, so it is never missing)."""
    target_dir = path.parent / subdir
    target_dir.mkdir(exist_ok=True)
    if reason is not None:
        write_atomic(target_dir / f"{path.name}{REASON_SUFFIX}", reason.encode() + b"\n")
    target = target_dir / path.name
    os.replace(path, target)
    fsync_dir(target_dir)
    fsync_dir(path.parent)
    return target


def spooled(store: Path) -> list[Path]:
    """The candidate reports, oldest id first (uuid7 ids sort by time). Hidden files excluded."""
    try:
        entries = list(os.scandir(store))
    except FileNotFoundError:
        return []
    return sorted(
        Path(e.path)
        for e in entries
        if not e.name.startswith(".")
        and e.name.endswith(REPORT_SUFFIX)
        and e.is_file(follow_symlinks=False)
    )


def _load(path: Path) -> tuple[bytes, str] | None:
    """The bytes and report id; None if the file vanished; :class:`InputError` if no report."""
    try:
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode):
            return None
        if st.st_size > MAX_REPORT_BYTES:
            raise InputError(f"{st.st_size} bytes, larger than {MAX_REPORT_BYTES}")
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return data, report_id(data, path.name)


@contextlib.contextmanager
def push_lock(store: Path, wait_s: float = 0.0) -> Iterator[None]:
    """Hold ``<store>/.push.lock`` (flock) or raise :class:`PushBusyError` after wait_s."""
    lock_path = store / LOCK_NAME
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise PushBusyError(
                        f"another push is running (lock {lock_path}); nothing done"
                    ) from None
                time.sleep(_LOCK_POLL_S)
        yield
    finally:
        os.close(fd)


def push(
    store: Path,
    url: str,
    token: str,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    sleep: Callable[[float], None] = time.sleep,
    lock_wait_s: float = 0.0,
    base_s: float = BACKOFF_BASE_S,
    cap_s: float = BACKOFF_CAP_S,
    rand: Callable[[], float] = random.random,
) -> PushResult:
    """Send every spooled report in ``store`` to the collector at ``url``; see the module doc.

    Raises :class:`InputError` for bad arguments and :class:`PushBusyError` when another push
    holds the lock; delivery problems are reported in the result, never raised.
    """
    if max_attempts < 1:
        raise InputError("max attempts must be at least 1")
    backoff = Backoff(base_s, cap_s, sleep, rand)
    with HttpClient.make(url, token, timeout_s=timeout_s, attempts=1) as client:
        if not store.is_dir():
            return PushResult()
        counts = {k: 0 for k in ("sent", "duplicates", "rejected", "failed", "corrupt")}
        error: str | None = None
        with push_lock(store, lock_wait_s):
            for path in spooled(store):
                try:
                    loaded = _load(path)
                except InputError as exc:
                    _move_into(path, CORRUPT_DIR, str(exc))
                    counts["corrupt"] += 1
                    continue
                if loaded is None:
                    continue
                data, rid = loaded
                outcome = _deliver(client, data, rid, max_attempts=max_attempts, backoff=backoff)
                if outcome.kind is _Kind.ACKED:
                    _move_into(path, SENT_DIR)
                    counts["sent"] += 1
                elif outcome.kind is _Kind.DUPLICATE:
                    _move_into(path, SENT_DIR)
                    counts["duplicates"] += 1
                elif outcome.kind is _Kind.REJECTED:
                    _move_into(path, REJECTED_DIR, f"{rid}: {outcome.detail}")
                    counts["rejected"] += 1
                else:
                    counts["failed"] += 1
                    error = f"{client.display(REPORTS_PATH)}: {outcome.detail}"
                    break
            remaining = len(spooled(store))
    return PushResult(remaining=remaining, error=error, **counts)
