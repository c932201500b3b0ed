"""The collector over HTTP, against a real uvicorn server on loopback, on SQLite and PostgreSQL.

Every refusal is checked for its status, its message and that nothing was stored.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

from edgeprof.collector.gate_keys import add_gate_key
from edgeprof.gate.inputs import decision_body
from edgeprof.gate.keys import init_gate_key
from edgeprof.report.codec import encode
from edgeprof.report.signing import Keys, init_keys, sign
from edgeprof.testing.collector_server import Deployment
from edgeprof.testing.sample_reports import minimal_report

pytestmark = pytest.mark.integration
BASE_NS = time.time_ns() - 60 * 86_400 * 10**9  # within the collector's created_ns window


def test_upload_then_duplicate_then_byte_identical_download(collector: Deployment) -> None:
    report = minimal_report(tags={"rig": "lab-1"})
    body = collector.signed(report)
    status, answer = collector.upload(body)
    assert (status, answer) == (201, {"id": report["report_id"], "duplicate": False})
    status, answer = collector.upload(body)
    assert (status, answer) == (200, {"id": report["report_id"], "duplicate": True})
    assert collector.stored() == 1

    status, data, headers = collector.request(
        "GET", f"/v1/reports/{report['report_id']}", token=collector.pipeline_token
    )
    assert status == 200
    assert headers["content-type"] == "application/msgpack"
    assert data == body


def test_listing_carries_the_indexed_fields(collector: Deployment) -> None:
    lat = np.linspace(0.010, 0.020, 101)
    report = minimal_report(latency_s=lat, model="kws", board="raspberry-pi-5", tags={"a": "1"})
    body = collector.signed(report)
    assert collector.upload(body)[0] == 201
    status, page = collector.get_json("/v1/reports")
    assert status == 200
    (item,) = page["reports"]
    assert item["id"] == report["report_id"]
    assert item["model"] == {"name": "kws", "sha256": "0" * 64}
    assert item["board_id"] == "raspberry-pi-5"
    assert item["count"] == 101
    assert item["latency_p95_s"] == pytest.approx(float(np.quantile(lat, 0.95)))
    assert item["sha256"] == hashlib.sha256(body).hexdigest()
    assert item["size_bytes"] == len(body)
    assert item["tags"] == {"a": "1"}
    assert item["gate_status"] == "none"
    assert item["signed_by"]
    assert all(s.count(":") == 1 for s in item["signed_by"])
    assert page["next_cursor"] is None


def test_filters_and_cursor_pagination(collector: Deployment) -> None:
    ids: dict[tuple[str, str], list[str]] = {}
    base = BASE_NS
    for i in range(23):
        model, board = ("a", "b")[i % 2], ("x", "y", "z")[i % 3]
        r = minimal_report(
            model=model, board=board, created_ns=base + i * 1000, tags={"parity": str(i % 2)}
        )
        assert collector.upload(collector.signed(r))[0] == 201
        ids.setdefault((model, board), []).append(r["report_id"])

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        q = "/v1/reports?limit=5" + (f"&cursor={cursor}" if cursor else "")
        status, page = collector.get_json(q)
        assert status == 200
        seen += [r["id"] for r in page["reports"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == 5
    assert len(seen) == 23 == len(set(seen))
    assert [r for r in seen] == sorted(seen, key=seen.index)  # stable oldest-first order

    status, page = collector.get_json("/v1/reports?model=a&board=x")
    assert sorted(r["id"] for r in page["reports"]) == sorted(ids[("a", "x")])
    status, page = collector.get_json("/v1/reports?tag=parity:1")
    assert len(page["reports"]) == 11
    status, page = collector.get_json(
        f"/v1/reports?created_after={base + 5000}&created_before={base + 10000}"
    )
    assert len(page["reports"]) == 5
    status, page = collector.get_json("/v1/reports?created_after=2030-01-01T00:00:00Z")
    assert page["reports"] == []
    status, page = collector.get_json("/v1/reports?model=nope")
    assert page["reports"] == []

    status, data, headers = collector.request(
        "GET", "/v1/reports?limit=2&format=msgpack", token=collector.pipeline_token
    )
    assert status == 200
    assert headers["content-type"] == "application/msgpack"
    assert len(msgpack.unpackb(data)["reports"]) == 2


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=5000", "limit"),
        ("cursor=%%%", "cursor"),
        ("cursor=WzEsMl0", "cursor"),
        ("created_after=yesterday", "created_after"),
        ("created_after=2026-01-01T00:00:00", "zone"),
        ("tag=novalue", "tag"),
        ("model_sha256=xyz", "model_sha256"),
        ("gate_status=maybe", "gate_status"),
        ("format=xml", "format"),
        ("colour=red", "colour"),
    ],
)
def test_bad_queries_are_400_naming_the_parameter(
    collector: Deployment, query: str, needle: str
) -> None:
    status, answer = collector.get_json(f"/v1/reports?{query}")
    assert status == 400
    assert needle in answer["error"]


def test_roles_are_kept_apart(collector: Deployment) -> None:
    body = collector.signed(minimal_report())
    assert collector.request("POST", "/v1/reports", body=body)[0] == 401
    assert collector.upload(body, token="epd_not-a-token")[0] == 401
    status, answer = collector.upload(body, token=collector.pipeline_token)
    assert status == 403
    assert "pipeline" in answer["error"]
    assert collector.upload(body, token=collector.admin_token)[0] == 403
    assert collector.stored() == 0
    assert collector.upload(body)[0] == 201
    status, answer = collector.get_json("/v1/reports", token=collector.device_token)
    assert status == 403
    assert collector.get_json("/v1/tokens", token=collector.pipeline_token)[0] == 403
    # No route changes or deletes a stored report.
    rid = msgpack.unpackb(body)["report_id"]
    for method in ("PUT", "DELETE", "PATCH"):
        status, _, _ = collector.request(
            method, f"/v1/reports/{rid}", token=collector.admin_token, body=b"x"
        )
        assert status == 405


def test_admin_manages_tokens_and_revocation_is_immediate(collector: Deployment) -> None:
    status, data, _ = collector.request(
        "POST",
        "/v1/tokens",
        token=collector.admin_token,
        body=json.dumps({"role": "device", "name": "rig-7"}).encode(),
        ctype="application/json",
    )
    assert status == 400  # a device token is bound to its device(s)
    assert "device id" in json.loads(data)["error"]
    status, data, _ = collector.request(
        "POST",
        "/v1/tokens",
        token=collector.admin_token,
        body=json.dumps(
            {"role": "device", "name": "rig-7", "devices": ["machine-id:test"]}
        ).encode(),
        ctype="application/json",
    )
    assert status == 201
    made = json.loads(data)
    assert made["role"] == "device"
    assert made["devices"] == ["machine-id:test"]
    assert made["token"].startswith("epd_")
    assert collector.upload(collector.signed(minimal_report()), token=made["token"])[0] == 201
    status, listed = collector.get_json("/v1/tokens", token=collector.admin_token)
    assert made["id"] in [t["id"] for t in listed["tokens"]]
    assert all("token" not in t for t in listed["tokens"])
    status, _, _ = collector.request(
        "DELETE", f"/v1/tokens/{made['id']}", token=collector.admin_token
    )
    assert status == 200
    assert collector.upload(collector.signed(minimal_report()), token=made["token"])[0] == 401
    with collector.engine.connect() as conn:
        stored_hashes = [r[0] for r in conn.exec_driver_sql("SELECT token_sha256 FROM tokens")]
    assert made["token"] not in stored_hashes
    assert hashlib.sha256(made["token"].encode()).hexdigest() in stored_hashes


def _tampered(collector: Deployment) -> bytes:
    wire: dict[str, Any] = msgpack.unpackb(collector.signed(minimal_report()))
    wire["model"]["name"] = "another-model"  # still valid and self-consistent: only the signature
    return bytes(msgpack.packb(wire, use_bin_type=True))


def _future_major(collector: Deployment) -> bytes:
    wire: dict[str, Any] = msgpack.unpackb(collector.signed(minimal_report()))
    wire["schema_version"] = [2, 0]
    return bytes(msgpack.packb(wire, use_bin_type=True))


def _invalid(collector: Deployment) -> bytes:
    report = minimal_report()
    report["summary"]["count"] = 99
    wire: dict[str, Any] = msgpack.unpackb(encode(report))
    return bytes(msgpack.packb(wire, use_bin_type=True))


def _hmac_only(collector: Deployment) -> bytes:
    keys = Keys(collector.keys.directory, hmac_key=collector.keys.hmac_key)
    return encode(sign(minimal_report(), keys))


def _foreign_key(collector: Deployment, tmp: Any) -> bytes:
    other: Keys = init_keys(directory=tmp / "other-keys")
    return encode(sign(minimal_report(), other))


@pytest.mark.parametrize(
    ("make", "status", "needle"),
    [
        (lambda c, t: b"\xc1\xc1\xc1", 400, "not a msgpack report"),
        (lambda c, t: c.signed(minimal_report())[:-10], 400, "truncated"),
        (lambda c, t: msgpack.packb({"schema": "something"}), 400, "not an edgeprof report"),
        (lambda c, t: _future_major(c), 422, "unsupported report schema version"),
        (lambda c, t: _invalid(c), 422, "fails validation"),
        (lambda c, t: encode(minimal_report()), 422, "unsigned"),
        (lambda c, t: _tampered(c), 422, "signature mismatch"),
        (lambda c, t: _hmac_only(c), 422, "no Ed25519 signature"),
        (lambda c, t: _foreign_key(c, t), 403, "is not enrolled"),
    ],
)
def test_bad_uploads_are_refused_with_a_reason_and_nothing_stored(
    collector: Deployment, tmp_path: Any, make: Any, status: int, needle: str
) -> None:
    got, answer = collector.upload(make(collector, tmp_path))
    assert got == status
    assert needle in answer["error"]
    assert collector.stored() == 0


def test_size_limit_content_type_and_conflicting_id(collector: Deployment) -> None:
    big = collector.signed(minimal_report(padding=5 * 1024 * 1024))
    status, answer = collector.upload(big)
    assert status == 413
    assert "limit" in answer["error"]
    status, _data, _ = collector.request(
        "POST",
        "/v1/reports",
        token=collector.device_token,
        body=collector.signed(minimal_report()),
        ctype="application/json",
    )
    assert status == 415
    first = minimal_report()
    assert collector.upload(collector.signed(first))[0] == 201
    second = {**first, "tags": {"changed": "yes"}}
    status, answer = collector.upload(collector.signed(second))
    assert status == 409
    assert "different report" in answer["error"]
    assert collector.stored() == 1


def test_concurrent_uploads_of_one_report_store_it_exactly_once(collector: Deployment) -> None:
    body = collector.signed(minimal_report(padding=100_000))
    statuses: list[int] = []
    barrier = threading.Barrier(16)

    def one() -> None:
        barrier.wait(timeout=30)
        statuses.append(collector.upload(body)[0])

    threads = [threading.Thread(target=one) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(statuses) == [200] * 15 + [201]
    assert collector.stored() == 1


def test_model_summary_per_board(collector: Deployment) -> None:
    base = BASE_NS
    day = 86_400 * 10**9
    for i, p95 in enumerate([0.010, 0.012, 0.008, 0.014]):
        r = minimal_report(
            latency_s=np.full(20, p95), model="kws", board="pi5", created_ns=base + i * day
        )
        collector.upload(collector.signed(r))
    collector.upload(collector.signed(minimal_report(model="kws", board="jetson")))
    status, summary = collector.get_json("/v1/models/kws/summary")
    assert status == 200
    assert sorted(summary["boards"]) == ["jetson", "pi5"]
    pi5 = summary["boards"]["pi5"]
    assert pi5["reports"] == 4
    assert pi5["latest"]["latency_p95_s"] == pytest.approx(0.014)
    assert pi5["best_latency_p95"]["latency_p95_s"] == pytest.approx(0.008)
    assert [p["latency_p95_s"] for p in pi5["trend"]["points"]] == pytest.approx(
        [0.010, 0.012, 0.008, 0.014]
    )
    assert pi5["trend"]["slope_per_day"]["latency_p95_s"] == pytest.approx(0.0008)
    assert collector.get_json("/v1/models/unknown/summary")[0] == 404


def test_decisions_are_kept_and_mark_the_candidate(collector: Deployment, tmp_path: Path) -> None:
    key = init_gate_key(tmp_path / "gate-key")
    add_gate_key(collector.engine, key.public, "ci")
    r = minimal_report()
    body = collector.signed(r)
    collector.upload(body)
    sha = hashlib.sha256(body).hexdigest()
    record = decision_body(
        key,
        decision="fail",
        severity="high",
        inputs=[{"report_id": r["report_id"], "sha256": sha, "role": "candidate"}],
        policy_sha256="ab" * 32,
        audit=None,
        record={"justification": "p95 over 100 ms"},
    )

    def post(token: str) -> tuple[int, Any]:
        status, data, _ = collector.request(
            "POST",
            "/v1/decisions",
            token=token,
            body=json.dumps(record).encode(),
            ctype="application/json",
        )
        return status, json.loads(data)

    status, answer = post(collector.pipeline_token)
    assert status == 201
    assert answer["duplicate"] is False
    status, page = collector.get_json("/v1/reports?gate_status=fail")
    assert [x["id"] for x in page["reports"]] == [r["report_id"]]
    status, found = collector.get_json(f"/v1/reports/{r['report_id']}/decisions")
    (kept,) = found["decisions"]
    assert kept["record"]["justification"] == "p95 over 100 ms"
    assert kept["verified"] is True
    assert kept["gate_key_id"] == key.key_id
    assert kept["signed"] == record["signed"]
    # the same signed decision again is the same decision, not a second one
    assert post(collector.pipeline_token) == (200, {"id": answer["id"], "duplicate": True})
    assert post(collector.device_token)[0] == 403


def test_health_metrics_and_openapi(collector: Deployment) -> None:
    collector.upload(collector.signed(minimal_report()))
    collector.upload(b"junk")
    status, body, _ = collector.request("GET", "/healthz")
    assert status == 200
    assert json.loads(body)["status"] == "ok"
    assert collector.request("GET", "/metrics")[0] == 401  # behind a token (--public-metrics)
    status, body, _ = collector.request("GET", "/metrics", token=collector.pipeline_token)
    assert status == 200
    text = body.decode()
    assert 'edgeprof_collector_uploads_total{outcome="created"} 1.0' in text
    assert 'edgeprof_collector_uploads_total{outcome="refused"} 1.0' in text
    assert "edgeprof_collector_reports_stored 1.0" in text
    status, body, _ = collector.request("GET", "/openapi.json")
    doc = json.loads(body)
    assert doc["openapi"].startswith("3.")
    assert "/v1/reports" in doc["paths"]
