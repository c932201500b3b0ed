"""edgeprof.bridge.model_blob: the .tflite -> model blob compiler, and the firmware's parser.

What is checked: the blob's layout (docs/firmware-protocol.md, "Model blob") on the demo
models, its arena plan, determinism; every unsupported feature is refused with an InputError
that names it; garbage .tflite input only ever gives an InputError (hypothesis); and the C
parser (built under ASan/UBSan) either refuses a corrupted blob with its error code or runs it
inside its buffers (hypothesis on mutated blobs). Bit-exactness is tests/test_firmware_kernels.py.
"""

from __future__ import annotations

import copy
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeprof.bridge import model_blob
from edgeprof.bridge.model_blob import compile_tflite
from edgeprof.errors import InputError
from edgeprof.testing import tflite_models as tm

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "agent" / "edgeprof" / "models"
# building models (tm.*) needs the TFLite schema: skip without it (fail on CI)
pytestmark = pytest.mark.usefixtures("litert_schema")
HEADER = struct.Struct("<4sHHIHHHHIIIIIII")
TENSOR = struct.Struct("<BBBB4IiII")
OP = struct.Struct("<BBBBHHHHHHHHHHHHHHiiII")


def demo(stem: str) -> bytes:
    return (MODELS / f"{stem}.tflite").read_bytes()


def read_blob(blob: bytes) -> dict[str, Any]:
    """The header, tensor table and op table as tuples (the format, read independently)."""
    h = HEADER.unpack_from(blob, 0)
    n_t, n_o, t_off, o_off = h[4], h[5], h[8], h[9]
    tensors = [TENSOR.unpack_from(blob, t_off + i * TENSOR.size) for i in range(n_t)]
    ops = [OP.unpack_from(blob, o_off + i * OP.size) for i in range(n_o)]
    return {"header": h, "tensors": tensors, "ops": ops}


def fc_model(edit: Callable[[Any, Any], None] | None = None) -> bytes:
    """A small FULLY_CONNECTED model; `edit(model, schema)` changes it (object API) first."""
    rng = np.random.default_rng(1)
    s = tm.schema()
    w, wq, b, bq = tm.weights(rng, (6, 8), 0, 0.05)
    o = s.FullyConnectedOptionsT()
    o.fusedActivationFunction = s.ActivationFunctionType.RELU
    data = tm.single_op(
        "FULLY_CONNECTED", o, ((1, 8), 0.05, 1), ((1, 6), 0.1, -128), [(w, wq), (b, bq)], 4
    )
    if edit is None:
        return data
    m = copy.deepcopy(tm.load(data))
    edit(m, s)
    return tm.pack(m)


def small_conv() -> bytes:
    s = tm.schema()
    rng = np.random.default_rng(3)
    w, wq, b, bq = tm.weights(rng, (4, 3, 3, 2), 0, 0.05)
    o = s.Conv2DOptionsT()
    o.padding, o.strideH, o.strideW = s.Padding.SAME, 1, 1
    o.dilationHFactor = o.dilationWFactor = 1
    return tm.single_op(
        "CONV_2D", o, ((1, 5, 4, 2), 0.05, 0), ((1, 5, 4, 4), 0.05, 0), [(w, wq), (b, bq)], 3
    )


def small_blobs() -> list[bytes]:
    """One small blob per kind of op, for corrupting."""
    o = tm.schema().SoftmaxOptionsT()
    o.beta = 1.0
    soft = tm.single_op("SOFTMAX", o, ((2, 6), 0.2, 0), ((2, 6), 1 / 256, -128), version=2)
    p = tm.schema().Pool2DOptionsT()
    p.padding, p.filterHeight, p.filterWidth, p.strideH, p.strideW = 0, 3, 2, 2, 1
    pool = tm.single_op("AVERAGE_POOL_2D", p, ((1, 5, 4, 3), 0.1, 2), ((1, 3, 4, 3), 0.1, 2))
    return [
        compile_tflite(fc_model()),
        compile_tflite(small_conv(), "xnnpack"),
        compile_tflite(soft),
        compile_tflite(soft, "tflm"),
        compile_tflite(pool),
    ]


# ----------------------------------------------------------------------------- layout


