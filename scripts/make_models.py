#!/usr/bin/env python3
"""Write the small keyword-spotting models edgeprof ships, without TensorFlow.

Two networks, each as an int8 model and its float32 twin, plus a labelled synthetic dataset:

* ``kws_mlp_{int8,float}.tflite``: MLP 490 -> 256 -> 256 -> 12 on a flattened 49x10 feature map.
* ``ds_cnn_{int8,float}.tflite``: MLPerf Tiny's DS-CNN shape (CONV_2D 10x4/2, four depthwise
  separable blocks, AVERAGE_POOL_2D, RESHAPE, FULLY_CONNECTED, SOFTMAX) on [1, 49, 10, 1].
* ``kws_mlp_data.npz``, ``ds_cnn_data.npz``: a held-out labelled evaluation set for each model,
  float32 inputs under ``x`` and labels under ``y`` (what ``edgeprof run --data`` reads; it
  quantizes ``x`` with the int8 model's input parameters).

The data are 12 class prototypes (smooth blobs on a 49 frames x 10 coefficients grid, like MFCC
patterns of spoken words) plus time shift, gain and noise. The networks are trained here with
plain numpy (float64 Adam, fixed seeds), quantized the way the TFLite converter does
(asymmetric per-tensor int8 activations from calibration ranges, symmetric per-channel int8
weights, int32 biases) and serialized through the TFLite schema's flatbuffers object API.

The output is bit-for-bit reproducible: fixed seeds, no timestamps, and trained weights and
calibration ranges are rounded to coarse binary grids so that last-bit differences between
BLAS builds or CPUs cannot reach the files.

Usage::

    python scripts/make_models.py             # regenerate agent/edgeprof/models/
    python scripts/make_models.py --out DIR   # write elsewhere
    python scripts/make_models.py --check     # also run every model in LiteRT and TFLM

Needs numpy, flatbuffers and ai-edge-litert (for its generated schema module); ``--check``
also needs tflite-micro.
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import re
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import flatbuffers
import numpy as np
import numpy.typing as npt
from ai_edge_litert import schema_py_generated as schema

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "agent" / "edgeprof" / "models"

FRAMES, COEFFS, CLASSES = 49, 10, 12
TRAIN_PER_CLASS, EVAL_PER_CLASS, CALIB_EXAMPLES = 100, 20, 256
DATA_SEED, MLP_SEED, DSCNN_SEED = 20240, 20241, 20242
NOISE = 0.7  # sets the task's difficulty: float accuracy lands around 95%, not at 100%
DATA_GRID = 1 / 32  # feature values are multiples of this: exact in float32, compresses well
WEIGHT_GRID = 2.0**-16  # trained float weights are rounded to this before anything uses them
RANGE_GRID = 2.0**-6  # calibration ranges are widened outward to this
DESCRIPTION = "edgeprof synthetic keyword spotting model ({}); written by scripts/make_models.py"

Kind = Literal["fc", "conv", "dwconv", "avgpool", "reshape", "softmax"]


# ----------------------------------------------------------------------------- data


def round_half_away(x: F64) -> F64:
    """Round like C's std::round (what TFLite's quantizer uses), not numpy's half-to-even."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def class_prototypes(rng: np.random.Generator) -> list[F64]:
    """Per class, a few Gaussian blobs (t, f, width_t, width_f, amplitude) in the feature map."""
    protos = []
    for _ in range(CLASSES):
        n = 4
        blobs = np.stack(
            [
                rng.uniform(10, FRAMES - 10, n),
                rng.uniform(0, COEFFS - 1, n),
                rng.uniform(2.0, 5.0, n),
                rng.uniform(0.8, 2.0, n),
                rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 1.0, n),
            ],
            axis=1,
        )
        protos.append(blobs)
    return protos


def render(blobs: F64, shift: float) -> F64:
    """The 49x10 map of one prototype whose blobs are moved `shift` frames in time."""
    t = np.arange(FRAMES, dtype=np.float64)[:, None]
    f = np.arange(COEFFS, dtype=np.float64)[None, :]
    out = np.zeros((FRAMES, COEFFS))
    for t0, f0, st, sf, amp in blobs:
        out += amp * np.exp(-0.5 * (((t - t0 - shift) / st) ** 2 + ((f - f0) / sf) ** 2))
    return out


