"""The shipped keyword-spotting models (agent/models/, made by scripts/make_models.py).

What is checked: the committed files are exactly what the script writes today; the int8 files
follow the TFLite converter's conventions; LiteRT and TFLM run them and agree operator by
operator; accuracies are high and int8 stays close to float; int8 is much smaller than float;
and the float model shipped inside the tflite-micro wheel loads in LiteRT.

LiteRT's reference int8 FULLY_CONNECTED requantizes in double precision,
``round(acc * input_scale * weight_scale / output_scale)``, while TFLM (and LiteRT's optimized
kernel) use the fixed-point ``MultiplyByQuantizedMultiplier``. The two differ by one LSB when
the product lies near .5, and that difference then flows into SOFTMAX. So FULLY_CONNECTED is
checked against an exact emulation of each runtime's own arithmetic, and every other operator
must agree bit for bit whenever its input agrees.

Without ai-edge-litert / tflite-micro these tests skip locally and fail under CI=true.
"""

from __future__ import annotations

import importlib
import importlib.resources
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from edgeprof.measure.inputs import load_inputs
from edgeprof.runners.tensors import TensorInfo
from edgeprof.testing.tflite_models import schema

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "agent" / "edgeprof" / "models"
SCRIPT = ROOT / "scripts" / "make_models.py"
PAIRS = [("kws_mlp", "mlp"), ("ds_cnn", "dscnn")]
FILES = [f"{stem}_{kind}.tflite" for stem, _ in PAIRS for kind in ("int8", "float")]
Array = npt.NDArray[Any]
# reading the models needs the TFLite schema: skip without it (fail on CI)
pytestmark = pytest.mark.usefixtures("litert_schema")


def load_model(name: str) -> Any:
    """The flatbuffer as the schema's object API sees it (ModelT)."""
    s = schema()
    data = (MODELS / name).read_bytes()
    return s.ModelT.InitFromObj(s.Model.GetRootAs(data, 0))


def dataset() -> dict[str, Array]:
    """Each model's evaluation set, with x_int8 quantized by edgeprof's own input loader."""
    out: dict[str, Array] = {}
    for stem, key in PAIRS:
        path = MODELS / f"{stem}_data.npz"
        with np.load(path) as data:
            out[f"{key}_x"], out[f"{key}_y"] = data["x"], data["y"]
        model = load_model(f"{stem}_int8.tflite")
        sub = model.subgraphs[0]
        tin = sub.tensors[sub.inputs[0]]
        info = TensorInfo(
            name="x",
            shape=tuple(int(d) for d in tin.shape),
            dtype="int8",
            scale=float(tin.quantization.scale[0]),
            zero_point=int(tin.quantization.zeroPoint[0]),
        )
        examples, labels = load_inputs(path, [info])
        assert labels is not None
        out[f"{key}_x_int8"] = np.stack([e["x"] for e in examples]).reshape(out[f"{key}_x"].shape)
    return out


def builtin_name(model: Any, op: Any) -> str:
    s = schema()
    code = model.operatorCodes[op.opcodeIndex]
    number = max(code.builtinCode, code.deprecatedBuiltinCode)
    return next(str(k) for k, v in vars(s.BuiltinOperator).items() if v == number)


def const(model: Any, tensor: Any, dtype: type[np.generic]) -> Array:
    """A constant tensor's values from its buffer."""
    raw = bytes(model.buffers[tensor.buffer].data)
    return np.frombuffer(raw, dtype=dtype).reshape(tuple(tensor.shape))


# ----------------------------------------------------------------------------- the files


