"""A legitimate client's service from the collector while attackers hold thousands of connections.

Issue 13, item 5. A real ``edgeprof serve`` (its default limits, SQLite) on loopback; one
legitimate client at 127.0.0.2 makes a new connection per request, alternating ``GET /healthz``
and a signed upload, for ``--seconds`` per scenario. Reported per scenario: requests answered
200/201, other answers (503 ...), failures (reset, timeout), and the latency p50/p99 of the
successful ones. Scenarios:

- ``none``: no attack;
- ``half-open-1``: 2,100 connections from one address, each with half its request headers;
- ``half-open-42``: the same from 42 addresses (50 each, under the per-client cap);
- ``trickle-1`` and ``trickle-42``: 2,100 uploads whose body comes one byte every 2 s.

Attackers are persistent: once a second every connection the server closed is opened again.
"Before" is a collector run from another source tree (``--agent /work/main/agent``: today's
``edgeprof serve``); "after" is this tree.

    PYTHONPATH=agent .venv/bin/python bench/bench_collector_dos.py --label after
    PYTHONPATH=agent .venv/bin/python bench/bench_collector_dos.py --label before \\
        --agent /work/main/agent
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import resource
import select
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import save

from edgeprof.testing.collector_server import Deployment, deploy
from edgeprof.testing.sample_reports import minimal_report

LEGIT = "127.0.0.2"
SCENARIOS = ("none", "half-open-1", "half-open-42", "trickle-1", "trickle-42")


class Attacker:
    """Holds ``n`` connections from ``addresses`` in a child process (so that its work does
    not share the legitimate client's interpreter); reopens those the server closes."""

    def __init__(self, port: int, token: str, n: int, addresses: int, trickle: bool) -> None:
        self.port = port
        self.sources = [f"127.0.1.{1 + i % addresses}" for i in range(n)]
        self.trickle = trickle
        if trickle:
            self.opening = (
                b"POST /v1/reports HTTP/1.1\r\nHost: collector\r\n"
                b"Content-Type: application/msgpack\r\nContent-Length: 1000000\r\n"
                + f"Authorization: Bearer {token}\r\n\r\n".encode()
            )
        else:
            self.opening = b"POST /v1/reports HTTP/1.1\r\nHost: collector\r\n"
        ctx = multiprocessing.get_context("fork")
        self.ready = ctx.Event()
        self.stop = ctx.Event()
        self.reopened = ctx.Value("q", 0)
        self.process = ctx.Process(target=self._run, daemon=True)

    def __enter__(self) -> Attacker:
        self.process.start()
        if not self.ready.wait(300):
            raise RuntimeError("the attacker did not open its connections")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.process.join(timeout=60)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()

    def _open(self, i: int) -> socket.socket | None:
        try:
            sock = socket.create_connection(
                ("127.0.0.1", self.port), timeout=5, source_address=(self.sources[i], 0)
            )
            sock.sendall(self.opening)
            sock.setblocking(False)
            return sock
        except OSError:
            return None

    def _run(self) -> None:
        socks = [self._open(i) for i in range(len(self.sources))]
        self.ready.set()
        last_trickle = time.monotonic()
        while not self.stop.wait(1.0):
            live = {s.fileno(): i for i, s in enumerate(socks) if s is not None}
            poller = select.poll()  # not select(): these descriptors go past FD_SETSIZE
            for fd in live:
                poller.register(fd, select.POLLIN)
            for fd, _ in poller.poll(0):  # an answer or a close: the server is done with it
                sock = socks[live[fd]]
                assert sock is not None
                sock.close()
                socks[live[fd]] = None
            if self.trickle and time.monotonic() - last_trickle >= 2.0:
                last_trickle = time.monotonic()
                for i, s in enumerate(socks):
                    if s is not None:
                        try:
                            s.send(b"x")
                        except OSError:
                            s.close()
                            socks[i] = None
            for i, s in enumerate(socks):
                if s is None and not self.stop.is_set():
                    with self.reopened.get_lock():
                        self.reopened.value += 1
                    socks[i] = self._open(i)
        for s in socks:
            if s is not None:
                s.close()


def legit(d: Deployment, seconds: float) -> dict[str, Any]:
    """New connection per request, /healthz and upload alternately, for ``seconds``."""
    ok: dict[str, list[float]] = {"healthz": [], "upload": []}
    other: dict[str, int] = {}
    headers = {"Authorization": f"Bearer {d.device_token}", "Content-Type": "application/msgpack"}
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        kind = "healthz" if n % 2 == 0 else "upload"
        body = d.signed(minimal_report()) if kind == "upload" else None
        n += 1
        start = time.perf_counter()
        try:
            conn = http.client.HTTPConnection(
                "127.0.0.1", d.server.port, timeout=10, source_address=(LEGIT, 0)
            )
            if body is None:
                conn.request("GET", "/healthz")
            else:
                conn.request("POST", "/v1/reports", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            conn.close()
            outcome = str(resp.status)
        except TimeoutError:
            outcome = "timeout"
        except OSError as exc:
            outcome = type(exc).__name__
        elapsed = time.perf_counter() - start
        if outcome in ("200", "201"):
            ok[kind].append(elapsed)
        else:
            other[f"{kind} {outcome}"] = other.get(f"{kind} {outcome}", 0) + 1
            time.sleep(0.1)  # a failing client backs off a little, as push does
    out: dict[str, Any] = {"failed": other}
    for kind, values in ok.items():
        out[kind] = {"ok": len(values), **_percentiles(values)}
    return out


def _percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {"p50_ms": values[0] * 1e3 if values else float("nan"), "p99_ms": float("nan")}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50_ms": statistics.median(values) * 1e3, "p99_ms": q[98] * 1e3}


def scenario(name: str, d: Deployment, n: int, seconds: float) -> dict[str, Any]:
    if name == "none":
        result = legit(d, seconds)
    else:
        kind, _, addresses = name.rpartition("-")
        attacker = Attacker(d.server.port, d.device_token, n, int(addresses), kind == "trickle")
        with attacker:
            result = legit(d, seconds)
        result["attacker_reopened"] = attacker.reopened.value
    time.sleep(2)  # let the server see the attacker's closes before the next scenario
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", required=True, help="before or after (names the result)")
    parser.add_argument("--agent", help="run the collector from this source tree's agent/")
    parser.add_argument("--connections", type=int, default=2100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 3 * args.connections + 1024
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if args.agent:
        os.environ["PYTHONPATH"] = str(Path(args.agent).resolve())
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = deploy(str(Path(tmp) / "collector.sqlite3"), Path(tmp))
        with d.server:
            for name in args.scenarios.split(","):
                results[name] = scenario(name, d, args.connections, args.seconds)
                r = results[name]
                print(
                    f"{args.label:>6} {name:<13} healthz ok {r['healthz']['ok']:>5} "
                    f"p50 {r['healthz']['p50_ms']:8.1f} ms p99 {r['healthz']['p99_ms']:8.1f} ms | "
                    f"upload ok {r['upload']['ok']:>5} p50 {r['upload']['p50_ms']:8.1f} ms "
                    f"p99 {r['upload']['p99_ms']:8.1f} ms | failed {r['failed']}",
                    flush=True,
                )
        d.engine.dispose()
    path = save(
        f"collector_dos_{args.label}",
        {
            "connections": args.connections,
            "seconds": args.seconds,
            "agent": args.agent or "this tree",
            "results": results,
        },
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
