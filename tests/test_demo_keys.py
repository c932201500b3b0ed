"""The key step of ``./scripts/demo`` (issue 13, item 11): it creates this device's keys when
there are none and never replaces them, so the demo's report is signed and passes
``edgeprof report verify``. The step's own lines are run (the rest of the demo installs a venv,
which is too slow here); the report comes from a short real ``edgeprof run``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import edgeprof.models

pytestmark = pytest.mark.integration  # real processes

ROOT = Path(__file__).resolve().parent.parent
MLP = Path(edgeprof.models.DIRECTORY) / "kws_mlp_int8.tflite"


def key_step() -> str:
    text = (ROOT / "scripts" / "demo").read_text()
    start = text.index("# --- keys step")
    end = text.index("# --- end of keys step ---")
    return text[start:end]


def run_step(venv: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = f'set -euo pipefail\nlog() {{ echo "==> $*" >&2; }}\nVENV={venv}\n{key_step()}'
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_the_demo_key_step_creates_keys_once_and_its_report_verifies(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    shim = venv / "bin" / "edgeprof"  # the venv's console script, as this interpreter
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m edgeprof "$@"\n')
    shim.chmod(0o755)
    keys = tmp_path / "keys"
    env = {**os.environ, "EDGEPROF_KEY_DIR": str(keys)}

    first = run_step(venv, env)
    assert first.returncode == 0, first.stderr
    assert "edgeprof keys init" in first.stderr
    secret = (keys / "hmac.key").read_bytes()
    again = run_step(venv, env)
    assert again.returncode == 0, again.stderr
    assert "keys init" not in again.stderr  # keys there: nothing to say, nothing replaced
    assert (keys / "hmac.key").read_bytes() == secret

    run = subprocess.run(
        [sys.executable, "-m", "edgeprof", "run", str(MLP), "--count", "20", "--min-seconds",
         "0", "--warmup", "2", "--store", str(tmp_path / "store"), "--json"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert not [w for w in doc["warnings"] if "unsigned" in w]
    verify = subprocess.run(
        [sys.executable, "-m", "edgeprof", "report", "verify", doc["report_path"]],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "hmac_sha256 verified" in verify.stdout
    if (keys / "ed25519.key").exists():
        assert "ed25519 verified (this device's key)" in verify.stdout