@pytest.mark.parametrize("stem", ["kws_mlp_int8", "ds_cnn_int8"])
def test_blob_layout_of_the_demo_models(stem: str) -> None:
    data = demo(stem)
    blob = compile_tflite(data)
    b = read_blob(blob)
    magic, version, hsize, total, n_t, n_o, i_in, i_out, t_off, o_off, d_off, d_len = b["header"][
        :12
    ]
    arena, flavour, reserved = b["header"][12:]
    assert (magic, version, hsize, total) == (b"EPMB", 1, 48, len(blob))
    assert (t_off, o_off, d_off) == (48, 48 + 32 * n_t, 48 + 32 * n_t + 48 * n_o)
    assert d_off + d_len == len(blob)
    assert len(blob) % 4 == 0
    assert (flavour, reserved) == (0, 0)
    sub = tm.load(data).subgraphs[0]
    assert n_o == len(sub.operators)
    # weights are copied as they are: the blob is the int8 weights plus small tables
    weights = sum(len(buf.data) for buf in tm.load(data).buffers if buf.data is not None)
    assert weights <= len(blob) <= weights + 4096 + 1100 * n_o
    for ttype, storage, rank, pad, *rest in b["tensors"]:
        dims, offset = rest[:4], rest[6]
        assert ttype in (1, 2)
        assert storage in (0, 1)
        assert 1 <= rank <= 4
        assert pad == 0
        assert all(d > 0 for d in dims[:rank])
        assert not any(dims[rank:])
        assert offset % 4 == 0
    x, y = b["tensors"][i_in], b["tensors"][i_out]
    assert x[1] == y[1] == 0  # in the arena
    assert np.prod(x[4 : 4 + x[2]]) == 490
    assert np.prod(y[4 : 4 + y[2]]) == 12
    assert arena < 20000  # activations only: the int8 weights stay in the blob


def test_arena_plan_never_overlaps_live_tensors() -> None:
    b = read_blob(compile_tflite(demo("ds_cnn_int8")))
    tensors, ops = b["tensors"], b["ops"]
    i_in, i_out = b["header"][6], b["header"][7]
    life: dict[int, list[int]] = {i_in: [-1, len(ops)], i_out: [-1, len(ops)]}
    for n, op in enumerate(ops):
        for t in (op[4], op[7]):
            span = life.setdefault(t, [n, n])
            span[0], span[1] = min(span[0], n), max(span[1], n)

    def extent(t: int) -> tuple[int, int]:
        e = tensors[t]
        return e[10], e[10] + int(np.prod(e[4 : 4 + e[2]]))

    for a in life:
        for c in life:
            if a < c and not (life[a][1] < life[c][0] or life[c][1] < life[a][0]):
                (a0, a1), (c0, c1) = extent(a), extent(c)
                assert a1 <= c0 or c1 <= a0, (a, c)
    assert b["header"][12] == max(extent(t)[1] + (-extent(t)[1]) % 4 for t in life)


def test_compiling_is_deterministic_and_flavours_differ_only_in_requantization() -> None:
    data = demo("ds_cnn_int8")
    assert compile_tflite(data) == compile_tflite(data)
    a, x = read_blob(compile_tflite(data, "litert")), read_blob(compile_tflite(data, "xnnpack"))
    assert a["header"][13] == 0
    assert x["header"][13] == 1
    requant = [(op[0], op[1]) for op in a["ops"] if op[0] in (1, 2, 3)]
    assert requant == [(2, 1)] + [(3, 0), (2, 1)] * 4 + [(1, 1)]
    assert {op[1] for op in x["ops"] if op[0] in (1, 2, 3)} == {2}
    assert a["tensors"] == x["tensors"]
    t = read_blob(compile_tflite(data, "tflm"))
    assert t["header"][13] == 2
    assert {(op[0], op[1]) for op in t["ops"] if op[0] in (1, 2, 3, 5)} == {
        (1, 0),
        (2, 0),
        (3, 0),
        (5, 1),
    }  # gemmlowp everywhere, the fixed-point SOFTMAX


def test_multipliers_match_tflites_quantize_multiplier() -> None:
    q, shift = model_blob._quantize_multiplier(0.0066020335487617645)
    assert (q, shift) == (1814753163, -7)
    assert model_blob._quantize_multiplier(0.5) == (1 << 30, 0)
    assert model_blob._quantize_multiplier(2.0**-40) == (0, 0)  # below 2^-31: TFLite's zero


# ----------------------------------------------------------------------------- refusals


def set_input_type(ttype: str) -> Callable[[Any, Any], None]:
    def edit(m: Any, s: Any) -> None:
        m.subgraphs[0].tensors[0].type = getattr(s.TensorType, ttype)

    return edit


def fused_activation(name: str) -> Callable[[Any, Any], None]:
    def edit(m: Any, s: Any) -> None:
        options = m.subgraphs[0].operators[0].builtinOptions
        options.fusedActivationFunction = getattr(s.ActivationFunctionType, name)

    return edit


def dynamic_batch(m: Any, s: Any) -> None:
    m.subgraphs[0].tensors[0].shapeSignature = [-1, 8]


