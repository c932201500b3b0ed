"""Runner for the TensorFlow Lite Micro interpreter (the ``tflite-micro`` package).

It runs the same kernels an MCU would, and it tells how much tensor arena a model needs. Three
traps, each handled here: invoke holds the GIL (the native sampler does not care; Python
threads do); the arena TFLM reports is sometimes smaller than what per-channel models really
need, so the minimum is found by bisection; and a too-small arena can crash the process instead
of raising, so every probe runs in a forked child.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import re
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeprof.errors import InputError, UnavailableError
from edgeprof.runners.base import InterpreterRunner, ModelFile, RunnerOptions

PROBE_TIMEOUT_S = 20.0
ARENA_ALIGN = 16
MAX_ARENA = 256 << 20
_REPORTED = re.compile(rb"Arena allocation total (\d+) bytes")


def _runtime() -> Any:
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as exc:
        raise UnavailableError(
            f"tflite-micro is not installed: pip install 'edgeprof[tflm]' ({exc})"
        ) from None
    return runtime


def _version() -> str:
    try:
        return importlib.metadata.version("tflite-micro")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _zeros(details: dict[str, Any]) -> np.ndarray:
    return np.zeros(tuple(int(x) for x in details["shape"]), dtype=details["dtype"])


def _child_invoke(data: bytes, arena: int) -> None:
    """In a forked child: build with this arena, run one inference, exit 0 (or not at all)."""
    code = 1
    try:
        rt = _runtime()
        it = rt.Interpreter.from_bytes(data, arena_size=arena)
        i = 0
        while True:
            try:
                it.set_input(_zeros(it.get_input_details(i)), i)
            except (IndexError, ValueError, RuntimeError):
                break
            i += 1
        it.invoke()
        code = 0
    finally:
        os._exit(code)


def arena_fits(data: bytes, arena: int, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether one inference succeeds with this arena size, in a child that may crash."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    pid = os.fork()
    if pid == 0:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        _child_invoke(data, arena)
    os.close(devnull)
    deadline = time.monotonic() + timeout_s
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status) == 0
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return False
        time.sleep(0.002)


def find_min_arena(data: bytes) -> int:
    """The smallest arena (to ARENA_ALIGN bytes) with which one inference succeeds."""
    hi = max(4096, len(data) * 2)
    while not arena_fits(data, hi):
        if hi >= MAX_ARENA:
            raise InputError(
                f"TFLM could not run the model even with a {MAX_ARENA >> 20} MiB arena"
            )
        hi *= 2
    lo = 0  # known to fail
    while hi - lo > ARENA_ALIGN:
        mid = (lo + hi) // 2 // ARENA_ALIGN * ARENA_ALIGN
        if mid <= lo:
            break
        if arena_fits(data, mid):
            hi = mid
        else:
            lo = mid
    return hi


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[bytes]]:
    """Capture what C code writes to fd 2 (TFLM prints its allocations there)."""
    out: list[bytes] = []
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read())


@dataclass(frozen=True)
class TflmOptions:
    """The arena: a given size, and whether to find the real minimum first."""

    arena_size: int | None = None
    probe_arena: bool = True

    @classmethod
    def from_flags(cls, flags: RunnerOptions) -> TflmOptions:
        """``--arena-size`` (the reference run of a quality check skips the probe)."""
        return cls(arena_size=flags.arena_size, probe_arena=flags.probe_arena)


class TflmRunner(InterpreterRunner):
    """TFLite Micro's interpreter on the host."""

    name = "tflm"

    def __init__(self, model: ModelFile, options: TflmOptions | None = None) -> None:
        super().__init__(model)
        opts = options or TflmOptions()
        if opts.arena_size is not None and opts.arena_size <= 0:
            raise InputError(f"--arena-size must be positive, not {opts.arena_size}")
        self._rt = _runtime()
        self.arena_size = opts.arena_size
        self.probe_arena = opts.probe_arena
        self.arena_min: int | None = None
        self.arena_reported: int | None = None
        self._it: Any = None

    def probe(self) -> None:
        """Find the real minimum arena, in forked children (before the timed load)."""
        if self.probe_arena and self.arena_min is None:
            self.arena_min = find_min_arena(self.model.data)

    def prepare(self) -> None:
        """Build the interpreter for the run, with an arena the probe showed to be enough."""
        self.probe()
        arena = self.arena_size or max(len(self.model.data) * 10, (self.arena_min or 0) * 2)
        if self.arena_min is not None and arena < self.arena_min:
            raise InputError(
                f"--arena-size {arena} is smaller than the {self.arena_min} bytes this model needs"
            )
        if not self.probe_arena and not arena_fits(self.model.data, arena):
            raise InputError(f"{self.model.path}: TFLM fails with a {arena}-byte arena")
        try:
            self._it = self._rt.Interpreter.from_bytes(self.model.data, arena_size=arena)
        except (ValueError, RuntimeError) as exc:
            raise InputError(f"{self.model.path}: TFLM refused the model: {exc}") from None
        self.arena_used = arena
        # TFLM prints "index out of range" on C stderr when enumeration runs past the end.
        with _captured_stderr():
            self._in = self._details(self._it.get_input_details)
            self._out = self._details(self._it.get_output_details)
        self._invoke = self._it.invoke

    @staticmethod
    def _details(get: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        i = 0
        while True:
            try:
                d = dict(get(i))
            except (IndexError, ValueError, RuntimeError):
                return out
            d.setdefault("name", f"{'input' if 'input' in get.__name__ else 'output'}_{i}")
            d["index"] = i
            d.setdefault("shape_signature", d["shape"])
            q = d.get("quantization_parameters", {})
            scales = q.get("scales", [])
            zps = q.get("zero_points", [])
            d["quantization"] = (float(scales[0]), int(zps[0])) if len(scales) == 1 else (0.0, 0)
            out.append(d)
            i += 1

    def read_reported_arena(self) -> int | None:
        """TFLM's own account of the arena after an inference (RecordingMicroAllocator)."""
        with _captured_stderr() as captured:
            self._it.print_allocations()
        m = _REPORTED.search(b"".join(captured))
        self.arena_reported = int(m.group(1)) if m else None
        return self.arena_reported

    def set_inputs(self, values: dict[str, np.ndarray]) -> None:
        for d in self._in:
            self._it.set_input(values[d["name"]], d["index"])

    def invoke(self) -> None:
        self._invoke()

    def get_outputs(self) -> list[np.ndarray]:
        return [np.array(self._it.get_output(d["index"])) for d in self._out]

    def describe(self) -> dict[str, Any]:
        if self._it is not None and self.arena_reported is None:
            self.read_reported_arena()
        return {
            "runner": self.name,
            "runtime": "tflite-micro",
            "runtime_version": _version(),
            "arena_bytes": getattr(self, "arena_used", self.arena_size),
            "arena_min_bytes": self.arena_min,
            "arena_min_method": "bisection, one inference per probe in a forked child",
            "arena_reported_bytes": self.arena_reported,
            "holds_gil_during_invoke": True,
        }

    def close(self) -> None:
        self._it = None
        self._invoke = None
