"""Runners: one small interface (prepare, run one inference, describe), several runtimes.

This registry is the only place that knows every runner; the CLI and the profiler look runners
up by name with :func:`make_runner`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeprof.errors import InputError
from edgeprof.runners.base import ModelFile, Runner


@dataclass(frozen=True)
class RunnerOptions:
    """Options of every runner; each runner takes the ones that concern it."""

    runtime: str = "auto"
    threads: int | None = None
    default_delegates: bool = True
    delegate: str | None = None
    delegate_options: dict[str, str] = field(default_factory=dict)
    arena_size: int | None = None
    probe_arena: bool = True
    board: str | None = None  # mcu: the board id (boards/<id>.toml)
    port: str | None = None  # mcu: /dev/ttyACM0, socket://HOST:PORT, rfc2217://..., usb:
    baudrate: int = 115_200  # mcu, serial ports


RUNNER_NAMES = ("tflite", "tflm", "mcu")


def make_runner(name: str, model: ModelFile, options: RunnerOptions | None = None) -> Runner:
    """A runner by name (imports its runtime only when chosen)."""
    opts = options or RunnerOptions()
    if name == "tflite":
        from edgeprof.runners.tflite import TfliteOptions, TfliteRunner

        return TfliteRunner(
            model,
            TfliteOptions(
                runtime=opts.runtime,
                threads=opts.threads,
                default_delegates=opts.default_delegates,
                delegate=opts.delegate,
                delegate_options=dict(opts.delegate_options),
            ),
        )
    if name == "tflm":
        from edgeprof.runners.tflm import TflmRunner

        return TflmRunner(model, arena_size=opts.arena_size, probe_arena=opts.probe_arena)
    if name == "mcu":
        from edgeprof.runners.mcu import McuOptions, McuRunner

        # The blob reproduces LiteRT's kernels: XNNPACK's by default, as a Linux run of the
        # same file uses, or the builtin ones with --no-default-delegates.
        return McuRunner(
            model,
            McuOptions(
                board=opts.board,
                port=opts.port,
                baudrate=opts.baudrate,
                flavour="xnnpack" if opts.default_delegates else "litert",
            ),
        )
    raise InputError(f"unknown runner {name!r} (choose one of {', '.join(RUNNER_NAMES)})")


__all__ = ["RUNNER_NAMES", "ModelFile", "Runner", "RunnerOptions", "make_runner"]
