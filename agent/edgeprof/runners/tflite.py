"""Runner for .tflite models on Linux: LiteRT (ai-edge-litert) or the older tflite-runtime.

LiteRT is the maintained runtime and the default. tflite-runtime 2.14 is what many Raspberry Pi
images still ship; it needs Python <= 3.11 and numpy < 2, so it is only ever an optional extra.
By default LiteRT runs int8 through XNNPACK, which is fast but not bit-exact with the reference
kernels; ``default_delegates=False`` selects BUILTIN_WITHOUT_DEFAULT_DELEGATES, which is.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.metadata
import re
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from edgeprof.errors import InputError, UnavailableError
from edgeprof.runners.base import InterpreterRunner, ModelFile, RunnerOptions

# (runtime name, module with Interpreter, distribution for the version)
RUNTIMES = (
    ("litert", "ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite-runtime", "tflite_runtime.interpreter", "tflite-runtime"),
)


@dataclass(frozen=True)
class TfliteOptions:
    """What the user chose on the command line."""

    runtime: str = "auto"  # "auto", "litert" or "tflite-runtime"
    threads: int | None = None
    default_delegates: bool = True
    delegate: str | None = None  # path of an external delegate .so (libedgetpu.so.1, ...)
    delegate_options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_flags(cls, flags: RunnerOptions) -> TfliteOptions:
        """The runtime, threads and delegates of ``edgeprof run``."""
        return cls(
            runtime=flags.runtime,
            threads=flags.threads,
            default_delegates=flags.default_delegates,
            delegate=flags.delegate,
            delegate_options=dict(flags.delegate_options),
        )


def _import_runtime(choice: str) -> tuple[str, ModuleType, str]:
    tried = []
    for name, module, dist in RUNTIMES:
        if choice not in ("auto", name):
            continue
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            tried.append(f"{name} ({exc})")
            continue
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return name, mod, version
    if choice not in ("auto", *(r[0] for r in RUNTIMES)):
        raise InputError(f"unknown runtime {choice!r} (choose litert, tflite-runtime or auto)")
    raise UnavailableError(
        "no TFLite runtime is installed: pip install 'edgeprof[litert]' (ai-edge-litert) or, on "
        f"Python <= 3.11 with numpy < 2, 'edgeprof[tflite-runtime]'. Tried: {'; '.join(tried)}"
    )


_UNSUPPORTED_OP = re.compile(
    r"(Didn't find op for builtin opcode '[^']*'( version '\d+')?|"
    r"Encountered unresolved custom op: [^.\n]*)"
)


def _explain_failure(model: ModelFile, exc: Exception) -> InputError:
    text = str(exc)
    m = _UNSUPPORTED_OP.search(text)
    if m:
        return InputError(f"{model.path}: unsupported op for this runtime: {m.group(0)}")
    if "not a valid Flatbuffer" in text:
        return InputError(f"{model.path}: not a valid TFLite flatbuffer")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return InputError(f"{model.path}: the runtime refused the model: {first}")


class TfliteRunner(InterpreterRunner):
    """LiteRT / tflite-runtime interpreter, one inference per invoke."""

    name = "tflite"

    def __init__(self, model: ModelFile, options: TfliteOptions | None = None) -> None:
        super().__init__(model)
        self.options = options or TfliteOptions()
        if self.options.threads is not None and self.options.threads < 1:
            raise InputError(f"--threads must be at least 1, not {self.options.threads}")
        self.runtime, self._mod, self.version = _import_runtime(self.options.runtime)
        self._it: Any = None
        self._delegates: list[Any] = []

    def _load_delegate(self) -> list[Any]:
        path = self.options.delegate
        if not path:
            return []
        # Load it ourselves first: when LiteRT's load_delegate fails to open a library its
        # Delegate.__del__ raises again and prints a traceback on stderr.
        try:
            lib = ctypes.CDLL(path)
        except OSError as exc:
            raise InputError(f"delegate {path} failed to load: {exc}") from None
        if not hasattr(lib, "tflite_plugin_create_delegate"):
            raise InputError(
                f"delegate {path} is not a TFLite external delegate "
                "(no tflite_plugin_create_delegate symbol)"
            )
        try:
            return [self._mod.load_delegate(path, dict(self.options.delegate_options))]
        except (OSError, ValueError, RuntimeError) as exc:
            raise InputError(f"delegate {path} failed to load: {exc}") from None

    def prepare(self) -> None:
        """Build the interpreter and allocate tensors."""
        kwargs: dict[str, Any] = {"model_content": self.model.data}
        if self.options.threads is not None:
            kwargs["num_threads"] = self.options.threads
        resolver = getattr(self._mod, "OpResolverType", None)
        if resolver is not None and not self.options.default_delegates:
            kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        elif not self.options.default_delegates:
            raise UnavailableError(
                f"{self.runtime} {self.version} cannot turn default delegates off"
            )
        self._delegates = self._load_delegate()
        if self._delegates:
            kwargs["experimental_delegates"] = self._delegates
        try:
            self._it = self._mod.Interpreter(**kwargs)
            self._it.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise _explain_failure(self.model, exc) from None
        self._in = list(self._it.get_input_details())
        self._out = list(self._it.get_output_details())
        self._invoke = self._it.invoke

    def set_inputs(self, values: dict[str, np.ndarray]) -> None:
        for d in self._in:
            self._it.set_tensor(d["index"], values[d["name"]])

    def invoke(self) -> None:
        self._invoke()

    def get_outputs(self) -> list[np.ndarray]:
        return [np.array(self._it.get_tensor(d["index"])) for d in self._out]

    def describe(self) -> dict[str, Any]:
        return {
            "runner": self.name,
            "runtime": self.runtime,
            "runtime_version": self.version,
            "threads": self.options.threads,
            "default_delegates": self.options.default_delegates,
            "op_resolver": (
                "BUILTIN_WITHOUT_DEFAULT_DELEGATES (reference kernels, bit-exact)"
                if not self.options.default_delegates
                else "AUTO (XNNPACK for float and int8)"
            ),
            "delegate": self.options.delegate,
            "delegate_options": dict(self.options.delegate_options),
        }

    def close(self) -> None:
        self._it = None
        self._invoke = None
        self._delegates = []
