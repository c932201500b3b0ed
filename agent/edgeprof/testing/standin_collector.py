"""A minimal stand-in for the collector, so uplink tests run against a real HTTP server.

Until the collector issue lands, tests start this on loopback as a separate process (real
sockets, real kills) and read what it kept: each accepted report is stored atomically as
``<dir>/<report_id>.msgpack``. It checks the bearer token (401), decodes the body with
:func:`edgeprof.report.codec.decode` (400 with the message),
refuses bodies above a size limit (413),
and de-duplicates by report id (201 the first time, 200 after, body ``{"id": ...}``); the
de-duplication reads the directory, so it holds across restarts. ``GET /v1/reports/<id>`` serves a
kept report back (for the HTTP client's read path).

Faults for tests, each counted per process: ``--fail-first N`` answers 500 to the first N
requests (503 with ``Retry-After: S`` given ``--retry-after S``), ``--slow S`` sleeps S seconds
before storing and answering, ``--close-mid-body N`` reads half the body of the first N
requests then closes the socket, ``--drop-ack N`` stores the first N reports then closes
without answering.

Answers a real deployment can give a misconfigured device, for the push tests: a POST under
``/status/<NNN>/`` (a base URL of ``{url}/status/<NNN>``) is answered with status NNN
without storing anything, as a wrong path, a proxy or a load balancer would: ``Location``
pointing at the real endpoint for a 3xx, ``Allow: GET`` for a 405.

Run: ``python -m edgeprof.testing.standin_collector --port 0 --dir DIR --token T``; it prints
its port on the first line of stdout.
"""

from __future__ import annotations

import argparse
import hmac
import json
import re
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from edgeprof.atomic import write_atomic
from edgeprof.errors import InputError
from edgeprof.report.codec import decode, decode_wire, encode
from edgeprof.report.signing import verify_wire
from edgeprof.testing.child import ChildServer
from edgeprof.testing.sample_reports import minimal_report
from edgeprof.uplink.spool import REPORTS_PATH

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
_MAX_DRAIN_BYTES = 64 * 1024 * 1024
_ID_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,127}")
_STATUS_RE = re.compile(r"/status/([1-5][0-9][0-9])/")


@dataclass
class Faults:
    """How many times each fault is still to fire, and the delay before answering."""

    fail_first: int = 0
    slow_s: float = 0.0
    close_mid_body: int = 0
    drop_ack: int = 0
    retry_after_s: int | None = None


class _State:
    """What the handler threads share; ``lock`` guards the fault counters and the store."""

    def __init__(
        self,
        directory: Path,
        token: str,
        max_bytes: int,
        faults: Faults,
        hmac_key: bytes | None = None,
    ) -> None:
        self.directory = directory
        self.hmac_key = hmac_key
        self.expected_auth = f"Bearer {token}".encode()
        self.max_bytes = max_bytes
        self.faults = faults
        self.lock = threading.Lock()

    def take(self, name: str) -> bool:
        """Fire the named counted fault if it has shots left."""
        with self.lock:
            left: int = getattr(self.faults, name)
            if left > 0:
                setattr(self.faults, name, left - 1)
                return True
            return False

    def store(self, report_id: str, body: bytes) -> bool:
        """Keep the report; False if this id was already kept."""
        path = self.directory / f"{report_id}.msgpack"
        with self.lock:
            if path.exists():
                return False
            write_atomic(path, body)
            return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 30  # a stalled client must not pin a thread forever

    def _reply(
        self, status: int, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None
    ) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        ctype = "application/msgpack" if isinstance(body, bytes) else "application/json"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def _drain(self, length: int) -> None:
        left = min(length, _MAX_DRAIN_BYTES)
        while left > 0:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                return
            left -= len(chunk)

    def do_POST(self) -> None:
        state = self.server.state
        self.close_connection = True
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._reply(411, {"error": "Content-Length required"})
            return
        if self._status_route(length):
            return
        if self.path != REPORTS_PATH:
            self._drain(length)
            self._reply(404, {"error": f"no such endpoint {self.path}"})
            return
        auth = self.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(auth, state.expected_auth):
            self._drain(length)
            self._reply(401, {"error": "bad or missing bearer token"})
            return
        if length > state.max_bytes:
            self._drain(length)
            self._reply(413, {"error": f"report of {length} bytes exceeds {state.max_bytes}"})
            return
        if state.take("close_mid_body"):
            self.rfile.read(length // 2)
            return  # closing with unread data: the client sees a reset
        body = self.rfile.read(length)
        if len(body) != length:
            return  # the client went away
        if self._injected_failure():
            return
        try:
            report = decode(body, "request body")
        except InputError as exc:
            self._reply(400, {"error": str(exc)})
            return
        if state.hmac_key is not None:
            # Never accept upstream a report whose signature does not verify (nor an unsigned one).
            check = verify_wire(decode_wire(body, "request body"), hmac_key=state.hmac_key)
            if check.failed or not check.verified:
                self._reply(400, {"error": f"signature: {check.message()}"})
                return
        report_id = report.get("report_id")
        if not isinstance(report_id, str) or not _ID_RE.fullmatch(report_id):
            self._reply(400, {"error": f"bad report_id {report_id!r}"})
            return
        if state.faults.slow_s > 0:
            time.sleep(state.faults.slow_s)
        created = state.store(report_id, body)
        if state.take("drop_ack"):
            return  # stored, but the client never hears so
        self._reply(201 if created else 200, {"id": report_id})

    def _status_route(self, length: int) -> bool:
        """Answer ``/status/<NNN>/...`` with NNN (see the module doc); False for other paths."""
        match = _STATUS_RE.match(self.path)
        if match is None:
            return False
        self._drain(length)
        status = int(match.group(1))
        headers = {"Allow": "GET"} if status == 405 else {}
        if 300 <= status <= 399:
            port = self.server.server_address[1]
            headers["Location"] = f"http://127.0.0.1:{port}{REPORTS_PATH}"
        self._reply(status, {"error": f"answered {status} as asked"}, headers)
        return True

    def _injected_failure(self) -> bool:
        """Answer an injected 500 (or 503 with Retry-After) if ``--fail-first`` has shots left."""
        state = self.server.state
        if not state.take("fail_first"):
            return False
        after = state.faults.retry_after_s
        if after is None:
            self._reply(500, {"error": "injected failure"})
        else:
            self._reply(503, {"error": "injected overload"}, {"Retry-After": str(after)})
        return True

    def do_GET(self) -> None:
        state = self.server.state
        self.close_connection = True
        auth = self.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(auth, state.expected_auth):
            self._reply(401, {"error": "bad or missing bearer token"})
            return
        if self._injected_failure():
            return
        report_id = self.path.removeprefix(REPORTS_PATH + "/")
        path = state.directory / f"{report_id}.msgpack"
        if not self.path.startswith(REPORTS_PATH + "/") or not _ID_RE.fullmatch(report_id):
            self._reply(404, {"error": f"no such endpoint {self.path}"})
        elif not path.is_file():
            self._reply(404, {"error": f"no report {report_id}"})
        else:
            self._reply(200, path.read_bytes())

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"standin-collector: {format % args}\n")