@pytest.mark.slow
@pytest.mark.usefixtures("litert")
def test_regenerating_gives_the_committed_files(tmp_path: Path) -> None:
    """Deterministic output, and the committed files are the current script's output.

    The .npz is compared array by array: zlib builds may compress the same bytes differently.
    """
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (MODELS / name).read_bytes(), name
    for stem, _ in PAIRS:
        name = f"{stem}_data.npz"
        with np.load(tmp_path / name) as new, np.load(MODELS / name) as old:
            assert sorted(new.files) == sorted(old.files) == ["x", "y"]
            for key in old.files:
                assert new[key].dtype == old[key].dtype, key
                assert np.array_equal(new[key], old[key]), key


def test_dataset_is_labelled_and_loads_quantized_like_the_converter() -> None:
    # x_int8 comes from edgeprof.measure.inputs.load_inputs with its default rounding, TFLite
    # Micro's QUANTIZE: float32 division, half away from zero (LiteRT's half-to-even is checked
    # against the op itself in test_quantize_op.py).
    data = dataset()
    for stem, key in PAIRS:
        x, xq, y = data[f"{key}_x"], data[f"{key}_x_int8"], data[f"{key}_y"]
        model = load_model(f"{stem}_int8.tflite")
        sub = model.subgraphs[0]
        tin = sub.tensors[sub.inputs[0]]
        assert x.dtype == np.float32
        assert xq.dtype == np.int8
        assert x.shape == xq.shape == (len(y), *tin.shape[1:])
        assert set(np.unique(y)) == set(range(12))
        assert np.bincount(y).min() == np.bincount(y).max()  # balanced
        scale, zero = float(tin.quantization.scale[0]), int(tin.quantization.zeroPoint[0])
        v = (x.astype(np.float32) / np.float32(scale)).astype(np.float64)
        expect = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5) + zero, -128, 127)
        assert np.array_equal(xq, expect.astype(np.int8))


@pytest.mark.parametrize("stem", [stem for stem, _ in PAIRS])
def test_int8_model_follows_converter_conventions(stem: str) -> None:
    s = schema()
    model = load_model(f"{stem}_int8.tflite")
    assert model.version == 3
    assert model.description
    assert model.buffers[0].data is None  # the empty sentinel
    (sub,) = model.subgraphs
    used = [t.buffer for t in sub.tensors]
    assert 0 not in used
    assert len(set(used)) == len(used)  # every tensor owns its buffer
    assert (MODELS / f"{stem}_int8.tflite").read_bytes()[4:8] == b"TFL3"
    io = [sub.tensors[sub.inputs[0]], sub.tensors[sub.outputs[0]]]
    for tensor in io:
        assert tensor.type == s.TensorType.INT8
        assert len(tensor.quantization.scale) == 1
    out_q = io[1].quantization
    assert (float(out_q.scale[0]), int(out_q.zeroPoint[0])) == (1 / 256, -128)
    versions = {"FULLY_CONNECTED": 4, "CONV_2D": 3, "DEPTHWISE_CONV_2D": 3, "SOFTMAX": 2}
    versions |= {"AVERAGE_POOL_2D": 2, "RESHAPE": 1}
    for op in sub.operators:
        name = builtin_name(model, op)
        assert model.operatorCodes[op.opcodeIndex].version == versions[name], name
        if name in ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D"):
            check_weights_and_bias(model, sub, op, axis=3 if name == "DEPTHWISE_CONV_2D" else 0)
        if name in ("AVERAGE_POOL_2D", "RESHAPE"):
            qa, qb = sub.tensors[op.inputs[0]].quantization, sub.tensors[op.outputs[0]].quantization
            assert (list(qa.scale), list(qa.zeroPoint)) == (list(qb.scale), list(qb.zeroPoint))


