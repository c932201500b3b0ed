"""Compile an int8 .tflite model into the model blob the reference firmware executes.

The firmware has no flatbuffer parser and no floating-point requantization setup: everything
that needs float or double arithmetic (per-channel multipliers and shifts, XNNPACK's float
scales, SOFTMAX's exp table, activation ranges, SAME padding, the arena layout) is computed
here, once, exactly as LiteRT computes it, so the kernels on the device are small integer code
whose outputs equal LiteRT's bit for bit. The format is specified in docs/firmware-protocol.md,
section "Model blob"; :func:`compile_tflite` is the only writer.

Three flavours, because LiteRT gives different int8 results in its two CPU modes, and TFLM
differs from both:

* ``"litert"``: LiteRT's builtin kernels (``BUILTIN_WITHOUT_DEFAULT_DELEGATES``).
  FULLY_CONNECTED and CONV_2D go through ruy, whose double rounding sends ties up (towards
  +inf); DEPTHWISE_CONV_2D uses gemmlowp's double rounding (ties away from zero); SOFTMAX uses
  the float32 exp lookup table of the optimized kernel.
* ``"xnnpack"``: LiteRT with its default XNNPACK delegate. FULLY_CONNECTED, CONV_2D and
  DEPTHWISE_CONV_2D requantize in float32 (``rint(float(acc) * scale)``, ``scale =
  input_scale * weight_scale / output_scale`` in float32); the other ops stay builtin.
* ``"tflm"``: TFLite Micro (its reference kernels): gemmlowp's double rounding everywhere and
  the fixed-point reference SOFTMAX.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from edgeprof.errors import InputError, UnavailableError

Flavour = Literal["litert", "xnnpack", "tflm"]
FLAVOURS: dict[str, int] = {"litert": 0, "xnnpack": 1, "tflm": 2}

MAGIC = b"EPMB"
VERSION = 1
HEADER = struct.Struct("<4sHHIHHHHIIIIIII")  # 48 bytes
TENSOR = struct.Struct("<BBBB4IiII")  # 32 bytes
OP = struct.Struct("<BBBBHHHHHHHHHHHHHHiiII")  # 48 bytes
NONE = 0xFFFF
ALIGN = 4
MAX_DIM = 0xFFFF  # u16 kernel parameters and a sane bound on any one dimension

# Tensor entry: element type and where its bytes are.
T_INT8, T_INT32 = 1, 2
S_ARENA, S_CONST = 0, 1

# Op codes of the blob (not TFLite's numbers).
OP_FC, OP_CONV, OP_DWCONV, OP_AVGPOOL, OP_SOFTMAX, OP_RESHAPE = 1, 2, 3, 4, 5, 6

# Requantization of an op's int32 accumulators.
RQ_GEMMLOWP = 0  # SaturatingRoundingDoublingHighMul + RoundingDivideByPOT (ties away)
RQ_RUY = 1  # the same two steps with ties towards +inf (ruy)
RQ_FP32 = 2  # XNNPACK: rint(float32(acc) * float32 scale)
# SOFTMAX algorithms (the same op field)
SM_TABLE = 0  # LiteRT's optimized kernel: float32 exp table
SM_FIXED = 1  # TFLite's reference kernel (TFLM): gemmlowp fixed point

# TFLite ActivationFunctionType values this compiler maps to an output range.
_ACT_NONE, _ACT_RELU, _ACT_RELU_N1_TO_1, _ACT_RELU6 = 0, 1, 2, 3


def compile_tflite(data: bytes, flavour: Flavour = "litert") -> bytes:
    """The model blob for an int8 .tflite file; InputError names anything unsupported."""
    if flavour not in FLAVOURS:
        raise InputError(f"unknown kernel flavour {flavour!r} (choose {', '.join(FLAVOURS)})")
    schema = _schema()
    model = _parse(schema, data)
    return _Compiler(schema, model, flavour).build()


def _schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError as exc:  # the litert extra brings the schema and flatbuffers
        raise UnavailableError(
            f"reading .tflite files needs ai-edge-litert ({exc}): pip install 'edgeprof[litert]'"
        ) from None
    return schema_py_generated


def _parse(schema: Any, data: bytes) -> Any:
    """ModelT of a flatbuffer, with any decoding failure turned into an InputError."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise InputError("not a TFLite model: no TFL3 identifier")
    root = struct.unpack_from("<I", data, 0)[0]
    if root + 4 > len(data):
        raise InputError("not a TFLite model: root table offset outside the file")
    try:
        return schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
    except Exception as exc:  # the generated reader raises anything on garbage
        raise InputError(f"malformed TFLite flatbuffer ({type(exc).__name__}: {exc})") from None


