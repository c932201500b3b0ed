"""`edgeprof run` end to end: real models, real runtimes, a real subprocess of the CLI.

Power comes from a fake sysfs tree (an ina219 at a known constant power), so the energy each
inference is charged can be checked exactly: constant power times the inference's duration.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeprof.report.codec import decode
from edgeprof.testing.fake_sysfs import fake_roots, make_hwmon_ina219

if not os.environ.get("CI"):  # in CI a missing runtime fails the tests instead
    pytest.importorskip("ai_edge_litert", reason="needs LiteRT: pip install 'edgeprof[litert]'")
    pytest.importorskip("tflite_micro", reason="needs TFLM: pip install 'edgeprof[tflm]'")

import edgeprof.models

pytestmark = pytest.mark.integration  # real processes (tests/conftest.py: tiers)

MODELS = Path(edgeprof.models.DIRECTORY)
MLP = MODELS / "kws_mlp_int8.tflite"
MLP_FLOAT = MODELS / "kws_mlp_float.tflite"
MLP_DATA = MODELS / "kws_mlp_data.npz"
DSCNN = MODELS / "ds_cnn_int8.tflite"
QUICK = ["--count", "30", "--min-seconds", "0", "--warmup", "3"]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, bounded in time."""
    return subprocess.run(
        [sys.executable, "-m", "edgeprof", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        check=False,
    )


def run_json(*args: str, tmp: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    proc = cli("run", *args, "--json", "--store", str(tmp / "store"))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    report = decode(Path(summary["report_path"]).read_bytes())
    return summary, report


def test_run_mlp_writes_a_report_with_per_inference_arrays(tmp_path: Path) -> None:
    summary, report = run_json(str(MLP), *QUICK, "--tag", "suite=ci", tmp=tmp_path)
    assert summary["summary"]["count"] >= 30
    assert summary["runner"]["runtime"] in ("litert", "tflite-runtime")
    assert summary["tags"] == {"suite": "ci"}
    lat = report["per_inference"]["latency_s"]
    assert lat.dtype == np.float64
    assert len(lat) == summary["summary"]["count"]
    assert np.all(lat > 0)
    assert np.all(np.diff(report["per_inference"]["begin_ns"]) > 0)
    top1 = report["per_inference"]["output_top1"]  # the class each inference predicted
    assert top1.dtype == np.int32
    assert len(top1) == len(lat)
    assert set(top1.tolist()) <= set(range(12))
    score = report["per_inference"]["output_top_score"]
    assert np.all((score > 0) & (score <= 1.0))  # a softmax probability, dequantized
    p50 = summary["summary"]["latency"]["p50_s"]
    assert p50 == pytest.approx(float(np.percentile(lat, 50)))
    fast = report["traces"]["fast"]
    assert fast["values"].shape == (len(fast["t_ns"]), len(fast["channels"]))
    assert fast["channels"][0]["name"] == "mem.rss"
    assert summary["model"]["sha256"] == report["model"]["sha256"]
    assert len(summary["model"]["inputs"]) == 1


def test_energy_is_power_times_duration_on_a_constant_rail(tmp_path: Path) -> None:
    roots = fake_roots(tmp_path / "fs")
    make_hwmon_ina219(roots.sysfs, 2, millivolts=5000, milliamps=400, microwatts=2_000_000)
    proc = cli(
        "--sysfs-root",
        str(roots.sysfs),
        "run",
        str(MLP),
        *QUICK,
        "--json",
        "--store",
        str(tmp_path / "store"),
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    report = decode(Path(summary["report_path"]).read_bytes())
    per = report["per_inference"]
    (key,) = [k for k in per if k.startswith("energy_j.") and k.endswith(".power")]
    energy = per[key]
    lat = per["latency_s"]
    covered = np.isfinite(energy)
    assert covered.mean() > 0.9
    # Latency comes from ticks; energy from region edges rounded to whole ns (<= 2 ns each).
    np.testing.assert_allclose(energy[covered], 2.0 * lat[covered], rtol=0, atol=2.0 * 4e-9)
    rail = summary["summary"]["rails"][key.removeprefix("energy_j.")]
    assert rail["power_mean_w"] == pytest.approx(2.0)


def test_quality_against_the_float_twin_and_labels(tmp_path: Path) -> None:
    summary, _ = run_json(
        str(MLP), *QUICK, "--reference", str(MLP_FLOAT), "--data", str(MLP_DATA), tmp=tmp_path
    )
    q = summary["quality"]
    assert q["top1_agreement"] > 0.9
    assert q["snr_db"] > 10
    assert q["accuracy"] > 0.85
    assert q["accuracy_retention"] > 0.95
    assert q["compression_ratio"] > 3.0
    # float data: the int8 model ran on its quantization, the twin on the floats themselves
    assert q["model_inputs"] == "float data quantized (float32 division, rounding half-even)"
    assert q["reference_inputs"] == "float data as given"


def test_a_reference_of_another_interface_is_refused_before_measuring(tmp_path: Path) -> None:
    other = MODELS / "ds_cnn_float.tflite"  # input [1,49,10,1], the MLP's [1,490]
    store = tmp_path / "store"
    proc = cli("run", str(MLP), *QUICK, "--reference", str(other), "--store", str(store))
    assert proc.returncode == 2, proc.stdout
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert "input 0" in err
    assert "[1, 490] in the model but [1, 49, 10, 1] in the reference" in err
    assert not store.exists() or not any(p.is_file() for p in store.rglob("*"))


def test_tflm_runner_reports_the_arena(tmp_path: Path) -> None:
    summary, _ = run_json(str(DSCNN), "--runner", "tflm", *QUICK, tmp=tmp_path)
    runner = summary["runner"]
    assert runner["runtime"] == "tflite-micro"
    assert runner["arena_min_bytes"] > 1024
    assert runner["arena_bytes"] >= runner["arena_min_bytes"]
    assert runner["arena_reported_bytes"] is not None


def test_a_model_we_did_not_make(tmp_path: Path) -> None:
    sine = importlib.resources.files("tflite_micro") / "python/tflite_micro/sine_float.tflite"
    for runner in ("tflite", "tflm"):
        summary, _ = run_json(str(sine), "--runner", runner, *QUICK, tmp=tmp_path)
        assert summary["model"]["inputs"][0]["dtype"] == "float32"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such model file"),
        (b"", "empty file"),
        (b"this is not a model at all", "not a TFLite model"),
    ],
)
def test_bad_model_files_are_one_line_errors(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "m.tflite"
    if content is not None:
        path.write_bytes(content)
    proc = cli("run", str(path), "--no-report")
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_truncated_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.tflite"
    path.write_bytes(MLP.read_bytes()[: MLP.stat().st_size // 3])
    proc = cli("run", str(path), "--no-report", *QUICK)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert str(path) in proc.stderr


def test_inputs_that_do_not_match_the_model(tmp_path: Path) -> None:
    bad = tmp_path / "x.npy"
    np.save(bad, np.zeros((4, 491), dtype=np.float32))
    proc = cli("run", str(MLP), "--inputs", str(bad), "--no-report", *QUICK)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "491" in proc.stderr


def test_a_delegate_that_fails_to_load(tmp_path: Path) -> None:
    proc = cli("run", str(MLP), "--delegate", str(tmp_path / "libnope.so"), "--no-report")
    assert proc.returncode == 2
    assert "delegate" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_human_output_is_a_table(tmp_path: Path) -> None:
    proc = cli("run", str(MLP), *QUICK, "--store", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "latency" in proc.stdout
    assert "p95" in proc.stdout
    assert "report" in proc.stdout
    assert "\x1b[" not in proc.stdout


def _edited_model(tmp: Path, edit: Any) -> Path:
    """The float MLP with one change made through the TFLite schema's object API."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(MLP_FLOAT.read_bytes(), 0))
    edit(schema, model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path = tmp / "edited.tflite"
    path.write_bytes(bytes(builder.Output()))
    return path


def test_unsupported_op_is_named(tmp_path: Path) -> None:
    def custom_op(schema: Any, model: Any) -> None:
        code = model.operatorCodes[0]
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
        code.customCode = "EdgeprofNoSuchOp"

    path = _edited_model(tmp_path, custom_op)
    proc = cli("run", str(path), "--no-report", *QUICK)
    assert proc.returncode == 2
    assert "unsupported op" in proc.stderr
    assert "EdgeprofNoSuchOp" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_dynamic_shapes_are_refused(tmp_path: Path) -> None:
    def dynamic(schema: Any, model: Any) -> None:
        sub = model.subgraphs[0]
        tensor = sub.tensors[sub.inputs[0]]
        tensor.shapeSignature = [1, -1]

    path = _edited_model(tmp_path, dynamic)
    proc = cli("run", str(path), "--no-report", *QUICK)
    assert proc.returncode == 2
    assert "dynamic shapes are not supported" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_environment_warnings_on_a_throttling_board(tmp_path: Path) -> None:
    from edgeprof.testing.fake_sysfs import WaveformWriter, make_jetson_like

    roots = fake_roots(tmp_path / "fs")
    make_jetson_like(roots.sysfs)  # governor schedutil
    freq = roots.sysfs / "devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"
    throttle = {"kind": "steps", "levels": [1_510_400, 729_600], "period_s": 0.1}
    with WaveformWriter({freq: throttle}):
        proc = cli(
            "--sysfs-root",
            str(roots.sysfs),
            "run",
            str(MLP),
            "--count",
            "30",
            "--min-seconds",
            "0.5",
            "--json",
            "--no-report",
        )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    warnings = " ".join(summary["warnings"])
    cpu0 = summary["environment"]["cpu_freq_hz"]["cpu0.freq"]
    assert (cpu0["min"], cpu0["max"]) == (729_600_000.0, 1_510_400_000.0)
    assert summary["environment"]["temperature_c"]  # the Jetson tree's thermal zones
    assert "governor is schedutil" in warnings
    assert "CPU frequency changed during the run (cpu0.freq: 730-1510 MHz)" in warnings


def test_a_runtime_that_is_not_installed_says_how_to_get_it(tmp_path: Path) -> None:
    try:
        import tflite_runtime  # noqa: F401

        pytest.skip("tflite-runtime is installed here")  # pragma: no cover
    except ImportError:
        pass
    proc = cli("run", str(MLP), "--runtime", "tflite-runtime", "--no-report")
    assert proc.returncode == 2
    assert "edgeprof[tflite-runtime]" in proc.stderr
    assert "Traceback" not in proc.stderr
