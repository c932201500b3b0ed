"""The runner interface: prepare a model, run one inference on a given input, describe itself.

A session times ``invoke`` alone inside a native region; inputs are set before and outputs read
after, outside the region, as TFLite's benchmark_model does. Runners for TFLite/LiteRT, TFLite
Micro and (later) MCUs over serial implement the same small interface, so the session, the
report and the gate never know which one ran.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgeprof.errors import InputError
from edgeprof.runners.options import OptionsType, RunnerOptions
from edgeprof.runners.tensors import TensorInfo

__all__ = [
    "DeviceMeasurements",
    "InterpreterRunner",
    "ModelFile",
    "OptionsType",
    "Runner",
    "RunnerOptions",
]

TFLITE_IDENTIFIER = b"TFL3"


@dataclass(frozen=True)
class ModelFile:
    """A model file that was checked to be present, non-empty and a TFLite flatbuffer."""

    path: Path
    size_bytes: int
    sha256: str
    data: bytes

    @classmethod
    def load(cls, path: str | Path) -> ModelFile:
        """Read and check a .tflite file; every failure is an InputError naming the file."""
        p = Path(path)
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise InputError(f"{p}: no such model file") from None
        except IsADirectoryError:
            raise InputError(f"{p}: is a directory, not a model file") from None
        except OSError as exc:
            raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from None
        if not data:
            raise InputError(f"{p}: empty file")
        if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
            raise InputError(f"{p}: not a TFLite model (no 'TFL3' flatbuffer identifier)")
        root = int.from_bytes(data[0:4], "little")
        if root >= len(data):
            raise InputError(f"{p}: truncated TFLite file ({len(data)} bytes)")
        return cls(p, len(data), hashlib.sha256(data).hexdigest(), data)

    def describe(self) -> dict[str, Any]:
        """Name, size and hash, for the report."""
        return {
            "name": self.path.stem,
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "format": "tflite",
        }


@dataclass(frozen=True)
class DeviceMeasurements:
    """What a device measured itself for a series of inferences (an MCU over a link): its
    latency from its own cycle counter, and memory from its own watermarks. When a runner has
    these, they are the inference's numbers and the host's timing is only the round trip."""

    latency_s: np.ndarray  # float64, one per inference
    arrays: dict[str, np.ndarray]  # more per-inference arrays (cycles, heap, stack watermarks)
    summary: dict[str, Any]  # figures over the whole series (peak heap, stack, cycle source)
    warnings: tuple[str, ...] = ()  # what the numbers mean less than they seem to


class Runner(ABC):
    """One way of running inference; each is one line of the registry in edgeprof.runners.

    A subclass's constructor takes the model and an instance of its own options type.
    """

    name: ClassVar[str]

    def __init__(self, model: ModelFile) -> None:
        self.model = model

    def probe(self) -> None:  # noqa: B027 - optional hook
        """Work that must happen before the timed load (TFLM's arena search), untimed."""

    @abstractmethod
    def prepare(self) -> None:
        """Load and allocate everything an inference needs (timed and measured by the session)."""

    @property
    @abstractmethod
    def inputs(self) -> list[TensorInfo]:
        """The model's input tensors (after prepare)."""

    @property
    @abstractmethod
    def outputs(self) -> list[TensorInfo]:
        """The model's output tensors (after prepare)."""

    @abstractmethod
    def set_inputs(self, values: dict[str, np.ndarray]) -> None:
        """Copy one example into the input tensors (outside the timed region)."""

    @abstractmethod
    def invoke(self) -> None:
        """Run one inference: the only thing inside the timed region."""

    @abstractmethod
    def get_outputs(self) -> list[np.ndarray]:
        """Copies of the output tensors of the last inference."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Runtime, version and options, for the report."""

    def device_measurements(self) -> DeviceMeasurements | None:
        """The device's own numbers for the invokes since the last call; None (the default)
        when the host's clock around invoke is the measurement."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook; most runners have nothing to free
        """Release the runtime."""


class InterpreterRunner(Runner):
    """A runner whose runtime describes tensors the way TFLite's Python API does (a list of
    detail dicts, LiteRT's get_input_details() format); TFLite and TFLM both do."""

    def __init__(self, model: ModelFile) -> None:
        super().__init__(model)
        self._in: list[dict[str, Any]] = []
        self._out: list[dict[str, Any]] = []

    @property
    def inputs(self) -> list[TensorInfo]:
        return [TensorInfo.from_litert_detail(d) for d in self._in]

    @property
    def outputs(self) -> list[TensorInfo]:
        return [TensorInfo.from_litert_detail(d, role="output") for d in self._out]