def check_weights_and_bias(model: Any, sub: Any, op: Any, axis: int) -> None:
    """Symmetric per-channel int8 weights in [-127, 127]; int32 bias at in_scale * w_scale."""
    s = schema()
    x, w, b = (sub.tensors[i] for i in op.inputs)
    channels = w.shape[axis]
    wq, bq = w.quantization, b.quantization
    assert w.type == s.TensorType.INT8
    assert b.type == s.TensorType.INT32
    assert wq.quantizedDimension == axis
    assert len(wq.scale) == len(wq.zeroPoint) == channels
    assert not any(wq.zeroPoint)
    assert len(bq.scale) == channels
    assert not any(bq.zeroPoint)
    weights = const(model, w, np.int8)
    assert weights.min() >= -127
    assert np.abs(weights).max(axis=tuple(a for a in range(weights.ndim) if a != axis)).min() > 0
    expect = np.float32(x.quantization.scale[0]) * np.asarray(wq.scale, np.float32)
    np.testing.assert_allclose(np.asarray(bq.scale, np.float32), expect, rtol=1e-6)


@pytest.mark.parametrize("name", FILES)
def test_constant_buffers_are_16_byte_aligned(name: str) -> None:
    s = schema()
    data = (MODELS / name).read_bytes()
    root = s.Model.GetRootAs(data, 0)
    for i in range(1, root.BuffersLength()):
        buf = root.Buffers(i)
        if buf.DataLength():
            start = buf._tab.Vector(buf._tab.Offset(4))
            assert start % 16 == 0, (name, i)


@pytest.mark.parametrize("stem", [stem for stem, _ in PAIRS])
def test_int8_is_much_smaller_than_float(stem: str) -> None:
    """Weights shrink exactly 4x; whole files less, as per-channel scales and int64 zero
    points (the converter's format) weigh a lot next to the DS-CNN's small kernels."""
    small = (MODELS / f"{stem}_int8.tflite").stat().st_size
    big = (MODELS / f"{stem}_float.tflite").stat().st_size
    assert big / small >= (3.5 if stem == "kws_mlp" else 2.0)
    mi, mf = load_model(f"{stem}_int8.tflite"), load_model(f"{stem}_float.tflite")
    for ti, tf in zip(mi.subgraphs[0].tensors, mf.subgraphs[0].tensors, strict=True):
        if ti.name.endswith(b"/weights"):
            size_i = len(mi.buffers[ti.buffer].data)
            assert len(mf.buffers[tf.buffer].data) == 4 * size_i


# ----------------------------------------------------------------------------- runtimes


def litert(path: Path, preserve: bool = False) -> Any:
    """LiteRT with its reference kernels (no XNNPACK): the deterministic baseline."""
    mod = importlib.import_module("ai_edge_litert.interpreter")
    it = mod.Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=mod.OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=preserve,
    )
    it.allocate_tensors()
    return it


def tflm(path: Path, preserve: bool = False) -> Any:
    runtime = importlib.import_module("tflite_micro").runtime
    config = runtime.InterpreterConfig
    mode = config.kPreserveAllTensors if preserve else config.kAllocationRecording
    return runtime.Interpreter.from_file(str(path), intrepreter_config=mode)


def run_litert(it: Any, x: Array) -> Array:
    i_in = it.get_input_details()[0]["index"]
    i_out = it.get_output_details()[0]["index"]
    outs = []
    for i in range(len(x)):
        it.set_tensor(i_in, x[i : i + 1])
        it.invoke()
        outs.append(it.get_tensor(i_out).copy())
    return np.concatenate(outs)


def run_tflm(it: Any, x: Array) -> Array:
    outs = []
    for i in range(len(x)):
        it.set_input(x[i : i + 1], 0)
        it.invoke()
        outs.append(it.get_output(0).copy())
    return np.concatenate(outs)


def activations(model: Any) -> list[int]:
    sub = model.subgraphs[0]
    return [i for i, t in enumerate(sub.tensors) if model.buffers[t.buffer].data is None]


