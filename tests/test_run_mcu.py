"""``edgeprof run --runner mcu`` end to end against the real host firmware on a real pty: the
report's latency is the device's cycle counter, the host round trip is apart, memory comes from
the device's watermarks, and the MCU's outputs equal a Linux run of the same file."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert", reason="needs LiteRT: pip install 'edgeprof[litert]'")

import edgeprof.models
from edgeprof.report.codec import read_report
from edgeprof.runners import ModelFile, RunnerOptions
from edgeprof.testing.host_firmware import HostFirmware

MODELS = Path(edgeprof.models.DIRECTORY)
QUICK = ["--count", "20", "--min-seconds", "0", "--warmup", "2"]


pytestmark = pytest.mark.integration


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgeprof", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
        check=False,
    )


def run_mcu(fw: HostFirmware, model: str, tmp: Path, *extra: str) -> tuple[dict[str, Any], Any]:
    proc = cli(
        "run", str(MODELS / model), "--runner", "mcu", "--board", "host-firmware",
        "--port", fw.path, *QUICK, *extra, "--json", "--store", str(tmp / "store"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    return summary, read_report(Path(summary["report_path"]), verify=False)


@pytest.mark.parametrize("model", ["kws_mlp_int8.tflite", "ds_cnn_int8.tflite"])
def test_run_reports_device_latency_and_memory(
    fw: HostFirmware, model: str, tmp_path: Path
) -> None:
    summary, report = run_mcu(fw, model, tmp_path)
    s = report["summary"]
    per = report["per_inference"]
    n = s["count"]
    assert n >= 20
    assert s["latency_source"] == "device"
    cycles = per["device_cycles"]
    assert len(cycles) == n
    assert np.all(cycles > 0)
    hz = report["device"]["mcu"]["cycle_hz"]
    np.testing.assert_allclose(per["latency_s"], cycles / hz)
    # the round trip is the host's time and always longer than what the device measured
    assert np.all(per["host_round_trip_s"] > per["latency_s"])
    assert s["host_round_trip"]["p50_s"] > s["latency"]["p50_s"]
    assert s["device"]["heap_peak_bytes"] == s["device"]["arena_bytes"] > 0
    assert len(s["device"]["layers"]) >= 2
    assert report["device"]["board_id"] == "host-firmware"
    assert report["device"]["mcu"]["cycle_source"] == "clock-monotonic"
    assert report["runner"]["runner"] == "mcu"
    assert summary["summary"]["count"] == n


def test_quality_runs_the_float_twin_on_the_host(fw: HostFirmware, tmp_path: Path) -> None:
    _, report = run_mcu(
        fw, "kws_mlp_int8.tflite", tmp_path,
        "--reference", str(MODELS / "kws_mlp_float.tflite"),
        "--data", str(MODELS / "kws_mlp_data.npz"),
    )  # fmt: skip
    q = report["quality"]
    assert q["top1_agreement"] > 0.9
    assert q["accuracy_retention"] > 0.9


@pytest.mark.parametrize("no_delegates", [False, True])
def test_mcu_outputs_equal_a_linux_run_of_the_same_file(
    fw: HostFirmware, no_delegates: bool, outputs_match_linux: Callable[[Any, Any], None]
) -> None:
    model = ModelFile.load(MODELS / "ds_cnn_int8.tflite")
    opts = RunnerOptions(
        default_delegates=not no_delegates, board="host-firmware", port=fw.path, threads=1
    )
    outputs_match_linux(model, opts)


def test_wrong_board_is_refused(fw: HostFirmware) -> None:
    proc = cli(
        "run", str(MODELS / "kws_mlp_int8.tflite"), "--runner", "mcu",
        "--board", "stm32f446-nucleo", "--port", fw.path, *QUICK, "--no-report",
    )  # fmt: skip
    assert proc.returncode == 2
    assert "says it is 'host-firmware', not --board stm32f446-nucleo" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_port_and_linux_board_are_refused() -> None:
    model = str(MODELS / "kws_mlp_int8.tflite")
    proc = cli("run", model, "--runner", "mcu", "--board", "host-firmware", "--no-report")
    assert proc.returncode == 2
    assert "needs --port" in proc.stderr
    proc = cli("run", model, "--runner", "mcu", "--board", "raspberry-pi-5", "--port", "x")
    assert proc.returncode == 2
    assert "not an mcu" in proc.stderr


def test_nothing_on_the_port_is_a_bounded_clear_error() -> None:
    master, slave = pty.openpty()
    tty.setraw(slave)
    try:
        proc = cli(
            "run", str(MODELS / "kws_mlp_int8.tflite"), "--runner", "mcu",
            "--board", "host-firmware", "--port", os.ttyname(slave), "--no-report",
        )  # fmt: skip
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 2
    assert "no INFO" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_link_timeouts_come_from_the_board_file(tmp_path: Path) -> None:
    from edgeprof.bridge.protocol import DeviceTimeoutError
    from edgeprof.device.board_registry import load_board_file
    from edgeprof.runners.mcu import McuOptions, McuRunner

    qemu = McuRunner(
        ModelFile.load(MODELS / "kws_mlp_int8.tflite"),
        McuOptions(board="qemu-mps2-an386", port="socket://localhost:1"),
    )
    assert (qemu.link.request_timeout_s, qemu.link.tries) == (2.0, 6)  # its [link], no family test
    overridden = McuRunner(qemu.model, McuOptions(board="qemu-mps2-an386", port="x", tries=2))
    assert overridden.link.tries == 2

    # A board file of our own whose [link] allows 3 HELLOs, and nothing answering on the port:
    # the runner gives up after exactly the board's number of tries and names its firmware port.
    path = tmp_path / "patient.toml"
    path.write_text(
        'schema_version = 2\nid = "host-firmware"\nname = "x"\nfamily = "host"\n'
        'kind = "mcu"\ncpu = "c"\narch = "x86_64"\ncpu_hz = 1\nsram_bytes = 1\n'
        'flash_bytes = 1\n[firmware]\nport = "host"\n'
        "[link]\nrequest_timeout_s = 0.05\ntries = 3\n",
        encoding="utf-8",
    )
    board = load_board_file(path)
    master, slave = pty.openpty()
    tty.setraw(slave)
    runner = McuRunner(qemu.model, McuOptions(board=board, port=os.ttyname(slave)))
    try:
        with pytest.raises(DeviceTimeoutError) as info:
            runner.probe()
    finally:
        runner.close()
        os.close(master)
        os.close(slave)
    assert "after 3 HELLOs" in str(info.value)
    assert "firmware port 'host' (edgeprof firmware build --port-name host)" in str(info.value)
