"""The runner registry: one line per runner, the CLI's choices, the flags each runner takes."""

from __future__ import annotations

import click
import pytest

from edgeprof.cli.run import run as run_command
from edgeprof.errors import InputError
from edgeprof.runners import RUNNER_NAMES, RUNNERS, RunnerOptions, runner_entry
from edgeprof.runners.base import Runner
from edgeprof.runners.mcu import McuOptions
from edgeprof.runners.tflite import TfliteOptions
from edgeprof.runners.tflm import TflmOptions


def test_every_entry_loads_its_class_and_options_type() -> None:
    assert RUNNER_NAMES == ("tflite", "tflm", "mcu")
    for name, entry in RUNNERS.items():
        runner, options = entry.load()
        assert issubclass(runner, Runner)
        assert runner.name == name
        assert callable(options.from_flags)


def test_cli_runner_choices_come_from_the_registry() -> None:
    (param,) = [p for p in run_command.params if p.name == "runner"]
    assert isinstance(param.type, click.Choice)
    assert tuple(param.type.choices) == RUNNER_NAMES


def test_unknown_runner_names_the_known_ones() -> None:
    with pytest.raises(InputError, match=r"unknown runner 'onnx' .*tflite, tflm, mcu"):
        runner_entry("onnx")


def test_each_options_type_takes_its_flags() -> None:
    flags = RunnerOptions(
        runtime="litert",
        threads=2,
        default_delegates=False,
        delegate_options={"k": "v"},
        arena_size=4096,
        board="stm32f446-nucleo",
        port="/dev/ttyACM0",
        baudrate=921_600,
    )
    assert TfliteOptions.from_flags(flags) == TfliteOptions(
        runtime="litert", threads=2, default_delegates=False, delegate_options={"k": "v"}
    )
    assert TflmOptions.from_flags(flags) == TflmOptions(arena_size=4096, probe_arena=True)
    mcu = McuOptions.from_flags(flags)
    assert (mcu.board, mcu.port, mcu.baudrate) == ("stm32f446-nucleo", "/dev/ttyACM0", 921_600)
    assert mcu.flavour == "litert"  # --no-default-delegates: LiteRT's builtin kernels
    assert McuOptions.from_flags(RunnerOptions()).flavour == "xnnpack"
    # the link's patience is the board's unless the options say otherwise
    assert (mcu.timeout_s, mcu.tries, mcu.result_timeout_s) == (None, None, None)


def test_the_float_reference_runs_where_the_runner_says() -> None:
    # The MCU firmware is int8 only: its float twin runs in the host's interpreter.
    assert runner_entry("mcu").reference == "tflite"
    assert runner_entry("tflite").reference == "tflite"
    assert runner_entry("tflm").reference == "tflm"
    assert all(e.reference in RUNNERS for e in RUNNERS.values())
