"""Collector memory under hostile upload bodies (issue 13, item 4): peak RSS growth per body.

Each body is sent once, with a valid device token, to a fresh ``edgeprof serve`` (SQLite,
``--max-body-bytes`` 64 MiB) after one ordinary upload has warmed it; reported: the answer, the
time to answer, and how far the server's peak RSS (VmHWM) grew, also as a multiple of the body
size. Run it with another checkout first on PYTHONPATH to measure that code (the collector child
inherits PYTHONPATH):

    PYTHONPATH=agent .venv/bin/python bench/bench_hostile_bodies.py [--mib 16]
"""

from __future__ import annotations

import argparse
import http.client
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack
from _common import save

from edgeprof.report.codec import encode
from edgeprof.testing.collector_server import deploy
from edgeprof.testing.sample_reports import minimal_report


def bodies(size: int) -> dict[str, bytes]:
    """Bodies of about ``size`` bytes built to decode into as many objects as they have bytes."""
    n = size - 16
    floats = b"\xdc\xff\xff" + (b"\xcb" + bytes(8)) * 65_535
    k = n // len(floats)
    return {
        "empty maps (one array of n)": b"\xdd" + n.to_bytes(4, "big") + b"\x80" * n,
        "empty maps under a report key": (
            b"\x81\xa7summary\xdd" + n.to_bytes(4, "big") + b"\x80" * n
        ),
        "empty maps as a valid report's quality": _in_report(n - 4096),
        "arrays of 65,535 floats": b"\xdd" + k.to_bytes(4, "big") + floats * k,
        "deep nesting (one-item arrays)": b"\x91" * (n - 1) + b"\xc0",
        "nested arrays, 16 items each": _wide_nesting(n),
    }  # fmt: skip


def _in_report(n: int) -> bytes:
    """A valid report map whose ``quality`` is a list of ``n`` empty maps: the envelope passes."""
    wire: dict[str, Any] = msgpack.unpackb(encode(minimal_report()), raw=False)
    wire.pop("quality", None)
    packer = msgpack.Packer(use_bin_type=True)
    out = bytearray(packer.pack_map_header(len(wire) + 1))
    for key, value in wire.items():
        out += packer.pack(key) + packer.pack(value)
    tail = bytes(packer.pack("quality")) + b"\xdd" + n.to_bytes(4, "big") + b"\x80" * n
    return bytes(out) + tail


def _wide_nesting(n: int) -> bytes:
    """Arrays of 16 arrays of 16 … of empty maps: many small containers, none of them big."""
    block = b"\x9f" + b"\x80" * 15
    while len(block) * 16 + 3 <= n // 16:
        block = b"\xdc\x00\x10" + block * 16
    k = n // len(block)
    return b"\xdd" + k.to_bytes(4, "big") + block * k


def _vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def one(tmp: Path, name: str, body: bytes) -> dict[str, Any]:
    d = deploy(str(tmp / f"{abs(hash(name))}.sqlite3"), tmp, max_body_bytes=64 << 20)
    try:
        with d.server:
            assert d.upload(d.signed(minimal_report()))[0] == 201
            pid = d.server.pid
            assert pid is not None
            before = _vm_hwm(pid)
            conn = http.client.HTTPConnection("127.0.0.1", d.server.port, timeout=600)
            t0 = time.perf_counter()
            conn.request(
                "POST",
                "/v1/reports",
                body=body,
                headers={
                    "Authorization": f"Bearer {d.device_token}",
                    "Content-Type": "application/msgpack",
                },
            )
            resp = conn.getresponse()
            answer = resp.read()[:120].decode(errors="replace")
            seconds = time.perf_counter() - t0
            conn.close()
            grew = _vm_hwm(pid) - before
    finally:
        d.engine.dispose()
    row = {
        "body": name,
        "bytes": len(body),
        "status": resp.status,
        "answer": answer,
        "seconds": seconds,
        "rss_growth_bytes": grew,
        "x_body": grew / len(body),
    }
    print(
        f"{name:<34} {len(body) / 2**20:6.1f} MiB  HTTP {resp.status}  {seconds:7.2f} s  "
        f"peak RSS +{grew / 2**20:8.1f} MiB (x{grew / len(body):.1f})  {answer[:70]}",
        flush=True,
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=16, help="body size in MiB")
    ap.add_argument("--label", default="", help="saved as bench/results/hostile_<label>.json")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("EDGEPROF_BENCH_TMP")) as tmp:
        for name, body in bodies(args.mib << 20).items():
            rows.append(one(Path(tmp), name, body))
    print(save(f"hostile_{args.label}" if args.label else "hostile", {"rows": rows}))


if __name__ == "__main__":
    main()
