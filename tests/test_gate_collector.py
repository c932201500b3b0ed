"""``edgeprof gate --collector``: reports pulled by filter, the last approved run as the baseline,
the runs before as the drift window, and every decision posted back (a real collector, the CLI
as a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeprof.collector.gate_keys import add_gate_key
from edgeprof.gate.keys import GateKey, init_gate_key
from edgeprof.testing.collector_server import Deployment
from edgeprof.testing.sample_reports import minimal_report

pytestmark = pytest.mark.integration

POLICY = """schema_version = 1
name = "latency-only"

[[rule]]
id = "p95"
metric = "summary.latency.p95_s"
max = 0.100
source = "framework 5.1"

[regression]
metrics = ["per_inference.latency_s"]

[drift]
metrics = ["per_inference.latency_s"]
"""

BASE_NS = time.time_ns() - 60 * 86_400 * 10**9  # within the collector's created_ns window
HOUR = 3600 * 10**9


@pytest.fixture(autouse=True)
def gate_key(collector: Deployment, tmp_path: Path) -> GateKey:
    """This gate's key, enrolled upstream (the subprocesses find it by the environment)."""
    key = init_gate_key(tmp_path / "gate-key")
    add_gate_key(collector.engine, key.public, "ci")
    return key


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    p = tmp_path / "policy.toml"
    p.write_text(POLICY)
    return p


def upload(c: Deployment, latency: np.ndarray, hour: int, model: str = "kws") -> str:
    r = minimal_report(
        latency_s=latency, model=model, board="pi5", created_ns=BASE_NS + hour * HOUR
    )
    status, answer = c.upload(c.signed(r))
    assert status == 201, answer
    return str(r["report_id"])


def gate(c: Deployment, tmp: Path, policy: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    tok = tmp / "pipe.tok"
    tok.write_text(c.pipeline_token)
    result = subprocess.run(
        [sys.executable, "-m", "edgeprof", "gate", "check", "--collector", c.url,
         "--token-file", str(tok), "--policy", str(policy), "--json", *args],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "EDGEPROF_GATE_KEY_DIR": str(tmp / "gate-key")},
    )  # fmt: skip
    doc = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, doc, result.stderr


def test_approve_then_catch_a_regression_against_the_last_approved_run(
    collector: Deployment, tmp_path: Path, policy: Path
) -> None:
    rng = np.random.default_rng(5)
    first = upload(collector, 0.010 * rng.lognormal(0, 0.15, 2000), hour=0)
    code, doc, err = gate(collector, tmp_path, policy, "--model", "kws", "--board", "pi5")
    assert code == 0, err
    assert doc["outcome"] == "pass"
    assert [i["report_id"] for i in doc["inputs"]] == [first]
    assert doc["inputs"][0]["signature"].startswith("collector: ")
    assert doc["collector_decision_id"]

    slower = upload(collector, 0.0105 * rng.lognormal(0, 0.15, 2000), hour=1)
    code, doc, err = gate(
        collector, tmp_path, policy, "--model", "kws", "--baseline", "last-approved"
    )
    assert code == 1, err
    assert doc["outcome"] == "fail"
    roles = {i["role"]: i["report_id"] for i in doc["inputs"]}
    assert roles == {"report": slower, "baseline": first}
    assert any(r["rule_id"] == "regression:latency_s" and r["verdict"] == "fail"
               for r in doc["results"])  # fmt: skip

    _, page = collector.get_json("/v1/reports?model=kws")
    assert {r["id"]: r["gate_status"] for r in page["reports"]} == {
        first: "pass",
        slower: "fail",
    }
    _, found = collector.get_json(f"/v1/reports/{slower}/decisions")
    (decision,) = found["decisions"]
    assert decision["decision"] == "fail"
    assert decision["record"]["justification"].startswith("FAIL")
    _status, found = collector.get_json(f"/v1/reports/{first}/decisions")
    assert [d["role"] for d in found["decisions"]] == ["candidate", "baseline"]

    # the failed run is not "approved": the next candidate still compares with the first
    same = upload(collector, 0.010 * rng.lognormal(0, 0.15, 2000), hour=2)
    code, doc, err = gate(
        collector, tmp_path, policy, "--model", "kws", "--baseline", "last-approved",
        "--drift-window", "2",
    )  # fmt: skip
    assert code == 0, err
    roles_seen = [(i["role"], i["report_id"]) for i in doc["inputs"]]
    assert ("report", same) in roles_seen
    assert ("baseline", first) in roles_seen
    assert {r for role, r in roles_seen if role == "window"} == {first, slower}


def test_nothing_to_compare_or_gate_is_exit_2_with_a_reason(
    collector: Deployment, tmp_path: Path, policy: Path
) -> None:
    code, _, err = gate(collector, tmp_path, policy, "--model", "absent")
    assert code == 2
    assert "no report matching" in err
    upload(collector, np.full(50, 0.01), hour=0)
    code, _, err = gate(
        collector, tmp_path, policy, "--model", "kws", "--baseline", "last-approved"
    )
    assert code == 2
    assert "no approved run of kws on pi5" in err
    assert "Traceback" not in err


def test_no_post_leaves_the_collector_untouched(
    collector: Deployment, tmp_path: Path, policy: Path
) -> None:
    rid = upload(collector, np.full(50, 0.01), hour=0)
    code, doc, _ = gate(collector, tmp_path, policy, "--model", "kws", "--no-post")
    assert code == 0
    assert "collector_decision_id" not in doc
    _status, found = collector.get_json(f"/v1/reports/{rid}/decisions")
    assert found["decisions"] == []
