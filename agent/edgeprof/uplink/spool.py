"""Uplink: deliver the spooled reports to a collector over HTTP(S) without ever losing one.

The spool is the report store itself: ``<store>/<report_id>.msgpack`` files written atomically by
:func:`edgeprof.report.store.save_report`. ``push`` sends each one as ``POST {url}/v1/reports``
(``Content-Type: application/msgpack``, ``Authorization: Bearer <token>``) and takes it out of
the spool only once the collector has acknowledged *its* id (``201`` stored or ``200``
duplicate, JSON body ``{"id": "<report_id>"}``). Delivery is at-least-once on the wire and
exactly-once upstream because the collector de-duplicates by report id: a push killed between
"collector stored it" and "moved it out of the spool" simply re-sends it next time and gets 200.

Where files go (all moves are ``rename`` within the store's file system, then ``fsync`` of the
directories, so a file is in exactly one place even across a power cut; every operation is
relative to the store opened once and follows no symlink, :mod:`edgeprof.uplink.spooldir`):

* acknowledged -> ``<store>/sent/`` (moved, not deleted: a local record of what went upstream
  that an operator can prune; deleting would leave nothing to check a collector's claim
  against);
* a definitive refusal of the report itself (400, 409, 413, 415, 422: sending the same bytes
  again gets the same answer) -> ``<store>/rejected/`` with ``<name>.reason.txt`` beside it
  holding the status and the collector's message (the first one also on the console); never
  retried automatically (move it back);
* every other answer (401/403 a wrong or revoked token; 404, 405, 410 a wrong ``--url`` path or
  a proxy; a 3xx redirect, never followed; anything else unexpected) and a refused TLS
  certificate -> the run stops with the reason, exit 2, and every report stays in the spool:
  it is the device's configuration that is wrong, not the reports;
* not a report (garbage, a truncated file, not an edgeprof report, an unknown major version:
  :mod:`edgeprof.report.envelope`) -> ``<store>/corrupt/`` with a reason;
* hidden files (``write_atomic``'s ``.*.tmp`` temp files, the lock), symlinks and anything not
  named ``*.msgpack`` are never touched.

The file system: a store push could not move reports out of (read-only, not writable, a
symlinked lock or ``sent/``/``rejected/``/``corrupt/``, one of them on another mount) is refused
before anything is sent (:class:`~edgeprof.uplink.spooldir.StoreError`, one line). Once sending
has begun, a reason file that cannot be written (a full disk) leaves its report in the spool
and the run goes on with the next ones (the reason is written before the move, so a set-aside
report always has its reason); a report that cannot be moved into ``sent/`` after its
acknowledgement stops the run and stays in the spool (re-sent next time, answered 200). Either
way the result is ``fatal`` (exit 2) and no report is lost.

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

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from edgeprof.errors import CollectorUnreachableError, InputError
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
from edgeprof.uplink.spooldir import SpoolDir, StoreError

REPORTS_PATH = "/v1/reports"
SENT_DIR = "sent"
REJECTED_DIR = "rejected"
CORRUPT_DIR = "corrupt"
LOCK_NAME = ".push.lock"
REASON_SUFFIX = ".reason.txt"
REPORT_SUFFIX = ".msgpack"

DEFAULT_MAX_ATTEMPTS = 5
MAX_REPORT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class PushResult:
    """What one push did. ``remaining`` counts the reports still in the spool afterwards.

    ``error`` is the first thing that went wrong; ``fatal`` says trying again later will not
    fix it (a wrong URL or token, a redirect, a refused certificate, a local file-system
    failure: exit 2) as opposed to a collector that did not answer in time (exit 1).
    ``rejection`` is the first refusal's reason, for the console (all are in ``rejected/``).
    """

    sent: int = 0
    duplicates: int = 0
    rejected: int = 0
    failed: int = 0
    remaining: int = 0
    corrupt: int = 0
    error: str | None = None
    fatal: bool = False
    rejection: str | None = None

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
    RETRY = "retry"  # worth another try; after the last one the run stops (exit 1)
    STOP = "stop"  # trying again will not help: the run stops (exit 2)


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
        return _Outcome(_Kind.RETRY if exc.transient else _Kind.STOP, str(exc))
    return _classify(resp, rid)


# Definitive refusals of the report itself: resending the same bytes gets the same answer.
REJECT_STATUSES = frozenset({400, 409, 413, 415, 422})
_ONE_LINE = 200


def one_line(text: str, limit: int = _ONE_LINE) -> str:
    """A peer's text on one line, bounded (a collector or a proxy chooses it, not us)."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _classify(resp: Response, rid: str) -> _Outcome:
    status, text = resp.status, one_line(resp.text)
    if status in (200, 201):
        try:
            acked = json.loads(resp.text).get("id")
        except (ValueError, AttributeError):
            acked = None
        if acked != rid:
            # Not an acknowledgement of this report: keep it and try again.
            return _Outcome(_Kind.RETRY, f"HTTP {status} did not acknowledge id {rid}")
        kind = _Kind.ACKED if status == 201 else _Kind.DUPLICATE
        return _Outcome(kind, f"HTTP {status}")
    if status in (408, 429) or 500 <= status <= 599:
        after = retry_after_s(resp.header("Retry-After"))
        return _Outcome(_Kind.RETRY, f"HTTP {status} {text}".strip(), after)
    if status in REJECT_STATUSES:
        return _Outcome(_Kind.REJECTED, f"HTTP {status} {text}".strip())
    # Everything else says the device is talking to the wrong place or with the wrong token, not
    # that this report is bad: stop and keep the whole spool, instead of filing it as rejected.
    if status == 401:
        why = "the collector refused the token: check --token/--token-file"
    elif status == 403:
        why = "the collector refused this token or device: check --token/--token-file and enrolment"
    elif 300 <= status <= 399:
        location = one_line(resp.header("Location") or "", 120) or "nowhere"
        why = f"the collector redirects to {location}: give the final URL as --url"
    elif status in (404, 405, 410):
        why = "no report endpoint at this URL: check the --url path (or a proxy in between)"
    else:
        why = "an answer push does not understand"
    said = f"; it said: {text}" if text else ""
    detail = f"HTTP {status}: {why}{said}; the reports stay in the spool"
    return _Outcome(_Kind.STOP, detail)