def make_split(
    rng: np.random.Generator, protos: list[F64], per_class: int
) -> tuple[F32, npt.NDArray[np.int64]]:
    """Examples of every class, shuffled: prototype moved in time, scaled, plus noise.

    Values are rounded to DATA_GRID so the float32 data are exact and independent of the CPU.
    """
    xs, ys = [], []
    for label, blobs in enumerate(protos):
        for _ in range(per_class):
            shift = float(rng.integers(-4, 5))
            gain = rng.uniform(0.75, 1.25)
            x = gain * render(blobs, shift) + rng.normal(0.0, NOISE, (FRAMES, COEFFS))
            xs.append(x)
            ys.append(label)
    order = rng.permutation(len(ys))
    x_all = round_half_away(np.stack(xs)[order] / DATA_GRID) * DATA_GRID
    return x_all.astype(np.float32), np.asarray(ys, dtype=np.int64)[order]


# ----------------------------------------------------------------------------- float networks


@dataclass
class Layer:
    """One TFLite operator with its float parameters, in TFLite's weight layouts.

    fc: weight [out, in]; conv: [out, kh, kw, in]; dwconv: [1, kh, kw, channels]. Padding is
    SAME for convolutions; avgpool pools the whole remaining spatial extent (VALID).
    """

    kind: Kind
    weight: F64 | None = None
    bias: F64 | None = None
    stride: tuple[int, int] = (1, 1)
    relu: bool = False


def he_init(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> F64:
    """He-normal initial weights, the usual start for ReLU networks."""
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)


def mlp_layers(rng: np.random.Generator) -> list[Layer]:
    """KWS MLP: 490 -> 256 (ReLU) -> 256 (ReLU) -> 12 -> softmax."""
    sizes = [FRAMES * COEFFS, 256, 256, CLASSES]
    layers = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        last = i == len(sizes) - 2
        layers.append(
            Layer("fc", he_init(rng, (n_out, n_in), n_in), np.zeros(n_out), relu=not last)
        )
    layers.append(Layer("softmax"))
    return layers


def dscnn_layers(rng: np.random.Generator, channels: int = 64, blocks: int = 4) -> list[Layer]:
    """DS-CNN as in MLPerf Tiny KWS: conv 10x4/2, `blocks` x (dw 3x3 + pw 1x1), pool, fc."""
    layers = [
        Layer(
            "conv",
            he_init(rng, (channels, 10, 4, 1), 40),
            np.zeros(channels),
            stride=(2, 2),
            relu=True,
        )
    ]
    for _ in range(blocks):
        layers.append(
            Layer("dwconv", he_init(rng, (1, 3, 3, channels), 9), np.zeros(channels), relu=True)
        )
        layers.append(
            Layer(
                "conv",
                he_init(rng, (channels, 1, 1, channels), channels),
                np.zeros(channels),
                relu=True,
            )
        )
    layers += [
        Layer("avgpool"),
        Layer("reshape"),
        Layer("fc", he_init(rng, (CLASSES, channels), channels), np.zeros(CLASSES)),
        Layer("softmax"),
    ]
    return layers