@dataclass
class _Tensor:
    """One tensor of the blob: its entry fields plus, for constants, its bytes."""

    ttype: int
    dims: tuple[int, ...]
    zero_point: int = 0
    scale: float = 0.0
    const: bytes | None = None
    offset: int = 0  # into the data section (constants) or the arena (activations)

    @property
    def nbytes(self) -> int:
        return math.prod(self.dims) * (4 if self.ttype == T_INT32 else 1)


@dataclass
class _Op:
    """One op entry; params are its per-op data (multipliers, scales, tables)."""

    code: int
    name: str
    inputs: tuple[int, int, int]  # input, weights, bias (NONE when absent)
    output: int
    requant: int = 0
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    filt: tuple[int, int] = (1, 1)
    pad: tuple[int, int] = (0, 0)
    depth_multiplier: int = 1
    act: tuple[int, int] = (-128, 127)
    params: bytes = b""
    params_offset: int = 0


@dataclass
class _Compiler:
    """Walks subgraph 0 once, checking every op against what the kernels implement."""

    schema: Any
    model: Any
    flavour: Flavour
    tensors: list[_Tensor] = field(default_factory=list)
    index: dict[int, int] = field(default_factory=dict)  # tflite tensor -> blob tensor
    ops: list[_Op] = field(default_factory=list)

    # ------------------------------------------------------------------ model walk

    def build(self) -> bytes:
        subs = self.model.subgraphs or []
        if len(subs) != 1:
            raise InputError(f"model has {len(subs)} subgraphs; only single-subgraph models run")
        sub = subs[0]
        self.sub = sub
        self.tfl_tensors = sub.tensors or []
        inputs, outputs = _ints(sub.inputs), _ints(sub.outputs)
        if len(inputs) != 1 or len(outputs) != 1:
            raise InputError(
                f"model has {len(inputs)} inputs and {len(outputs)} outputs; "
                "the firmware runs models with one of each"
            )
        in_idx = self._activation(inputs[0], "model input")
        for n, op in enumerate(sub.operators or []):
            self._op(n, op)
        if not self.ops:
            raise InputError("model has no operators")
        out_idx = self.index.get(outputs[0])
        if out_idx is None or outputs[0] != self._last_output:
            raise InputError("the model output is not produced by its last operator")
        return self._serialize(in_idx, out_idx)

    def _tfl(self, i: int, what: str) -> Any:
        if not 0 <= i < len(self.tfl_tensors):
            raise InputError(f"{what}: tensor index {i} out of range")
        return self.tfl_tensors[i]

    def _shape(self, t: Any, what: str) -> tuple[int, ...]:
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        sig = t.shapeSignature
        if sig is not None and any(int(d) < 0 for d in sig):
            raise InputError(f"{what}: dynamic shape {_ints(sig)} (only static shapes run)")
        if not 1 <= len(shape) <= 4:
            raise InputError(f"{what}: rank {len(shape)} (1 to 4 supported)")
        if any(not 1 <= d <= MAX_DIM for d in shape):
            raise InputError(f"{what}: shape {list(shape)} has a dimension outside 1..{MAX_DIM}")
        return shape

    def _quant(self, t: Any, what: str) -> tuple[list[float], list[int]]:
        q = t.quantization
        scale = [float(s) for s in (q.scale if q is not None and q.scale is not None else [])]
        zero = [int(z) for z in (q.zeroPoint if q is not None and q.zeroPoint is not None else [])]
        if not scale or len(zero) not in (0, len(scale)):
            raise InputError(f"{what}: not quantized (float models are not supported)")
        if not zero:
            zero = [0] * len(scale)
        if any(not (math.isfinite(s) and s > 0) for s in scale):
            raise InputError(f"{what}: quantization scale {scale[:4]} is not a positive number")
        return scale, zero

    def _activation(self, i: int, what: str) -> int:
        """Blob index of an int8 activation tensor (created on first use)."""
        if i in self.index:
            return self.index[i]
        t = self._tfl(i, what)
        if t.type != self.schema.TensorType.INT8:
            raise InputError(f"{what}: tensor type {self._type_name(t.type)} (only int8 runs)")
        if self._buffer(t) is not None:
            raise InputError(f"{what}: a constant where an activation was expected")
        scale, zero = self._quant(t, what)
        if len(scale) != 1:
            raise InputError(f"{what}: per-channel quantization of an activation")
        if not -128 <= zero[0] <= 127:
            raise InputError(f"{what}: zero point {zero[0]} outside int8")
        self.tensors.append(_Tensor(T_INT8, self._shape(t, what), zero[0], scale[0]))
        self.index[i] = len(self.tensors) - 1
        return self.index[i]

    def _buffer(self, t: Any) -> bytes | None:
        bufs = self.model.buffers or []
        b = t.buffer
        if not 0 <= b < len(bufs):
            raise InputError(f"tensor {t.name!r}: buffer index {b} out of range")
        buf = bufs[b]
        if getattr(buf, "offset", 0) and buf.offset > 1:
            raise InputError(f"tensor {t.name!r}: data outside the flatbuffer is not supported")
        if buf.data is None or len(buf.data) == 0:
            return None
        return bytes(np.asarray(buf.data, np.uint8))

    def _const(self, i: int, what: str, ttype: int) -> tuple[int, Any]:
        t = self._tfl(i, what)
        want = self.schema.TensorType.INT8 if ttype == T_INT8 else self.schema.TensorType.INT32
        if t.type != want:
            raise InputError(
                f"{what}: type {self._type_name(t.type)} (expected {self._type_name(want)})"
            )
        if t.sparsity is not None:
            raise InputError(f"{what}: sparse tensors are not supported")
        raw = self._buffer(t)
        if raw is None:
            raise InputError(f"{what}: must be a constant tensor")
        shape = self._shape(t, what)
        blob_t = _Tensor(ttype, shape)
        if len(raw) != blob_t.nbytes:
            raise InputError(f"{what}: {len(raw)} data bytes for shape {list(shape)}")
        blob_t.const = raw
        self.tensors.append(blob_t)
        return len(self.tensors) - 1, t

    def _type_name(self, code: int) -> str:
        names = {v: k for k, v in vars(self.schema.TensorType).items() if not k.startswith("_")}
        return str(names.get(code, code))

    def _op_name(self, op: Any) -> str:
        codes = self.model.operatorCodes or []
        if not 0 <= op.opcodeIndex < len(codes):
            raise InputError(f"operator code index {op.opcodeIndex} out of range")
        code = codes[op.opcodeIndex]
        if code.customCode:
            raise InputError(f"custom op {bytes(code.customCode).decode(errors='replace')!r}")
        number = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        names = vars(self.schema.BuiltinOperator)
        return next((k for k, v in names.items() if v == number), f"builtin op {number}")

    # ------------------------------------------------------------------ ops

    _last_output: int = -1

    def _op(self, n: int, op: Any) -> None:
        name = self._op_name(op)
        where = f"op {n} ({name})"
        ins, outs = _ints(op.inputs), _ints(op.outputs)
        if len(outs) != 1 or not ins:
            raise InputError(f"{where}: {len(ins)} inputs and {len(outs)} outputs")
        handler = {
            "FULLY_CONNECTED": self._fc,
            "CONV_2D": self._conv,
            "DEPTHWISE_CONV_2D": self._conv,
            "AVERAGE_POOL_2D": self._avgpool,
            "SOFTMAX": self._softmax,
            "RESHAPE": self._reshape,
        }.get(name)
        if handler is None:
            raise InputError(
                f"{where}: unsupported op (the kernels implement FULLY_CONNECTED, "
                "CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, SOFTMAX, RESHAPE)"
            )
        if ins[0] not in self.index:
            raise InputError(f"{where}: its input is not the model input or an earlier output")
        x = self._activation(ins[0], f"{where} input")
        if outs[0] in self.index:
            raise InputError(f"{where}: its output tensor is written twice")
        y = self._activation(outs[0], f"{where} output")
        handler(where, name, op, ins, x, y)
        self._last_output = outs[0]

    def _options(self, where: str, op: Any, cls: str) -> Any:
        o = op.builtinOptions
        if o is None or type(o).__name__ != cls:
            raise InputError(f"{where}: missing {cls.removesuffix('T')}")
        return o

    def _act_range(self, where: str, code: int, y: int) -> tuple[int, int]:
        """TFLite's CalculateActivationRangeQuantized for an int8 output."""
        out = self.tensors[y]

        def q(v: float) -> int:
            r = float(np.float32(v) / np.float32(out.scale))
            return out.zero_point + int(math.copysign(math.floor(abs(r) + 0.5), r))

        if code == _ACT_NONE:
            return -128, 127
        if code == _ACT_RELU:
            return max(-128, q(0.0)), 127
        if code == _ACT_RELU6:
            return max(-128, q(0.0)), min(127, q(6.0))
        if code == _ACT_RELU_N1_TO_1:
            return max(-128, q(-1.0)), min(127, q(1.0))
        names = vars(self.schema.ActivationFunctionType).items()
        label = next((k for k, v in names if v == code), str(code))
        raise InputError(f"{where}: fused activation {label} is not implemented")

    def _weights(
        self, where: str, name: str, ins: Sequence[int], x: int, y: int, axis: int, channels: int
    ) -> tuple[int, int, bytes, int]:
        """Weights and bias tensors plus the per-channel requantization params."""
        w, tw = self._const(ins[1], f"{where} weights", T_INT8)
        scales, zeros = self._quant(tw, f"{where} weights")
        qdim = int(tw.quantization.quantizedDimension)
        if any(zeros):
            raise InputError(f"{where} weights: asymmetric (non-zero zero point) weights")
        if len(scales) != channels or (channels > 1 and qdim != axis):
            raise InputError(
                f"{where} weights: {len(scales)} scales along axis {qdim}; the kernels need "
                f"per-channel quantization along axis {axis} ({channels} channels)"
            )
        b = NONE
        if len(ins) > 2 and ins[2] >= 0:
            b, _ = self._const(ins[2], f"{where} bias", T_INT32)
            if self.tensors[b].dims != (channels,):
                raise InputError(f"{where} bias: shape {list(self.tensors[b].dims)}")
        sx = np.float32(self.tensors[x].scale)
        so = np.float32(self.tensors[y].scale)
        ws = np.asarray(scales, np.float32)
        rq = self._requant_kind(name)
        if rq == RQ_FP32:
            fp = (sx * ws) / so  # float32, in XNNPACK's order
            if not np.all(np.isfinite(fp) & (fp > 0) & (fp < 256)):
                raise InputError(f"{where}: output scale ratio out of range")
            params = fp.astype("<f4").tobytes()
        else:
            mults, shifts = [], []
            for s in ws:
                eff = float(np.float64(sx) * np.float64(s) / np.float64(so))
                m, sh = _quantize_multiplier(eff)
                if sh > 0:
                    raise InputError(
                        f"{where}: effective output scale {eff:.3g} >= 1 is not supported"
                    )
                mults.append(m)
                shifts.append(sh)
            params = np.asarray(mults, "<i4").tobytes() + np.asarray(shifts, "<i4").tobytes()
        return w, b, params, rq

    def _requant_kind(self, name: str) -> int:
        """How LiteRT requantizes this op in the chosen mode (found by comparing outputs)."""
        if self.flavour == "xnnpack":
            return RQ_FP32
        if self.flavour == "tflm":
            return RQ_GEMMLOWP
        # FULLY_CONNECTED and CONV_2D (im2col) go through ruy's GEMM; the depthwise kernels
        # call MultiplyByQuantizedMultiplier (gemmlowp).
        return RQ_GEMMLOWP if name == "DEPTHWISE_CONV_2D" else RQ_RUY

    def _fc(self, where: str, name: str, op: Any, ins: list[int], x: int, y: int) -> None:
        o = self._options(where, op, "FullyConnectedOptionsT")
        if o.weightsFormat != 0:
            raise InputError(f"{where}: shuffled weights format {o.weightsFormat}")
        if len(ins) < 2:
            raise InputError(f"{where}: no weights")
        wt = self._tfl(ins[1], f"{where} weights")
        wshape = self._shape(wt, f"{where} weights")
        if len(wshape) != 2:
            raise InputError(f"{where} weights: shape {list(wshape)} (expected [out, in])")
        units, depth = wshape
        w, b, params, rq = self._weights(where, name, ins, x, y, 0, units)
        n_in, n_out = math.prod(self.tensors[x].dims), math.prod(self.tensors[y].dims)
        if n_in % depth or n_out != (n_in // depth) * units:
            raise InputError(
                f"{where}: input {list(self.tensors[x].dims)} and output "
                f"{list(self.tensors[y].dims)} do not fit weights {list(wshape)}"
            )
        act = self._act_range(where, o.fusedActivationFunction, y)
        self.ops.append(_Op(OP_FC, name, (x, w, b), y, rq, act=act, params=params))

    def _conv(self, where: str, name: str, op: Any, ins: list[int], x: int, y: int) -> None:
        dw = name == "DEPTHWISE_CONV_2D"
        o = self._options(where, op, "DepthwiseConv2DOptionsT" if dw else "Conv2DOptionsT")
        if len(ins) < 2:
            raise InputError(f"{where}: no weights")
        xs, ys = self.tensors[x].dims, self.tensors[y].dims
        wt = self._tfl(ins[1], f"{where} weights")
        wshape = self._shape(wt, f"{where} weights")
        if len(xs) != 4 or len(ys) != 4 or len(wshape) != 4:
            raise InputError(f"{where}: input, weights and output must be 4-D (NHWC)")
        if dw:
            if wshape[0] != 1:
                raise InputError(f"{where} weights: shape {list(wshape)} (expected [1,h,w,c])")
            out_c = wshape[3]
            mult = int(o.depthMultiplier) if o.depthMultiplier else out_c // xs[3]
            if mult < 1 or xs[3] * mult != out_c:
                raise InputError(f"{where}: depth multiplier {o.depthMultiplier} does not fit")
        else:
            out_c, mult = wshape[0], 1
            if wshape[3] != xs[3]:
                raise InputError(f"{where}: weights {list(wshape)} for input {list(xs)}")
            if getattr(o, "quantizedBiasType", 0):
                raise InputError(f"{where}: int64 bias")
        w, b, params, rq = self._weights(where, name, ins, x, y, 3 if dw else 0, out_c)
        stride = (int(o.strideH), int(o.strideW))
        dil = (int(o.dilationHFactor) or 1, int(o.dilationWFactor) or 1)
        if not all(1 <= v <= MAX_DIM for v in (*stride, *dil)):
            raise InputError(f"{where}: stride {stride} or dilation {dil} out of range")
        kh, kw = wshape[1], wshape[2]
        (oh, pt), (ow, pl) = (
            _padding(where, o.padding, xs[1], kh, stride[0], dil[0]),
            _padding(where, o.padding, xs[2], kw, stride[1], dil[1]),
        )
        if ys != (xs[0], oh, ow, out_c):
            raise InputError(f"{where}: output shape {list(ys)}, expected {[xs[0], oh, ow, out_c]}")
        act = self._act_range(where, o.fusedActivationFunction, y)
        self.ops.append(
            _Op(
                OP_DWCONV if dw else OP_CONV,
                name,
                (x, w, b),
                y,
                rq,
                stride,
                dil,
                (kh, kw),
                (pt, pl),
                mult,
                act,
                params,
            )
        )

    def _avgpool(self, where: str, name: str, op: Any, ins: list[int], x: int, y: int) -> None:
        o = self._options(where, op, "Pool2DOptionsT")
        tx, ty = self.tensors[x], self.tensors[y]
        if len(tx.dims) != 4 or len(ty.dims) != 4:
            raise InputError(f"{where}: input and output must be 4-D (NHWC)")
        if (tx.scale, tx.zero_point) != (ty.scale, ty.zero_point):
            raise InputError(f"{where}: input and output quantization differ")
        stride, filt = (int(o.strideH), int(o.strideW)), (int(o.filterHeight), int(o.filterWidth))
        if not all(1 <= v <= MAX_DIM for v in (*stride, *filt)):
            raise InputError(f"{where}: stride {stride} or filter {filt} out of range")
        (oh, pt), (ow, pl) = (
            _padding(where, o.padding, tx.dims[1], filt[0], stride[0], 1),
            _padding(where, o.padding, tx.dims[2], filt[1], stride[1], 1),
        )
        if ty.dims != (tx.dims[0], oh, ow, tx.dims[3]):
            raise InputError(f"{where}: output shape {list(ty.dims)} does not fit the pooling")
        act = self._act_range(where, o.fusedActivationFunction, y)
        self.ops.append(
            _Op(OP_AVGPOOL, name, (x, NONE, NONE), y, 0, stride, (1, 1), filt, (pt, pl), 1, act)
        )

    def _softmax(self, where: str, name: str, op: Any, ins: list[int], x: int, y: int) -> None:
        o = self._options(where, op, "SoftmaxOptionsT")
        tx, ty = self.tensors[x], self.tensors[y]
        if tx.dims != ty.dims:
            raise InputError(f"{where}: output shape differs from input")
        if (np.float32(ty.scale), ty.zero_point) != (np.float32(1 / 256), -128):
            raise InputError(f"{where}: int8 output must have scale 1/256 and zero point -128")
        beta = np.float32(o.beta)
        if not (math.isfinite(beta) and beta > 0):
            raise InputError(f"{where}: beta {o.beta}")
        if self.flavour == "tflm":
            params = _softmax_fixed_params(where, float(beta), float(np.float32(tx.scale)))
            self.ops.append(_Op(OP_SOFTMAX, name, (x, NONE, NONE), y, SM_FIXED, params=params))
            return
        # The optimized kernel's table: table[255 - d] = expf(-input_scale * beta * d).
        scale = np.float32(-np.float32(tx.scale) * beta)
        d = np.arange(256, dtype=np.float32)
        table = np.exp((scale * d).astype(np.float64)).astype(np.float32)[::-1]
        if not np.all(np.isfinite(table)):
            raise InputError(f"{where}: input scale {tx.scale:.3g} x beta gives no exp table")
        params = table.astype("<f4").tobytes() + np.float32(ty.scale).astype("<f4").tobytes()
        self.ops.append(_Op(OP_SOFTMAX, name, (x, NONE, NONE), y, SM_TABLE, params=params))

    def _reshape(self, where: str, name: str, op: Any, ins: list[int], x: int, y: int) -> None:
        tx, ty = self.tensors[x], self.tensors[y]
        if math.prod(tx.dims) != math.prod(ty.dims):
            raise InputError(f"{where}: {list(tx.dims)} -> {list(ty.dims)} changes the size")
        if (tx.scale, tx.zero_point) != (ty.scale, ty.zero_point):
            raise InputError(f"{where}: input and output quantization differ")
        self.ops.append(_Op(OP_RESHAPE, name, (x, NONE, NONE), y))

    # ------------------------------------------------------------------ layout

    def _plan_arena(self, in_idx: int, out_idx: int) -> int:
        """Arena offsets of activations: greedy by size over [first write, last read].

        The model input and output stay live for the whole run, so the device can fill the
        input once and read the output after any inference.
        """
        last = len(self.ops)
        life: dict[int, list[int]] = {in_idx: [-1, last], out_idx: [-1, last]}
        for n, op in enumerate(self.ops):
            for t in (op.output, op.inputs[0]):
                span = life.setdefault(t, [n, n])
                span[0], span[1] = min(span[0], n), max(span[1], n)
        placed: list[tuple[int, int, int, int]] = []  # offset, end, first, last
        order = sorted(life, key=lambda t: (-self.tensors[t].nbytes, t))
        for t in order:
            size = _align(self.tensors[t].nbytes)
            first, end_life = life[t]
            offset = 0
            for p_off, p_end, p_first, p_last in sorted(placed):
                if p_last < first or end_life < p_first:
                    continue  # not alive at the same time
                if offset + size <= p_off:
                    break
                offset = max(offset, p_end)
            self.tensors[t].offset = offset
            placed.append((offset, offset + size, first, end_life))
        return max((p[1] for p in placed), default=0)

    def _serialize(self, in_idx: int, out_idx: int) -> bytes:
        arena = self._plan_arena(in_idx, out_idx)
        data = bytearray()

        def put(raw: bytes) -> int:
            offset = len(data)
            data.extend(raw)
            data.extend(b"\0" * (_align(len(data)) - len(data)))
            return offset

        for t in self.tensors:
            if t.const is not None:
                t.offset = put(t.const)
        for op in self.ops:
            op.params_offset = put(op.params) if op.params else 0
        tensors_off = HEADER.size
        ops_off = tensors_off + TENSOR.size * len(self.tensors)
        data_off = ops_off + OP.size * len(self.ops)
        total = data_off + len(data)
        if len(self.tensors) >= NONE or len(self.ops) >= NONE or total >= 2**32:
            raise InputError("model too large for the blob format")
        out = bytearray(
            HEADER.pack(
                MAGIC,
                VERSION,
                HEADER.size,
                total,
                len(self.tensors),
                len(self.ops),
                in_idx,
                out_idx,
                tensors_off,
                ops_off,
                data_off,
                len(data),
                arena,
                FLAVOURS[self.flavour],
                0,
            )
        )
        for t in self.tensors:
            dims = list(t.dims) + [0] * (4 - len(t.dims))
            scale_bits = struct.unpack("<I", struct.pack("<f", t.scale))[0]
            storage = S_CONST if t.const is not None else S_ARENA
            out += TENSOR.pack(
                t.ttype, storage, len(t.dims), 0, *dims, t.zero_point, scale_bits, t.offset
            )
        for op in self.ops:
            out += OP.pack(
                op.code,
                op.requant,
                0,
                0,
                op.inputs[0],
                op.inputs[1],
                op.inputs[2],
                op.output,
                *op.stride,
                *op.dilation,
                *op.filt,
                *op.pad,
                op.depth_multiplier,
                0,
                *op.act,
                op.params_offset,
                len(op.params),
            )
        out += data
        assert len(out) == total
        return bytes(out)


def _ints(v: Any) -> list[int]:
    """A flatbuffer int vector (None, list or numpy array) as a list."""
    return [] if v is None else [int(i) for i in v]


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _padding(where: str, padding: int, size: int, k: int, stride: int, dil: int) -> tuple[int, int]:
    """(output size, padding before) as TFLite's ComputePaddingHeightWidth."""
    eff = (k - 1) * dil + 1
    if padding == 0:  # SAME
        out = (size + stride - 1) // stride
    elif padding == 1:  # VALID
        out = (size - eff + stride) // stride
    else:
        raise InputError(f"{where}: padding {padding}")
    if out < 1:
        raise InputError(f"{where}: filter {k} (dilation {dil}) larger than input {size}")
    pad = max(((out - 1) * stride + eff - size) // 2, 0)
    if pad > MAX_DIM:
        raise InputError(f"{where}: padding {pad} out of range")
    return out, pad


def _quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: m = q * 2^(shift - 31), q in [2^30, 2^31)."""
    if m == 0.0:
        return 0, 0
    frac, shift = math.frexp(m)
    q = math.floor(frac * 2**31 + 0.5)  # TfLiteRound: half away from zero (m > 0)
    if q == 2**31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q, shift


def _softmax_fixed_params(where: str, beta: float, input_scale: float) -> bytes:
    """TFLite's PreprocessSoftmaxScaling and CalculateInputRadius for 5 integer bits:
    (input multiplier, left shift, diff_min) of the reference int8 SOFTMAX."""
    integer_bits = 5
    real = min(beta * input_scale * (1 << (31 - integer_bits)), (1 << 31) - 1.0)
    if not real > 1.0:
        raise InputError(f"{where}: input scale {input_scale:.3g} x beta too small")
    mult, shift = _quantize_multiplier(real)
    if not 0 <= shift <= 30:
        raise InputError(f"{where}: input scale {input_scale:.3g} x beta out of range")
    radius = math.floor(((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / (1 << shift))
    return struct.pack("<iii", mult, shift, -radius)
