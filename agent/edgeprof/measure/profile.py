"""``edgeprof run`` as a function: model in, report out.

The tier between the click command and the engine (esptool's cmds.py): it picks the runner,
prepares inputs, runs the session, evaluates quality against a float twin and/or labelled data,
and assembles the report. It prints nothing; the CLI renders what it returns.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeprof import __version__
from edgeprof.device.detect import detect_board, stable_device_id
from edgeprof.device.roots import SystemRoots
from edgeprof.errors import InputError
from edgeprof.measure.inputs import (
    HALF_AWAY,
    ROUNDING_OF_RUNNER,
    check_label_classes,
    load_inputs,
    random_inputs,
)
from edgeprof.measure.quality import (
    accuracy,
    compression_ratio,
    dequantize,
    mean_abs_error,
    snr_db,
    top1_agreement,
)
from edgeprof.measure.reference import check_before_run, check_pair, open_reference
from edgeprof.measure.session import Progress, RunPlan, SessionResult, run_session
from edgeprof.report.builder import assemble
from edgeprof.report.builder import trace as build_trace
from edgeprof.report.codec import encode, uuid7
from edgeprof.report.signing import load_keys, sign
from edgeprof.report.store import save_report
from edgeprof.runners import (
    ModelFile,
    Runner,
    RunnerOptions,
    check_flags,
    make_runner,
)
from edgeprof.runners.tensors import TensorInfo

RANDOM_EXAMPLES = 32  # distinct random inputs cycled through during the run
QUALITY_MAX_EXAMPLES = 1000


@dataclass
class ProfileRequest:
    """Everything the user asked for."""

    model: Path
    runner: str = "tflite"
    options: RunnerOptions = field(default_factory=RunnerOptions)
    plan: RunPlan = field(default_factory=RunPlan)
    inputs: Path | None = None
    data: Path | None = None
    reference: Path | None = None
    seed: int = 0
    tags: dict[str, str] = field(default_factory=dict)
    # model registry fields (model_id, version, base_model, quantization, training_data_version)
    registry: dict[str, str] = field(default_factory=dict)
    store: Path | None = None
    save: bool = True
    counters: bool = True


@dataclass
class ProfileOutcome:
    """What came of it: the report (as a dict), where it was saved, and the raw session."""

    report: dict[str, Any]
    path: Path | None
    session: SessionResult

    @property
    def interrupted(self) -> bool:
        """Ctrl-C ended the measurement: the report holds what was measured until then."""
        return self.session.interrupted


class _Examples:
    """Builds the inputs once the runner knows its tensors, and keeps labels for quality."""

    def __init__(self, req: ProfileRequest) -> None:
        self.req = req
        self.labels: np.ndarray | None = None
        self.examples: list[dict[str, np.ndarray]] = []
        self.source = "random"
        self.notes: list[str] = []
        # the file's own float values, for the float twin, where the model quantized them
        self.floats: list[dict[str, np.ndarray]] | None = None
        self.rounding = ROUNDING_OF_RUNNER.get(req.runner, HALF_AWAY)

    def __call__(self, runner: Runner) -> list[dict[str, np.ndarray]]:
        """The examples, once the model is loaded and before warm-up: labels that cannot be
        scored are refused here, not after the measurement."""
        infos = runner.inputs
        path = self.req.inputs or self.req.data
        if path is not None:
            self.examples, self.labels = load_inputs(
                path, infos, notes=self.notes, rounding=self.rounding
            )
            self.source = str(path)
            if self.req.data is not None and self.labels is None:
                raise InputError(
                    f"--data {path} has no labels ('y' or 'labels'), so no accuracy: "
                    "add them, or pass the file as --inputs"
                )
            if self.labels is not None and self.req.data is not None and runner.outputs:
                classes = int(np.prod(runner.outputs[0].shape))
                check_label_classes(self.labels, classes, path)
            if any(t.quantized for t in infos) and any(
                "float data quantized" in n for n in self.notes
            ):
                as_float = [TensorInfo(t.name, t.shape, "float32") for t in infos]
                self.floats = load_inputs(path, as_float, notes=[])[0]
        else:
            self.examples = random_inputs(infos, RANDOM_EXAMPLES, seed=self.req.seed)
            self.source = f"random (seed {self.req.seed})"
        return self.examples


def _outputs_of(runner: Runner, examples: list[dict[str, np.ndarray]]) -> np.ndarray:
    """The first output of each example, dequantized to float."""
    info = runner.outputs[0]
    rows = []
    for ex in examples:
        runner.set_inputs(ex)
        runner.invoke()
        rows.append(runner.get_outputs()[0].reshape(-1))
    out = np.stack(rows)
    if info.quantized:
        return dequantize(out, info.scale, info.zero_point)
    return out.astype(np.float64)


def _as_reference_inputs(
    ex: dict[str, np.ndarray], quant: list[TensorInfo], ref: list[TensorInfo]
) -> dict[str, np.ndarray]:
    """The same example for the float twin: inputs matched by position (same shapes, checked
    by :mod:`edgeprof.measure.reference`), integers dequantized, floats as they are."""
    out = {}
    for qi, ri in zip(quant, ref, strict=True):
        x = ex[qi.name]
        if qi.quantized and not ri.quantized and np.asarray(x).dtype.kind in "iu":
            x = dequantize(x, qi.scale, qi.zero_point)
        out[ri.name] = np.asarray(x).astype(ri.dtype).reshape(ri.shape)
    return out


def evaluate_quality(
    runner: Runner,
    req: ProfileRequest,
    examples: list[dict[str, np.ndarray]],
    labels: np.ndarray | None,
    floats: list[dict[str, np.ndarray]] | None = None,
    rounding: str = HALF_AWAY,
) -> dict[str, Any] | None:
    """The quantization_test stage: agreement with the float twin, accuracy, compression.

    With float data for a quantized model, the model ran on its quantization and the twin runs
    on the data's own floats (``floats``); ``model_inputs`` and ``reference_inputs`` say which.
    """
    if req.reference is None and labels is None:
        return None
    n = min(len(examples), QUALITY_MAX_EXAMPLES)
    subset = examples[:n]
    result: dict[str, Any] = {"examples": n}
    result["model_inputs"] = (
        f"float data quantized (float32 division, rounding {rounding})"
        if floats is not None
        else "as given"
    )
    q_out = _outputs_of(runner, subset)
    if labels is not None:
        result["accuracy"] = accuracy(q_out, labels[:n])
    if req.reference is not None:
        ref = open_reference(req.reference, req.runner, req.options)
        ref_model = ref.model
        check_pair(runner, ref, req.reference)
        if floats is not None:
            ref_ex = [_as_reference_inputs(ex, runner.inputs, ref.inputs) for ex in floats[:n]]
            result["reference_inputs"] = "float data as given"
        else:
            ref_ex = [_as_reference_inputs(ex, runner.inputs, ref.inputs) for ex in subset]
            quantized = any(t.quantized for t in runner.inputs)
            result["reference_inputs"] = (
                "the model's inputs, dequantized" if quantized else "as given"
            )
        f_out = _outputs_of(ref, ref_ex)
        ref.close()
        if f_out.shape != q_out.shape:
            raise InputError(
                f"reference output shape {f_out.shape[1:]} differs from the model's "
                f"{q_out.shape[1:]}"
            )
        result.update(
            reference={
                "path": str(ref_model.path),
                "sha256": ref_model.sha256,
                "size_bytes": ref_model.size_bytes,
            },
            top1_agreement=top1_agreement(f_out, q_out),
            mean_abs_error=mean_abs_error(f_out, q_out),
            snr_db=snr_db(f_out, q_out),
            compression_ratio=compression_ratio(ref_model.size_bytes, runner.model.size_bytes),
        )
        if labels is not None:
            ref_acc = accuracy(f_out, labels[:n])
            result["reference_accuracy"] = ref_acc
            result["accuracy_retention"] = result["accuracy"] / ref_acc if ref_acc else None
    return result


def _cpu_model_and_memory(roots: SystemRoots) -> tuple[str | None, int | None]:
    """CPU model name and MemTotal from procfs, None where absent (not every board says)."""
    cpu = mem = None
    try:
        with open(roots.proc("cpuinfo"), encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("model name", "Model", "Hardware")) and cpu is None:
                    cpu = line.split(":", 1)[1].strip() or None
        with open(roots.proc("meminfo"), encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    return cpu, mem


def _quantization(infos: list[TensorInfo]) -> str:
    """What the I/O tensors show: the dtype(s) of the quantized ones, else "none"."""
    kinds = sorted({t.dtype for t in infos if t.quantized})
    return "+".join(kinds) if kinds else "none"


def _device(roots: SystemRoots) -> dict[str, Any]:
    board = detect_board(roots)
    uname = platform.uname()
    cpu_model, memory = _cpu_model_and_memory(roots)
    return {
        "board_id": board.board_id,
        "board_confidence": board.confidence,
        "device_id": stable_device_id(roots),
        "os": uname.system,
        "kernel": uname.release,
        "machine": uname.machine,
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "memory_total_bytes": memory,
        "python": sys.version.split()[0],
    }


def _tensor_list(infos: list[TensorInfo]) -> list[dict[str, Any]]:
    return [
        {
            "name": t.name,
            "shape": list(t.shape),
            "dtype": str(t.dtype),
            "scale": t.scale,
            "zero_point": t.zero_point,
        }
        for t in infos
    ]


def check_request(req: ProfileRequest) -> None:
    """Refuse, before anything loads, a request that would measure something other than what
    was asked: a flag the runner ignores, two input files of which one would be ignored, a
    file that is not there. (The plan's own limits are checked by :class:`RunPlan`.)"""
    check_flags(req.runner, req.options, reference=req.reference is not None)
    if req.inputs is not None and req.data is not None:
        raise InputError(
            "--inputs and --data both give the inputs and only one would be used: "
            "give --data (inputs with labels) or --inputs"
        )
    for extra in (req.inputs, req.data, req.reference):
        if extra is not None and not extra.exists():
            raise InputError(f"{extra}: no such file")


def profile(
    req: ProfileRequest, roots: SystemRoots | None = None, progress: Progress | None = None
) -> ProfileOutcome:
    """Run the whole job and return the report.

    Ctrl-C during the measured loop ends it: quality is then skipped and the report, marked
    ``interrupted``, holds the inferences measured so far (signed and saved as usual); Ctrl-C
    before the first one raises KeyboardInterrupt and leaves no report.
    """
    roots = roots or SystemRoots.from_env()
    check_request(req)
    model = ModelFile.load(req.model)
    keys = load_keys()  # before the run: a broken key file should not cost a measurement
    if req.reference is not None:  # a twin of another interface would cost a whole run first
        check_before_run(req.model, req.reference, req.runner, req.options)
    runner = make_runner(req.runner, model, req.options)
    examples = _Examples(req)
    started_ns = time.time_ns()
    try:
        session = run_session(
            runner, examples, req.plan, roots, counters=req.counters, progress=progress
        )
        quality = (
            None
            if session.interrupted
            else evaluate_quality(
                runner, req, examples.examples, examples.labels, examples.floats, examples.rounding
            )
        )
        runner_info = runner.describe()
        inputs, outputs = runner.inputs, runner.outputs
    finally:
        runner.close()
    per_inference: dict[str, Any] = {
        "begin_ns": session.begin_ns,
        "latency_s": session.latency_s,
        "peak_rss_bytes": session.peak_rss_bytes,
    }
    for name, arr in session.energy_j.items():
        per_inference[f"energy_j.{name}"] = arr
    if session.cycles is not None:
        per_inference["cycles"] = session.cycles
        per_inference["instructions"] = session.instructions
    if session.output_top1 is not None and len(session.output_top1) == len(session.latency_s):
        per_inference["output_top1"] = session.output_top1
        per_inference["output_top_score"] = session.output_top_score
    if session.device is not None and session.host_round_trip_s is not None:
        per_inference["host_round_trip_s"] = session.host_round_trip_s
        for name, arr in session.device.arrays.items():
            per_inference[f"device_{name}"] = arr
    traces = {
        key: build_trace(
            t.rate_hz, [s.describe() for s in t.specs], t.times_ns(session.clock), t.values
        )
        for key, t in (("fast", session.traces.fast), ("slow", session.traces.slow))
        if t is not None
    }
    summary = dict(session.summary)
    summary["count"] = session.count
    summary["init_time_s"] = session.init["time_s"]
    summary["model_size_bytes"] = model.size_bytes
    device = {
        **_device(roots),
        "runtimes": {str(runner_info.get("runtime")): runner_info.get("runtime_version")},
    }
    if isinstance(runner_info.get("device"), dict):
        # An MCU over a link is the device measured; the machine driving it is only the host.
        device["host_board_id"] = device["board_id"]
        device["board_id"] = str(runner_info.get("board"))
        device["board_confidence"] = "given"
        device["mcu"] = runner_info["device"]
    warnings = list(session.warnings)
    if session.interrupted and quality is None and (req.reference or req.data):
        warnings.append("quality not evaluated: the run was interrupted")
    report_id = uuid7()
    report = assemble(
        report_id=report_id,
        created_ns=started_ns,
        agent={"name": "edgeprof", "version": __version__},
        device=device,
        model={
            **model.describe(),
            "quantization": _quantization(inputs + outputs),
            "inputs": _tensor_list(inputs),
            "outputs": _tensor_list(outputs),
            **({"registry": dict(req.registry)} if req.registry else {}),
        },
        runner=runner_info,
        run={
            **req.plan.describe(),
            "input_source": examples.source,
            "input_notes": examples.notes,
            "seed": req.seed,
        },
        clock=session.clock.describe(),
        time_anchors=session.anchors,
        interrupted=session.interrupted,
        counters={
            "available": session.cycles is not None,
            "reason": session.counters_reason or None,
        },
        init=session.init,
        environment=session.environment,
        summary=summary,
        quality=quality,
        per_inference=per_inference,
        traces=traces,
        warnings=warnings,
        tags=req.tags,
    )
    if keys.any:
        report = sign(report, keys)
    else:
        report["warnings"].append("report unsigned: run `edgeprof keys init`")
    path = save_report(encode(report), report_id, req.store) if req.save else None
    return ProfileOutcome(report=report, path=path, session=session)