def all_tensors(path: Path, model: Any, x: Array) -> tuple[dict[int, Array], dict[int, Array]]:
    """Every activation tensor for every example, from LiteRT and from TFLM."""
    lite, micro = litert(path, preserve=True), tflm(path, preserve=True)
    idx = activations(model)
    got_l: dict[int, list[Array]] = {i: [] for i in idx}
    got_m: dict[int, list[Array]] = {i: [] for i in idx}
    for n in range(len(x)):
        lite.set_tensor(model.subgraphs[0].inputs[0], x[n : n + 1])
        lite.invoke()
        micro.set_input(x[n : n + 1], 0)
        micro.invoke()
        for i in idx:
            a = lite.get_tensor(i).copy()
            got_l[i].append(a)
            got_m[i].append(np.asarray(micro.GetTensor(i, 0)["tensor_data"]).reshape(a.shape))
    return (
        {i: np.concatenate(v) for i, v in got_l.items()},
        {i: np.concatenate(v) for i, v in got_m.items()},
    )


def round_away(v: Array) -> Array:
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: m = q * 2^(shift - 31), q in [2^30, 2^31)."""
    frac, shift = math.frexp(m)
    q = math.floor(frac * 2**31 + 0.5)
    if q == 2**31:
        q //= 2
        shift += 1
    return (0, 0) if shift < -31 else (q, shift)


def multiply_fixed_point(acc: int, q: int, shift: int) -> int:
    """gemmlowp's SaturatingRoundingDoublingHighMul then RoundingDivideByPOT (C semantics)."""
    prod = acc * (1 << max(shift, 0)) * q
    prod += (1 << 30) if prod >= 0 else 1 - (1 << 30)
    high = abs(prod) >> 31
    high = high if prod >= 0 else -high
    right = max(-shift, 0)
    mask = (1 << right) - 1
    threshold = (mask >> 1) + (1 if high < 0 else 0)
    return (high >> right) + (1 if (high & mask) > threshold else 0)


def emulate_fc(model: Any, op: Any, x: Array, fixed_point: bool) -> Array:
    """An int8 FULLY_CONNECTED as TFLM (fixed point) or LiteRT's reference kernel (double)."""
    s = schema()
    sub = model.subgraphs[0]
    tx, tw, tb = (sub.tensors[i] for i in op.inputs)
    to = sub.tensors[op.outputs[0]]
    w = const(model, tw, np.int8).astype(np.int64)
    b = const(model, tb, np.int32).astype(np.int64)
    sx, zx = np.float32(tx.quantization.scale[0]), int(tx.quantization.zeroPoint[0])
    so, zo = np.float32(to.quantization.scale[0]), int(to.quantization.zeroPoint[0])
    acc = (x.reshape(len(x), -1).astype(np.int64) - zx) @ w.T + b
    eff = [
        float(np.float64(sx) * np.float64(np.float32(c)) / np.float64(so))
        for c in tw.quantization.scale
    ]
    if fixed_point:
        mults = [quantize_multiplier(e) for e in eff]
        scaled = np.array(
            [[multiply_fixed_point(int(a), *mults[c]) for c, a in enumerate(row)] for row in acc]
        )
    else:
        scaled = round_away(acc.astype(np.float64) * np.asarray(eff)).astype(np.int64)
    relu = op.builtinOptions.fusedActivationFunction == s.ActivationFunctionType.RELU
    out: Array = np.clip(scaled + zo, zo if relu else -128, 127)
    return out


