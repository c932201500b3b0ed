"""The firmware's int8 kernels (firmware_bridge/firmware/model/) against LiteRT, bit for bit.

The C interpreter is built here under ASan and UBSan as ep_model_run (model/run_blob.c), a
host program that runs a blob over inputs on stdin, and compared with LiteRT on the same
inputs in both of its CPU modes, and with TFLM, each with the blob flavour made for it:

* "litert": LiteRT's builtin kernels (BUILTIN_WITHOUT_DEFAULT_DELEGATES);
* "xnnpack": LiteRT with its default XNNPACK delegate (what `edgeprof run` uses by default);
* "tflm": TFLite Micro (tflite-micro's reference kernels).

Compared: both demo models end to end (random inputs and the labelled evaluation set), each
of their operators alone without its fused ReLU (so negative values and their rounding count),
and single-operator models with parameters the demo models lack. The goal, and the assertion,
is zero differing outputs.

Needs a C compiler (cc, with ASan/UBSan runtimes), ai-edge-litert and tflite-micro: without
them these tests skip locally and fail under CI=true.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from edgeprof.bridge.model_blob import Flavour, compile_tflite
from edgeprof.errors import InputError
from edgeprof.testing import tflite_models as tm

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "agent" / "edgeprof" / "models"
MODEL_DIR = ROOT / "firmware_bridge" / "firmware" / "model"
FLAVOURS: list[Flavour] = ["litert", "xnnpack", "tflm"]
DEMOS = ["kws_mlp_int8", "ds_cnn_int8"]

Array = npt.NDArray[Any]
Runner = Callable[..., Array]


@pytest.fixture(scope="session")
def runner(
    ep_model_run: Path, sanitizer_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Runner:
    """run(blob, xs) -> outputs of the C interpreter, one row per input."""
    exe, env = ep_model_run, sanitizer_env
    blobs = tmp_path_factory.mktemp("blobs")

    def run(blob: bytes, xs: Array, arena: int | None = None) -> Array:
        path = blobs / f"{abs(hash(blob))}.blob"
        path.write_bytes(blob)
        args = [str(exe), *(["--arena", str(arena)] if arena else []), str(path)]
        proc = subprocess.run(
            args, input=np.ascontiguousarray(xs, np.int8).tobytes(), capture_output=True,
            timeout=600, check=False, env=env,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
        return np.frombuffer(proc.stdout, np.int8).reshape(len(xs), -1)

    return run


def random_inputs(data: bytes, n: int, seed: int) -> Array:
    shape = tm.input_shape(data)
    return np.random.default_rng(seed).integers(-128, 128, (n, *shape)).astype(np.int8)


def dataset_inputs(stem: str) -> Array:
    """The labelled evaluation set, quantized with the model's input params (any fixed rounding
    serves: the firmware and the runtime it is compared with get the same int8 inputs)."""
    data = (MODELS / f"{stem}.tflite").read_bytes()
    m = tm.load(data)
    t = m.subgraphs[0].tensors[m.subgraphs[0].inputs[0]]
    scale, zero = np.float32(t.quantization.scale[0]), int(t.quantization.zeroPoint[0])
    with np.load(MODELS / f"{stem.removesuffix('_int8')}_data.npz") as d:
        x = d["x"].astype(np.float64) / np.float64(scale)
    q = np.clip(np.sign(x) * np.floor(np.abs(x) + 0.5) + zero, -128, 127).astype(np.int8)
    out: Array = q.reshape(len(q), *tm.input_shape(data))
    return out


def reference(data: bytes, xs: Array, flavour: Flavour) -> Array:
    """The runtime a flavour is made to match, on the same inputs."""
    return tm.tflm_run(data, xs) if flavour == "tflm" else tm.litert_run(data, xs, flavour)


def assert_same(got: Array, want: Array, what: str) -> None:
    diff = int((got != want).sum())
    assert got.shape == want.shape, what
    assert diff == 0, f"{what}: {diff} of {want.size} outputs differ"


# ----------------------------------------------------------------------------- demo models


@pytest.mark.usefixtures("litert", "tflm")
@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("stem", DEMOS)
def test_demo_model_is_bit_exact_with_litert(runner: Runner, stem: str, flavour: Flavour) -> None:
    data = (MODELS / f"{stem}.tflite").read_bytes()
    blob = compile_tflite(data, flavour)
    xs = np.concatenate([random_inputs(data, 300, seed=11), dataset_inputs(stem)])
    assert_same(runner(blob, xs), reference(data, xs, flavour), f"{stem} {flavour}")


@pytest.mark.usefixtures("litert", "tflm")
@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("stem", DEMOS)
def test_each_operator_alone_is_bit_exact(runner: Runner, stem: str, flavour: Flavour) -> None:
    """Every operator of the demo models, without its ReLU: negative outputs must round the
    same too, which a ReLU with zero point -128 would hide."""
    data = (MODELS / f"{stem}.tflite").read_bytes()
    for k in range(len(tm.load(data).subgraphs[0].operators)):
        op_model = tm.one_op_of(data, k, no_activation=True)
        xs = random_inputs(op_model, 120, seed=k)
        got = runner(compile_tflite(op_model, flavour), xs)
        assert_same(got, reference(op_model, xs, flavour), f"{stem} op {k} {flavour}")


@pytest.mark.usefixtures("litert", "tflm")
def test_the_three_runtimes_differ_so_each_needs_its_flavour() -> None:
    """LiteRT's two modes and TFLM really give different int8 outputs on these models: one
    blob cannot match them all, hence the flavours."""
    data = (MODELS / "ds_cnn_int8.tflite").read_bytes()
    xs = random_inputs(data, 200, seed=3)
    outs = [reference(data, xs, f) for f in FLAVOURS]
    for i in range(len(outs)):
        for j in range(i):
            assert (outs[i] != outs[j]).any(), (FLAVOURS[i], FLAVOURS[j])


# ----------------------------------------------------------------------------- single ops


def conv_case(
    rng: np.random.Generator,
    depthwise: bool,
    *,
    hw: tuple[int, int] = (9, 7),
    c: int = 3,
    k: tuple[int, int] = (3, 3),
    stride: tuple[int, int] = (1, 1),
    dil: tuple[int, int] = (1, 1),
    mult: int = 2,
    valid: bool = False,
    act: str = "NONE",
    out_scale: float = 0.04,
) -> bytes:
    """CONV_2D / DEPTHWISE_CONV_2D with random weights (OHWI / 1HWO) and bias."""
    s = tm.schema()
    h, w = hw
    oc = c * mult if depthwise else 5

    def out_size(n: int, kk: int, st: int, d: int) -> int:
        eff = (kk - 1) * d + 1
        return (n - eff + st) // st if valid else (n + st - 1) // st

    oh, ow = out_size(h, k[0], stride[0], dil[0]), out_size(w, k[1], stride[1], dil[1])
    sx, zx = 0.05, int(rng.integers(-20, 20))
    shape = (1, *k, oc) if depthwise else (oc, *k, c)
    wq, wquant, b, bquant = tm.weights(rng, shape, 3 if depthwise else 0, sx)
    o = s.DepthwiseConv2DOptionsT() if depthwise else s.Conv2DOptionsT()
    o.padding = s.Padding.VALID if valid else s.Padding.SAME
    o.strideH, o.strideW = stride
    o.dilationHFactor, o.dilationWFactor = dil
    o.fusedActivationFunction = getattr(s.ActivationFunctionType, act)
    if depthwise:
        o.depthMultiplier = mult
    return tm.single_op(
        "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", o, ((1, h, w, c), sx, zx),
        ((1, oh, ow, oc), out_scale, int(rng.integers(-10, 10))),
        [(wq, wquant), (b, bquant)], version=3,
    )  # fmt: skip


def fc_case(rng: np.random.Generator, batch: int, act: str) -> bytes:
    s = tm.schema()
    depth, units, sx = 40, 17, 0.03
    wq, wquant, b, bquant = tm.weights(rng, (units, depth), 0, sx)
    o = s.FullyConnectedOptionsT()
    o.fusedActivationFunction = getattr(s.ActivationFunctionType, act)
    return tm.single_op(
        "FULLY_CONNECTED", o, ((batch, depth), sx, 3), ((batch, units), 0.05, -7),
        [(wq, wquant), (b, bquant)], version=4,
    )  # fmt: skip


def pool_case(valid: bool, filt: tuple[int, int], stride: tuple[int, int]) -> bytes:
    s = tm.schema()
    o = s.Pool2DOptionsT()
    o.padding = s.Padding.VALID if valid else s.Padding.SAME
    o.filterHeight, o.filterWidth = filt
    o.strideH, o.strideW = stride
    h, w, c = 11, 8, 4
    if valid:
        oh, ow = (h - filt[0]) // stride[0] + 1, (w - filt[1]) // stride[1] + 1
    else:
        oh, ow = -(-h // stride[0]), -(-w // stride[1])
    return tm.single_op(
        "AVERAGE_POOL_2D", o, ((1, h, w, c), 0.1, 5), ((1, oh, ow, c), 0.1, 5), version=2
    )


def softmax_case(shape: tuple[int, ...], in_scale: float, beta: float = 1.0) -> bytes:
    o = tm.schema().SoftmaxOptionsT()
    o.beta = beta
    return tm.single_op("SOFTMAX", o, (shape, in_scale, 0), (shape, 1 / 256, -128), version=2)


def single_op_cases() -> dict[str, Callable[[], bytes]]:
    """Name -> builder; built lazily so that collection needs no LiteRT."""
    rng = np.random.default_rng(2024)
    return {
        "conv_same": lambda: conv_case(rng, False),
        "conv_valid_stride2": lambda: conv_case(rng, False, valid=True, stride=(2, 2), k=(4, 3)),
        "conv_dilated": lambda: conv_case(rng, False, dil=(2, 2), hw=(12, 10)),
        "conv_relu6": lambda: conv_case(rng, False, act="RELU6"),
        "conv_big_scale": lambda: conv_case(rng, False, out_scale=0.002, c=8),
        "dw_mult2": lambda: conv_case(rng, True, mult=2),
        "dw_valid_stride2": lambda: conv_case(rng, True, mult=1, valid=True, stride=(2, 1), c=6),
        "dw_dilated_relu": lambda: conv_case(rng, True, mult=3, dil=(2, 1), act="RELU"),
        "fc_batch3": lambda: fc_case(rng, 3, "NONE"),
        "fc_relu_n1_to_1": lambda: fc_case(rng, 1, "RELU_N1_TO_1"),
        "pool_same_3x3_s2": lambda: pool_case(False, (3, 3), (2, 2)),
        "pool_valid_2x3_s1": lambda: pool_case(True, (2, 3), (1, 1)),
        "softmax_small_scale": lambda: softmax_case((1, 10), 0.02),
        "softmax_subnormal_table": lambda: softmax_case((1, 12), 0.5),
        "softmax_rows_beta": lambda: softmax_case((3, 7), 0.1, beta=0.7),
    }


@pytest.mark.usefixtures("litert", "tflm")
@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("case", sorted(single_op_cases()))
def test_single_op_model_is_bit_exact(runner: Runner, case: str, flavour: Flavour) -> None:
    data = single_op_cases()[case]()
    xs = random_inputs(data, 150, seed=len(case))
    if case == "conv_big_scale" and flavour != "xnnpack":
        # output scale ratios >= 1 need gemmlowp's left shift, which overflows int32 in
        # TFLite itself; the compiler refuses them rather than guess (XNNPACK has no shift)
        with pytest.raises(InputError, match=r"effective output scale .* >= 1"):
            compile_tflite(data, flavour)
        return
    got = runner(compile_tflite(data, flavour), xs)
    assert_same(got, reference(data, xs, flavour), f"{case} {flavour}")


# ----------------------------------------------------------------------------- the runner


def test_layers_and_sizes_are_reported(ep_model_run_plain: Path, tmp_path: Path) -> None:
    exe = ep_model_run_plain
    blob = tmp_path / "m.blob"
    blob.write_bytes(compile_tflite((MODELS / "ds_cnn_int8.tflite").read_bytes()))
    proc = subprocess.run(
        [str(exe), str(blob)], input=b"", capture_output=True, timeout=60, check=True
    )
    lines = proc.stderr.decode().split()
    assert lines[:3] == ["in=490", "out=12", "layers=13"]
    assert lines[4:] == [
        "CONV_2D", *["DEPTHWISE_CONV_2D", "CONV_2D"] * 4, "AVERAGE_POOL_2D", "RESHAPE",
        "FULLY_CONNECTED", "SOFTMAX",
    ]  # fmt: skip


def test_too_small_an_arena_is_refused(ep_model_run_plain: Path, tmp_path: Path) -> None:
    exe = ep_model_run_plain
    blob = tmp_path / "m.blob"
    blob.write_bytes(compile_tflite((MODELS / "ds_cnn_int8.tflite").read_bytes()))
    proc = subprocess.run(
        [str(exe), "--arena", "4096", str(blob)], capture_output=True, timeout=60, check=False
    )
    assert proc.returncode == 3
    assert b"error -4: arena too small" in proc.stderr


# ----------------------------------------------------------------------------- float32 in integers


def float_bits(rng: np.random.Generator, n: int, positive: bool) -> Array:
    """Finite float32 bit patterns: all exponents, near 1, subnormals and zeros."""
    bits = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    exp = (bits >> 23) & 0xFF
    bits = np.where(exp == 0xFF, bits & ~np.uint32(0x40000000), bits)  # no inf or NaN
    kind = rng.integers(0, 4, n)
    near_one = (bits & np.uint32(0x807FFFFF)) | (rng.integers(118, 138, n).astype(np.uint32) << 23)
    bits = np.where(kind == 1, near_one, bits)
    bits = np.where(kind == 2, bits & np.uint32(0x807FFFFF), bits)  # subnormal
    bits = np.where(rng.random(n) < 0.02, bits & np.uint32(0x80000000), bits)  # zero
    if positive:
        bits = bits & np.uint32(0x7FFFFFFF)
    return bits.astype(np.uint32)


def f32(bits: Array) -> Array:
    return bits.view(np.float32)


def test_float32_emulation_matches_ieee(
    build_c: Callable[[list[Path], Path], Path], sanitizer_env: dict[str, str], tmp_path: Path
) -> None:
    """ep_f32 (XNNPACK's requantization, the SOFTMAX table sums) against the host FPU."""
    exe = build_c([MODEL_DIR / "test_f32.c", MODEL_DIR / "ep_f32.c"], tmp_path / "test_f32")
    rng = np.random.default_rng(77)
    n = 20000
    a, b = float_bits(rng, n, False), float_bits(rng, n, False)
    pa, pb = float_bits(rng, n, True), float_bits(rng, n, True)
    pb = np.where(pb == 0, np.uint32(1), pb)  # a positive divisor
    ints = rng.integers(-(2**31), 2**31, n)
    ints[:4] = [0, -(2**31), 2**31 - 1, 16777217]
    with np.errstate(all="ignore"):
        want = {
            "add": (f32(pa) + f32(pb)).view(np.uint32).astype(np.int64),
            "mul": (f32(a) * f32(b)).view(np.uint32).astype(np.int64),
            "div": (f32(pa) / f32(pb)).view(np.uint32).astype(np.int64),
            "from": ints.astype(np.float32).view(np.uint32).astype(np.int64),
            "rint": np.clip(np.rint(f32(a).astype(np.float64)), -(2**31), 2**31 - 1),
            "round": np.clip(np.floor(f32(pa).astype(np.float64) + 0.5), 0, 2**31 - 1),
        }
    args = {"add": (pa, pb), "mul": (a, b), "div": (pa, pb), "from": (ints, pb)}
    args |= {"rint": (a, b), "round": (pa, pb)}
    lines = [
        f"{op} {int(x)} {int(y)}"
        for op, (xs, ys) in args.items()
        for x, y in zip(xs, ys, strict=True)
    ]
    proc = subprocess.run(
        [str(exe)], input="\n".join(lines) + "\n", capture_output=True, text=True,
        timeout=300, check=True, env=sanitizer_env,
    )  # fmt: skip
    got = np.array(proc.stdout.split(), dtype=np.int64).reshape(len(args), n)
    for row, (op, expect) in zip(got, want.items(), strict=True):
        bad = np.flatnonzero(row != expect.astype(np.int64))
        assert bad.size == 0, (op, [(lines[i], int(row[i])) for i in bad[:3]])
