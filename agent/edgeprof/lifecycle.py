"""One ``with`` protocol for everything that is started and must always be stopped.

Samplers, monitors, the fake-sysfs writer, child servers and QEMU each have ``start`` and
``stop``; a ``with`` block calls ``start`` on entry and ``stop`` on exit, even when the block
raised, so no thread, process or emulator outlives the code that needed it.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self


class StartStop:
    """Mix-in: ``with obj:`` is ``obj.start()`` ... ``obj.stop()`` (always)."""

    def start(self) -> Any:
        raise NotImplementedError

    def stop(self) -> Any:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
