"""The run's runner flags, and what a runner's own options type must offer the registry.

Kept apart from :mod:`edgeprof.runners.base` (numpy, the tensor model) so that naming and
choosing runners, as the CLI does at start-up, imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Final, Protocol, Self

# RunnerOptions field -> the ``edgeprof run`` flag that sets it (probe_arena has none: internal).
FLAG_NAMES: Final = {
    "runtime": "--runtime",
    "threads": "--threads",
    "default_delegates": "--no-default-delegates",
    "delegate": "--delegate",
    "delegate_options": "--delegate-option",
    "arena_size": "--arena-size",
    "board": "--board",
    "port": "--port",
    "baudrate": "--baud",
}


@dataclass(frozen=True)
class RunnerOptions:
    """The runner flags of ``edgeprof run``, for every runner; each runner's own options type
    takes the ones that concern it (:meth:`OptionsType.from_flags`)."""

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

    def given(self) -> list[str]:
        """The fields set away from their defaults: the flags the user gave, in field order."""
        default = RunnerOptions()
        return [
            f.name
            for f in fields(self)
            if f.name in FLAG_NAMES and getattr(self, f.name) != getattr(default, f.name)
        ]


class OptionsType(Protocol):
    """What a runner's options type offers the registry: built from the ``edgeprof run`` flags."""

    @classmethod
    def from_flags(cls, flags: RunnerOptions) -> Self:
        """The options this runner takes from the command line's flags."""
        ...
