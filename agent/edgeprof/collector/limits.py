"""Connection limits of ``edgeprof serve``: read deadlines, a per-client cap, a total cap.

uvicorn times out only idle keep-alive connections: a client that connects and never finishes
its request headers, or trickles its body a byte at a time, holds a connection (and a slot of
uvicorn's ``limit_concurrency``) for as long as it likes, so 2,000 such connections deny
service to everyone. :func:`guarded_protocol` makes an h11 protocol class that adds:

- a **header deadline**: a request's headers must be complete within ``header_timeout_s`` of
  the connection opening (or of the first byte of a later request on a kept-alive connection);
- a **body deadline**: once the headers are in, each ``body_timeout_s`` window must bring at
  least ``body_min_rate`` bytes per second of body, or the rest of it (windows in which the
  server itself stopped reading, because the app had not taken the bytes yet, do not count);
- a **per-client cap**: at most ``max_connections_per_client`` open connections per peer
  address (0: no cap, for a collector behind a reverse proxy, where every peer is the proxy);
- a **total cap** of ``max_connections``: at the cap, a new connection evicts the one that has
  waited longest for its request headers (idle keep-alive ones included), so half-open
  connections cannot keep out a client that sends its request at once; failing that, the
  slowest body that has been under way for a second and is below ``body_min_rate`` (so a
  crowd of tricklers goes before its deadlines); only when every open connection is busy
  with a request at an honest pace is the new one refused.

Deadlines close the connection with ``408``, refusals with ``503`` (``Retry-After``), written
straight to the socket because no request may have been parsed yet. A connection evicted
while idle is closed without an answer, as uvicorn closes an idle keep-alive connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from edgeprof.errors import InputError

log = logging.getLogger("edgeprof.collector")

_PHRASES = {408: "Request Timeout", 503: "Service Unavailable"}
_WARN_EVERY_S = 10.0


@dataclass(frozen=True)
class Limits:
    """What one collector process allows its clients (``edgeprof serve`` options)."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 20.0
    body_min_rate: int = 1024
    max_connections: int = 2048
    max_connections_per_client: int = 64

    def __post_init__(self) -> None:
        if not self.header_timeout_s > 0:
            raise InputError("--header-timeout-s: more than 0 seconds")
        if not self.body_timeout_s > 0:
            raise InputError("--body-timeout-s: more than 0 seconds")
        if self.body_min_rate < 1:
            raise InputError("--body-min-rate: at least 1 byte per second")
        if self.max_connections < 1:
            raise InputError("--max-connections: at least 1")
        if self.max_connections_per_client < 0:
            raise InputError("--max-connections-per-client: 0 (no cap) or more")


