"""Float data quantized as the runtime's own QUANTIZE op does it, checked against that op.

A one-operator model (float32 in, QUANTIZE, int8 out) is run on LiteRT and TFLite Micro on the
KWS data plus values exactly half-way between two steps; :func:`load_inputs` with the runner's
rounding must give the same integers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeprof.measure.inputs import HALF_AWAY, HALF_EVEN, ROUNDING_OF_RUNNER, load_inputs
from edgeprof.runners.tensors import TensorInfo

tm = pytest.importorskip("edgeprof.testing.tflite_models")
pytest.importorskip("ai_edge_litert", reason="needs LiteRT: pip install 'edgeprof[litert]'")
pytest.importorskip("tflite_micro", reason="needs TFLM: pip install 'edgeprof[tflm]'")

import edgeprof.models  # noqa: E402

N = 488  # a multiple of the vectorized kernels' width: LiteRT's scalar tail rounds otherwise
SCALE, ZERO = 0.029411764815449715, -2  # kws_mlp_int8's input


def _quantize_model(n: int, scale: float, zero_point: int) -> bytes:
    s = tm.schema()
    g = tm.Graph([], [s.BufferT()])
    i = g.add([1, n], s.TensorType.FLOAT32)
    o = g.add([1, n], s.TensorType.INT8, tm.quant([scale], [zero_point]))
    op = s.OperatorT()
    op.opcodeIndex = 0
    op.inputs, op.outputs = [i], [o]
    code = s.OperatorCodeT()
    code.builtinCode = s.BuiltinOperator.QUANTIZE
    code.deprecatedBuiltinCode = code.builtinCode
    code.version = 1
    sub = s.SubGraphT()
    sub.tensors, sub.operators, sub.inputs, sub.outputs = g.tensors, [op], [i], [o]
    m = s.ModelT()
    m.version = 3
    m.subgraphs, m.buffers, m.operatorCodes = [sub], g.buffers, [code]
    return bytes(tm.pack(m))


def _values() -> np.ndarray:
    data = np.load(Path(edgeprof.models.DIRECTORY) / "kws_mlp_data.npz")["x"][:, :N]
    halves = ((np.arange(-N // 2, N // 2) + 0.5) * np.float32(SCALE)).astype(np.float32)
    return np.concatenate([data.astype(np.float32), halves[None, :]]).reshape(-1, 1, N)


@pytest.mark.parametrize(("runner", "run"), [("tflite", "litert"), ("tflm", "tflm")])
def test_quantized_inputs_match_the_runtimes_quantize_op(
    tmp_path: Path, runner: str, run: str
) -> None:
    xs = _values()
    model = _quantize_model(N, SCALE, ZERO)
    if run == "tflm":
        expected = tm.tflm_run(model, xs)
    else:
        expected = tm.litert_run(model, xs, "litert")
        assert np.array_equal(expected, tm.litert_run(model, xs, "xnnpack"))
    path = tmp_path / "x.npy"
    np.save(path, xs)
    info = TensorInfo("x", (1, N), "int8", SCALE, ZERO)
    rounding = ROUNDING_OF_RUNNER.get(runner, HALF_AWAY)
    got = np.stack([e["x"] for e in load_inputs(path, [info], rounding=rounding)[0]])
    assert np.array_equal(got.reshape(len(xs), -1), expected)
    # the other rounding, or a float64 division, differs on the same values: the check can fail
    other = HALF_AWAY if rounding == HALF_EVEN else HALF_EVEN
    wrong = np.stack([e["x"] for e in load_inputs(path, [info], rounding=other)[0]])
    assert not np.array_equal(wrong.reshape(len(xs), -1), expected)
    v = xs.astype(np.float64).reshape(len(xs), -1) / SCALE
    f64 = np.clip(
        (np.rint(v) if rounding == HALF_EVEN else np.sign(v) * np.floor(np.abs(v) + 0.5)) + ZERO,
        -128,
        127,
    )
    assert not np.array_equal(f64, expected)
