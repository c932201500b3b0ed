"""The MCU link's efficiency and speed, against the reference firmware's host port on a pty.

- protocol efficiency = payload bytes / wire bytes (COBS, header, CRC, delimiters, msgpack keys
  and the replies/ACKs all counted on the wire) for a model upload at several chunk sizes and
  for RESULT streaming (with and without output bytes);
- PING round trip (median and p99 of many);
- upload throughput against the raw byte rate of the same pty, measured in the same run (raw:
  bytes the device reads and discards, then one PING to know it has read them all).

Goal (issue 7): upload efficiency >= 95 %.

    .venv/bin/python bench/bench_bridge.py [--pings 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from _common import save, summary

from edgeprof.bridge import firmware_build
from edgeprof.bridge.device import Device
from edgeprof.bridge.model_blob import compile_tflite
from edgeprof.bridge.protocol import Msg
from edgeprof.bridge.transport import open_transport

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "agent" / "edgeprof" / "models" / "kws_mlp_int8.tflite"


def start_firmware() -> tuple[subprocess.Popen[bytes], str]:
    build = firmware_build.build_port("host", ROOT / "build" / "fw-host-bench", jobs=2)
    exe = build.image("edgeprof-fw").path
    proc = subprocess.Popen([str(exe)], stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None
    path = proc.stdout.readline().decode().strip()
    return proc, path


def ping_rtts(dev: Device, n: int) -> list[float]:
    return [dev.ping() for _ in range(n)]


def upload(dev: Device, blob: bytes, chunk: int | None) -> dict[str, float]:
    st = dev.link.stats
    rx0 = st.rx_wire_bytes
    s = dev.load("model", blob, chunk=chunk)
    wire = s.wire_bytes + (st.rx_wire_bytes - rx0)  # requests out and replies back
    return {
        "chunks": s.chunks,
        "efficiency_tx": s.size / s.wire_bytes,
        "efficiency_both_ways": s.size / wire,
        "seconds": s.seconds,
        "bytes_per_s": s.size / s.seconds,
    }


def raw_rate(dev: Device, nbytes: int) -> float:
    """Bytes/s the pty carries to the device when nothing is framed: non-zero filler the
    device's decoder reads and discards as one oversized frame, then a PING (after a
    delimiter) that is answered only once everything before it has been read."""
    filler = b"\x55" * nbytes
    t0 = time.perf_counter()
    dev.link.transport.write(filler + b"\x00")
    dev.ping()
    return nbytes / (time.perf_counter() - t0)


def streaming(dev: Device, n: int, outputs: bool) -> dict[str, float]:
    st = dev.link.stats
    rx0, rxp0, tx0, txp0 = (
        st.rx_wire_bytes,
        st.rx_payload_bytes,
        st.tx_wire_bytes,
        st.tx_payload_bytes,
    )
    t0 = time.perf_counter()
    _, results = dev.run_all("dot", n, outputs=outputs)
    dt = time.perf_counter() - t0
    rx, rxp = st.rx_wire_bytes - rx0, st.rx_payload_bytes - rxp0
    tx, txp = st.tx_wire_bytes - tx0, st.tx_payload_bytes - txp0
    return {
        "results": len(results),
        "efficiency_results": rxp / rx,  # RESULT payload / RESULT wire bytes
        "efficiency_both_ways": rxp / (rx + tx),  # ACKs and the RUN request counted as cost
        "wire_bytes_per_result": (rx + tx) / len(results),
        "payload_bytes_per_result": rxp / len(results),
        "ack_payload_bytes": float(txp),
        "results_per_s": len(results) / dt,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pings", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    blob = compile_tflite(MODEL.read_bytes(), "litert")
    proc, path = start_firmware()
    out: dict[str, Any] = {"model_blob_bytes": len(blob)}
    try:
        with Device(open_transport(path), timeout=2.0) as dev:
            dev.hello()
            assert dev.info is not None
            rtts = ping_rtts(dev, args.pings)
            out["ping_rtt_s"] = {
                "median": statistics.median(rtts),
                "p99": sorted(rtts)[int(0.99 * len(rtts))],
                "min": min(rtts),
                "n": len(rtts),
            }
            max_chunk = dev.info.max_payload - 16
            uploads: dict[str, list[dict[str, float]]] = {}
            raws: list[float] = []
            for _ in range(args.rounds):  # interleaved, so drift hits all alike
                raws.append(raw_rate(dev, len(blob)))
                for chunk in (256, 1024, max_chunk):
                    uploads.setdefault(str(chunk), []).append(upload(dev, blob, chunk))
            out["raw_pty_bytes_per_s"] = summary(raws)
            out["upload"] = {
                chunk: {
                    key: statistics.median(r[key] for r in rs)
                    for key in rs[0]
                }
                | {"vs_raw": statistics.median(r["bytes_per_s"] for r in rs)
                   / statistics.median(raws)}
                for chunk, rs in uploads.items()
            }  # fmt: skip
            dev.load("model", os.urandom(256 * 16))  # 16 rows for the dot workload
            out["streaming"] = {
                "no_outputs": streaming(dev, 500, outputs=False),
                "with_outputs": streaming(dev, 500, outputs=True),
            }
            out["telemetry"] = dev.link.command(Msg.TELEMETRY)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    path_out = save("bench_bridge", out)
    ping = out["ping_rtt_s"]
    print(f"PING round trip: median {ping['median'] * 1e6:.0f} µs, p99 {ping['p99'] * 1e6:.0f} µs")
    print(f"raw pty rate: {out['raw_pty_bytes_per_s']['median'] / 1e6:.2f} MB/s")
    for chunk, u in out["upload"].items():
        print(
            f"upload, chunk {chunk:>4} B: efficiency {u['efficiency_tx']:.2%} (both ways "
            f"{u['efficiency_both_ways']:.2%}), {u['bytes_per_s'] / 1e6:.2f} MB/s "
            f"= {u['vs_raw']:.0%} of raw"
        )
    for name, s in out["streaming"].items():
        print(
            f"streaming {name}: {s['efficiency_results']:.2%} of RESULT wire bytes are payload "
            f"({s['efficiency_both_ways']:.2%} counting ACKs), {s['wire_bytes_per_result']:.0f} "
            f"wire B/result, {s['results_per_s']:.0f} results/s"
        )
    print(f"results: {path_out}")


if __name__ == "__main__":
    main()
