"""Collector ingest against raw inserts of the same rows, and filtered queries over 100,000 reports.

Ingest: N concurrent clients (threads, one keep-alive HTTP connection each) POST distinct
signed reports of a given size to a real ``edgeprof serve`` on loopback; the baseline inserts
the very same rows (report row, body, tags: one transaction per report) with N DB-API
connections straight into a fresh database of the same schema and durability (SQLite: WAL,
synchronous=FULL; PostgreSQL: its defaults, fsync on). Each round starts from an empty database;
collector and raw alternate ABAB. Reported: reports/s and per-report latency p50/p99.

Query: 100,000 reports inserted directly (50 models x 10 boards x 20 rig tags over a year), then
filtered ``GET /v1/reports`` through HTTP, sequentially, p50/p99 per filter.

Goals (issue 5): ingest >= 50 % of raw-insert throughput; filtered query p99 < 50 ms.

    .venv/bin/python bench/bench_collector.py [--backends sqlite,postgresql] [--rounds 2]

PostgreSQL needs $EDGEPROF_TEST_PG_URL (``export EDGEPROF_TEST_PG_URL=$(scripts/pg-test-server
start)``).
"""

from __future__ import annotations

import argparse
import http.client
import os
import queue
import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from _common import abab, save, summary

from edgeprof.collector.db import make_engine, open_database, report_bodies, report_tags, reports
from edgeprof.collector.ingest import IngestRow, check_signature, decode_upload, index_row
from edgeprof.collector.tokens import authenticate
from edgeprof.report.codec import encode, uuid7
from edgeprof.report.signing import sign
from edgeprof.testing.collector_server import Deployment, deploy, fresh_database
from edgeprof.testing.sample_reports import minimal_report

SIZES = {"10KB": 10_000, "1MB": 1_000_000}
CLIENTS = (1, 8, 32)
QUERY_REPORTS = 100_000
Item = tuple[bytes, IngestRow]


def make_bodies(n: int, size: int, d: Deployment) -> list[Item]:
    """n distinct signed reports of about ``size`` bytes, and the rows they index to."""
    out = []
    token = authenticate(d.engine, d.device_token)
    assert token is not None
    with d.engine.connect() as conn:
        for i in range(n):
            body = d.signed(minimal_report(padding=max(0, size - 2500), tags={"i": str(i)}))
            wire, report = decode_upload(body)
            signer = check_signature(conn, wire, report, token.id)
            out.append((body, index_row(report, body, signer)))
    return out


def _percentiles(lat: list[float]) -> dict[str, float]:
    a = np.asarray(lat)
    return {"p50_ms": float(np.quantile(a, 0.5) * 1e3), "p99_ms": float(np.quantile(a, 0.99) * 1e3)}


def run_collector(d: Deployment, items: list[Item], clients: int) -> dict[str, float]:
    """POST every body with ``clients`` threads; throughput and latencies."""
    work: queue.Queue[bytes] = queue.Queue()
    for body, _ in items:
        work.put(body)
    lat: list[float] = []
    errors: list[int] = []
    headers = {
        "Authorization": f"Bearer {d.device_token}",
        "Content-Type": "application/msgpack",
    }

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", d.server.port, timeout=120)
        try:
            while True:
                try:
                    body = work.get_nowait()
                except queue.Empty:
                    return
                t0 = time.perf_counter()
                conn.request("POST", "/v1/reports", body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                lat.append(time.perf_counter() - t0)
                if resp.status != 201:
                    errors.append(resp.status)
        finally:
            conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"collector answered {errors[:5]}")
    return {"per_s": len(items) / wall, **_percentiles(lat)}


