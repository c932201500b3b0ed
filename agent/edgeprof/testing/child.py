"""A server run as a child process for the length of a ``with`` block, always reaped.

The stand-in collector, the real collector and the firmware host port are each started this
way in tests and benchmarks: the child prints one line once it is ready (its port or URL),
``start`` waits for that line with a bound, and ``stop`` terminates, then kills, with bounded
waits, even when the block raised.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
from collections.abc import Sequence

from edgeprof.lifecycle import StartStop


class ChildServer(StartStop):
    """A child process whose first stdout line says it is ready."""

    what = "child process"

    def __init__(self, cmd: Sequence[str], start_timeout_s: float = 30.0) -> None:
        self._cmd = list(cmd)
        self._start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self.ready_line = ""

    def ready(self, line: str) -> bool:
        """Parse the first line; False when it is not what a ready child prints."""
        return bool(line.strip())

    def start(self) -> None:
        """Start the process and wait (bounded) for its first line."""
        proc = subprocess.Popen(
            self._cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: stop() reaches its children too
        )
        self._proc = proc
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], self._start_timeout_s)
        line = proc.stdout.readline() if ready else ""
        if not self.ready(line):
            self.stop()
            raise RuntimeError(
                f"the {self.what} did not start (exit {proc.returncode}, said {line!r})"
            )
        self.ready_line = line.strip()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def kill9(self) -> None:
        """SIGKILL now (crash tests), then reap."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()

    def stop(self) -> None:
        """Terminate, then kill if it lingers; always reaped."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
