"""Small int8 .tflite models for tests, built with the TFLite schema's object API, and reference
runs of them on LiteRT and TFLite Micro.

Single-operator models with random weights and quantization exercise what the two demo models
do not (VALID padding, dilation, depth multipliers, padded pooling, batches, other fused
activations, no activation at all), and :func:`one_op_of` cuts a model into its operators so
that each kernel is compared alone. Written like scripts/make_models.py. Needs ai-edge-litert
(its schema module and flatbuffers; the reference runs also the interpreter, tflite-micro); the
imports are made on use, so a missing package is an ImportError where it is needed (the tests'
fixtures turn that into a skip, or a failure under CI).
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]
INSTALL = "pip install ai-edge-litert==2.3.0 tflite-micro==0.dev20261023182759 flatbuffers"


def schema() -> Any:
    """The TFLite schema's generated module (object API), from ai-edge-litert."""
    return importlib.import_module("ai_edge_litert.schema_py_generated")


def load(data: bytes) -> Any:
    s = schema()
    return s.ModelT.InitFromObj(s.Model.GetRootAs(data, 0))


def pack(model: Any) -> bytes:
    flatbuffers = importlib.import_module("flatbuffers")
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def quant(scales: Sequence[float] | Array, zeros: Sequence[int], axis: int = 0) -> Any:
    q = schema().QuantizationParametersT()
    q.scale = [float(np.float32(v)) for v in scales]
    q.zeroPoint = [int(z) for z in zeros]
    q.quantizedDimension = axis
    return q


@dataclass
class Graph:
    """Tensors and buffers of a one-subgraph model under construction."""

    tensors: list[Any]
    buffers: list[Any]

    def add(
        self, shape: Sequence[int], ttype: int, q: Any = None, data: Array | None = None
    ) -> int:
        s = schema()
        t = s.TensorT()
        t.shape = [int(d) for d in shape]
        t.type = ttype
        t.buffer = len(self.buffers)
        t.name = f"t{len(self.tensors)}".encode()
        t.quantization = q
        buf = s.BufferT()
        if data is not None:
            buf.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
        self.buffers.append(buf)
        self.tensors.append(t)
        return len(self.tensors) - 1


def single_op(
    op_name: str,
    options: Any,
    x: tuple[Sequence[int], float, int],
    y: tuple[Sequence[int], float, int],
    consts: Sequence[tuple[Array, Any]] = (),
    version: int = 1,
) -> bytes:
    """A model with one operator: input x, constants, output y ((shape, scale, zero point))."""
    s = schema()
    g = Graph([], [s.BufferT()])
    i = g.add(x[0], s.TensorType.INT8, quant([x[1]], [x[2]]))
    inputs = [i]
    for arr, q in consts:
        ttype = s.TensorType.INT8 if arr.dtype == np.int8 else s.TensorType.INT32
        inputs.append(g.add(arr.shape, ttype, q, arr.astype(arr.dtype.newbyteorder("<"))))
    o = g.add(y[0], s.TensorType.INT8, quant([y[1]], [y[2]]))
    op = s.OperatorT()
    op.opcodeIndex = 0
    op.inputs, op.outputs = inputs, [o]
    if options is not None:
        op.builtinOptionsType = getattr(s.BuiltinOptions, type(options).__name__.removesuffix("T"))
        op.builtinOptions = options
    code = s.OperatorCodeT()
    code.builtinCode = getattr(s.BuiltinOperator, op_name)
    code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    code.version = version
    sub = s.SubGraphT()
    sub.tensors, sub.operators, sub.inputs, sub.outputs = g.tensors, [op], [i], [o]
    model = s.ModelT()
    model.version = 3
    model.subgraphs, model.buffers, model.operatorCodes = [sub], g.buffers, [code]
    return pack(model)


def weights(
    rng: np.random.Generator, shape: Sequence[int], axis: int, in_scale: float
) -> tuple[Array, Any, Array, Any]:
    """Symmetric per-channel int8 weights and an int32 bias, quantized like the converter."""
    w = rng.integers(-127, 128, shape).astype(np.int8)
    channels = shape[axis]
    w_scales = rng.uniform(0.002, 0.05, channels).astype(np.float32)
    bias = rng.integers(-3000, 3000, channels).astype(np.int32)
    b_scales = (np.float32(in_scale) * w_scales).astype(np.float32)
    zeros = [0] * channels
    return w, quant(w_scales, zeros, axis), bias, quant(b_scales, zeros, 0)


def one_op_of(data: bytes, k: int, no_activation: bool = False) -> bytes:
    """Operator k of a model as a model of its own (its constants kept).

    With no_activation the fused activation is dropped, so negative outputs (and their
    rounding) show instead of being clamped away by a ReLU.
    """
    s = schema()
    m = copy.deepcopy(load(data))
    sub = m.subgraphs[0]
    op = sub.operators[k]
    used = [int(i) for i in [*op.inputs, *op.outputs] if i >= 0]
    remap = {t: n for n, t in enumerate(used)}
    tensors, buffers = [], [s.BufferT()]
    for t in used:
        tensor = sub.tensors[t]
        buffers.append(m.buffers[tensor.buffer])
        tensor.buffer = len(buffers) - 1
        tensors.append(tensor)
    op.inputs = [remap[int(i)] if i >= 0 else -1 for i in op.inputs]
    op.outputs = [remap[int(i)] for i in op.outputs]
    if no_activation and hasattr(op.builtinOptions, "fusedActivationFunction"):
        op.builtinOptions.fusedActivationFunction = s.ActivationFunctionType.NONE
    sub.tensors, sub.operators = tensors, [op]
    sub.inputs, sub.outputs = [op.inputs[0]], list(op.outputs)
    m.buffers, m.signatureDefs = buffers, []
    return pack(m)


def litert_run(data: bytes, xs: Array, mode: str) -> Array:
    """LiteRT's output for each input, one invoke each (xs[n] has the model's input shape).

    mode "litert": builtin kernels without delegates; "xnnpack": the default delegates."""
    mod = importlib.import_module("ai_edge_litert.interpreter")
    kwargs: dict[str, Any] = {}
    if mode == "litert":
        kwargs["experimental_op_resolver_type"] = (
            mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
    it = mod.Interpreter(model_content=data, **kwargs)
    it.allocate_tensors()
    i = it.get_input_details()[0]["index"]
    o = it.get_output_details()[0]["index"]
    outs = []
    for x in xs:
        it.set_tensor(i, x)
        it.invoke()
        outs.append(it.get_tensor(o).copy())
    return np.concatenate(outs).reshape(len(xs), -1)


def tflm_run(data: bytes, xs: Array) -> Array:
    runtime = importlib.import_module("tflite_micro").runtime
    it = runtime.Interpreter.from_bytes(data, arena_size=len(data) * 10 + 262144)
    outs = []
    for x in xs:
        it.set_input(x, 0)
        it.invoke()
        outs.append(it.get_output(0).copy())
    return np.concatenate(outs).reshape(len(xs), -1)


def input_shape(data: bytes) -> tuple[int, ...]:
    m = load(data)
    sub = m.subgraphs[0]
    return tuple(int(d) for d in sub.tensors[sub.inputs[0]].shape)
