"""Connections (issue 13, item 5): half-open and trickling clients cannot deny service.

Seen before the fix: 2,100 half-open requests filled uvicorn's concurrency limit and none were
ever timed out (``/healthz`` and uploads got 503 for as long as the attacker held them); a body
sent one byte every 2 s held its connection for 40 s and more. The collector runs for real
(``edgeprof serve`` under uvicorn) with its limits set small, so a few hundred sockets stand for
thousands. Attackers and the legitimate client bind distinct loopback addresses (Linux routes
all of 127/8 to lo), so the per-client cap tells them apart. Nothing here bounds a duration:
each test waits (with a generous safety bound) for the server's own close and counts answers.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgeprof.testing.attacks import Attack
from edgeprof.testing.collector_server import Deployment, deploy, fresh_database
from edgeprof.testing.sample_reports import minimal_report

pytestmark = pytest.mark.integration

LEGIT = "127.0.0.2"
PATIENCE_S = 120.0  # a safety bound for "the server closed it", never an expectation
HALF_GET = b"GET /healthz HTTP/1.1\r\nHost: collector\r\n"
Start = Callable[..., contextlib.AbstractContextManager[Deployment]]


@pytest.fixture
def start(backend: str, tmp_path: Path) -> Start:
    """``with start("--header-timeout-s", "1"):`` a collector with those serve options."""

    @contextlib.contextmanager
    def run(*args: str) -> Iterator[Deployment]:
        with fresh_database(backend, tmp_path) as db:
            d = deploy(db, tmp_path, args=args)
            try:
                with d.server:
                    yield d
            finally:
                d.engine.dispose()

    return run


def connect(d: Deployment, source: str, data: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", d.server.port), source_address=(source, 0))
    if data:
        sock.sendall(data)
    return sock


def answer(sock: socket.socket, patience_s: float = PATIENCE_S) -> str:
    """The status the server answered on ``sock`` ("200", "408", ...), "closed" for a close
    without an answer, "reset", or "open" when the server neither answered nor closed."""
    sock.settimeout(patience_s)
    data = b""
    try:
        while True:
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep:
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if len(rest) >= length:
                    return head.split(b" ", 2)[1].decode()
            chunk = sock.recv(65536)
            if not chunk:
                return head.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "closed"
            data += chunk
    except TimeoutError:
        return "open"
    except ConnectionResetError:
        return "reset"


def finish_and_answer(sock: socket.socket) -> str:
    """Complete a half-sent GET /healthz; its answer (200 if the server still held it)."""
    try:
        sock.sendall(b"\r\n")
    except (BrokenPipeError, ConnectionResetError):
        return "reset"
    return answer(sock)


def legit_client(d: Deployment, attempt: Attack) -> None:
    """From another address, over one kept-alive connection: /healthz, then an upload."""
    conn = http.client.HTTPConnection(
        "127.0.0.1", d.server.port, timeout=PATIENCE_S, source_address=(LEGIT, 0)
    )
    try:
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        resp.read()
        attempt.attempt(held=resp.status == 200)
        report = minimal_report()
        headers = {
            "Authorization": f"Bearer {d.device_token}",
            "Content-Type": "application/msgpack",
        }
        conn.request("POST", "/v1/reports", body=d.signed(report), headers=headers)
        resp = conn.getresponse()
        stored = resp.status == 201 and json.loads(resp.read())["id"] == report["report_id"]
        attempt.attempt(held=stored)
    finally:
        conn.close()


def test_one_address_cannot_fill_the_collector(
    start: Start, attack: Callable[[str], Attack]
) -> None:
    a = attack("one address opens 200 half-open connections to a collector of 120")
    cap = 30
    with start(
        "--max-connections", "120", "--max-connections-per-client", str(cap),
        "--header-timeout-s", str(PATIENCE_S),
    ) as d:  # fmt: skip
        attacker = [connect(d, "127.0.0.3", HALF_GET) for _ in range(200)]
        try:
            legit_client(d, a)  # while the attacker's connections are open
            answers = [finish_and_answer(s) for s in attacker]
        finally:
            for s in attacker:
                s.close()
    # Exactly `cap` of them were still held by the server (the rest refused at once): so the
    # server held them through the legitimate client's requests, and refused the others.
    assert a.attempt(held=answers.count("200") == cap), answers
    for status in answers[cap:]:
        a.attempt(held=status in ("503", "closed", "reset"))
    assert a.failed == 0, answers


def test_many_addresses_cannot_fill_the_collector(
    start: Start, attack: Callable[[str], Attack]
) -> None:
    a = attack("4 addresses hold 80 half-open connections against a collector of 60")
    limit = 60
    with start(
        "--max-connections", str(limit), "--max-connections-per-client", "20",
        "--header-timeout-s", str(PATIENCE_S),
    ) as d:  # fmt: skip
        attacker = [connect(d, f"127.0.0.{10 + i % 4}", HALF_GET) for i in range(80)]
        try:
            legit_client(d, a)  # one connection: it evicts the oldest half-open one
            answers = [finish_and_answer(s) for s in attacker]
        finally:
            for s in attacker:
                s.close()
    # The 20 connections over the limit and the legitimate one each evicted the oldest
    # half-open connection; the other limit - 1 were still held when completed.
    evicted, held = answers[:21], answers[21:]
    a.attempt(held=held.count("200") == limit - 1)
    for status in evicted:
        a.attempt(held=status in ("503", "closed", "reset"))
    assert a.failed == 0, answers


def test_slowloris_headers_are_closed(start: Start, attack: Callable[[str], Attack]) -> None:
    a = attack("connections that never finish their request headers")
    with start("--header-timeout-s", "1") as d:
        silent = [connect(d, "127.0.0.3") for _ in range(15)]
        partial = [connect(d, "127.0.0.3", HALF_GET) for _ in range(15)]
        trickling = [connect(d, "127.0.0.4", HALF_GET) for _ in range(15)]
        kept_alive = connect(d, "127.0.0.5", HALF_GET + b"\r\n")
        first = answer(kept_alive)  # a whole request, then the next one trickled
        kept_alive.sendall(HALF_GET)
        trickling.append(kept_alive)
        try:
            pieces = dict.fromkeys(silent + partial, b"") | dict.fromkeys(trickling, b"x")
            for status in _until_closed(pieces):
                a.attempt(held=status in ("408", "closed", "reset"))
            a.attempt(held=first == "200")
        finally:
            for s in silent + partial + trickling:
                s.close()
    assert a.failed == 0


def test_trickled_bodies_are_closed(start: Start, attack: Callable[[str], Attack]) -> None:
    a = attack("request bodies sent a byte at a time")
    with start("--body-timeout-s", "2", "--body-min-rate", "100") as d:
        auth = f"Authorization: Bearer {d.device_token}\r\n".encode()
        post = (
            b"POST /v1/reports HTTP/1.1\r\nHost: collector\r\nContent-Type: application/msgpack\r\n"
        )
        sized = [
            connect(d, "127.0.0.3", post + auth + b"Content-Length: 100000\r\n\r\n")
            for _ in range(10)
        ]
        chunked = [
            connect(d, "127.0.0.4", post + auth + b"Transfer-Encoding: chunked\r\n\r\n")
            for _ in range(5)
        ]
        # Answered 401 at once; the unread body is then trickled on, the connection kept.
        anonymous = [
            connect(d, "127.0.0.5", post + b"Content-Length: 100000\r\n\r\n") for _ in range(5)
        ]
        try:
            for s in anonymous:
                a.attempt(held=answer(s) == "401")
            pieces = dict.fromkeys(sized + anonymous, b"x") | dict.fromkeys(chunked, b"1\r\nx\r\n")
            for status in _until_closed(pieces):
                a.attempt(held=status in ("408", "closed", "reset"))
        finally:
            for s in sized + chunked + anonymous:
                s.close()
    assert a.failed == 0


def test_tricklers_from_many_addresses_make_room(
    start: Start, attack: Callable[[str], Attack]
) -> None:
    a = attack("3 addresses fill a collector of 30 with bodies sent a byte at a time")
    with start(
        "--max-connections", "30", "--max-connections-per-client", "10",
        "--body-timeout-s", str(PATIENCE_S), "--body-min-rate", "100",
    ) as d:  # fmt: skip
        head = (
            "POST /v1/reports HTTP/1.1\r\nHost: collector\r\nContent-Type: application/msgpack\r\n"
            f"Authorization: Bearer {d.device_token}\r\nContent-Length: 100000\r\n\r\n"
        ).encode()
        tricklers = [connect(d, f"127.0.0.{10 + i % 3}", head) for i in range(30)]
        try:
            # Their deadlines are far off: only eviction of the slowest body makes room. A body
            # is judged after its first second, so the legitimate client retries a 503 (as push
            # does) until one is old enough.
            served = False
            deadline = time.monotonic() + PATIENCE_S
            while not served and time.monotonic() < deadline:
                for s in tricklers:
                    with contextlib.suppress(OSError):
                        s.sendall(b"x")
                served = _healthz(d) == 200
                time.sleep(0.2)
            a.attempt(held=served)
            # The evicted were answered before the legitimate client was: readable now.
            closed, _, _ = select.select(tricklers, [], [], 0)
            evicted = [answer(s) for s in closed]
            a.attempt(held=bool(evicted) and all(e in ("408", "reset") for e in evicted))
        finally:
            for s in tricklers:
                s.close()
    assert a.failed == 0


def _healthz(d: Deployment) -> int | str:
    conn = http.client.HTTPConnection(
        "127.0.0.1", d.server.port, timeout=PATIENCE_S, source_address=(LEGIT, 0)
    )
    try:
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (ConnectionError, http.client.RemoteDisconnected) as exc:
        return type(exc).__name__
    finally:
        conn.close()


def test_a_slow_but_steady_upload_is_stored(start: Start, attack: Callable[[str], Attack]) -> None:
    a = attack("the body deadline against an honest slow uplink (not a deadline on the whole)")
    with start("--body-timeout-s", "2", "--body-min-rate", "100") as d:
        report = minimal_report(padding=100_000)
        body = d.signed(report)
        head = (
            "POST /v1/reports HTTP/1.1\r\nHost: collector\r\nContent-Type: application/msgpack\r\n"
            f"Authorization: Bearer {d.device_token}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        sock = connect(d, LEGIT, head.encode())
        try:
            for i in range(0, len(body), 2000):  # about 20 kB/s, 200 times the minimum rate
                sock.sendall(body[i : i + 2000])
                time.sleep(0.1)
            status = answer(sock)
        finally:
            sock.close()
        a.attempt(held=status == "201" and d.stored() == 1)
    assert a.failed == 0


def _until_closed(pieces: dict[socket.socket, bytes]) -> list[str]:
    """Send each socket its piece (if any) about five times a second until the server has
    closed every one (bounded by PATIENCE_S in all); each answer, "open" if never closed."""
    results: dict[socket.socket, str] = {}
    deadline = time.monotonic() + PATIENCE_S
    while len(results) < len(pieces) and time.monotonic() < deadline:
        for s, piece in pieces.items():
            if piece and s not in results:
                try:
                    s.sendall(piece)
                except (BrokenPipeError, ConnectionResetError):
                    results[s] = "reset"
        readable, _, _ = select.select([s for s in pieces if s not in results], [], [], 0.2)
        for s in readable:
            results[s] = answer(s)
    return [results.get(s, "open") for s in pieces]
