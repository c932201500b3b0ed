"""The one HTTP client of the uplink: push, pull and the gate all talk to a collector through it.

urllib3 underneath (pooled keep-alive connections, TLS verified against the system's CA store by
default); on top, what every caller needs and urllib3 alone does not give in one place:

* the collector URL is checked once (http(s), no credentials, query or fragment: the token goes
  in ``Authorization: Bearer``, never in a URL that ends up in logs);
* every request is bounded: connect and read timeouts, and a cap on the response body, so a
  broken or hostile collector cannot hang a cron job or fill its memory;
* bounded retries with capped exponential backoff and full jitter, ``Retry-After`` honoured (up
  to the cap), for requests that are safe to repeat. ``push`` makes one attempt per call and
  decides itself (its success is an acknowledgement of *its* report id, which a status code
  alone cannot say), using the same :func:`backoff_delay`;
* failures become :class:`~edgeprof.errors.CollectorUnreachableError` with a one-line reason
  (the root cause, e.g. ``ConnectionRefusedError: [Errno 111] Connection refused``), never a
  urllib3 exception, and never the token.

Only the standard library and urllib3 (pure Python) are used, and urllib3 (with ssl, about 50 ms
of start-up here) only once a client is made, so ``edgeprof push --help`` never pays for it
(docs/benchmarks.md, issue 12).
"""

from __future__ import annotations

import os
import random
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgeprof.errors import CollectorUnreachableError, InputError

if TYPE_CHECKING:
    import urllib3

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_ATTEMPTS = 3
MAX_RESPONSE_BYTES = 64 * 1024
# Statuses worth another try of a repeatable request: the collector is overloaded or restarting.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_CHUNK = 64 * 1024


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


def retry_after_s(value: str | None) -> float | None:
    """A ``Retry-After`` in seconds (the delta form; an HTTP date is ignored)."""
    if value is not None and value.strip().isdigit():
        return float(value.strip())
    return None


@dataclass(frozen=True)
class Backoff:
    """When to try again: :func:`backoff_delay`, at least ``Retry-After`` (capped)."""

    base_s: float = BACKOFF_BASE_S
    cap_s: float = BACKOFF_CAP_S
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random

    def wait(self, attempt: int, retry_after: float | None = None) -> None:
        """Sleep before attempt ``attempt + 1``."""
        delay = backoff_delay(attempt, base_s=self.base_s, cap_s=self.cap_s, rand=self.rand)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cap_s))
        self.sleep(delay)


@dataclass(frozen=True)
class BaseUrl:
    """A collector's base URL, checked: scheme, host, port and path prefix (no trailing /)."""

    scheme: str
    host: str
    port: int | None
    path: str

    @classmethod
    def parse(cls, url: str) -> BaseUrl:
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
        return cls(split.scheme, split.hostname, port, split.path.rstrip("/"))

    @property
    def origin(self) -> str:
        """``scheme://host[:port]``, IPv6 hosts bracketed."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{host}{port}"

    def url(self, path: str = "") -> str:
        """The full URL of ``path`` (which starts with /) under this base; never a secret."""
        return f"{self.origin}{self.path}{path}"


def check_token(token: str) -> str:
    """A token must fit in one header line; the message never repeats the token."""
    if not token or any(c in token for c in "\r\n\0") or not token.isprintable():
        raise InputError("the collector token is empty or has control characters")
    return token


@dataclass(frozen=True)
class Response:
    """A whole answer: status, headers (case-insensitive lookup) and the bounded body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return None if value is None else str(value)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace").strip()


