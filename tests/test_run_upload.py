"""`edgeprof run --upload`: the run's report reaches the collector (a stand-in on loopback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest

import edgeprof.models
from edgeprof.report.codec import decode_wire, uuid7
from edgeprof.report.signing import load_keys
from edgeprof.testing.collector_server import deploy, fresh_database
from edgeprof.testing.standin_collector import StandinCollector
from edgeprof.uplink.spool import push

pytestmark = pytest.mark.integration  # real processes (tests/conftest.py: tiers)

MLP = Path(edgeprof.models.DIRECTORY) / "kws_mlp_int8.tflite"
TOKEN = "device-token-for-tests"


def run_mlp(tmp: Path, store: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`edgeprof run` on the demo MLP, briefly, with this test's own keys and store."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeprof",
            "run",
            str(MLP),
            "--count",
            "20",
            "--min-seconds",
            "0",
            "--warmup",
            "2",
            "--store",
            str(store),
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "EDGEPROF_KEY_DIR": str(tmp / "keys")},
        check=False,
    )


def test_run_upload_delivers_the_report(tmp_path: Path) -> None:
    store, up = tmp_path / "store", tmp_path / "up"
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    with StandinCollector(up, TOKEN) as collector:
        proc = run_mlp(tmp_path, store, "--upload", collector.url, "--token-file", str(token_file))
        stored = collector.stored_ids()
    assert proc.returncode == 0, proc.stderr
    report_id = json.loads(proc.stdout)["report_id"]
    assert stored == [report_id]
    assert not list(store.glob("*.msgpack"))  # acknowledged: out of the spool
    assert (store / "sent" / f"{report_id}.msgpack").exists()
    assert TOKEN not in proc.stdout + proc.stderr


def test_run_upload_with_the_collector_down_keeps_the_report(tmp_path: Path) -> None:
    store = tmp_path / "store"
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    proc = run_mlp(
        tmp_path, store, "--upload", "http://127.0.0.1:9", "--token-file", str(token_file)
    )
    assert proc.returncode == 1  # ran fine, but the report is not upstream yet
    report_id = json.loads(proc.stdout)["report_id"]
    assert (store / f"{report_id}.msgpack").exists()  # still spooled for the next push


def test_only_reports_whose_signature_verifies_are_accepted(tmp_path: Path) -> None:
    """The real collector, the device enrolled by its public key (ed25519.pub): the signed
    report is stored, a copy edited after signing is refused (and filed under rejected/)."""
    keys = tmp_path / "keys"
    env = {**os.environ, "EDGEPROF_KEY_DIR": str(keys)}
    subprocess.run(
        [sys.executable, "-m", "edgeprof", "keys", "init"],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    store = tmp_path / "store"
    proc = run_mlp(tmp_path, store)
    assert proc.returncode == 0, proc.stderr
    good_id = json.loads(proc.stdout)["report_id"]
    wire = decode_wire((store / f"{good_id}.msgpack").read_bytes())
    device_id = wire["device"]["device_id"]
    # A second report, tampered after signing: a new report id, the old signature kept.
    wire["report_id"] = bad_id = uuid7()
    (store / f"{bad_id}.msgpack").write_bytes(msgpack.packb(wire, use_bin_type=True))
    with fresh_database("sqlite", tmp_path) as db:
        d = deploy(db, tmp_path)
        try:
            _, token = d.enrol(device_id, keys=load_keys(keys))
            with d.server:
                result = push(store, d.url, token)
                status, page = d.get_json("/v1/reports")
        finally:
            d.engine.dispose()
    assert status == 200
    assert [r["id"] for r in page["reports"]] == [good_id]
    assert result.sent == 1
    assert result.rejected == 1
    reason = (store / "rejected" / f"{bad_id}.msgpack.reason.txt").read_text()
    assert "signature" in reason