def per_tensor_weights(m: Any, s: Any) -> None:
    q = m.subgraphs[0].tensors[1].quantization
    q.scale, q.zeroPoint = [0.01], [0]


def asymmetric_weights(m: Any, s: Any) -> None:
    m.subgraphs[0].tensors[1].quantization.zeroPoint = [3] * 6


def unknown_op(m: Any, s: Any) -> None:
    m.operatorCodes[0].builtinCode = s.BuiltinOperator.LOGISTIC
    m.operatorCodes[0].deprecatedBuiltinCode = s.BuiltinOperator.LOGISTIC


def custom_op(m: Any, s: Any) -> None:
    m.operatorCodes[0].builtinCode = s.BuiltinOperator.CUSTOM
    m.operatorCodes[0].deprecatedBuiltinCode = s.BuiltinOperator.CUSTOM
    m.operatorCodes[0].customCode = b"MyOp"


def no_quantization(m: Any, s: Any) -> None:
    m.subgraphs[0].tensors[3].quantization = None  # the output


def two_inputs(m: Any, s: Any) -> None:
    m.subgraphs[0].inputs = [0, 1]


def weights_not_constant(m: Any, s: Any) -> None:
    m.buffers[m.subgraphs[0].tensors[1].buffer].data = None


REFUSALS: dict[str, tuple[Callable[[Any, Any], None], str]] = {
    "int16_activations": (set_input_type("INT16"), r"type INT16 \(only int8 runs\)"),
    "float_input": (set_input_type("FLOAT32"), r"FLOAT32 \(only int8 runs\)"),
    "tanh": (fused_activation("TANH"), r"fused activation TANH"),
    "dynamic": (dynamic_batch, r"dynamic shape \[-1, 8\]"),
    "per_tensor": (per_tensor_weights, r"1 scales along axis 0.*per-channel"),
    "asymmetric": (asymmetric_weights, r"asymmetric"),
    "unknown_op": (unknown_op, r"op 0 \(LOGISTIC\): unsupported op"),
    "custom_op": (custom_op, r"custom op 'MyOp'"),
    "unquantized": (no_quantization, r"not quantized \(float models"),
    "two_inputs": (two_inputs, r"2 inputs and 1 outputs"),
    "weights_not_constant": (weights_not_constant, r"weights: must be a constant"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_unsupported_models_are_refused_by_name(case: str) -> None:
    edit, message = REFUSALS[case]
    data = fc_model(edit)
    with pytest.raises(InputError, match=message):
        compile_tflite(data)


def test_the_float_demo_model_is_refused() -> None:
    with pytest.raises(InputError, match=r"only int8 runs"):
        compile_tflite(demo("kws_mlp_float"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "no TFL3 identifier"),
        (b"\x00" * 64, "no TFL3 identifier"),
        (b"\xff\xff\xff\x7fTFL3" + b"\x00" * 32, "root table offset outside the file"),
    ],
)
def test_files_that_are_not_models_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        compile_tflite(data)


def test_unknown_flavour_is_refused() -> None:
    with pytest.raises(InputError, match="unknown kernel flavour 'tflite'"):
        compile_tflite(fc_model(), "tflite")  # type: ignore[arg-type]


def test_softmax_with_a_foreign_output_scale_is_refused() -> None:
    o = tm.schema().SoftmaxOptionsT()
    o.beta = 1.0
    data = tm.single_op("SOFTMAX", o, ((1, 5), 0.1, 0), ((1, 5), 1 / 128, -128), version=2)
    with pytest.raises(InputError, match=r"scale 1/256 and zero point -128"):
        compile_tflite(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_garbage_tflite_gives_a_blob_or_an_input_error(data: st.DataObject) -> None:
    """Flip, overwrite and cut bytes of real models: a blob or an InputError, nothing else."""
    base = bytearray(data.draw(st.sampled_from([fc_model(), small_conv()])))
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(base) - 1))
        base[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        base = base[: data.draw(st.integers(0, len(base)))]
    try:
        blob = compile_tflite(bytes(base))
    except InputError:
        return
    assert blob[:4] == b"EPMB"


# ----------------------------------------------------------------------------- the C parser


@pytest.fixture(scope="module")
def c_runner(
    ep_model_run: Path, sanitizer_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[bytes], tuple[int, str]]:
    """run(blob) -> (exit code, stderr) of ep_model_run under ASan/UBSan on one input."""
    exe, env = ep_model_run, sanitizer_env
    path = tmp_path_factory.mktemp("blob") / "b.blob"

    def run(blob: bytes) -> tuple[int, str]:
        path.write_bytes(blob)
        proc = subprocess.run(
            [str(exe), "--arena", "65536", "--random", "3", str(path)],
            capture_output=True, timeout=120, check=False, env=env,
        )  # fmt: skip
        return proc.returncode, proc.stderr.decode(errors="replace")

    return run


def test_c_parser_accepts_real_blobs(c_runner: Callable[[bytes], tuple[int, str]]) -> None:
    for data in (fc_model(), small_conv()):
        rc, err = c_runner(compile_tflite(data))
        assert rc == 0, err


@pytest.mark.parametrize(
    ("offset", "value", "code"),
    [
        (0, b"XPMB", -1),  # magic
        (4, b"\x02\x00", -2),  # version
        (8, b"\x00\x00\x01\x00", -1),  # total size
        (12, b"\xff\x00", -1),  # tensor count: tables run past the data
        (36, b"\xff\xff\xff\x0f", -4),  # arena bytes beyond the arena
    ],
)
def test_c_parser_refuses_bad_headers(
    c_runner: Callable[[bytes], tuple[int, str]], offset: int, value: bytes, code: int
) -> None:
    blob = bytearray(compile_tflite(fc_model()))
    blob[offset : offset + len(value)] = value
    rc, err = c_runner(bytes(blob))
    assert rc == 3, err
    assert err.startswith(f"error {code}: ")


def test_c_parser_refuses_a_truncated_blob(c_runner: Callable[[bytes], tuple[int, str]]) -> None:
    blob = compile_tflite(small_conv())
    for cut in (0, 10, 47, 48, len(blob) // 2, len(blob) - 1):
        rc, err = c_runner(blob[:cut])
        assert (rc, err[:10]) == (3, "error -1: "), (cut, err)


def test_c_parser_checks_params_sizes_before_reading(
    c_runner: Callable[[bytes], tuple[int, str]],
) -> None:
    """Every op's params made short and moved to the very end of the blob: refused (or, for
    ops without params, run), never read past the end (libFuzzer found the fixed-point
    SOFTMAX reading its params before checking their size)."""
    for blob in small_blobs():
        header = HEADER.unpack_from(blob, 0)
        n_ops, ops_off, data_len = header[5], header[9], header[11]
        for i in range(n_ops):
            for size in (n for n in (0, 4, 8) if n <= data_len):
                bad = bytearray(blob)
                struct.pack_into("<II", bad, ops_off + i * OP.size + 40, data_len - size, size)
                rc, err = c_runner(bytes(bad))
                assert rc in (0, 3), err[-2000:]


FIELDS = [4, 8, 12, 14, 16, 18, 20, 24, 28, 32, 36, 40]  # u16/u32 positions in the header


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_c_parser_survives_corrupted_blobs(
    c_runner: Callable[[bytes], tuple[int, str]], data: st.DataObject
) -> None:
    """Random bytes and interesting values anywhere in the tables: refused (exit 3) or run
    (exit 0); a sanitizer report (exit 99) or a crash fails."""
    blob = bytearray(data.draw(st.sampled_from(small_blobs())))
    table_end = struct.unpack_from("<I", blob, 28)[0]
    for _ in range(data.draw(st.integers(1, 6))):
        if data.draw(st.booleans()):
            pos = data.draw(st.sampled_from(FIELDS))
        else:
            pos = data.draw(st.integers(0, table_end - 4))
        value = data.draw(
            st.sampled_from([0, 1, 2, 3, 4, 0x7F, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF])
            | st.integers(0, 2**32 - 1)
        )
        size = data.draw(st.sampled_from([1, 2, 4]))
        blob[pos : pos + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    rc, err = c_runner(bytes(blob))
    assert rc in (0, 3), err[-2000:]


SEEDS = ROOT / "firmware_bridge" / "firmware" / "model" / "fuzz_corpus"
SEED_NAMES = ["fc", "conv_xnnpack", "softmax_table", "softmax_fixed", "avgpool"]


def test_libfuzzer_seed_corpus_is_current() -> None:
    """model/fuzz_corpus/ seeds fuzz_blob.c (scripts/test runs it): the blobs of small_blobs(),
    so that the fuzzer starts past the header checks. Rewrite them when the format changes:
    python -c 'import sys; sys.path[:0] = ["tests"]; import test_model_blob as t; t.write_seeds()'
    """
    for name, blob in zip(SEED_NAMES, small_blobs(), strict=True):
        assert (SEEDS / f"{name}.blob").read_bytes() == blob, name


def write_seeds() -> None:
    for name, blob in zip(SEED_NAMES, small_blobs(), strict=True):
        (SEEDS / f"{name}.blob").write_bytes(blob)