def serve(
    port: int,
    directory: Path,
    token: str,
    max_bytes: int,
    faults: Faults,
    hmac_key: bytes | None = None,
) -> None:
    """Listen on 127.0.0.1, print the port, serve until killed."""
    directory.mkdir(parents=True, exist_ok=True)
    server = _Server(("127.0.0.1", port), _Handler)
    server.state = _State(directory, token, max_bytes, faults, hmac_key)
    print(server.server_address[1], flush=True)
    server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    """The process entry point (argparse: no dependency beyond the standard library)."""
    p = argparse.ArgumentParser(prog="standin_collector", description=__doc__)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES)
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--slow", type=float, default=0.0)
    p.add_argument("--close-mid-body", type=int, default=0)
    p.add_argument("--drop-ack", type=int, default=0)
    p.add_argument("--retry-after", type=int, default=None)
    p.add_argument("--hmac-key-file", type=Path, help="require reports signed with this key")
    a = p.parse_args(argv)
    faults = Faults(a.fail_first, a.slow, a.close_mid_body, a.drop_ack, a.retry_after)
    key = a.hmac_key_file.read_bytes() if a.hmac_key_file else None
    serve(a.port, a.dir, a.token, a.max_bytes, faults, key)


def sample_report(padding: int = 0) -> tuple[str, bytes]:
    """A small valid report (its id and encoded bytes) for uplink tests; padding grows it."""
    report = minimal_report(tags={"padding": "x" * padding})
    return report["report_id"], encode(report)


class StandinCollector(ChildServer):
    """Runs the stand-in as a child process for the duration of a ``with`` block."""

    what = "stand-in collector"

    def __init__(
        self,
        directory: Path,
        token: str,
        *,
        fail_first: int = 0,
        slow_s: float = 0.0,
        close_mid_body: int = 0,
        drop_ack: int = 0,
        retry_after_s: int | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        start_timeout_s: float = 20.0,
        hmac_key_file: Path | None = None,
    ) -> None:
        self.directory = directory
        cmd = [
            sys.executable,
            "-m",
            "edgeprof.testing.standin_collector",
            "--port=0",
            f"--dir={directory}",
            f"--token={token}",
            f"--max-bytes={max_bytes}",
            f"--fail-first={fail_first}",
            f"--slow={slow_s}",
            f"--close-mid-body={close_mid_body}",
            f"--drop-ack={drop_ack}",
        ]
        if retry_after_s is not None:
            cmd.append(f"--retry-after={retry_after_s}")
        if hmac_key_file is not None:
            cmd.append(f"--hmac-key-file={hmac_key_file}")
        super().__init__(cmd, start_timeout_s)
        self.port = 0

    def ready(self, line: str) -> bool:
        if not line.strip().isdigit():
            return False
        self.port = int(line)
        return True

    @property
    def url(self) -> str:
        """The base URL to give ``push``."""
        return f"http://127.0.0.1:{self.port}"

    def stored_ids(self) -> list[str]:
        """The report ids kept so far, sorted."""
        return sorted(p.name.removesuffix(".msgpack") for p in self.directory.glob("*.msgpack"))


if __name__ == "__main__":
    main()
