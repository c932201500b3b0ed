"""``edgeprof gate`` through the main group as the lead wires it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from edgeprof.cli import main
from edgeprof.cli.gate import gate_group
from edgeprof.report.codec import encode
from edgeprof.report.signing import Keys, init_keys, sign

main.add_command(gate_group)  # what cli.py will do; harmless if it already has


@pytest.fixture(autouse=True)
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Keys:
    d = tmp_path / "keys"
    monkeypatch.setenv("EDGEPROF_KEY_DIR", str(d))
    monkeypatch.setenv("EDGEPROF_GATE_KEY_DIR", str(tmp_path / "gate-key"))
    k = init_keys(directory=d)
    return Keys(d, hmac_key=k.hmac_key)


def write(path: Path, report: dict[str, Any], keys: Keys | None) -> Path:
    path.write_bytes(encode(sign(report, keys) if keys is not None else report))
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


ReportFactory = Callable[..., dict[str, Any]]  # the make_report fixture (tests/conftest.py)


@pytest.fixture
def policy(tmp_path: Path, gate_policy: bytes) -> Path:
    p = tmp_path / "p.toml"
    p.write_bytes(gate_policy)
    return p


def test_pass_fail_and_json(
    tmp_path: Path, keys: Keys, policy: Path, make_report: ReportFactory
) -> None:
    good = write(tmp_path / "good.msgpack", make_report(np.full(20, 0.01)), keys)
    slow = write(tmp_path / "slow.msgpack", make_report(np.full(20, 0.2)), keys)
    code, out, _ = invoke("gate", str(good), "--policy", str(policy))
    assert code == 0, out
    assert "decision: PASS" in out
    assert "\x1b[" not in out
    code, out, _ = invoke("gate", "check", str(slow), "--policy", str(policy), "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["outcome"] == "fail"
    assert doc["severity"] == "high"
    assert doc["exit_code"] == 1
    p95 = next(r for r in doc["results"] if r["rule_id"] == "p95")
    assert p95["verdict"] == "fail"
    assert p95["value"] == pytest.approx(0.2)
    assert doc["inputs"][0]["sha256"]
    assert doc["inputs"][0]["signature"] == "hmac_sha256 verified"


def test_default_policy_incomplete_without_quality(
    tmp_path: Path, keys: Keys, make_report: ReportFactory
) -> None:
    r = make_report(np.full(20, 0.01), quality={})
    code, out, _ = invoke("gate", str(write(tmp_path / "r.msgpack", r, keys)))
    assert code == 2
    assert "decision: INCOMPLETE" in out
    assert "quality.accuracy absent" in out


def test_unsigned_and_tampered_reports_are_refused(
    tmp_path: Path, keys: Keys, make_report: ReportFactory
) -> None:
    report = make_report(np.full(20, 0.01))
    unsigned = write(tmp_path / "u.msgpack", report, None)
    code, _, err = invoke("gate", str(unsigned))
    assert code == 2
    assert "unsigned report" in err
    code, _, _ = invoke("gate", str(unsigned), "--allow-unsigned")
    assert code == 0
    signed = write(tmp_path / "s.msgpack", report, keys)
    tampered = tmp_path / "t.msgpack"
    tampered.write_bytes(signed.read_bytes().replace(b"golden", b"GOLDEN"))
    code, _, err = invoke("gate", str(tampered), "--allow-unsigned")
    assert code == 2
    assert "signature mismatch" in err


def test_malformed_policy_exit_2_names_file_and_line(
    tmp_path: Path, keys: Keys, make_report: ReportFactory
) -> None:
    r = write(tmp_path / "r.msgpack", make_report(), keys)
    bad = tmp_path / "bad.toml"
    bad.write_text('schema_version = 1\n\n[[rule]]\nmetric = "summary.latency.p96_s"\nmax = 1\n')
    code, _, err = invoke("gate", str(r), "--policy", str(bad))
    assert code == 2
    assert f"{bad}:4: field 'rule[0].metric': unknown metric 'summary.latency.p96_s'" in err
    assert len(err.strip().splitlines()) == 1


def test_regression_drift_and_audit_log(
    tmp_path: Path, keys: Keys, policy: Path, make_report: ReportFactory
) -> None:
    rng = np.random.default_rng(3)
    base = make_report(0.01 * rng.lognormal(0, 0.15, 2000))
    cur = make_report(0.0105 * rng.lognormal(0, 0.15, 2000))
    b = write(tmp_path / "b.msgpack", base, keys)
    c = write(tmp_path / "c.msgpack", cur, keys)
    log = tmp_path / "audit.jsonl"
    args = ["gate", str(c), "--policy", str(policy), "--audit-log", str(log)]
    code, _, err = invoke(*args, "--baseline", str(b))
    assert code == 2
    assert err.startswith("edgeprof: error: no gate key in ")
    assert "edgeprof gate keygen" in err
    assert len(err.strip().splitlines()) == 1
    assert not log.exists()
    code, out, _ = invoke("gate", "keygen")
    assert code == 0
    assert "gate.ed25519.pub" in out
    code, out, _ = invoke(*args, "--baseline", str(b), "--window", str(b))
    assert code == 1
    assert "regression:latency_s" in out
    assert "audit: " in out
    code, out, _ = invoke(*args, "--baseline", str(c))
    assert code == 0
    code, out, _ = invoke("gate", "verify-log", str(log))
    assert code == 0
    assert "2 entries" in out
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    first = entries[0]
    assert first["decision"]["outcome"] == "fail"
    assert {i["role"] for i in first["inputs"]} == {"report", "baseline", "window"}
    assert first["policy"]["sha256"]
    assert first["justification"].startswith("FAIL")
    assert any(r["rule_id"] == "drift:latency_s" for r in first["rules"])
    text = log.read_text().replace('"outcome":"fail"', '"outcome":"pass"', 1)
    log.write_text(text)
    code, out, _ = invoke("gate", "verify-log", str(log), "--json")
    assert code == 1
    assert json.loads(out)["bad_line"] == 1


def test_group_help_lists_subcommands() -> None:
    code, out, _ = invoke("gate", "--help")
    assert code == 0
    assert "check" in out
    assert "verify-log" in out


def test_gate_keys_are_enrolled_listed_and_revoked_upstream(tmp_path: Path) -> None:
    db = str(tmp_path / "collector.sqlite3")
    code, out, _ = invoke("gate", "keygen")
    assert code == 0
    pub = tmp_path / "gate-key" / "gate.ed25519.pub"
    kid = out.split()[2]
    code, out, _ = invoke("gate", "keygen")
    assert code == 2  # never replaced by accident
    code, out, _ = invoke(
        "collector", "gate-key", "add", "--db", db, "--name", "ci", "--public-key", str(pub)
    )
    assert (code, out.strip()) == (0, f"enrolled gate key {kid} (ci)")
    code, out, _ = invoke("collector", "gate-key", "list", "--db", db, "--json")
    (listed,) = json.loads(out)
    assert listed["key_id"] == kid
    assert listed["public_key"] == pub.read_text().strip()
    code, out, _ = invoke("collector", "gate-key", "revoke", "--db", db, kid)
    assert code == 0
    assert invoke("collector", "gate-key", "list", "--db", db)[1] == ""
    code, out, _ = invoke("collector", "gate-key", "list", "--db", db, "--all")
    assert out.split() == [kid, "revoked", "ci"]
    code, _, err = invoke("collector", "gate-key", "revoke", "--db", db, kid)
    assert code == 2
    assert "no enrolled gate key" in err


def test_baseline_of_another_model_needs_the_flag(
    tmp_path: Path, keys: Keys, policy: Path, make_report: ReportFactory
) -> None:
    cur = write(tmp_path / "c.msgpack", make_report(np.full(20, 0.01)), keys)
    other = make_report(np.full(20, 0.01), report_id="01900000-0000-7000-8000-0000000000b1")
    other["model"]["sha256"] = "cd" * 32
    other["runner"]["runner"] = "tflm"
    base = write(tmp_path / "b.msgpack", other, keys)
    args = ["gate", str(cur), "--policy", str(policy), "--baseline", str(base)]
    code, out, err = invoke(*args)
    assert code == 2, out
    assert "--allow-other-model-baseline" in err
    assert len(err.strip().splitlines()) == 1
    code, out, _ = invoke(*args, "--allow-other-model-baseline")
    assert code == 0, out
    assert "baseline differs in:" in out
    assert "runner: tflite (baseline tflm)" in out
    code, out, _ = invoke(*args, "--allow-other-model-baseline", "--json")
    assert any(n.startswith("model: ") for n in json.loads(out)["comparability"])
