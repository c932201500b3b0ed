"""The distribution as pip builds it: a wheel with the compiled core, the bridge and boards.

Builds a real wheel from this checkout (pip, isolated build, as `pip install .` does) and
checks what a user's `pip install` would get: nothing compiled at import time, the
package-dir mappings honoured, board files shipped as package data.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # real processes (tests/conftest.py: tiers)

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_contains_the_compiled_core_bridge_and_boards(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("edgeprof-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert any(n.startswith("edgeprof/_native") and n.endswith(".so") for n in names)
    assert any(n.startswith("edgeprof/_marks") and n.endswith(".so") for n in names)
    assert "edgeprof/native.py" in names
    assert "edgeprof/py.typed" in names
    assert "edgeprof/device/ports.py" in names
    boards = {n for n in names if n.startswith("edgeprof/device/boards/") and n.endswith(".toml")}
    shipped = {
        f"edgeprof/device/boards/{p.name}"
        for p in (ROOT / "agent/edgeprof/device/boards").glob("*.toml")
    }
    assert boards == shipped
    models = {
        f"edgeprof/models/{p.name}"
        for p in (ROOT / "agent/edgeprof/models").iterdir()
        if p.suffix in (".tflite", ".npz")
    }
    assert models <= names  # the demo models and their data ship with the package
    assert "edgeprof/runners/tflm.py" in names
    assert not any(n.startswith(("tests/", "bench/", "native/")) for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "edgeprof = edgeprof.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