def _raw_connect(url: str) -> Any:
    """A DB-API connection with the collector's durability settings."""
    if url.startswith("postgresql"):
        import psycopg

        return psycopg.connect(url)
    conn = sqlite3.connect(url, timeout=60, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=60000")
    return conn


def _insert_sql(pg: bool) -> tuple[str, str, str]:
    cols = [c.name for c in reports.columns]
    mark = "%s" if pg else "?"
    return (
        f"INSERT INTO reports ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})",
        f"INSERT INTO report_bodies (id, body) VALUES ({mark}, {mark})",
        f"INSERT INTO report_tags (report_id, key, value) VALUES ({mark}, {mark}, {mark})",
    )


def _row_values(row: IngestRow, received_ns: int) -> tuple[Any, ...]:
    values = {**row.columns(), "received_ns": received_ns, "uploaded_by": "bench",
              "gate_status": "none"}  # fmt: skip
    return tuple(values[c.name] for c in reports.columns)


def run_raw(url: str, items: list[Item], clients: int) -> dict[str, float]:
    """The same rows inserted directly, one transaction per report, ``clients`` connections."""
    pg = url.startswith("postgresql")
    ins_report, ins_body, ins_tag = _insert_sql(pg)
    work: queue.Queue[tuple[bytes, IngestRow]] = queue.Queue()
    for item in items:
        work.put(item)
    lat: list[float] = []

    def client() -> None:
        conn = _raw_connect(url)
        try:
            while True:
                try:
                    body, row = work.get_nowait()
                except queue.Empty:
                    return
                t0 = time.perf_counter()
                if pg:
                    with conn.transaction():
                        conn.execute(ins_report, _row_values(row, time.time_ns()))
                        conn.execute(ins_body, (row.id, body))
                        for k, v in row.tags.items():
                            conn.execute(ins_tag, (row.id, k, v))
                else:
                    conn.execute("BEGIN")
                    conn.execute(ins_report, _row_values(row, time.time_ns()))
                    conn.execute(ins_body, (row.id, body))
                    for k, v in row.tags.items():
                        conn.execute(ins_tag, (row.id, k, v))
                    conn.execute("COMMIT")
                lat.append(time.perf_counter() - t0)
        finally:
            conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"per_s": len(items) / wall, **_percentiles(lat)}


def compare(
    backend: str, tmp: Path, keyholder: Deployment, items: list[Item], clients: int, rounds: int
) -> dict[str, Any]:
    """ABAB rounds of collector vs raw inserts, each on a fresh database and its own reports."""
    batches = iter([items[i :: 2 * rounds] for i in range(2 * rounds)])
    results: dict[str, list[dict[str, float]]] = {"collector": [], "raw": []}

    def collector_round() -> float:
        with fresh_database(backend, tmp) as db:
            d = deploy(db, tmp, keys=keyholder.keys, max_body_bytes=4 << 20)
            try:
                with d.server:
                    r = run_collector(d, next(batches), clients)
            finally:
                d.engine.dispose()
        results["collector"].append(r)
        return r["per_s"]

    def raw_round() -> float:
        with fresh_database(backend, tmp) as db:
            open_database(db).dispose()
            r = run_raw(db, next(batches), clients)
        results["raw"].append(r)
        return r["per_s"]

    abab([("collector", collector_round), ("raw", raw_round)], rounds)
    row: dict[str, Any] = {}
    for name, rs in results.items():
        row[name] = {
            "per_s": summary([r["per_s"] for r in rs]),
            "p50_ms": statistics.median(r["p50_ms"] for r in rs),
            "p99_ms": statistics.median(r["p99_ms"] for r in rs),
        }
    row["ratio"] = row["collector"]["per_s"]["median"] / row["raw"]["per_s"]["median"]
    return row


def _line(name: str, r: dict[str, Any]) -> str:
    return f"{name} {r['per_s']['median']:8.1f}/s p50 {r['p50_ms']:7.2f} p99 {r['p99_ms']:8.2f} ms"


def ingest_bench(
    backend: str,
    tmp: Path,
    rounds: int,
    count: dict[str, int],
    clients_list: tuple[int, ...] = CLIENTS,
) -> list[dict[str, Any]]:
    rows = []
    with fresh_database(backend, tmp) as keys_db:
        keyholder = deploy(keys_db, tmp)
        for size_name, size in SIZES.items():
            items = make_bodies(count[size_name] * 2 * rounds, size, keyholder)
            for clients in clients_list:
                row = compare(backend, tmp, keyholder, items, clients, rounds)
                row = {"backend": backend, "size": size_name, "clients": clients, **row}
                print(
                    f"{backend:<10} {size_name:>4} x{clients:<2}  "
                    f"{_line('collector', row['collector'])} | {_line('raw', row['raw'])} "
                    f"| ratio {row['ratio']:.2f}",
                    flush=True,
                )
                rows.append(row)
        keyholder.engine.dispose()
    return rows