def same_padding(size: int, k: int, stride: int) -> tuple[int, int, int]:
    """(output size, pad before, pad after) exactly as TFLite computes SAME padding."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return out, total // 2, total - total // 2


def conv_patches(x: F64, kh: int, kw: int, stride: tuple[int, int]) -> F64:
    """im2col for NHWC input: [N, OH, OW, kh, kw, C] windows of the SAME-padded input."""
    n, h, w, c = x.shape
    oh, pt, pb = same_padding(h, kh, stride[0])
    ow, pl, pr = same_padding(w, kw, stride[1])
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    cols = np.empty((n, oh, ow, kh, kw, c))
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j, :] = xp[
                :, i : i + stride[0] * oh : stride[0], j : j + stride[1] * ow : stride[1], :
            ]
    return cols


def matmul_nd(x: F64, w: F64) -> F64:
    """x @ w over the last axis as one 2-D GEMM (numpy would batch tiny matmuls otherwise)."""
    return (x.reshape(-1, x.shape[-1]) @ w).reshape(*x.shape[:-1], w.shape[1])


def dw_windows(x: F64, kh: int, kw: int, flip: bool = False) -> F64:
    """Stride-1 SAME windows [N, H, W, C, kh, kw] of x as a view (no copy), for depthwise ops.

    With flip, the padding is mirrored: the windows of the output gradient for the adjoint.
    """
    _, pt, pb = same_padding(x.shape[1], kh, 1)
    _, pl, pr = same_padding(x.shape[2], kw, 1)
    if flip:
        pt, pb, pl, pr = pb, pt, pr, pl
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    return np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))


def layer_forward(layer: Layer, x: F64) -> tuple[F64, Any]:
    """Float64 forward of one layer (batch first); returns the output and a backward cache."""
    if layer.kind in ("fc", "conv", "dwconv"):
        assert layer.weight is not None
        assert layer.bias is not None
        w, b = layer.weight, layer.bias
        cache: Any
        if layer.kind == "fc":
            cache, y = x, x @ w.T + b
        elif layer.kind == "conv" and w.shape[1:3] == (1, 1) and layer.stride == (1, 1):
            cache, y = x, matmul_nd(x, w[:, 0, 0, :].T) + b
        elif layer.kind == "conv":
            cache = conv_patches(x, w.shape[1], w.shape[2], layer.stride)
            y = matmul_nd(cache.reshape(*cache.shape[:3], -1), w.reshape(w.shape[0], -1).T) + b
        else:
            cache = dw_windows(x, w.shape[1], w.shape[2])
            y = np.einsum("nhwcij,ijc->nhwc", cache, w[0]) + b
        if layer.relu:
            np.maximum(y, 0.0, out=y)
        return y, (cache, y)
    if layer.kind == "avgpool":
        return x.mean(axis=(1, 2), keepdims=True), x.shape
    if layer.kind == "reshape":
        return x.reshape(x.shape[0], -1), x.shape
    # softmax
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True), None


def layer_backward(
    layer: Layer, cache: Any, dy: F64, need_dx: bool
) -> tuple[F64 | None, list[F64]]:
    """Gradient wrt the layer's input (when needed) and its [weight, bias]."""
    if layer.kind == "avgpool":
        n, h, w, c = cache
        return np.broadcast_to(dy / (h * w), (n, h, w, c)).copy(), []
    if layer.kind == "reshape":
        return dy.reshape(cache), []
    assert layer.weight is not None
    inner, y = cache
    if layer.relu:
        dy = dy * (y > 0)
    db = dy.reshape(-1, dy.shape[-1]).sum(axis=0)
    w = layer.weight
    if layer.kind == "fc":
        return (dy @ w if need_dx else None), [dy.T @ inner, db]
    kh, kw = w.shape[1], w.shape[2]
    if layer.kind == "dwconv":
        dw = np.einsum("nhwcij,nhwc->ijc", inner, dy)[None]
        if not need_dx:
            return None, [dw, db]
        # The input gradient is a depthwise correlation of dy with the flipped kernel.
        back = dw_windows(dy, kh, kw, flip=True)
        return np.einsum("nhwcij,ijc->nhwc", back, w[0, ::-1, ::-1]), [dw, db]
    flat_dy = dy.reshape(-1, w.shape[0])
    if (kh, kw) == (1, 1) and layer.stride == (1, 1):
        dw = (flat_dy.T @ inner.reshape(-1, w.shape[3])).reshape(w.shape)
        return (matmul_nd(dy, w[:, 0, 0, :]) if need_dx else None), [dw, db]
    if need_dx:
        raise NotImplementedError("input gradient of a strided or k>1 conv (only used first)")
    return None, [(flat_dy.T @ inner.reshape(-1, kh * kw * w.shape[3])).reshape(w.shape), db]


def forward(layers: Sequence[Layer], x: F64) -> list[F64]:
    """Every layer's output (float64) for a batch; the last one is the softmax."""
    outs = []
    for layer in layers:
        x, _ = layer_forward(layer, x)
        outs.append(x)
    return outs


def loss_and_grads(layers: Sequence[Layer], x: F64, y: I64) -> tuple[float, list[F64]]:
    """Softmax cross-entropy of the logits (the layer before SOFTMAX) and parameter grads."""
    caches = []
    h = x
    for layer in layers[:-1]:
        h, cache = layer_forward(layer, h)
        caches.append(cache)
    z = h - h.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    n = x.shape[0]
    loss = float(-logp[np.arange(n), y].mean())
    d = np.exp(logp)
    d[np.arange(n), y] -= 1.0
    d /= n
    grads: list[F64] = []
    for i in range(len(layers) - 2, -1, -1):
        dx, g = layer_backward(layers[i], caches[i], d, need_dx=i > 0)
        grads = g + grads
        if dx is not None:
            d = dx
    return loss, grads


def params(layers: Sequence[Layer]) -> list[F64]:
    """The trainable arrays, in the order loss_and_grads returns their gradients."""
    out: list[F64] = []
    for layer in layers:
        if layer.weight is not None and layer.bias is not None:
            out += [layer.weight, layer.bias]
    return out


