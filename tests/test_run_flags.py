"""`edgeprof run` never profiles something other than what was asked: a flag it would ignore,
limits that contradict each other, a root or data file that cannot be what the user meant, are
refused with one line and exit 2, before anything is measured (issue 14)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeprof.errors import InputError
from edgeprof.runners import RunnerOptions, check_flags

if not os.environ.get("CI"):  # in CI a missing runtime fails the tests instead
    pytest.importorskip("ai_edge_litert", reason="needs LiteRT: pip install 'edgeprof[litert]'")

import edgeprof.models

MODELS = Path(edgeprof.models.DIRECTORY)
MLP = MODELS / "kws_mlp_int8.tflite"
MLP_DATA = MODELS / "kws_mlp_data.npz"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgeprof", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "XDG_CONFIG_HOME": str(cwd / "cfg")},
        check=False,
    )


@pytest.mark.integration
@pytest.mark.parametrize(
    ("before", "after", "says"),
    [
        ([], ["--board", "stm32f446-nucleo"], "--runner tflite does not use --board"),
        ([], ["--port", "socket://localhost:1"], "--port is for --runner mcu"),
        ([], ["--runner", "tflm", "--threads", "2"], "--runner tflm does not use --threads"),
        ([], ["--runner", "tflm", "--delegate", "libx.so"], "--delegate is for --runner tflite"),
        ([], ["--runner", "mcu", "--threads", "2"], "--runner mcu does not use --threads"),
        ([], ["--delegate-option", "k=v"], "--delegate-option configures a --delegate"),
        ([], ["--min-seconds", "5", "--max-seconds", "1"], "--max-seconds 1 is below"),
        ([], ["--inputs", str(MLP_DATA), "--data", str(MLP_DATA)], "only one would be used"),
        ([], ["--token-file", "t"], "no --upload was given"),
        (["--sysfs-root", "missing-dir"], [], "--sysfs-root missing-dir: no such directory"),
        (["--procfs-root", "missing-dir"], [], "--procfs-root missing-dir: no such directory"),
    ],
)
def test_a_flag_that_would_be_ignored_is_one_line_and_exit_2(
    tmp_path: Path, before: list[str], after: list[str], says: str
) -> None:
    store = tmp_path / "store"
    proc = _cli(*before, "run", str(MLP), *after, "--store", str(store), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("edgeprof: error: ")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert says in proc.stderr
    assert not store.exists() or not any(store.iterdir())  # nothing measured, nothing stored


def test_check_flags_knows_which_runner_takes_which_flag() -> None:
    check_flags("tflite", RunnerOptions(threads=2, delegate="d.so", delegate_options={"k": "v"}))
    check_flags("tflm", RunnerOptions(arena_size=4096))
    check_flags("mcu", RunnerOptions(board="b", port="p", baudrate=921_600))
    check_flags("mcu", RunnerOptions(default_delegates=False))  # picks the blob's kernels
    for runner in ("tflite", "tflm", "mcu"):
        check_flags(runner, RunnerOptions())  # the defaults are never "given"
    with pytest.raises(InputError, match=r"--runner tflm does not use --runtime, --threads"):
        check_flags("tflm", RunnerOptions(runtime="litert", threads=1))
    with pytest.raises(InputError, match=r"--runner mcu does not use --runtime"):
        check_flags("mcu", RunnerOptions(runtime="litert"))
    check_flags("mcu", RunnerOptions(runtime="litert"), reference=True)  # the float twin's
    with pytest.raises(InputError, match=r"--baud is for --runner mcu"):
        check_flags("tflite", RunnerOptions(baudrate=9600))
    with pytest.raises(InputError, match=r"--no-default-delegates is for --runner tflite or mcu"):
        check_flags("tflm", RunnerOptions(default_delegates=False))


@pytest.mark.integration
@pytest.mark.parametrize(
    ("labels", "says"),
    [
        (None, "has no labels"),
        (np.full(8, 12), r"8 labels are outside the model's 12 classes \[0, 11\] \(e.g. 12\)"),
        (np.r_[np.zeros(7), -1], r"1 labels are outside the model's 12 classes"),
        (np.r_[np.zeros(7), 0.5], "fractional"),
    ],
)
def test_labels_that_cannot_be_scored_are_refused_before_the_warm_up(
    tmp_path: Path, labels: np.ndarray | None, says: str
) -> None:
    from edgeprof.measure.profile import ProfileRequest, profile
    from edgeprof.measure.session import RunPlan

    with np.load(MLP_DATA) as src:
        x = next(src[k] for k in src.files if k not in ("y", "labels"))[:8]
    data = tmp_path / "data.npz"
    if labels is None:
        np.savez(data, x=x)
    else:
        np.savez(data, x=x, y=labels)
    phases: list[str] = []
    req = ProfileRequest(
        model=MLP,
        data=data,
        plan=RunPlan(warmup_count=1, min_count=1, min_seconds=0),
        store=tmp_path / "store",
    )
    with pytest.raises(InputError, match=says):
        profile(req, progress=lambda phase, n, f: phases.append(phase))
    assert phases == ["load"]  # the model loaded, then the refusal: no warm-up, no measurement
    assert not (tmp_path / "store").exists()
