"""The reference firmware's host port as a real process on a real pty, and the arithmetic its
``dot`` workload is checked against.

No mocks: the executable is the host port built by CMake (``edgeprof.bridge.firmware_build``,
the code behind ``edgeprof firmware build``); it prints the pty it serves and answers the
protocol there exactly as a board does on its UART. Used by the bridge tests (through
tests/conftest.py) and the bridge benchmark.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeprof.bridge import firmware_build

ENV_BIN = "EDGEPROF_FW_HOST_BIN"  # an already built host firmware (scripts/test: the ASan one)


def host_firmware_binary(build_dir: Path) -> Path:
    """``$EDGEPROF_FW_HOST_BIN``, or the host port built (incrementally) in build_dir."""
    given = os.environ.get(ENV_BIN)
    if given:
        return Path(given)
    result = firmware_build.build_port("host", build_dir, jobs=2)
    return result.image("edgeprof-fw").path


@dataclass
class HostFirmware:
    """A running host firmware: its process and the pty it serves."""

    proc: subprocess.Popen[bytes]
    path: str

    def reset_button(self) -> None:
        """SIGUSR1: the port re-executes itself on the same pty, as a board resets."""
        self.proc.send_signal(signal.SIGUSR1)


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError(f"the host firmware printed no pty path in {timeout} s: {buf!r}")
        chunk = os.read(fd, 256)
        if not chunk:
            raise AssertionError(f"the host firmware exited (status {proc.wait(5)}): {buf!r}")
        buf += chunk
    return buf.decode().strip()


@contextmanager
def host_firmware(binary: Path, board: str | None = None) -> Iterator[HostFirmware]:
    """Start the host firmware; always kill it."""
    cmd = [str(binary)]
    if board:
        cmd += ["--board", board]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, start_new_session=True)
    try:
        path = _read_line(proc, 10.0)
        assert path.startswith("/dev/pts/"), path
        yield HostFirmware(proc, path)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()


def xorshift_bytes(seed: int, n: int) -> np.ndarray:
    """RUN's input PRNG (docs/firmware-protocol.md, section 7)."""
    x = seed or 1
    out = np.empty(n, dtype=np.int8)
    for i in range(n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[i] = np.uint8(x & 0xFF).view(np.int8)
    return out


def dot_reference(rows: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The ``dot`` workload's output: int8 rows of 256 times x, accumulated in int32, >> 10,
    saturated to int8."""
    acc = rows.reshape(-1, 256).astype(np.int32) @ x.astype(np.int32)
    out: np.ndarray = np.clip(acc >> 10, -128, 127).astype(np.int8)
    return out
