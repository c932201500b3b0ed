"""The collector under bad bodies and crashes, on SQLite and PostgreSQL.

- Fuzzed bodies (hypothesis): never a 5xx, and a report is stored exactly when the answer is
  201 — garbage, damaged reports and re-signed reports with wrong fields alike.
- kill -9 mid-ingest: after a restart every stored report is whole (row, body and tags agree,
  the body hashes to the stored sha256 and decodes), and every report acknowledged with 201
  before the kill is there.
- Migrations: idempotent, and a database from a newer collector is refused by name.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeprof.collector.db import MIGRATIONS, SCHEMA_VERSION, open_database, schema_migrations
from edgeprof.errors import InputError
from edgeprof.report.codec import decode, encode
from edgeprof.report.signing import sign
from edgeprof.testing.collector_server import Deployment, deploy, fresh_database
from edgeprof.testing.sample_reports import minimal_report

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fuzz_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture
def running(backend: str, tmp_path: Path) -> Iterator[Deployment]:
    with fresh_database(backend, tmp_path) as db:
        d = deploy(db, tmp_path, max_body_bytes=1024 * 1024)
        try:
            with d.server:
                yield d
        finally:
            d.engine.dispose()


_msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)

_FIELDS = [
    ("report_id",),
    ("created_ns",),
    ("schema_version",),
    ("model", "name"),
    ("model", "sha256"),
    ("device", "board_id"),
    ("device", "device_id"),
    ("runner", "runner"),
    ("summary", "count"),
    ("summary", "latency", "p95_s"),
    ("summary", "rss_peak_bytes"),
    ("tags",),
    ("per_inference", "latency_s"),
    ("extra_field",),
]


def _set(report: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    node = report
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return report


@st.composite
def bodies(draw: st.DrawFn, d: Deployment) -> bytes:
    kind = draw(st.sampled_from(["bytes", "msgpack", "damaged", "resigned"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "msgpack":
        return bytes(msgpack.packb(draw(_msgpack_values), use_bin_type=True))
    if kind == "damaged":
        data = bytearray(d.signed(minimal_report()))
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        cut = draw(st.integers(1, len(data)))
        return bytes(data[:cut])
    path = draw(st.sampled_from(_FIELDS))
    value = draw(_msgpack_values)
    report = _set(minimal_report(), path, value)
    try:
        return encode(sign(report, d.keys))
    except (InputError, TypeError, ValueError, OverflowError):
        return encode(sign(minimal_report(), d.keys))  # unencodable mutation: a valid report


def test_fuzzed_bodies_never_5xx_and_stored_exactly_when_201(running: Deployment) -> None:
    examples = 150 if running.engine.dialect.name == "sqlite" else 80

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @given(data=st.data())
    def one(data: st.DataObject) -> None:
        body = data.draw(bodies(running))
        before = running.stored()
        status, answer = running.upload(body)
        assert status < 500, answer
        assert "error" in answer or status in (200, 201)
        assert running.stored() == before + (status == 201)

    one()


def _integrity(d: Deployment) -> int:
    """Every stored report is whole; returns how many there are."""
    with d.engine.connect() as conn:
        rows = list(conn.execute(sa.text("SELECT id, sha256, size_bytes FROM reports")))
        bodies = {
            r.id: bytes(r.body) for r in conn.execute(sa.text("SELECT id, body FROM report_bodies"))
        }
        orphan_tags = conn.execute(
            sa.text(
                "SELECT count(*) FROM report_tags t "
                "WHERE NOT EXISTS (SELECT 1 FROM reports r WHERE r.id = t.report_id)"
            )
        ).scalar()
    assert orphan_tags == 0
    assert sorted(bodies) == sorted(r.id for r in rows)
    for r in rows:
        body = bodies[r.id]
        assert len(body) == r.size_bytes
        assert hashlib.sha256(body).hexdigest() == r.sha256
        decode(body)
    return len(rows)


@pytest.mark.slow
def test_kill_9_mid_ingest_leaves_no_half_stored_report(backend: str, tmp_path: Path) -> None:
    rng = random.Random(7)
    with fresh_database(backend, tmp_path) as db:
        d = deploy(db, tmp_path, max_body_bytes=4 * 1024 * 1024)
        acked: set[str] = set()
        try:
            for round_ in range(3):
                d.server.start()
                stop = threading.Event()

                def uploader(seed: int, stop: threading.Event) -> None:
                    local = random.Random(seed)
                    while not stop.is_set():
                        r = minimal_report(
                            padding=local.choice([10_000, 1_000_000]), tags={"k": str(seed)}
                        )
                        try:
                            status, answer = d.upload(d.signed(r))
                        except OSError:
                            return  # the server died under us
                        if status == 201:
                            acked.add(answer["id"])

                threads = [
                    threading.Thread(target=uploader, args=(round_ * 10 + i, stop))
                    for i in range(4)
                ]
                for t in threads:
                    t.start()
                time.sleep(rng.uniform(0.5, 2.0))
                # the kill must land mid-ingest of a server that has stored something this
                # round: wait for an acknowledgement (bounded only against a dead server)
                acked_before = len(acked)
                for _ in range(6000):
                    if len(acked) > acked_before:
                        break
                    time.sleep(0.01)
                d.server.kill9()
                stop.set()
                for t in threads:
                    t.join(timeout=60)
            d.server.start()
            stored = _integrity(d)
            with d.engine.connect() as conn:
                ids = {r[0] for r in conn.execute(sa.text("SELECT id FROM reports"))}
            assert acked <= ids, f"{len(acked - ids)} acknowledged reports lost"
            assert stored >= len(acked) > 0
        finally:
            d.server.stop()
            d.engine.dispose()


def test_migrations_are_idempotent_and_a_newer_schema_is_refused(
    backend: str, tmp_path: Path
) -> None:
    with fresh_database(backend, tmp_path) as db:
        open_database(db).dispose()
        engine = open_database(db)
        with engine.begin() as conn:
            versions = [r[0] for r in conn.execute(sa.select(schema_migrations.c.version))]
            assert sorted(versions) == [m.version for m in MIGRATIONS]
            conn.execute(
                schema_migrations.insert().values(
                    version=SCHEMA_VERSION + 1, applied_ns=0, description="from the future"
                )
            )
        engine.dispose()
        with pytest.raises(InputError, match=rf"schema version {SCHEMA_VERSION + 1}"):
            open_database(db)
