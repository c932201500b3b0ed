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
* not a report (garbage, a file that fails to decode) -> ``<store>/corrupt/`` with a reason;
* hidden files (``write_atomic``'s ``.*.tmp`` temp files, the lock) and anything not named
  ``*.msgpack`` are never touched.

Transient failures (5xx, 408, 429, timeouts, refused/reset connections, a connection closed
before the answer) are retried with capped exponential backoff and full jitter; once one
report has used up its attempts the run stops, since the next reports would meet the same dead
collector. Every socket operation is bounded by ``timeout_s``.

Concurrency: ``fcntl.flock`` on ``<store>/.push.lock``, non-blocking by default (or polled for
at most ``lock_wait_s``). A second push raises :class:`PushBusyError` instead of waiting
behind the first, so overlapping cron runs end promptly; the lock dies with its process, so a
killed push never leaves a stale lock. The lock file is never deleted (deleting lock files
races with the next locker).
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import random
import ssl
import stat
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from edgeprof.atomic import fsync_dir, write_atomic
from edgeprof.errors import EdgeprofError, InputError
from edgeprof.report.codec import decode

ENV_TOKEN = "EDGEPROF_TOKEN"
REPORTS_PATH = "/v1/reports"
SENT_DIR = "sent"
REJECTED_DIR = "rejected"
CORRUPT_DIR = "corrupt"
LOCK_NAME = ".push.lock"
REASON_SUFFIX = ".reason.txt"
REPORT_SUFFIX = ".msgpack"

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_TIMEOUT_S = 10.0
MAX_REPORT_BYTES = 64 * 1024 * 1024
MAX_RESPONSE_BYTES = 64 * 1024
_LOCK_POLL_S = 0.05


class PushBusyError(EdgeprofError):
    """Another push holds the spool lock; this one did nothing."""


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


def backoff_delay(
    attempt: int,
    *,
    base_s: float = BACKOFF_BASE_S,
    cap_s: float = BACKOFF_CAP_S,
    rand: Callable[[], float] = random.random,
) -> float:
    """Full jitter: uniform in ``[0, min(cap, base * 2**attempt)]`` (attempt counts from 0).

    Full jitter spreads a fleet of devices that all lost the collector at once, instead of
    having them retry in lock-step.
    """
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt, 60))
    return ceiling * rand()


def resolve_token(token: str | None, token_file: Path | None) -> str:
    """``--token``, else ``--token-file``, else ``$EDGEPROF_TOKEN``; both flags is an error."""
    if token is not None and token_file is not None:
        raise InputError("give --token or --token-file, not both")
    if token is None and token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read the token file {token_file}: {exc}") from None
    if token is None:
        token = os.environ.get(ENV_TOKEN)
    if not token:
        raise InputError(f"no collector token: use --token, --token-file or ${ENV_TOKEN}")
    return check_token(token)


def check_token(token: str) -> str:
    """A token must fit in one header line; the message never repeats the token."""
    if not token or any(c in token for c in "\r\n\0") or not token.isprintable():
        raise InputError("the collector token is empty or has control characters")
    return token


