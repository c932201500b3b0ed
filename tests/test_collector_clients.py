"""The command-line clients against the real collector: ``push`` from a device's spool,
``pull`` for pipelines, ``collector token/key`` for administrators (all as subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest

from edgeprof.report.signing import init_keys
from edgeprof.report.store import save_report
from edgeprof.testing.collector_server import Deployment
from edgeprof.testing.sample_reports import minimal_report

pytestmark = pytest.mark.integration


def edgeprof(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgeprof", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def token_file(tmp: Path, name: str, secret: str) -> str:
    path = tmp / name
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return str(path)


def test_push_from_the_spool_then_pull_byte_identical(
    collector: Deployment, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    sent: dict[str, bytes] = {}
    for i in range(4):
        r = minimal_report(model="kws" if i % 2 else "cnn", tags={"rig": "r1"})
        body = collector.signed(r)
        save_report(body, r["report_id"], store)
        sent[r["report_id"]] = body
    dev = token_file(tmp_path, "dev.tok", collector.device_token)
    pipe = token_file(tmp_path, "pipe.tok", collector.pipeline_token)

    pushed = edgeprof("push", "--url", collector.url, "--token-file", dev, "--store", str(store))
    assert pushed.returncode == 0, pushed.stderr
    assert "4 sent" in pushed.stdout

    out = tmp_path / "pulled"
    pulled = edgeprof("pull", "--url", collector.url, "--token-file", pipe, "--out", str(out))
    assert pulled.returncode == 0, pulled.stderr
    assert "pulled 4 new" in pulled.stdout
    assert {p.stem: p.read_bytes() for p in out.glob("*.msgpack")} == sent
    again = edgeprof("pull", "--url", collector.url, "--token-file", pipe, "--out", str(out))
    assert "pulled 0 new report(s)" in again.stdout
    assert "(4 already there)" in again.stdout

    listed = edgeprof(
        "pull", "--url", collector.url, "--token-file", pipe, "--list", "--model", "kws"
    )
    items = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(items) == 2
    assert {i["model"]["name"] for i in items} == {"kws"}

    streamed = subprocess.run(
        [sys.executable, "-m", "edgeprof", "pull", "--url", collector.url, "--token-file", pipe,
         "--out", "-", "--tag", "rig:r1", "--max", "3"],
        capture_output=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert streamed.returncode == 0
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(streamed.stdout)
    maps = list(unpacker)
    assert len(maps) == 3
    assert {m["report_id"] for m in maps} <= set(sent)


def test_pull_with_a_device_token_is_refused_with_a_reason(
    collector: Deployment, tmp_path: Path
) -> None:
    dev = token_file(tmp_path, "dev.tok", collector.device_token)
    result = edgeprof("pull", "--url", collector.url, "--token-file", dev, "--list")
    assert result.returncode == 2
    assert "HTTP 403" in result.stderr
    assert "device token cannot do this" in result.stderr
    assert "Traceback" not in result.stderr


def test_token_device_and_key_administration(collector: Deployment, tmp_path: Path) -> None:
    db = collector.server.db
    unbound = edgeprof(
        "collector", "token", "create", "--db", db, "--role", "device", "--name", "x"
    )
    assert unbound.returncode == 2
    assert "--device ID" in unbound.stderr
    made = edgeprof(
        "collector",
        "token",
        "create",
        "--db",
        db,
        "--role",
        "device",
        "--device",
        "machine-id:test",
    )
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("epd_")
    assert collector.upload(collector.signed(minimal_report()), token=secret)[0] == 201
    # the token uploads for its device only; binding another device lets it upload for that one
    other = minimal_report(device="machine-id:0123456789abcdef")
    status, answer = collector.upload(collector.signed(other), token=secret)
    assert status == 403
    assert "not for device 'machine-id:0123456789abcdef'" in answer["error"]

    listed = edgeprof("collector", "token", "list", "--db", db, "--json")
    mine = [t for t in json.loads(listed.stdout) if t["name"] == "machine-id:test"]
    assert len(mine) == 1
    assert mine[0]["devices"] == ["machine-id:test"]
    assert secret not in listed.stdout
    bound = edgeprof(
        "collector",
        "token",
        "bind",
        "--db",
        db,
        mine[0]["id"],
        "--device",
        other["device"]["device_id"],
    )
    assert bound.returncode == 0, bound.stderr
    assert collector.upload(collector.signed(other), token=secret)[0] == 201
    revoked = edgeprof("collector", "token", "revoke", "--db", db, mine[0]["id"])
    assert revoked.returncode == 0
    assert collector.upload(collector.signed(minimal_report()), token=secret)[0] == 401

    bad = edgeprof("collector", "token", "create", "--db", db, "--role", "root", "--name", "y")
    assert bad.returncode == 2

    # a new device: enrolled from its keys directory, bound to a board
    rig = tmp_path / "rig-keys"
    init_keys(directory=rig)
    enrolled = edgeprof(
        "collector", "device", "enrol", "--db", db, "--device-id", "rig-9", "--key-from", str(rig),
        "--board", "raspberry-pi-5",
    )  # fmt: skip
    assert enrolled.returncode == 0, enrolled.stderr
    devices = json.loads(edgeprof("collector", "device", "list", "--db", db, "--json").stdout)
    rig9 = next(d for d in devices if d["device_id"] == "rig-9")
    assert rig9["boards"] == ["raspberry-pi-5"]
    assert "hmac" not in json.dumps(devices)
    gone = edgeprof(
        "collector", "key", "add", "--db", db, "--name", "x", "--from-key-dir", str(rig)
    )
    assert gone.returncode == 2
    assert "device enrol" in gone.stderr

    keys = edgeprof("collector", "key", "list", "--db", db)
    assert "machine-id:test" in keys.stdout
    kid = keys.stdout.split()[0]
    assert edgeprof("collector", "key", "revoke", "--db", db, kid).returncode == 0
    status, answer = collector.upload(collector.signed(minimal_report()))
    assert status == 403
    assert "is not enrolled" in answer["error"]


def test_serve_refuses_a_bad_database_url_in_one_line(tmp_path: Path) -> None:
    result = edgeprof("serve", "--db", "mysql://nope", "--port", "0", timeout=30)
    assert result.returncode == 2
    assert "unsupported database URL" in result.stderr
    result = edgeprof("serve", "--db", str(tmp_path / "missing" / "c.db"), timeout=30)
    assert result.returncode == 2
    assert "does not exist" in result.stderr
