"""The governance framework's quantization_test metrics: how far a quantized model strays.

Outputs are compared as floats ``[examples, classes]`` (quantized outputs dequantized first).
Every function checks shapes and raises :class:`~edgeprof.errors.InputError` naming the
mismatch, because these run on files and models a user supplied.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from edgeprof.errors import InputError

F64 = npt.NDArray[np.float64]


def _array(x: npt.ArrayLike, what: str) -> npt.NDArray[np.generic]:
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise InputError(f"{what} must be numeric, not {a.dtype}")
    return a


def _rows(x: npt.ArrayLike, what: str) -> F64:
    """``x`` as float64 ``[examples, classes]`` with at least one of each."""
    a = _array(x, what)
    if a.ndim != 2:
        raise InputError(f"{what} must be [examples, classes], not shape {list(a.shape)}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise InputError(f"{what} is empty (shape {list(a.shape)})")
    return a.astype(np.float64, copy=False)


def _pair(ref: npt.ArrayLike, test: npt.ArrayLike, names: tuple[str, str]) -> tuple[F64, F64]:
    a = _array(ref, names[0]).astype(np.float64, copy=False)
    b = _array(test, names[1]).astype(np.float64, copy=False)
    if a.shape != b.shape:
        raise InputError(f"{names[0]} have shape {list(a.shape)} but {names[1]} {list(b.shape)}")
    if a.size == 0:
        raise InputError(f"{names[0]} and {names[1]} are empty (shape {list(a.shape)})")
    return a, b


def dequantize(x: npt.ArrayLike, scale: float, zero_point: int) -> F64:
    """Quantized integers to the real values they stand for: ``(x - zero_point) * scale``."""
    if not (math.isfinite(scale) and scale > 0):
        raise InputError(f"quantization scale must be positive and finite, not {scale:g}")
    a = _array(x, "quantized values")
    return (a.astype(np.float64) - float(zero_point)) * float(scale)


def top1_agreement(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Fraction of examples whose top class is the same in both outputs."""
    ra = _rows(a, "reference outputs")
    rb = _rows(b, "test outputs")
    if ra.shape != rb.shape:
        raise InputError(
            f"reference outputs have shape {list(ra.shape)} but test outputs {list(rb.shape)}"
        )
    return float(np.mean(np.argmax(ra, axis=1) == np.argmax(rb, axis=1)))


def mean_abs_error(ref: npt.ArrayLike, test: npt.ArrayLike) -> float:
    """Mean absolute difference, in the outputs' own (dequantized) units."""
    a, b = _pair(ref, test, ("reference outputs", "test outputs"))
    return float(np.mean(np.abs(a - b)))


def snr_db(ref: npt.ArrayLike, test: npt.ArrayLike) -> float:
    """Signal-to-noise ratio of ``test`` against ``ref`` in dB: 10 log10(sum ref^2 / sum err^2).

    +inf when identical (even if both are all zero); -inf when ``ref`` is all zero but
    ``test`` is not (there is no signal to speak of).
    """
    a, b = _pair(ref, test, ("reference outputs", "test outputs"))
    signal = float(np.sum(a * a))
    noise = float(np.sum((a - b) ** 2))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def accuracy(outputs: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Fraction of examples whose top class is the label.

    ``labels`` are class indices ``[examples]`` (or ``[examples, 1]``; integer-valued floats
    are accepted), or one-hot ``[examples, classes]``.
    """
    out = _rows(outputs, "outputs")
    n, classes = out.shape
    lab = _array(labels, "labels")
    if lab.shape == out.shape and lab.ndim == 2 and classes > 1:
        lab = np.argmax(lab, axis=1)
    elif lab.ndim == 2 and lab.shape[1] == 1:
        lab = lab[:, 0]
    if lab.ndim != 1:
        raise InputError(
            f"labels must be class indices [{n}] or one-hot [{n}, {classes}], "
            f"not shape {list(lab.shape)}"
        )
    if lab.shape[0] != n:
        raise InputError(f"{lab.shape[0]} labels for {n} examples")
    if lab.dtype.kind == "f" and not np.all(np.isfinite(lab) & (np.mod(lab, 1.0) == 0)):
        raise InputError("labels must be whole class indices, but some are fractional or NaN")
    idx = lab.astype(np.int64)
    wrong = (idx < 0) | (idx >= classes)
    if wrong.any():
        raise InputError(
            f"{int(wrong.sum())} labels are outside the {classes} classes [0, {classes - 1}] "
            f"(e.g. {int(idx[np.argmax(wrong)])})"
        )
    return float(np.mean(np.argmax(out, axis=1) == idx))


def compression_ratio(reference_bytes: int, quantized_bytes: int) -> float:
    """How many times smaller the quantized model file is than the reference."""
    if reference_bytes <= 0 or quantized_bytes <= 0:
        raise InputError(
            f"model sizes must be positive, not {reference_bytes} and {quantized_bytes} bytes"
        )
    return reference_bytes / quantized_bytes
