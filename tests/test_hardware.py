"""The hardware tier: the mcu runner against a real board running edgeprof firmware.

Runs only when a board is given on the command line, as esptool's tests take theirs:

    pytest --port /dev/ttyACM0 --board stm32f446-nucleo -m hardware

Without ``--port``/``--board`` every test here is skipped with that line (tests/conftest.py).
The board must run the reference firmware (``edgeprof firmware build --port-name stm32f446``,
flashed), with nothing else holding the port.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pytest

import edgeprof.models
from edgeprof.device.board_registry import BoardKind, load_boards
from edgeprof.report.codec import read_report
from edgeprof.runners import ModelFile, RunnerOptions

pytestmark = pytest.mark.hardware

MODELS = Path(edgeprof.models.DIRECTORY)
QUICK = ["--count", "20", "--min-seconds", "0", "--warmup", "2"]


class BoardArg(Protocol):
    """What tests/conftest.py's board_under_test fixture gives (port and board id)."""

    port: str
    board: str


def run_on_board(b: BoardArg, model: str, tmp: Path) -> tuple[dict[str, Any], Any]:
    """``edgeprof run --runner mcu`` on the board, as a user runs it; the summary and report."""
    proc = subprocess.run(
        [
            sys.executable, "-m", "edgeprof", "run", str(MODELS / model), "--runner", "mcu",
            "--board", b.board, "--port", b.port, *QUICK, "--json", "--store", str(tmp / "store"),
        ],
        capture_output=True, text=True, timeout=600, env={**os.environ}, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    return summary, read_report(Path(summary["report_path"]), verify=False)


def test_the_board_is_a_known_mcu(board_under_test: BoardArg) -> None:
    boards = load_boards()
    assert board_under_test.board in boards, f"no boards/{board_under_test.board}.toml"
    assert boards[board_under_test.board].kind is BoardKind.MCU


def test_run_reports_device_cycles_and_memory(board_under_test: BoardArg, tmp_path: Path) -> None:
    summary, report = run_on_board(board_under_test, "kws_mlp_int8.tflite", tmp_path)
    s, per = report["summary"], report["per_inference"]
    n = s["count"]
    assert n >= 20
    assert summary["summary"]["count"] == n
    assert s["latency_source"] == "device"
    assert report["runner"]["runner"] == "mcu"
    assert report["device"]["board_id"] == board_under_test.board
    mcu = report["device"]["mcu"]
    assert mcu["cycle_source"]
    cycles = per["device_cycles"]
    assert len(cycles) == n
    assert np.all(cycles > 0)
    np.testing.assert_allclose(per["latency_s"], cycles / mcu["cycle_hz"])
    # the host's round trip contains the device's own measurement
    assert np.all(per["host_round_trip_s"] > per["latency_s"])
    assert s["device"]["heap_peak_bytes"] == s["device"]["arena_bytes"] > 0
    assert len(s["device"]["layers"]) >= 2


def test_board_outputs_equal_a_linux_run(
    board_under_test: BoardArg, litert: Any, outputs_match_linux: Callable[[Any, Any], None]
) -> None:
    model = ModelFile.load(MODELS / "kws_mlp_int8.tflite")
    opts = RunnerOptions(
        default_delegates=False,
        board=board_under_test.board,
        port=board_under_test.port,
        threads=1,
    )
    outputs_match_linux(model, opts)