def _find(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first ``kind`` in an exception's wrapping (urllib3 nests the cause in args)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, kind):
            return e
        todo += [a for a in e.args if isinstance(a, BaseException)]
        todo += [c for c in (e.__cause__, e.__context__) if c is not None]
    return None


def _describe(exc: BaseException) -> tuple[str, bool]:
    """A one-line reason for a failed exchange, and whether trying again can help."""
    import ssl

    from urllib3.exceptions import (
        ConnectTimeoutError,
        NameResolutionError,
        ProtocolError,
        ReadTimeoutError,
    )

    cert = _find(exc, ssl.SSLCertVerificationError)
    if isinstance(cert, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted: {cert.verify_message}", False
    if isinstance(exc, ReadTimeoutError):
        return str(exc.args[-1] if exc.args else "read timed out"), True
    if isinstance(exc, NameResolutionError):
        return f"cannot resolve the collector's host: {exc.__cause__ or exc}", True
    if isinstance(exc, ConnectTimeoutError):  # NewConnectionError too
        cause = exc.__cause__
        if isinstance(cause, OSError) and not isinstance(cause, TimeoutError):
            return f"{type(cause).__name__}: {cause}", True
        return "connect timed out", True
    if isinstance(exc, ProtocolError) and len(exc.args) > 1:
        inner = exc.args[1]
        if isinstance(inner, BaseException):
            return f"{type(inner).__name__}: {inner}".rstrip(": "), True
    return f"{type(exc).__name__}: {exc}".rstrip(": "), True


@dataclass
class HttpClient:
    """A collector: its base URL, a bearer token, timeouts and the bounds on every exchange.

    One instance per command run; its pool keeps connections alive between requests (a pull of
    many reports does not pay a TCP and TLS handshake each).
    """

    base: BaseUrl
    token: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    connect_timeout_s: float | None = None  # default: timeout_s
    attempts: int = DEFAULT_ATTEMPTS  # for repeatable requests; see request()
    backoff: Backoff = field(default_factory=Backoff)
    ca_file: str | None = None  # a private CA for the collector; default: the system's store
    _pool: urllib3.PoolManager = field(init=False, repr=False)  # urllib3 imported on creation

    def __post_init__(self) -> None:
        import urllib3

        check_token(self.token)
        if not self.timeout_s > 0:
            raise InputError("the timeout must be positive")
        if self.attempts < 1:
            raise InputError("max attempts must be at least 1")
        timeout = urllib3.Timeout(
            connect=self.connect_timeout_s or self.timeout_s, read=self.timeout_s
        )
        self._pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=1,
            timeout=timeout,
            retries=False,  # every retry is decided here, with jitter and bounds
            cert_reqs="CERT_REQUIRED",
            ca_certs=self.ca_file,
        )

    @classmethod
    def make(
        cls,
        url: str,
        token: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff: Backoff | None = None,
    ) -> HttpClient:
        """A client for the collector at ``url`` (checked)."""
        return cls(
            BaseUrl.parse(url), token, timeout_s, attempts=attempts, backoff=backoff or Backoff()
        )

    def display(self, path: str = "") -> str:
        return self.base.url(path)

    def close(self) -> None:
        self._pool.clear()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def once(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
        *,
        limit: int = MAX_RESPONSE_BYTES,
    ) -> Response:
        """One attempt. Raises :class:`CollectorUnreachableError` when no whole answer came."""
        from urllib3.exceptions import HTTPError

        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        try:
            resp = self._pool.request(
                method,
                self.base.url(path),
                body=body,
                headers=headers,
                preload_content=False,
                redirect=False,
            )
            whole = False
            try:
                data = _read_bounded(resp, limit)
                whole = True
            finally:
                if not whole:
                    resp.close()  # unread bytes must never meet the next request
                resp.release_conn()
        except _TooLargeError as exc:
            raise CollectorUnreachableError(str(exc)) from None
        except (HTTPError, OSError) as exc:
            reason, transient = _describe(exc)
            raise CollectorUnreachableError(reason, transient=transient) from None
        return Response(resp.status, resp.headers, data)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
        *,
        limit: int = MAX_RESPONSE_BYTES,
        repeatable: bool | None = None,
    ) -> Response:
        """Up to ``attempts`` tries when the request is repeatable (GET by default).

        Retried: no answer (unless the cause is permanent, like a refused certificate) and the
        statuses in :data:`RETRY_STATUSES`; the last answer or error is what the caller gets.
        """
        if repeatable is None:
            repeatable = method in ("GET", "HEAD")
        tries = self.attempts if repeatable else 1
        for attempt in range(tries):
            last = attempt + 1 == tries
            try:
                resp = self.once(method, path, body, content_type, limit=limit)
            except CollectorUnreachableError as exc:
                if last or not exc.transient:
                    raise
                self.backoff.wait(attempt)
                continue
            if last or resp.status not in RETRY_STATUSES:
                return resp
            self.backoff.wait(attempt, retry_after_s(resp.header("Retry-After")))
        raise AssertionError("unreachable")  # pragma: no cover


class _TooLargeError(Exception):
    pass


def _read_bounded(resp: urllib3.BaseHTTPResponse, limit: int) -> bytes:
    """The body, or :class:`_TooLargeError` past ``limit`` bytes (checked before reading on)."""
    length = resp.headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _TooLargeError(f"the collector's answer is {length} bytes, more than {limit}")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = resp.read(min(_CHUNK, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise _TooLargeError(f"the collector's answer is more than {limit} bytes")


ENV_TOKEN = "EDGEPROF_TOKEN"


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
