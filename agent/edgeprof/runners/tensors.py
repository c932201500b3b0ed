"""Tensor descriptions: what a runner says its model's inputs and outputs are.

Runners produce them (from LiteRT details, TFLM, an MCU's INFO); inputs, quality and reports
consume them, so they live with the runners, upstream of the measurement.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeprof.errors import InputError


@dataclass(frozen=True)
class TensorInfo:
    """One input or output tensor: name, static shape, dtype name and per-tensor quantization.

    ``scale == 0`` means not quantized (TFLite's convention).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        """Whether values are integers standing for ``(q - zero_point) * scale``."""
        return self.scale != 0

    @property
    def np_dtype(self) -> np.dtype[Any]:
        """The dtype as numpy's object."""
        return np.dtype(self.dtype)

    @classmethod
    def from_litert_detail(cls, detail: Mapping[str, Any], *, role: str = "input") -> TensorInfo:
        """Parse one dict of LiteRT's ``get_input_details()`` / ``get_output_details()``.

        ``role`` ("input" or "output") only words the errors. A dynamic batch dimension (what
        every Keras export has: signature ``[-1, ...]``) takes the allocated ``shape``'s size;
        any other dynamic dimension, and per-channel quantized tensors, are refused: edgeprof
        feeds fixed shapes and dequantizes per tensor.
        """
        try:
            name = str(detail["name"])
            shape = tuple(int(s) for s in np.asarray(detail["shape"]).reshape(-1))
            dtype = np.dtype(detail["dtype"]).name
        except KeyError as exc:
            raise InputError(f"{role} tensor details lack {exc}") from None
        except TypeError as exc:
            raise InputError(f"{role} tensor details are malformed: {exc}") from None
        signature = [int(s) for s in np.asarray(detail.get("shape_signature", shape)).reshape(-1)]
        if any(s < 0 for s in signature[1:]) or any(s < 0 for s in shape):
            raise InputError(
                f"dynamic shapes are not supported: {role} '{name}' has shape signature {signature}"
            )
        scale, zero_point = _quantization(detail, role, name)
        return cls(name=name, shape=shape, dtype=dtype, scale=scale, zero_point=zero_point)


def _quantization(detail: Mapping[str, Any], role: str, name: str) -> tuple[float, int]:
    """Per-tensor (scale, zero point) from ``quantization_parameters``, else ``quantization``."""
    params = detail.get("quantization_parameters") or {}
    scales = np.asarray(params.get("scales", []), dtype=np.float64).reshape(-1)
    zero_points = np.asarray(params.get("zero_points", []), dtype=np.int64).reshape(-1)
    if scales.size > 1 and not (
        np.all(scales == scales[0]) and np.all(zero_points == zero_points[0])
    ):
        raise InputError(
            f"per-channel quantized {role}s are not supported: {role} '{name}' has "
            f"{scales.size} scales"
        )
    if scales.size:
        scale = float(scales[0])
        zero_point = int(zero_points[0]) if zero_points.size else 0
    else:
        legacy = detail.get("quantization") or (0.0, 0)
        scale, zero_point = float(legacy[0]), int(legacy[1])
    if not (math.isfinite(scale) and scale >= 0):
        raise InputError(f"{role} '{name}' has an invalid quantization scale {scale:g}")
    return scale, zero_point