def fill(db: str, n: int, template: bytes) -> None:
    """n report rows (50 models x 10 boards, 20 rig tags, spread over a year), one body each."""
    engine = make_engine(db)
    rng = np.random.default_rng(1)
    base = 1_790_000_000 * 10**9
    year = 365 * 86_400 * 10**9
    created = np.sort(base + rng.integers(0, year, n))
    batch = 5000
    with engine.begin() as conn:
        for start in range(0, n, batch):
            ids = [uuid7() for _ in range(start, min(n, start + batch))]
            rows = []
            for j, rid in enumerate(ids):
                i = start + j
                rows.append({
                    "id": rid, "created_ns": int(created[i]), "received_ns": int(created[i]),
                    "schema_minor": 0, "model_name": f"m{i % 50}", "model_sha256": "0" * 64,
                    "board_id": f"b{i % 10}", "device_id": f"d{i % 200}", "runner": "tflite",
                    "count": 100, "p50_s": float(rng.random()), "p95_s": float(rng.random()),
                    "p99_s": float(rng.random()), "rss_peak_bytes": 1e6,
                    "energy_per_inference_j": None, "power_mean_w": None,
                    "size_bytes": len(template), "sha256": "0" * 64, "signed_by": "bench",
                    "uploaded_by": "bench", "gate_status": "none",
                })  # fmt: skip
            conn.execute(reports.insert(), rows)
            conn.execute(report_bodies.insert(), [{"id": r["id"], "body": template} for r in rows])
            conn.execute(
                report_tags.insert(),
                [{"report_id": r["id"], "key": "rig", "value": f"r{k % 20}"}
                 for k, r in enumerate(rows, start)],
            )  # fmt: skip
    # A database in service has statistics (PostgreSQL's autovacuum analyzes a table once a
    # tenth of it changed); right after one bulk load it has none, and PostgreSQL then plans
    # the tag and IN look-ups as sequential scans (22 ms instead of 0.5 ms, measured here).
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE"))
    engine.dispose()


def query_bench(backend: str, tmp: Path, requests: int) -> list[dict[str, Any]]:
    out = []
    with fresh_database(backend, tmp) as db:
        d = deploy(db, tmp)
        template = encode(sign(minimal_report(), d.keys))
        t0 = time.perf_counter()
        fill(db, QUERY_REPORTS, template)
        print(f"{backend}: {QUERY_REPORTS} reports inserted in {time.perf_counter() - t0:.1f} s")
        mid = 1_790_000_000 * 10**9 + 180 * 86_400 * 10**9
        queries = {
            "model (2,000 match, first page of 100)": "model=m7&limit=100",
            "model + board (200 match)": "model=m7&board=b7&limit=100",
            "tag (5,000 match, page of 100)": "tag=rig:r3&limit=100",
            "model + tag + time range": f"model=m7&tag=rig:r7&created_after={mid}&limit=100",
            "page 10 of a model (cursor)": None,
            "no match": "model=nope",
        }
        with d.server:
            conn = http.client.HTTPConnection("127.0.0.1", d.server.port, timeout=60)
            headers = {"Authorization": f"Bearer {d.pipeline_token}"}

            def get(q: str) -> Any:
                conn.request("GET", "/v1/reports?" + q, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                assert resp.status == 200, data[:200]
                import json

                return json.loads(data)

            cursor_q = "model=m7&limit=100"
            for _ in range(9):
                cursor = get(cursor_q.split("&cursor=")[0])["next_cursor"]
                cursor_q = f"model=m7&limit=100&cursor={cursor}"
            queries["page 10 of a model (cursor)"] = cursor_q
            for name, q in queries.items():
                assert q is not None
                for _ in range(10):
                    get(q)  # warm the caches
                lat = []
                for _ in range(requests):
                    t = time.perf_counter()
                    got = get(q)
                    lat.append(time.perf_counter() - t)
                p = _percentiles(lat)
                print(
                    f"{backend:<10} {name:<42} {len(got['reports']):>4} rows  "
                    f"p50 {p['p50_ms']:6.2f} ms  p99 {p['p99_ms']:6.2f} ms",
                    flush=True,
                )
                out.append({"backend": backend, "query": name, "rows": len(got["reports"]), **p})
            conn.close()
        d.engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--count-10kb", type=int, default=400, help="reports per run, 10 KB")
    ap.add_argument("--count-1mb", type=int, default=60, help="reports per run, 1 MB")
    ap.add_argument("--requests", type=int, default=300, help="requests per query")
    ap.add_argument("--clients", default="1,8,32", help="client counts for ingest, e.g. 1,8")
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--skip-query", action="store_true")
    args = ap.parse_args()
    backends = [b for b in args.backends.split(",") if b]
    if "postgresql" in backends and not os.environ.get("EDGEPROF_TEST_PG_URL"):
        raise SystemExit("PostgreSQL needs EDGEPROF_TEST_PG_URL (scripts/pg-test-server start)")
    counts = {"10KB": args.count_10kb, "1MB": args.count_1mb}
    results: dict[str, Any] = {"ingest": [], "query": []}
    with tempfile.TemporaryDirectory(dir=os.environ.get("EDGEPROF_BENCH_TMP")) as tmp:
        for backend in backends:
            if not args.skip_ingest:
                clients = tuple(int(c) for c in args.clients.split(",") if c)
                results["ingest"] += ingest_bench(backend, Path(tmp), args.rounds, counts, clients)
            if not args.skip_query:
                results["query"] += query_bench(backend, Path(tmp), args.requests)
    print(save("collector", results))


if __name__ == "__main__":
    main()
