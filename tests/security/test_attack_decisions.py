"""Attacks on gate decisions (issue 13, item 7) against the real collector: a pipeline token
posting approvals it cannot prove, and bodies built to crash the handler.

Before signed decisions, a pipeline token could post ``pass`` for a report that does not
exist, or with a wrong sha256 for a real one, and mark it ``gate_status=pass`` for
``--baseline last-approved`` to use; a body nested 100,000 deep answered 500.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from edgeprof.collector.gate_keys import add_gate_key, revoke_gate_key
from edgeprof.gate.inputs import decision_body
from edgeprof.gate.keys import GateKey, init_gate_key
from edgeprof.testing.attacks import Attack
from edgeprof.testing.collector_server import Deployment
from edgeprof.testing.sample_reports import minimal_report

pytestmark = pytest.mark.integration

Attacker = Callable[[str], Attack]
BASE_NS = time.time_ns() - 30 * 24 * 3600 * 10**9  # a month ago: inside the ingest window
HOUR = 3600 * 10**9
POLICY = """schema_version = 1
name = "latency-only"

[[rule]]
id = "p95"
metric = "summary.latency.p95_s"
max = 0.100

[regression]
metrics = ["per_inference.latency_s"]
"""


@pytest.fixture
def gate_key(collector: Deployment, tmp_path: Path) -> GateKey:
    key = init_gate_key(tmp_path / "gate-key")
    add_gate_key(collector.engine, key.public, "ci")
    return key


def upload(c: Deployment, latency: float = 0.01, hour: int = 0) -> tuple[str, str]:
    """A stored report: (id, sha256 of its bytes)."""
    r = minimal_report(
        latency_s=np.full(200, latency), model="kws", board="pi5", created_ns=BASE_NS + hour * HOUR
    )
    body = c.signed(r)
    status, answer = c.upload(body)
    assert status == 201, answer
    return str(r["report_id"]), hashlib.sha256(body).hexdigest()


def signed(key: GateKey, rid: str, sha: str, decision: str = "pass", **kw: Any) -> dict[str, Any]:
    return decision_body(
        key,
        decision=decision,
        severity=None,
        inputs=[{"report_id": rid, "sha256": sha, "role": "candidate"}],
        policy_sha256="cd" * 32,
        audit=None,
        record={"justification": "PASS"},
        **kw,
    )


def post(c: Deployment, body: bytes | dict[str, Any]) -> tuple[int, bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, answer, _ = c.request(
        "POST", "/v1/decisions", token=c.pipeline_token, body=data, ctype="application/json"
    )
    return status, answer


def decisions_kept(c: Deployment) -> int:
    with c.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM decisions")).scalar() or 0)


def status_of(c: Deployment, rid: str) -> str:
    with c.engine.connect() as conn:
        value = conn.execute(
            sa.text("SELECT gate_status FROM reports WHERE id = :id"), {"id": rid}
        ).scalar()
    return str(value)


def test_approvals_a_pipeline_token_cannot_prove_are_refused(
    collector: Deployment, gate_key: GateKey, tmp_path: Path, attack: Attacker
) -> None:
    rid, sha = upload(collector)
    ghost = "01900000-0000-7000-8000-00000000dead"
    outsider = init_gate_key(tmp_path / "outsider")
    revoked = init_gate_key(tmp_path / "revoked")
    add_gate_key(collector.engine, revoked.public, "old-ci")
    revoke_gate_key(collector.engine, revoked.key_id)
    unsigned = {
        "decision": "pass",
        "inputs": [{"report_id": rid, "sha256": "0" * 64, "role": "candidate"}],
    }
    edited = signed(gate_key, rid, sha, decision="fail")
    edited["signed"]["decision"] = "pass"
    swapped = signed(gate_key, rid, sha)
    swapped["record"] = {"justification": "something else"}
    tries: list[tuple[str, dict[str, Any], int]] = [
        ("unsigned, wrong sha256 (what was accepted before)", unsigned, 422),
        ("unsigned, for a report that does not exist", {**unsigned, "inputs": [
            {"report_id": ghost, "sha256": sha, "role": "candidate"}]}, 422),
        ("signed by the enrolled key, report does not exist", signed(gate_key, ghost, sha), 422),
        ("signed by the enrolled key, wrong sha256", signed(gate_key, rid, "1" * 64), 422),
        ("signed by a key nobody enrolled", signed(outsider, rid, sha), 403),
        ("signed by a revoked gate key", signed(revoked, rid, sha), 403),
        ("a signed fail edited into a pass", edited, 403),
        ("a signed pass with its record swapped", swapped, 422),
        ("signed, dated a day ahead",
         signed(gate_key, rid, sha, time_ns=time.time_ns() + 24 * HOUR), 422),
    ]  # fmt: skip
    a = attack("a pipeline token posts an approval it cannot prove")
    for what, body, expected in tries:
        status, answer = post(collector, body)
        held = a.attempt(status == expected and status_of(collector, rid) == "none")
        assert held, (what, status, answer)
    assert a.failed == 0
    assert decisions_kept(collector) == 0


def test_malformed_decision_bodies_get_4xx_never_5xx(
    collector: Deployment, gate_key: GateKey, attack: Attacker
) -> None:
    rid, sha = upload(collector)
    good = signed(gate_key, rid, sha)

    def with_signed(**change: Any) -> dict[str, Any]:
        return {**good, "signed": {**good["signed"], **change}}

    deep = 100_000
    bodies: list[bytes | dict[str, Any]] = [
        b"[" * deep + b"]" * deep,
        b'{"a":' * deep + b"1" + b"}" * deep,
        {**good, "record": {"x": json.loads("[" * 40 + "]" * 40)}},
        b"x" * (2 * 1024 * 1024),
        b"not json",
        b"[1, 2]",
        b"\xff\xfe",
        {**good, "signature": "zz" * 64},
        {**good, "signature": 7},
        {**good, "signed": "pass"},
        {**good, "extra": 1},
        with_signed(decision=1),
        with_signed(inputs="all"),
        with_signed(inputs=[]),
        with_signed(inputs=[{"report_id": rid}] * 2000),
        with_signed(inputs=[{"report_id": rid.upper(), "sha256": sha, "role": "candidate"}]),
        with_signed(time_ns="soon"),
        with_signed(time_ns=True),
        with_signed(time_ns=2**70),
        with_signed(audit={"log_id": "a" * 64, "seq": -1, "sha256": "b" * 64}),
        with_signed(policy_sha256=None),
        {**good, "record": {"v": float("nan")}},
    ]
    a = attack("malformed decision bodies (deep, huge, wrong types)")
    for body in bodies:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        status, answer = post(collector, data)
        assert a.attempt(400 <= status < 500), (data[:80], status, answer)
    assert a.failed == 0
    assert collector.request("GET", "/healthz")[0] == 200
    assert decisions_kept(collector) == 0
    assert post(collector, good)[0] == 201  # and the real one still goes in


def test_a_replayed_old_pass_does_not_undo_a_newer_fail(
    collector: Deployment, gate_key: GateKey, attack: Attacker
) -> None:
    rid, sha = upload(collector)
    old_pass = signed(gate_key, rid, sha, decision="pass", time_ns=time.time_ns() - HOUR)
    assert post(collector, old_pass)[0] == 201
    assert post(collector, signed(gate_key, rid, sha, decision="fail"))[0] == 201
    a = attack("replay an old signed pass after a newer fail")
    status, _ = post(collector, old_pass)
    assert a.attempt(status == 200 and status_of(collector, rid) == "fail")
    assert a.failed == 0


def _gate(c: Deployment, tmp: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    tok, policy = tmp / "pipe.tok", tmp / "policy.toml"
    tok.write_text(c.pipeline_token)
    policy.write_text(POLICY)
    result = subprocess.run(
        [sys.executable, "-m", "edgeprof", "gate", "check", "--collector", c.url,
         "--token-file", str(tok), "--policy", str(policy), "--json", "--model", "kws", *args],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "EDGEPROF_GATE_KEY_DIR": str(tmp / "gate-key")},
    )  # fmt: skip
    doc = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, doc, result.stderr


def test_last_approved_picks_only_a_verified_pass(
    collector: Deployment, gate_key: GateKey, tmp_path: Path, attack: Attacker
) -> None:
    approved, _ = upload(collector, 0.010, hour=0)
    code, doc, err = _gate(collector, tmp_path)
    assert code == 0, err
    # runs after it, each marked "pass" in a way that proves nothing
    marked, _ = upload(collector, 0.050, hour=1)  # gate_status set by hand in the database
    with collector.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE reports SET gate_status = 'pass' WHERE id = :id"), {"id": marked}
        )
    by_revoked, sha = upload(collector, 0.050, hour=2)  # passed by a key since revoked
    other = init_gate_key(tmp_path / "other-gate")
    add_gate_key(collector.engine, other.public, "other")
    assert post(collector, signed(other, by_revoked, sha))[0] == 201
    assert status_of(collector, by_revoked) == "pass"
    revoke_gate_key(collector.engine, other.key_id)
    candidate, _ = upload(collector, 0.0102, hour=3)

    a = attack("make --baseline last-approved compare with a run no gate key approved")
    code, doc, err = _gate(collector, tmp_path, "--baseline", "last-approved")
    roles = {i["role"]: i["report_id"] for i in doc.get("inputs", [])}
    held = a.attempt(roles.get("baseline") == approved and roles.get("report") == candidate)
    assert held, (code, roles, err)
    assert status_of(collector, by_revoked) == "none"
    assert a.failed == 0


def test_an_unsigned_pass_stored_before_the_upgrade_approves_nothing(
    backend: str, tmp_path: Path, attack: Attacker
) -> None:
    from edgeprof.collector import db as schema
    from edgeprof.collector.ingest import decode_upload, index_row
    from edgeprof.collector.repository import store
    from edgeprof.report.codec import encode
    from edgeprof.report.signing import init_keys, sign
    from edgeprof.testing.collector_server import fresh_database

    with fresh_database(backend, tmp_path) as url:
        engine = schema.make_engine(url)
        try:
            with engine.begin() as conn:  # a database as the version-1 collector left it
                schema.current_version(conn)  # creates schema_migrations
                schema.MIGRATIONS[0].apply(conn)
                conn.execute(
                    schema.schema_migrations.insert().values(
                        version=1, applied_ns=0, description="v1"
                    )
                )
            body = encode(sign(minimal_report(), init_keys(directory=tmp_path / "k")))
            _, report = decode_upload(body)
            rid = store(engine, index_row(report, body, "ed25519"), body, "t").id
            with engine.begin() as conn:  # a bare pipeline token's "pass", as it was taken
                conn.execute(
                    schema.decisions.insert().values(
                        id="01900000-0000-7000-8000-0000000000aa", received_ns=1,
                        decision="pass", severity=None, record="{}", posted_by="t",
                    )
                )  # fmt: skip
                conn.execute(
                    sa.text("UPDATE reports SET gate_status = 'pass' WHERE id = :id"), {"id": rid}
                )
            schema.migrate(engine)
            a = attack("an unsigned pass stored before signed decisions, after the upgrade")
            with engine.connect() as conn:
                status = conn.execute(
                    sa.text("SELECT gate_status FROM reports WHERE id = :id"), {"id": rid}
                ).scalar()
                kept = conn.execute(sa.text("SELECT count(*) FROM decisions")).scalar()
            a.attempt(status == "none" and kept == 1)
            assert a.failed == 0
        finally:
            engine.dispose()