def train(
    layers: Sequence[Layer],
    x: F64,
    y: I64,
    rng: np.random.Generator,
    epochs: int,
    batch: int = 64,
    lr: float = 2e-3,
) -> float:
    """Minibatch Adam in float64, updating the layers in place; returns the last epoch's loss."""
    ps = params(layers)
    m = [np.zeros_like(p) for p in ps]
    v = [np.zeros_like(p) for p in ps]
    b1, b2, eps, step, last = 0.9, 0.999, 1e-8, 0, 0.0
    total_steps = epochs * -(-len(y) // batch)
    for _ in range(epochs):
        order = rng.permutation(len(y))
        total = 0.0
        for start in range(0, len(y), batch):
            idx = order[start : start + batch]
            loss, grads = loss_and_grads(layers, x[idx], y[idx])
            total += loss * len(idx)
            step += 1
            rate = lr * 0.5 * (1 + np.cos(np.pi * step / total_steps))  # cosine decay
            for p, g, mi, vi in zip(ps, grads, m, v, strict=True):
                g = g + 1e-4 * p  # a little weight decay keeps weight ranges int8-friendly
                mi *= b1
                mi += (1 - b1) * g
                vi *= b2
                vi += (1 - b2) * g * g
                p -= rate * (mi / (1 - b1**step)) / (np.sqrt(vi / (1 - b2**step)) + eps)
        last = total / len(y)
    for p in ps:
        p[...] = round_half_away(p / WEIGHT_GRID) * WEIGHT_GRID
    return last


def accuracy(layers: Sequence[Layer], x: F64, y: I64) -> float:
    """Top-1 accuracy of the float64 network."""
    return float((forward(layers, x)[-1].argmax(axis=1) == y).mean())


# ----------------------------------------------------------------------------- quantization


@dataclass(frozen=True)
class QParams:
    """Affine int8 parameters of one activation tensor: real = scale * (q - zero_point)."""

    scale: np.float32
    zero_point: int

    def quantize(self, x: F64 | F32) -> I8:
        """Float -> int8 the way TFLite's QUANTIZE does (round half away from zero, clamp)."""
        q = round_half_away(np.asarray(x, np.float64) / np.float64(self.scale)) + self.zero_point
        return np.clip(q, -128, 127).astype(np.int8)


SOFTMAX_OUT = QParams(np.float32(1 / 256), -128)  # fixed by the int8 SOFTMAX kernel


def activation_qparams(lo: float, hi: float) -> QParams:
    """Asymmetric params from a calibration range, as the converter: 0 must be exact."""
    lo = np.floor(min(lo, 0.0) / RANGE_GRID) * RANGE_GRID
    hi = np.ceil(max(hi, 0.0) / RANGE_GRID) * RANGE_GRID
    scale = np.float32((hi - lo) / 255.0)
    zero_point = round_half_away(np.array(-128.0 - lo / np.float64(scale)))
    return QParams(scale, int(np.clip(zero_point, -128, 127)))


def weight_qparams(w: F64, axis: int) -> tuple[I8, F32]:
    """Symmetric per-channel int8 weights in [-127, 127] and their float32 scales."""
    other = tuple(a for a in range(w.ndim) if a != axis)
    absmax = np.abs(w).max(axis=other)
    scales = np.where(absmax > 0, absmax / 127.0, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = round_half_away(w / scales.astype(np.float64).reshape(shape))
    return np.clip(q, -127, 127).astype(np.int8), scales


def bias_int32(b: F64, input_scale: np.float32, weight_scales: F32) -> tuple[Any, F32]:
    """int32 bias with scale input_scale * weight_scale[c] and zero point 0."""
    scales = (np.float64(input_scale) * weight_scales.astype(np.float64)).astype(np.float32)
    q = round_half_away(b / scales.astype(np.float64))
    return np.clip(q, -(2**31), 2**31 - 1).astype(np.int32), scales


def calibrate(layers: Sequence[Layer], x: F64) -> list[QParams]:
    """Params for the input and each layer's output from float ranges over `x`.

    AVERAGE_POOL_2D and RESHAPE keep their input's params (the converter requires equal
    scales there); SOFTMAX gets the fixed 1/256, -128.
    """
    out = [activation_qparams(float(x.min()), float(x.max()))]
    for layer, y in zip(layers, forward(layers, x), strict=True):
        if layer.kind in ("avgpool", "reshape"):
            out.append(out[-1])
        elif layer.kind == "softmax":
            out.append(SOFTMAX_OUT)
        else:
            out.append(activation_qparams(float(y.min()), float(y.max())))
    return out


# ----------------------------------------------------------------------------- flatbuffers

BUFFER_ALIGN = 16


class AlignedBufferT(schema.BufferT):  # type: ignore[misc]
    """A Buffer whose data vector starts 16-byte aligned (the object API aligns to 1).

    TFLM and LiteRT read weights in place; unaligned int32 biases or float32 weights are
    undefined behaviour on some MCUs and slow elsewhere. The converter aligns to 16 as well.
    """

    def Pack(self, builder: Any) -> int:  # noqa: N802 (flatbuffers' name)
        """Serialize like BufferT.Pack, but with the data vector aligned to BUFFER_ALIGN."""
        data = None
        if self.data is not None:
            payload = bytes(self.data)
            builder.StartVector(1, len(payload), BUFFER_ALIGN)
            builder.head -= len(payload)
            builder.Bytes[builder.head : builder.head + len(payload)] = payload
            builder.vectorNumElems = len(payload)
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        return int(schema.BufferEnd(builder))


def op_version(kind: Kind, int8: bool) -> int:
    """Operator versions as the converter's op_version.cc assigns them for these signatures."""
    if not int8:
        return 1
    return {"fc": 4, "conv": 3, "dwconv": 3, "avgpool": 2, "reshape": 1, "softmax": 2}[kind]


BUILTIN: dict[Kind, int] = {
    "fc": schema.BuiltinOperator.FULLY_CONNECTED,
    "conv": schema.BuiltinOperator.CONV_2D,
    "dwconv": schema.BuiltinOperator.DEPTHWISE_CONV_2D,
    "avgpool": schema.BuiltinOperator.AVERAGE_POOL_2D,
    "reshape": schema.BuiltinOperator.RESHAPE,
    "softmax": schema.BuiltinOperator.SOFTMAX,
}


def activation_code(relu: bool) -> int:
    """The fused activation enum for a layer."""
    return int(schema.ActivationFunctionType.RELU if relu else schema.ActivationFunctionType.NONE)


@dataclass
class GraphBuilder:
    """Accumulates tensors, buffers and operators of one subgraph the way the converter lays
    them out: buffer 0 is the empty sentinel and every tensor owns one buffer (empty for
    activations)."""

    tensors: list[Any] = field(default_factory=list)
    buffers: list[Any] = field(default_factory=lambda: [AlignedBufferT()])
    operators: list[Any] = field(default_factory=list)
    opcodes: list[tuple[int, int]] = field(default_factory=list)

    def tensor(
        self,
        name: str,
        shape: Sequence[int],
        ttype: int,
        data: npt.NDArray[Any] | None = None,
        quant: Any = None,
    ) -> int:
        """Add a tensor (constant when `data` is given) and its own buffer; return its index."""
        t = schema.TensorT()
        t.name = name
        t.shape = [int(d) for d in shape]
        t.type = ttype
        t.buffer = len(self.buffers)
        t.quantization = quant if quant is not None else schema.QuantizationParametersT()
        buf = AlignedBufferT()
        if data is not None:
            buf.data = np.ascontiguousarray(data).astype(data.dtype.newbyteorder("<")).tobytes()
        self.buffers.append(buf)
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(
        self,
        code: int,
        version: int,
        inputs: Sequence[int],
        outputs: Sequence[int],
        options: tuple[int, Any] | None = None,
    ) -> None:
        """Add an operator, registering its (code, version) operator code once."""
        if (code, version) not in self.opcodes:
            self.opcodes.append((code, version))
        o = schema.OperatorT()
        o.opcodeIndex = self.opcodes.index((code, version))
        o.inputs = list(inputs)
        o.outputs = list(outputs)
        if options is not None:
            o.builtinOptionsType, o.builtinOptions = options
        self.operators.append(o)


def quant_params(scales: Sequence[float] | F32, zero_points: Sequence[int], axis: int = 0) -> Any:
    """A QuantizationParametersT (per-tensor when one scale, per-channel along `axis` else)."""
    q = schema.QuantizationParametersT()
    q.scale = [float(s) for s in np.asarray(scales, np.float32)]
    q.zeroPoint = [int(z) for z in zero_points]
    q.quantizedDimension = axis
    return q


def act_quant(p: QParams | None) -> Any:
    """Per-tensor params of an activation tensor, or none for float models."""
    return None if p is None else quant_params([float(p.scale)], [p.zero_point])


def layer_options(layer: Layer, in_shape: Sequence[int]) -> tuple[int, Any] | None:
    """The builtin options union (type, object) for one layer."""
    opts = schema.BuiltinOptions
    if layer.kind == "fc":
        o = schema.FullyConnectedOptionsT()
        o.fusedActivationFunction = activation_code(layer.relu)
        return opts.FullyConnectedOptions, o
    if layer.kind in ("conv", "dwconv"):
        o = schema.Conv2DOptionsT() if layer.kind == "conv" else schema.DepthwiseConv2DOptionsT()
        o.padding = schema.Padding.SAME
        o.strideH, o.strideW = layer.stride
        o.dilationHFactor = o.dilationWFactor = 1
        o.fusedActivationFunction = activation_code(layer.relu)
        if layer.kind == "dwconv":
            o.depthMultiplier = 1
            return opts.DepthwiseConv2DOptions, o
        return opts.Conv2DOptions, o
    if layer.kind == "avgpool":
        o = schema.Pool2DOptionsT()
        o.padding = schema.Padding.VALID
        o.filterHeight, o.filterWidth = in_shape[1], in_shape[2]
        o.strideH, o.strideW = in_shape[1], in_shape[2]
        o.fusedActivationFunction = activation_code(False)
        return opts.Pool2DOptions, o
    if layer.kind == "softmax":
        o = schema.SoftmaxOptionsT()
        o.beta = 1.0
        return opts.SoftmaxOptions, o
    return None  # RESHAPE: the new shape comes from its second (constant) input


def output_shape(layer: Layer, in_shape: Sequence[int]) -> list[int]:
    """Shape (batch 1) of a layer's output given its input's."""
    if layer.kind == "fc":
        assert layer.weight is not None
        return [1, layer.weight.shape[0]]
    if layer.kind in ("conv", "dwconv"):
        assert layer.weight is not None
        oh = same_padding(in_shape[1], layer.weight.shape[1], layer.stride[0])[0]
        ow = same_padding(in_shape[2], layer.weight.shape[2], layer.stride[1])[0]
        ch = layer.weight.shape[0] if layer.kind == "conv" else layer.weight.shape[3]
        return [1, oh, ow, ch]
    if layer.kind == "avgpool":
        return [1, 1, 1, in_shape[3]]
    if layer.kind == "reshape":
        return [1, int(np.prod(in_shape[1:]))]
    return list(in_shape)


def add_layer(
    g: GraphBuilder,
    name: str,
    layer: Layer,
    x: int,
    in_q: QParams | None,
    out_q: QParams | None,
) -> int:
    """Append one layer's constants, output tensor and operator; return the output index."""
    in_shape = g.tensors[x].shape
    int8 = out_q is not None
    act_type = schema.TensorType.INT8 if int8 else schema.TensorType.FLOAT32
    inputs = [x]
    if layer.weight is not None and layer.bias is not None:
        axis = 3 if layer.kind == "dwconv" else 0
        if in_q is not None:
            wq, wscales = weight_qparams(layer.weight, axis)
            bq, bscales = bias_int32(layer.bias, in_q.scale, wscales)
            zeros = [0] * len(wscales)
            inputs.append(
                g.tensor(
                    f"{name}/weights",
                    wq.shape,
                    schema.TensorType.INT8,
                    wq,
                    quant_params(wscales, zeros, axis),
                )
            )
            inputs.append(
                g.tensor(
                    f"{name}/bias",
                    bq.shape,
                    schema.TensorType.INT32,
                    bq,
                    quant_params(bscales, zeros, 0),
                )
            )
        else:
            w32 = layer.weight.astype(np.float32)
            b32 = layer.bias.astype(np.float32)
            inputs.append(g.tensor(f"{name}/weights", w32.shape, schema.TensorType.FLOAT32, w32))
            inputs.append(g.tensor(f"{name}/bias", b32.shape, schema.TensorType.FLOAT32, b32))
    out_shape = output_shape(layer, in_shape)
    if layer.kind == "reshape":
        shape = np.asarray(out_shape, np.int32)
        inputs.append(g.tensor(f"{name}/shape", shape.shape, schema.TensorType.INT32, shape))
    suffix = "/relu" if layer.relu else ""
    y = g.tensor(f"{name}{suffix}", out_shape, act_type, quant=act_quant(out_q))
    g.op(
        BUILTIN[layer.kind],
        op_version(layer.kind, int8),
        inputs,
        [y],
        layer_options(layer, in_shape),
    )
    return y


def build_model(
    layers: Sequence[Layer],
    names: Sequence[str],
    in_shape: Sequence[int],
    qparams: Sequence[QParams] | None,
    description: str,
) -> bytes:
    """Serialize a network as a .tflite flatbuffer: int8 when qparams are given, else float."""
    g = GraphBuilder()
    int8 = qparams is not None
    x = g.tensor(
        "input",
        in_shape,
        schema.TensorType.INT8 if int8 else schema.TensorType.FLOAT32,
        quant=act_quant(qparams[0] if qparams else None),
    )
    first = x
    for i, (layer, name) in enumerate(zip(layers, names, strict=True)):
        in_q = qparams[i] if qparams else None
        out_q = qparams[i + 1] if qparams else None
        x = add_layer(g, name, layer, x, in_q, out_q)

    sub = schema.SubGraphT()
    sub.tensors, sub.operators = g.tensors, g.operators
    sub.inputs, sub.outputs = [first], [x]
    sub.name = "main"

    model = schema.ModelT()
    model.version = 3
    model.description = description
    model.buffers = g.buffers
    model.subgraphs = [sub]
    model.operatorCodes = []
    for code, version in g.opcodes:
        oc = schema.OperatorCodeT()
        oc.builtinCode = code
        oc.deprecatedBuiltinCode = min(
            code, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES
        )
        oc.version = version
        model.operatorCodes.append(oc)
    model.signatureDefs = [signature(first, x)]

    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def signature(input_index: int, output_index: int) -> Any:
    """A serving_default signature, as the converter writes (runners may look it up)."""
    sig = schema.SignatureDefT()
    sig.signatureKey = "serving_default"
    sig.subgraphIndex = 0
    sig.inputs, sig.outputs = [schema.TensorMapT()], [schema.TensorMapT()]
    sig.inputs[0].name, sig.inputs[0].tensorIndex = "input", input_index
    sig.outputs[0].name, sig.outputs[0].tensorIndex = "output", output_index
    return sig


# ----------------------------------------------------------------------------- assembly


@dataclass
class Network:
    """One trained network ready to export: where its files go and how it sees the data."""

    key: str  # dataset key prefix
    stem: str  # file name stem
    layers: list[Layer]
    names: list[str]
    in_shape: tuple[int, ...]  # with batch 1
    qparams: list[QParams] = field(default_factory=list)

    def batch(self, x: F32 | F64) -> F64:
        """Examples [N, 49, 10] in this network's input layout, as float64."""
        return np.asarray(x, np.float64).reshape(len(x), *self.in_shape[1:])


def mlp_network(x: F32, y: I64) -> Network:
    """Train the MLP on the training split."""
    net = Network(
        "mlp",
        "kws_mlp",
        mlp_layers(np.random.default_rng(MLP_SEED)),
        ["fc1", "fc2", "fc3", "softmax"],
        (1, FRAMES * COEFFS),
    )
    train(net.layers, net.batch(x), y, np.random.default_rng(MLP_SEED), epochs=6, lr=2e-3)
    return net


def dscnn_network(x: F32, y: I64) -> Network:
    """Train the DS-CNN on the training split (the slow part: about 15 s)."""
    blocks = 4
    names = ["conv1"]
    for i in range(1, blocks + 1):
        names += [f"dw{i}", f"pw{i}"]
    names += ["avgpool", "reshape", "fc", "softmax"]
    layers = dscnn_layers(np.random.default_rng(DSCNN_SEED), channels=64, blocks=blocks)
    net = Network("dscnn", "ds_cnn", layers, names, (1, FRAMES, COEFFS, 1))
    train(
        net.layers, net.batch(x), y, np.random.default_rng(DSCNN_SEED), epochs=8, batch=32, lr=4e-3
    )
    return net


def npz_bytes(arrays: dict[str, npt.NDArray[Any]]) -> bytes:
    """A compressed .npz with fixed timestamps (np.savez stamps the current time)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), version=(1, 0))
            zf.writestr(info, buf.getvalue(), compresslevel=9)
    return out.getvalue()


def build_all() -> dict[str, bytes]:
    """Every output file name -> its bytes. Deterministic."""
    rng = np.random.default_rng(DATA_SEED)
    protos = class_prototypes(rng)
    x_train, y_train = make_split(rng, protos, TRAIN_PER_CLASS)
    x_eval, y_eval = make_split(rng, protos, EVAL_PER_CLASS)
    files: dict[str, bytes] = {}
    for net in (mlp_network(x_train, y_train), dscnn_network(x_train, y_train)):
        net.qparams = calibrate(net.layers, net.batch(x_train[:CALIB_EXAMPLES]))
        for kind in ("int8", "float"):
            files[f"{net.stem}_{kind}.tflite"] = build_model(
                net.layers,
                net.names,
                net.in_shape,
                net.qparams if kind == "int8" else None,
                DESCRIPTION.format(f"{net.stem}, {kind}"),
            )
        # What `edgeprof run --data` reads: float inputs under x (quantized on load with the
        # int8 model's input parameters), labels under y.
        x = x_eval.reshape(len(x_eval), *net.in_shape[1:])
        files[f"{net.stem}_data.npz"] = npz_bytes({"x": x, "y": y_eval.astype(np.int64)})
    return files


# ----------------------------------------------------------------------------- check


def tflm_arena_bytes(interpreter: Any) -> int | None:
    """The arena TFLM's recording allocator reports (it prints to C stderr, so capture fd 2)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            interpreter.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        match = re.search(rb"Arena allocation total (\d+) bytes", tmp.read())
    return int(match.group(1)) if match else None


def run_all(invoke: Callable[[npt.NDArray[Any]], npt.NDArray[Any]], x: npt.NDArray[Any]) -> Any:
    """Outputs for every example, one inference each (batch 1, as on a device)."""
    return np.concatenate([invoke(x[i : i + 1]) for i in range(len(x))])


def check(out_dir: Path) -> bool:
    """Run every model in LiteRT (reference kernels) and TFLM; print what a reviewer needs."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tflite_micro import runtime

    ok = True
    for stem in ("kws_mlp", "ds_cnn"):
        data = np.load(out_dir / f"{stem}_data.npz")
        y = data["y"]
        acc: dict[str, float] = {}
        outs: dict[str, Any] = {}
        for kind in ("float", "int8"):
            path = out_dir / f"{stem}_{kind}.tflite"
            x = data["x"]
            lite = Interpreter(
                model_path=str(path),
                experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
            )
            lite.allocate_tensors()
            i_in = lite.get_input_details()[0]["index"]
            scale, zero = lite.get_input_details()[0]["quantization"]
            if kind == "int8":  # as the converter quantizes: round half away from zero
                v = x.astype(np.float64) / scale
                q = np.sign(v) * np.floor(np.abs(v) + 0.5) + zero
                x = np.clip(q, -128, 127).astype(np.int8)
            i_out = lite.get_output_details()[0]["index"]

            def lite_invoke(
                v: npt.NDArray[Any], it: Any = lite, a: int = i_in, b: int = i_out
            ) -> Any:
                it.set_tensor(a, v)
                it.invoke()
                return it.get_tensor(b).copy()

            micro = runtime.Interpreter.from_file(str(path))

            def micro_invoke(v: npt.NDArray[Any], it: Any = micro) -> Any:
                it.set_input(v, 0)
                it.invoke()
                return it.get_output(0).copy()

            outs[f"litert_{kind}"] = run_all(lite_invoke, x)
            outs[f"tflm_{kind}"] = run_all(micro_invoke, x)
            acc[kind] = float((outs[f"litert_{kind}"].argmax(axis=1) == y).mean())
            print(
                f"{path.name}: {path.stat().st_size} bytes, accuracy {acc[kind]:.4f}, "
                f"TFLM arena {tflm_arena_bytes(micro)} bytes"
            )
        lf, mf = outs["litert_float"], outs["tflm_float"]
        li, mi = outs["litert_int8"].astype(np.int32), outs["tflm_int8"].astype(np.int32)
        print(f"  float LiteRT vs TFLM: max |diff| {np.abs(lf - mf).max():.3g}")
        print(
            f"  int8 LiteRT vs TFLM: {int((li != mi).any(axis=1).sum())}/{len(y)} outputs differ "
            f"(max {int(np.abs(li - mi).max())} LSB), argmax agrees on "
            f"{float((li.argmax(1) == mi.argmax(1)).mean()):.4f}"
        )
        ratio = (out_dir / f"{stem}_float.tflite").stat().st_size / (
            out_dir / f"{stem}_int8.tflite"
        ).stat().st_size
        print(f"  float/int8 size ratio {ratio:.2f}")
        ok &= acc["float"] > 0.9 and abs(acc["int8"] - acc["float"]) <= 0.03
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    """Write the files; with --check, also run them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--check", action="store_true", help="run the models in LiteRT and TFLM")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, blob in build_all().items():
        (args.out / name).write_bytes(blob)
        print(f"wrote {args.out / name} ({len(blob)} bytes)")
    if args.check and not check(args.out):
        print("check FAILED: accuracy out of bounds", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