class _Registry:
    """The open connections of one server: per peer, in all, and those awaiting headers."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.per_client: dict[str, int] = {}
        self.open = 0
        # Connections with no complete request in this cycle, oldest first (dicts keep order).
        self.waiting: dict[GuardedH11Protocol, None] = {}
        self.bodies: set[GuardedH11Protocol] = set()  # connections receiving a body
        self.refused = 0
        self.evicted = 0
        self._warned = 0.0

    def admit(self, conn: GuardedH11Protocol) -> str | None:
        """Count ``conn`` in, evicting if at the total cap; the refusal's reason otherwise."""
        cap = self.limits.max_connections_per_client
        if cap and self.per_client.get(conn.peer, 0) >= cap:
            self._note_refusal(conn.peer)
            return f"too many connections from {conn.peer} (the limit is {cap}); retry later"
        if self.open >= self.limits.max_connections:
            victim = next(iter(self.waiting), None)
            if victim is not None:
                victim.evict()
            else:
                slow = self._slowest_body()
                if slow is None:
                    self._note_refusal(conn.peer)
                    return "the collector is at its connection limit; retry later"
                slow.evict_slow_body()
            self.evicted += 1
        self.per_client[conn.peer] = self.per_client.get(conn.peer, 0) + 1
        self.open += 1
        return None

    def _slowest_body(self) -> GuardedH11Protocol | None:
        """The slowest body below the minimum rate after a second's grace, if any."""
        slowest, lowest = None, float(self.limits.body_min_rate)
        for conn in self.bodies:
            rate = conn.body_rate()
            if rate is not None and rate < lowest:
                slowest, lowest = conn, rate
        return slowest

    def release(self, conn: GuardedH11Protocol) -> None:
        """Count ``conn`` out (once)."""
        self.waiting.pop(conn, None)
        self.bodies.discard(conn)
        left = self.per_client.get(conn.peer, 0) - 1
        if left > 0:
            self.per_client[conn.peer] = left
        else:
            self.per_client.pop(conn.peer, None)
        self.open -= 1

    def _note_refusal(self, peer: str) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._warned >= _WARN_EVERY_S:  # one line per burst, not one per connection
            self._warned = now
            log.warning(
                "connection limits: %d refused and %d evicted so far (latest refused: %s)",
                self.refused,
                self.evicted,
                peer,
            )


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the deadlines and caps of a :class:`_Registry`.

    The state comes from h11's view of the client: ``IDLE`` (no complete request headers in
    this cycle), ``SEND_BODY`` (a body under way), anything else (a request being answered).
    """

    registry: ClassVar[_Registry]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.peer = ""
        self._counted = False
        self._phase: str | None = None  # "headers" or "body" while a deadline runs
        self._deadline: asyncio.TimerHandle | None = None
        self._window_bytes = 0
        self._request_bytes = False  # a byte of the next request has arrived
        self._body_since = 0.0  # loop time the current body began
        self._body_bytes = 0  # bytes received since then

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.peer = self.client[0] if self.client else ""
        refusal = self.registry.admit(self)
        if refusal is not None:
            self._close(503, refusal)
            return
        self._counted = True
        self.registry.waiting[self] = None
        self._arm("headers", self.registry.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._request_bytes = True
            if self._phase is None:  # the first byte of a request on a kept-alive connection
                self._arm("headers", self.registry.limits.header_timeout_s)
        self._window_bytes += len(data)
        self._body_bytes += len(data)
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    # -- the deadlines -------------------------------------------------------------------

    def _follow(self) -> None:
        """Move the deadline along with h11's state of the client's side."""
        if not self._counted or self.transport.is_closing():
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            if self._phase == "body":
                self._disarm()
            self.registry.waiting.setdefault(self, None)
            return
        self.registry.waiting.pop(self, None)
        self._request_bytes = False
        if state is h11.SEND_BODY:
            if self._phase != "body":
                self._arm("body", self.registry.limits.body_timeout_s)
                self._body_since, self._body_bytes = self.loop.time(), 0
                self.registry.bodies.add(self)
            return
        self.registry.bodies.discard(self)
        if self._phase is not None:
            self._disarm()

    def _arm(self, phase: str, seconds: float) -> None:
        self._disarm()
        self._phase = phase
        self._window_bytes = 0
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._phase = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        limits = self.registry.limits
        state = self.conn.their_state
        if self._phase == "headers" and state is h11.IDLE:
            self._close(408, f"request headers not complete within {limits.header_timeout_s:g} s")
        elif self._phase == "body" and state is h11.SEND_BODY:
            needed = limits.body_min_rate * limits.body_timeout_s
            waiting_on_us = self.flow.read_paused or (
                self.cycle is not None and self.cycle.waiting_for_100_continue
            )
            if waiting_on_us or self._window_bytes >= needed:
                self._arm("body", limits.body_timeout_s)
            else:
                self._close(
                    408,
                    f"request body slower than {limits.body_min_rate} bytes/s "
                    f"over {limits.body_timeout_s:g} s",
                )
        else:
            self._phase = None

    def body_rate(self) -> float | None:
        """Bytes per second of the body under way; None within its first second, or while
        the server is not reading (the app has not taken the bytes yet)."""
        elapsed = self.loop.time() - self._body_since
        if elapsed < 1.0 or self.flow.read_paused:
            return None
        return self._body_bytes / elapsed

    # -- closing -------------------------------------------------------------------------

    def evict(self) -> None:
        """Make room for a new connection: 503 if part of a request came, else just close."""
        self._release()
        self.connections.discard(self)  # uvicorn's count: out now, not when the close lands
        if self._request_bytes:
            self._close(503, "the collector is at its connection limit; retry later")
        else:
            self.transport.close()

    def evict_slow_body(self) -> None:
        """Make room for a new connection by closing this trickling body (408)."""
        rate = self._body_bytes / max(self.loop.time() - self._body_since, 1e-9)
        self._release()
        self.connections.discard(self)
        self._close(408, f"request body at {rate:.0f} bytes/s, below the minimum; closed")

    def _close(self, status: int, message: str) -> None:
        """Answer ``status`` unless a response was begun, then close the connection."""
        self._disarm()
        cycle = self.cycle
        our = self.conn.our_state
        if our is h11.IDLE or (
            our is h11.SEND_RESPONSE and (cycle is None or not cycle.response_started)
        ):
            body = (message + "\n").encode()
            head = (
                f"HTTP/1.1 {status} {_PHRASES[status]}\r\n"
                "content-type: text/plain; charset=utf-8\r\n"
                f"content-length: {len(body)}\r\n"
                + ("retry-after: 5\r\n" if status == 503 else "")
                + "connection: close\r\n\r\n"
            )
            self.transport.write(head.encode("ascii") + body)
        if cycle is not None and not cycle.response_complete:
            # As if the client had gone: the app's receive() says so, its send() is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()

    def _release(self) -> None:
        self._disarm()
        if self._counted:
            self._counted = False
            self.registry.release(self)


def guarded_protocol(limits: Limits) -> type[GuardedH11Protocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with its own connection registry."""

    class Guarded(GuardedH11Protocol):
        registry = _Registry(limits)

    return Guarded