@pytest.mark.usefixtures("litert", "tflm")
@pytest.mark.parametrize(("stem", "key"), PAIRS)
def test_litert_and_tflm_agree_operator_by_operator(stem: str, key: str) -> None:
    """Same int8 inputs: each operator's output is bit-identical in both runtimes whenever its
    input is, except FULLY_CONNECTED, where each runtime matches its own exact arithmetic."""
    model = load_model(f"{stem}_int8.tflite")
    x = dataset()[f"{key}_x_int8"]
    lite, micro = all_tensors(MODELS / f"{stem}_int8.tflite", model, x)
    compared: dict[str, int] = {}
    for op in model.subgraphs[0].operators:
        name = builtin_name(model, op)
        i, o = op.inputs[0], op.outputs[0]
        if name == "FULLY_CONNECTED":
            assert np.array_equal(lite[o], emulate_fc(model, op, lite[i], fixed_point=False))
            assert np.array_equal(micro[o], emulate_fc(model, op, micro[i], fixed_point=True))
            same_in = (lite[i] == micro[i]).reshape(len(x), -1).all(axis=1)
            diff = np.abs(lite[o][same_in].astype(int) - micro[o][same_in].astype(int))
            assert diff.max(initial=0) <= 1
            continue
        same_in = (lite[i] == micro[i]).reshape(len(x), -1).all(axis=1)
        assert np.array_equal(lite[o][same_in], micro[o][same_in]), name
        compared[name] = compared.get(name, 0) + int(same_in.sum())
    if stem == "ds_cnn":  # everything before the classifier sees identical inputs
        for name in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "RESHAPE"):
            assert compared[name] % len(x) == 0
            assert compared[name] > 0
    assert compared["SOFTMAX"] >= len(x) // 2  # logits mostly agree, so SOFTMAX gets tested


@pytest.mark.usefixtures("litert", "tflm")
@pytest.mark.parametrize(("stem", "key"), PAIRS)
def test_float_twins_agree_across_runtimes(stem: str, key: str) -> None:
    path = MODELS / f"{stem}_float.tflite"
    x = dataset()[f"{key}_x"][:64]
    np.testing.assert_allclose(
        run_litert(litert(path), x), run_tflm(tflm(path), x), rtol=1e-5, atol=1e-6
    )


@pytest.mark.usefixtures("litert", "tflm")
@pytest.mark.parametrize(("stem", "key"), PAIRS)
def test_accuracy_is_high_and_int8_stays_close_to_float(stem: str, key: str) -> None:
    data = dataset()
    y = data[f"{key}_y"]
    acc_float = float(
        (
            run_litert(litert(MODELS / f"{stem}_float.tflite"), data[f"{key}_x"]).argmax(axis=1)
            == y
        ).mean()
    )
    int8_path, xq = MODELS / f"{stem}_int8.tflite", data[f"{key}_x_int8"]
    acc_lite = float((run_litert(litert(int8_path), xq).argmax(axis=1) == y).mean())
    acc_micro = float((run_tflm(tflm(int8_path), xq).argmax(axis=1) == y).mean())
    assert acc_float > 0.9
    assert abs(acc_lite - acc_float) <= 0.03
    assert abs(acc_micro - acc_float) <= 0.03


@pytest.mark.usefixtures("litert", "tflm")
def test_tflm_wheel_sine_model_loads_in_litert() -> None:
    files = importlib.resources.files("tflite_micro.python.tflite_micro")
    with importlib.resources.as_file(files.joinpath("sine_float.tflite")) as path:
        it = litert(Path(path))
        xs = np.array([0.0, math.pi / 2, math.pi, 3 * math.pi / 2], np.float32)
        ys = run_litert(it, xs.reshape(-1, 1)).reshape(-1)
    np.testing.assert_allclose(ys, np.sin(xs), atol=0.1)


@pytest.mark.parametrize("stem", [stem for stem, _ in PAIRS])
def test_float_twin_has_the_same_topology_in_float32(stem: str) -> None:
    s = schema()
    mi, mf = load_model(f"{stem}_int8.tflite"), load_model(f"{stem}_float.tflite")
    si, sf = mi.subgraphs[0], mf.subgraphs[0]
    assert [builtin_name(mi, op) for op in si.operators] == [
        builtin_name(mf, op) for op in sf.operators
    ]
    assert [list(t.shape) for t in si.tensors] == [list(t.shape) for t in sf.tensors]
    for t in sf.tensors:
        shape_input = t.name.endswith(b"/shape")
        assert t.type == (s.TensorType.INT32 if shape_input else s.TensorType.FLOAT32)
        assert not t.quantization.scale