@dataclass(frozen=True)
class Endpoint:
    """Where reports go: scheme, host, port and the full ``.../v1/reports`` path."""

    scheme: str
    host: str
    port: int | None
    path: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """Only plain http(s) URLs without credentials, query or fragment."""
        try:
            split = urllib.parse.urlsplit(url)
            port = split.port
        except ValueError as exc:
            raise InputError(f"bad collector URL: {exc}") from None
        if split.scheme not in ("http", "https") or not split.hostname:
            raise InputError(f"the collector URL must be http(s)://host[:port][/path]: {url!r}")
        if split.username is not None or split.password is not None:
            raise InputError("put the token in --token/--token-file, not in the collector URL")
        if split.query or split.fragment:
            raise InputError("the collector URL must not have a query or fragment")
        return cls(split.scheme, split.hostname, port, split.path.rstrip("/") + REPORTS_PATH)

    def display(self) -> str:
        """The URL for messages (it never holds a secret: see :meth:`parse`)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{host}{port}{self.path}"

    def connection(self, timeout_s: float) -> http.client.HTTPConnection:
        """A fresh connection whose connect and every read/write are bounded by timeout_s."""
        if self.scheme == "https":
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout_s, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)


def send_once(
    endpoint: Endpoint, token: str, data: bytes, report_id: str, timeout_s: float
) -> _Outcome:
    """One POST on its own connection; classifies the answer (or the lack of one)."""
    conn = endpoint.connection(timeout_s)
    try:
        conn.request(
            "POST",
            endpoint.path,
            body=data,
            headers={
                "Content-Type": "application/msgpack",
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
            },
        )
        resp = conn.getresponse()
        status = resp.status
        retry_after = resp.getheader("Retry-After")
        body = resp.read(MAX_RESPONSE_BYTES)
    except ssl.SSLCertVerificationError as exc:
        return _Outcome(_Kind.FAILED, f"TLS certificate not accepted: {exc.verify_message}")
    except (OSError, http.client.HTTPException) as exc:
        return _Outcome(_Kind.RETRY, f"{type(exc).__name__}: {exc}".rstrip(": "))
    finally:
        conn.close()
    return _classify(status, body, report_id, retry_after)


def _classify(status: int, body: bytes, report_id: str, retry_after: str | None) -> _Outcome:
    text = body.decode("utf-8", "replace").strip()
    if status in (200, 201):
        try:
            acked = json.loads(text).get("id")
        except (ValueError, AttributeError):
            acked = None
        if acked != report_id:
            # Not an acknowledgement of this report: keep it and try again.
            return _Outcome(_Kind.RETRY, f"HTTP {status} did not acknowledge id {report_id}")
        kind = _Kind.ACKED if status == 201 else _Kind.DUPLICATE
        return _Outcome(kind, f"HTTP {status}")
    if status in (408, 429) or 500 <= status <= 599:
        after: float | None = None
        if retry_after is not None and retry_after.strip().isdigit():
            after = float(retry_after.strip())
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
    endpoint: Endpoint,
    token: str,
    data: bytes,
    report_id: str,
    *,
    max_attempts: int,
    timeout_s: float,
    sleep: Callable[[float], None],
    base_s: float,
    cap_s: float,
    rand: Callable[[], float],
) -> _Outcome:
    outcome = _Outcome(_Kind.FAILED, "not attempted")
    for attempt in range(max_attempts):
        outcome = send_once(endpoint, token, data, report_id, timeout_s)
        if outcome.kind is not _Kind.RETRY:
            return outcome
        if attempt + 1 < max_attempts:
            delay = backoff_delay(attempt, base_s=base_s, cap_s=cap_s, rand=rand)
            if outcome.retry_after_s is not None:
                delay = max(delay, min(outcome.retry_after_s, cap_s))
            sleep(delay)
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


class _CorruptError(Exception):
    """A spooled file that is not a report; the message is the reason."""


def _load(path: Path) -> tuple[bytes, str] | None:
    """The bytes and report id; None if the file vanished; :class:`_CorruptError` if no report."""
    try:
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode):
            return None
        if st.st_size > MAX_REPORT_BYTES:
            raise _CorruptError(f"{st.st_size} bytes, larger than {MAX_REPORT_BYTES}")
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        report = decode(data, path.name)
    except InputError as exc:
        raise _CorruptError(str(exc)) from None
    report_id = report.get("report_id")
    if not isinstance(report_id, str) or not report_id:
        raise _CorruptError(f"{path.name}: the report has no report_id")
    return data, report_id


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
    if not timeout_s > 0:
        raise InputError("the timeout must be positive")
    endpoint = Endpoint.parse(url)
    check_token(token)
    if not store.is_dir():
        return PushResult()
    counts = {k: 0 for k in ("sent", "duplicates", "rejected", "failed", "corrupt")}
    error: str | None = None
    with push_lock(store, lock_wait_s):
        for path in spooled(store):
            try:
                loaded = _load(path)
            except _CorruptError as exc:
                _move_into(path, CORRUPT_DIR, str(exc))
                counts["corrupt"] += 1
                continue
            if loaded is None:
                continue
            data, report_id = loaded
            outcome = _deliver(
                endpoint,
                token,
                data,
                report_id,
                max_attempts=max_attempts,
                timeout_s=timeout_s,
                sleep=sleep,
                base_s=base_s,
                cap_s=cap_s,
                rand=rand,
            )
            if outcome.kind is _Kind.ACKED:
                _move_into(path, SENT_DIR)
                counts["sent"] += 1
            elif outcome.kind is _Kind.DUPLICATE:
                _move_into(path, SENT_DIR)
                counts["duplicates"] += 1
            elif outcome.kind is _Kind.REJECTED:
                _move_into(path, REJECTED_DIR, f"{report_id}: {outcome.detail}")
                counts["rejected"] += 1
            else:
                counts["failed"] += 1
                error = f"{endpoint.display()}: {outcome.detail}"
                break
        remaining = len(spooled(store))
    return PushResult(remaining=remaining, error=error, **counts)
