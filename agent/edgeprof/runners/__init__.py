"""Runners: one small interface (prepare, run one inference, describe), several runtimes.

:data:`RUNNERS` is the only place that knows every runner: name -> the runner class and its
options type, imported only when chosen (a runtime such as LiteRT costs a second to import, and
the CLI reads the names at start-up). The CLI's ``--runner`` choices are its keys; the profiler
builds runners with :func:`make_runner`. Adding a runner is one new module (a
:class:`~edgeprof.runners.base.Runner` subclass whose constructor takes the model and its options,
and an options type with ``from_flags``) and one line below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from edgeprof.errors import InputError
from edgeprof.runners.options import FLAG_NAMES, OptionsType, RunnerOptions

if TYPE_CHECKING:
    from edgeprof.runners.base import ModelFile, Runner


@dataclass(frozen=True)
class RunnerEntry:
    """One registered runner: where its class and its options type live."""

    name: str
    module: str
    runner_class: str
    options_class: str
    # The RunnerOptions fields its options type reads (from_flags): any other flag given with
    # this runner would be ignored, so check_flags refuses it.
    takes: frozenset[str]
    # The runner of the float twin (--reference): the same one, or the host's interpreter where
    # the runner's target cannot run float models (the MCU firmware is int8 only).
    reference_runner: str | None = None

    @property
    def reference(self) -> str:
        """The runner name that runs this runner's float reference model."""
        return self.reference_runner or self.name

    def load(self) -> tuple[type[Runner], type[OptionsType]]:
        """Import the module (and with it the runtime's wrapper) and return the two types."""
        mod = importlib.import_module(self.module)
        runner = cast("type[Runner]", getattr(mod, self.runner_class))
        options = cast("type[OptionsType]", getattr(mod, self.options_class))
        if runner.name != self.name:
            raise TypeError(f"{self.module}.{self.runner_class}.name is not {self.name!r}")
        return runner, options


RUNNERS: dict[str, RunnerEntry] = {
    e.name: e
    for e in (
        RunnerEntry(
            "tflite",
            "edgeprof.runners.tflite",
            "TfliteRunner",
            "TfliteOptions",
            frozenset({"runtime", "threads", "default_delegates", "delegate", "delegate_options"}),
        ),
        RunnerEntry(
            "tflm", "edgeprof.runners.tflm", "TflmRunner", "TflmOptions", frozenset({"arena_size"})
        ),
        RunnerEntry(
            "mcu",
            "edgeprof.runners.mcu",
            "McuRunner",
            "McuOptions",
            frozenset({"board", "port", "baudrate", "default_delegates"}),
            "tflite",
        ),
    )
}
RUNNER_NAMES = tuple(RUNNERS)


def runner_entry(name: str) -> RunnerEntry:
    """The registered runner ``name``; InputError naming the known ones otherwise."""
    try:
        return RUNNERS[name]
    except KeyError:
        known = ", ".join(RUNNER_NAMES)
        raise InputError(f"unknown runner {name!r} (choose one of {known})") from None


# The flags the float twin's runner is given (edgeprof.measure.profile.evaluate_quality).
REFERENCE_FLAGS = frozenset({"runtime"})


def check_flags(name: str, options: RunnerOptions, reference: bool = False) -> None:
    """Refuse a flag the runner would ignore (``--board`` without ``--runner mcu`` profiles the
    host; ``--threads`` with ``--runner tflm`` changes nothing), and ``--delegate-option``
    without ``--delegate``: a run must measure what was asked or not run at all. With a float
    ``reference``, the flags its runner is given count as used (``--runtime`` picks the host
    interpreter that runs an MCU run's float twin)."""
    entry = runner_entry(name)
    takes = entry.takes
    if reference:
        takes = takes | (runner_entry(entry.reference).takes & REFERENCE_FLAGS)
    ignored = {
        FLAG_NAMES[f]: " or ".join(e.name for e in RUNNERS.values() if f in e.takes)
        for f in options.given()
        if f not in takes
    }
    if ignored:
        which = "; ".join(f"{flag} is for --runner {users}" for flag, users in ignored.items())
        raise InputError(f"--runner {name} does not use {', '.join(ignored)} ({which})")
    if options.delegate_options and not options.delegate:
        raise InputError("--delegate-option configures a --delegate, and none was given")


def make_runner(name: str, model: ModelFile, options: RunnerOptions | None = None) -> Runner:
    """A runner by name, with the options it takes from ``options`` (the run's flags)."""
    runner_cls, options_cls = runner_entry(name).load()
    factory: Any = runner_cls  # each runner's constructor takes its own options type
    runner: Runner = factory(model, options_cls.from_flags(options or RunnerOptions()))
    return runner


def __getattr__(name: str) -> Any:
    """``ModelFile`` and ``Runner`` on first use: they bring numpy; naming runners must not."""
    if name in ("ModelFile", "Runner"):
        from edgeprof.runners import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "RUNNERS",
    "RUNNER_NAMES",
    "ModelFile",
    "OptionsType",
    "Runner",
    "RunnerEntry",
    "RunnerOptions",
    "check_flags",
    "make_runner",
    "runner_entry",
]
