"""The float twin (``--reference``): is it the same model's interface, and its runner.

Why before measuring: a reference with another input shape (``[1,49,10,1]`` against ``[1,490]``)
was silently reshaped and reported 0 % top-1 agreement and a 16.75x "compression" with exit 0.
The twin must take the same inputs and give the same outputs, position by position: the same
shapes, and the same dtypes except where the model quantizes what the twin keeps in float.
"""

from __future__ import annotations

from pathlib import Path

from edgeprof.errors import InputError
from edgeprof.runners import ModelFile, Runner, RunnerOptions, make_runner, runner_entry
from edgeprof.runners.tensors import TensorInfo


def mismatch(role: str, model: list[TensorInfo], ref: list[TensorInfo]) -> str | None:
    """Why ``ref``'s tensors cannot stand in for ``model``'s (None when they can)."""
    if len(model) != len(ref):
        return f"the reference has {len(ref)} {role}s, the model {len(model)}"
    for k, (m, r) in enumerate(zip(model, ref, strict=True)):
        if tuple(m.shape) != tuple(r.shape):
            return (
                f"{role} {k} ('{m.name}') has shape {list(m.shape)} in the model but "
                f"{list(r.shape)} in the reference"
            )
        float_twin = m.quantized and not r.quantized and r.dtype.startswith("float")
        if m.dtype != r.dtype and not float_twin:
            return (
                f"{role} {k} ('{m.name}') is {m.dtype} in the model but {r.dtype} in the "
                "reference (only a quantized tensor may be float in its twin)"
            )
    return None


def check_pair(model: Runner, ref: Runner, reference: Path) -> None:
    """InputError (one line) when the prepared ``ref`` cannot stand in for ``model``."""
    for role, mine, theirs in (
        ("input", model.inputs, ref.inputs),
        ("output", model.outputs, ref.outputs),
    ):
        why = mismatch(role, mine, theirs)
        if why is not None:
            raise InputError(f"--reference {reference} does not match {model.model.path}: {why}")


def check_before_run(model: Path, reference: Path, runner: str, options: RunnerOptions) -> None:
    """Both models opened on the reference runner and compared, before anything is measured."""
    ref = open_reference(reference, runner, options)
    try:
        twin = open_reference(model, runner, options)  # the model's interface, read cheaply
        try:
            check_pair(twin, ref, reference)
        finally:
            twin.close()
    finally:
        ref.close()


def open_reference(path: Path, runner: str, options: RunnerOptions) -> Runner:
    """The float twin, prepared on the runner that runs references for ``runner``."""
    ref_opts = RunnerOptions(runtime=options.runtime, default_delegates=False, probe_arena=False)
    ref = make_runner(runner_entry(runner).reference, ModelFile.load(path), ref_opts)
    ref.prepare()
    return ref
