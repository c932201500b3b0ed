"""schemathesis against the running collector: the published OpenAPI document is the contract.

Every documented operation is exercised (examples, coverage, fuzzing and stateful phases, all
checks) against a real server over SQLite with an admin token; a report upload cannot be
generated from a schema (its body is a signed msgpack report), so uploads are covered by
test_collector_api.py and the hypothesis fuzzing in test_collector_robustness.py. Token
revocation runs last, on its own, because the stateful phase would revoke the very token the
rest of the run uses.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgeprof.testing.collector_server import deploy
from edgeprof.testing.sample_reports import minimal_report

pytestmark = pytest.mark.integration


def _schemathesis() -> list[str]:
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("schemathesis is not installed (pip install 'edgeprof[test]')")
    return [exe]


def _run(url: str, token: str, cwd: Path, *selection: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        *_schemathesis(),
        "run",
        f"{url}/openapi.json",
        "-H",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--max-examples",
        "25",
        "--workers",
        "1",  # hypothesis' lambda-source cache is not thread-safe on CPython 3.11
        "--seed",
        "1",
        *selection,
    ]
    # cwd: schemathesis keeps a .schemathesis/ cache in the working directory
    return subprocess.run(cmd, capture_output=True, text=True, timeout=540, check=False, cwd=cwd)


@pytest.mark.slow
def test_the_server_conforms_to_its_openapi_document(tmp_path: Path) -> None:
    d = deploy(str(tmp_path / "c.sqlite3"), tmp_path)
    try:
        with d.server:
            for i in range(3):
                assert d.upload(d.signed(minimal_report(model=f"m{i}")))[0] == 201
            main = _run(
                d.url,
                d.admin_token,
                tmp_path,
                "--exclude-operation-id",
                "uploadReport",
                "--exclude-path",
                "/v1/tokens/{token_id}",
            )
            assert main.returncode == 0, main.stdout[-6000:]
            assert "Authentication failed" not in main.stdout, main.stdout[-3000:]
            revoke = _run(d.url, d.admin_token, tmp_path, "--include-path", "/v1/tokens/{token_id}")
            assert revoke.returncode == 0, revoke.stdout[-6000:]
    finally:
        d.engine.dispose()