def _deliver(
    client: HttpClient, data: bytes, rid: str, *, max_attempts: int, backoff: Backoff
) -> _Outcome:
    outcome = _Outcome(_Kind.RETRY, "not attempted")
    for attempt in range(max_attempts):
        outcome = send_once(client, data, rid)
        if outcome.kind is not _Kind.RETRY:
            return outcome
        if attempt + 1 < max_attempts:
            backoff.wait(attempt, outcome.retry_after_s)
    return outcome


def spooled(store: Path) -> list[Path]:
    """The candidate reports, oldest id first (uuid7 ids sort by time). Hidden files, symlinks
    and anything not named ``*.msgpack`` excluded."""
    spool = SpoolDir.open(store)
    if spool is None:
        return []
    with spool:
        return [store / name for name in spool.names(REPORT_SUFFIX)]


class _Run:
    """One push over an open, locked spool: counts, the first error, and where files go."""

    def __init__(self, spool: SpoolDir) -> None:
        self.spool = spool
        self.counts = {k: 0 for k in ("sent", "duplicates", "rejected", "failed", "corrupt")}
        self.error: str | None = None
        self.fatal = False
        self.rejection: str | None = None

    def fail(self, message: str, *, fatal: bool) -> None:
        """Keep the first error (the one that explains the rest), on one line: it can carry a
        file name or a report id, which whoever wrote the spool chose."""
        if self.error is None:
            self.error = one_line(message, _ONE_LINE * 4)
        self.fatal = self.fatal or fatal

    def file(self, name: str, subdir: str, reason: str) -> bool:
        """Set a report aside with its reason; False (and it stays in the spool) if that fails.

        The reason is written first, then the report moved: a report in ``rejected/`` or
        ``corrupt/`` always has its reason beside it. When the reason cannot be written (a full
        disk) the report stays where it was, so nothing is lost and the next push, with space
        again, files it properly; the reports after it are still sent.
        """
        try:
            self.spool.write_reason(subdir, f"{name}{REASON_SUFFIX}", reason)
            self.spool.move(name, subdir)
        except OSError as exc:
            why = exc.strerror or str(exc)
            self.fail(
                f"cannot file {name} under {self.spool.where(subdir)}: {why}; it stays in the "
                "spool",
                fatal=True,
            )
            return False
        except StoreError as exc:
            self.fail(f"{exc}; {name} stays in the spool", fatal=True)
            return False
        return True

    def acknowledged(self, name: str) -> bool:
        """Move an acknowledged report to ``sent/``; False (stop the run) if that fails."""
        try:
            self.spool.move(name, SENT_DIR)
        except OSError as exc:
            self.fail(
                f"cannot move {name} into {self.spool.where(SENT_DIR)}: "
                f"{exc.strerror or exc}; it is stored upstream and stays in the spool (the next "
                "push finds it there)",
                fatal=True,
            )
            return False
        return True

    def result(self) -> PushResult:
        remaining = len(self.spool.names(REPORT_SUFFIX))
        return PushResult(
            remaining=remaining,
            error=self.error,
            fatal=self.fatal,
            rejection=self.rejection,
            **self.counts,
        )


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

    Raises :class:`InputError` for bad arguments, :class:`StoreError` when the store cannot be
    used (before anything is sent) and :class:`PushBusyError` when another push holds the lock;
    what happens once sending has begun is reported in the result, never raised.
    """
    if max_attempts < 1:
        raise InputError("max attempts must be at least 1")
    backoff = Backoff(base_s, cap_s, sleep, rand)
    with HttpClient.make(url, token, timeout_s=timeout_s, attempts=1) as client:
        spool = SpoolDir.open(store)
        if spool is None:
            return PushResult()
        with spool, spool.lock(LOCK_NAME, lock_wait_s):
            names = spool.names(REPORT_SUFFIX)
            if names:
                _preflight(spool)
            run = _Run(spool)
            for name in names:
                if not _push_one(run, client, name, max_attempts, backoff):
                    break
            return run.result()


def _preflight(spool: SpoolDir) -> None:
    """Refuse, before sending anything, a store whose reports could not be moved afterwards."""
    spool.writable()
    for subdir in (SENT_DIR, REJECTED_DIR, CORRUPT_DIR):
        spool.check(subdir)
    spool.subdir(SENT_DIR)


def _push_one(run: _Run, client: HttpClient, name: str, attempts: int, backoff: Backoff) -> bool:
    """Deliver and file one report; False when the run must stop."""
    try:
        data = run.spool.read(name, MAX_REPORT_BYTES)
        if data is None:
            return True  # gone (another push took it), or not a regular file: not ours
        rid = report_id(data, name)
    except StoreError as exc:
        run.fail(str(exc), fatal=True)
        return False
    except InputError as exc:
        if run.file(name, CORRUPT_DIR, str(exc)):
            run.counts["corrupt"] += 1
        return True
    outcome = _deliver(client, data, rid, max_attempts=attempts, backoff=backoff)
    if outcome.kind in (_Kind.ACKED, _Kind.DUPLICATE):
        if not run.acknowledged(name):
            return False
        run.counts["sent" if outcome.kind is _Kind.ACKED else "duplicates"] += 1
    elif outcome.kind is _Kind.REJECTED:
        if run.rejection is None:
            run.rejection = one_line(f"{rid}: {outcome.detail}", _ONE_LINE * 2)
        if run.file(name, REJECTED_DIR, f"{rid}: {outcome.detail}"):
            run.counts["rejected"] += 1
    else:
        run.counts["failed"] += 1
        run.fail(
            f"{client.display(REPORTS_PATH)}: {outcome.detail}", fatal=outcome.kind is _Kind.STOP
        )
        return False
    return True
