"""Identity attacks (issue 13, items 1, 3): a report is stored only when the device it names
signed it, with a token bound to that device, for a board it may report; offline, a signature
counts only from a trusted key. The real collector (uvicorn, SQLite and PostgreSQL) and the CLI
as subprocesses."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeprof.collector.tokens import Role, create_token
from edgeprof.report.codec import encode
from edgeprof.report.signing import Keys, init_keys, sign
from edgeprof.testing.attacks import Attack
from edgeprof.testing.collector_server import Deployment
from edgeprof.testing.reports import make_report

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("cryptography") is None, reason="Ed25519 needs cryptography"
)

A = "machine-id:test"  # the deployment's own device (edgeprof.testing.collector_server)
B = "machine-id:bbbbbbbbbbbbbbbb"
BOARD_A = "raspberry-pi-5"
BOARD_B = "jetson-orin-nano"
TEN_YEARS_NS = 10 * 365 * 24 * 3600 * 10**9

POLICY = """schema_version = 1
name = "latency-only"

[[rule]]
id = "p95"
metric = "summary.latency.p95_s"
max = 0.100
"""


def _refused(answer: tuple[int, Any], status: int, needle: str) -> bool:
    code, body = answer
    return code == status and needle in body.get("error", "")


def _signed(report: dict[str, Any], keys: Keys) -> bytes:
    return encode(sign(report, keys))


def test_device_a_naming_device_b_is_refused(
    collector: Deployment, attack: Any, tmp_path: Path
) -> None:
    a: Attack = attack("device A uploads a report naming device B")
    keys_b, token_b = collector.enrol(B, boards=(BOARD_B,))
    for board in (BOARD_B, BOARD_A):  # A's key, A's token, B's id
        forged = collector.signed(make_report(device=B, board=board))
        a.attempt(held=_refused(collector.upload(forged), 403, f"not for device {B!r}"))
    # A token bound to both devices (a shared rig token): the key must still be B's.
    _, shared = create_token(collector.engine, Role.DEVICE, "rig", [A, B])
    forged = collector.signed(make_report(device=B, board=BOARD_B))
    a.attempt(held=_refused(collector.upload(forged, token=shared), 403, "enrolled for"))
    # B itself, but naming a board B was not enrolled for.
    other_board = _signed(make_report(device=B, board=BOARD_A), keys_b)
    a.attempt(held=_refused(collector.upload(other_board, token=token_b), 403, "may report"))
    assert collector.stored() == 0
    assert a.failed == 0
    # The honest upload still goes through.
    honest = _signed(make_report(device=B, board=BOARD_B), keys_b)
    assert collector.upload(honest, token=token_b)[0] == 201


def test_a_token_of_device_a_with_device_bs_signature_is_refused(
    collector: Deployment, attack: Any
) -> None:
    a: Attack = attack("device A's token uploads a report signed by device B's key")
    keys_b, _ = collector.enrol(B)
    as_b = _signed(make_report(device=B), keys_b)  # B's own report, B's key: not A's to send
    a.attempt(held=_refused(collector.upload(as_b), 403, f"not for device {B!r}"))
    as_a = _signed(make_report(device=A), keys_b)  # names A, but B signed it
    a.attempt(held=_refused(collector.upload(as_a), 403, f"enrolled for {B!r}"))
    assert collector.stored() == 0
    assert a.failed == 0


def test_unknown_ed25519_key_is_refused_at_upload_and_nothing_is_stored(
    collector: Deployment, attack: Any, tmp_path: Path
) -> None:
    a: Attack = attack("a report signed by an Ed25519 key nobody enrolled")
    stranger = init_keys(directory=tmp_path / "stranger")
    ed_only = Keys(stranger.directory, ed25519_seed=stranger.ed25519_seed)
    for keys in (stranger, ed_only):
        body = _signed(make_report(device=A), keys)
        a.attempt(held=_refused(collector.upload(body), 403, "is not enrolled"))
    assert collector.stored() == 0  # no "not checked" report is kept to block the gate later
    assert a.failed == 0


def _gate(c: Deployment, tmp: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    tok, policy = tmp / "pipe.tok", tmp / "policy.toml"
    tok.write_text(c.pipeline_token)
    policy.write_text(POLICY)
    result = subprocess.run(
        [sys.executable, "-m", "edgeprof", "gate", "check", "--collector", c.url,
         "--token-file", str(tok), "--policy", str(policy), "--json", "--no-post", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    doc = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, doc, result.stderr


def test_a_forged_future_report_for_a_model_is_never_stored_nor_judged(
    collector: Deployment, attack: Any, tmp_path: Path
) -> None:
    a: Attack = attack("device B uploads a fast future report as device A for A's model")
    keys_b, token_b = collector.enrol(B)
    slow = make_report(latency_s=np.full(50, 0.2), model="kws", device=A, board=BOARD_A)
    assert collector.upload(collector.signed(slow))[0] == 201
    future = time.time_ns() + TEN_YEARS_NS
    for token in (token_b, collector.device_token):
        forged = make_report(
            latency_s=np.full(50, 1e-5), model="kws", device=A, board=BOARD_A, created_ns=future
        )
        status, _ = collector.upload(_signed(forged, keys_b), token=token)
        a.attempt(held=status in (403, 422))  # not this device's key, or from the future
    assert collector.stored() == 1
    code, doc, err = _gate(collector, tmp_path, "--model", "kws", "--board", BOARD_A)
    a.attempt(held=code == 1 and [i["report_id"] for i in doc["inputs"]] == [slow["report_id"]])
    assert doc.get("outcome") == "fail", err
    assert a.failed == 0


# ------------------------------------------------------------------------------ offline


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgeprof", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )


@pytest.mark.parametrize("local_keys", ["none", "hmac+ed25519"])
def test_a_self_signed_forgery_is_unverified_offline(
    tmp_path: Path, attack: Any, local_keys: str
) -> None:
    a: Attack = attack(f"self-signed forgery gated offline (this machine's keys: {local_keys})")
    env = {
        "EDGEPROF_KEY_DIR": str(tmp_path / "gate-keys"),
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),  # an empty trust store
    }
    if local_keys != "none":
        init_keys(directory=tmp_path / "gate-keys")
    forger = init_keys(directory=tmp_path / "forger")
    forged = tmp_path / "forged.msgpack"
    fast = make_report(latency_s=np.full(50, 1e-5))
    forged.write_bytes(_signed(fast, Keys(forger.directory, ed25519_seed=forger.ed25519_seed)))
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)

    gated = _cli(env, "gate", str(forged), "--policy", str(policy))
    lines = gated.stderr.strip().splitlines()
    a.attempt(held=gated.returncode == 2 and len(lines) == 1 and "unverified" in lines[0])
    assert "decision: PASS" not in gated.stdout
    verified = _cli(env, "report", "verify", str(forged))
    a.attempt(held=verified.returncode == 1 and "ed25519 unverified" in verified.stdout)
    # A trust store holding someone else's key changes nothing.
    other = init_keys(directory=tmp_path / "other")
    trust = tmp_path / "cfg" / "edgeprof" / "trust"
    trust.mkdir(parents=True)
    (trust / "other.pub").write_bytes((other.directory / "ed25519.pub").read_bytes())
    gated = _cli(env, "gate", str(forged), "--policy", str(policy))
    a.attempt(held=gated.returncode == 2 and "unverified" in gated.stderr)
    assert a.failed == 0

    # The same report passes once its signer is trusted, so the refusal was about trust alone.
    trusted = _cli(
        env,
        "gate",
        str(forged),
        "--policy",
        str(policy),
        "--trust",
        str(forger.directory / "ed25519.pub"),
    )
    assert trusted.returncode == 0, trusted.stderr
    assert "decision: PASS" in trusted.stdout
    allowed = _cli(env, "gate", str(forged), "--policy", str(policy), "--allow-unsigned")
    assert allowed.returncode == 0, allowed.stderr
