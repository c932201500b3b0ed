"""Shared parts of the bridge tests: the host firmware as a real process on a real pty, and a
fault-injecting proxy between two pty pairs.

No mocks: the firmware is the reference firmware's host port built by CMake (through
``edgeprof.bridge.firmware_build``, the code behind ``edgeprof firmware build``), and the
proxy moves real bytes between real pseudo-terminals, damaging them on purpose.
"""

from __future__ import annotations

import os
import random
import select
import shutil
import signal
import subprocess
import threading
import time
import tty
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = ROOT / "build" / "fw-host-tests"
INSTALL_HINT = "apt-get install cmake gcc"


def need_tools() -> None:
    """cmake and a C compiler: a failure in CI, a skip with the install line elsewhere."""
    missing = [t for t in ("cmake", "cc") if shutil.which(t) is None]
    if missing:
        msg = f"needs {', '.join(missing)} ({INSTALL_HINT})"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)


_BUILT: list[Path] = []


def host_firmware_binary() -> Path:
    """The host port's executable, built once per test session (incrementally); or the one
    ``$EDGEPROF_FW_HOST_BIN`` names (scripts/test points it at the ASan/UBSan build)."""
    if _BUILT:
        return _BUILT[0]
    given = os.environ.get("EDGEPROF_FW_HOST_BIN")
    if given:
        _BUILT.append(Path(given))
        return _BUILT[0]
    need_tools()
    from edgeprof.bridge import firmware_build

    result = firmware_build.build_port("host", BUILD_DIR, jobs=2)
    path = result.image("edgeprof-fw").path
    _BUILT.append(path)
    return path


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
def host_firmware(board: str | None = None) -> Iterator[HostFirmware]:
    """Start the host firmware; always kill it."""
    cmd = [str(host_firmware_binary())]
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


@dataclass
class Faults:
    """What the proxy does to each chunk of bytes in one direction (probabilities per chunk)."""

    corrupt: float = 0.0  # flip one bit of one byte
    drop: float = 0.0  # lose the chunk
    duplicate: float = 0.0  # deliver it twice
    delay_max_s: float = 0.0  # wait up to this long before delivering
    garbage: float = 0.0  # insert random bytes (zeros included) before the chunk


@dataclass
class ProxyStats:
    chunks: int = 0
    corrupted: int = 0
    dropped: int = 0
    duplicated: int = 0
    garbage: int = 0
    device_bytes: int = 0


def _raw_fd(path: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    return fd


@dataclass
class FaultProxy:
    """Host <-> [pty pair A] <-> proxy <-> [the firmware's pty] <-> device.

    The host opens ``path``; the proxy forwards each chunk it reads, damaged by the ``Faults``
    of its direction, and presses the firmware's reset button after ``reset_after_bytes``
    bytes have come from the device (once)."""

    firmware: HostFirmware
    to_device: Faults = field(default_factory=Faults)
    to_host: Faults = field(default_factory=Faults)
    seed: int = 0
    reset_after_bytes: int | None = None
    stats: ProxyStats = field(default_factory=ProxyStats)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave  # held open so the master never sees a hang-up between clients
        self._device = _raw_fd(self.firmware.path)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="fault-proxy", daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for fd in (self._master, self._slave, self._device):
            os.close(fd)

    def _damage(self, data: bytes, f: Faults) -> list[bytes]:
        rng, st = self._rng, self.stats
        st.chunks += 1
        if rng.random() < f.drop:
            st.dropped += 1
            return []
        if rng.random() < f.corrupt:
            st.corrupted += 1
            b = bytearray(data)
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            data = bytes(b)
        out = [data]
        if rng.random() < f.garbage:
            st.garbage += 1
            out.insert(0, bytes(rng.choice((0, 1, 0x55, 0xFF)) for _ in range(rng.randint(1, 40))))
        if rng.random() < f.duplicate:
            st.duplicated += 1
            out.append(data)
        if f.delay_max_s:
            time.sleep(rng.random() * f.delay_max_s)
        return out

    def _pump(self) -> None:
        fds = [self._master, self._device]
        while not self._stop.is_set():
            ready, _, _ = select.select(fds, [], [], 0.05)
            for fd in ready:
                try:
                    data = os.read(fd, 512)
                except OSError:
                    continue  # the other side is between opens (a reset re-executes)
                if not data:
                    continue
                if fd == self._device:
                    self.stats.device_bytes += len(data)
                    dest, faults = self._master, self.to_host
                    if (
                        self.reset_after_bytes is not None
                        and self.stats.device_bytes >= self.reset_after_bytes
                    ):
                        self.reset_after_bytes = None
                        self.firmware.reset_button()
                else:
                    dest, faults = self._device, self.to_device
                for piece in self._damage(data, faults):
                    with suppress(OSError):
                        os.write(dest, piece)


@contextmanager
def tcp_bridge(pty_path: str) -> Iterator[str]:
    """A TCP server whose one client is joined to the firmware's pty (as QEMU serves a UART
    on a socket); yields its ``socket://`` URL."""
    import socket

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    dev = _raw_fd(pty_path)
    stop = threading.Event()

    def pump() -> None:
        server.settimeout(10)
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.setblocking(False)
            while not stop.is_set():
                ready, _, _ = select.select([conn.fileno(), dev], [], [], 0.05)
                if conn.fileno() in ready:
                    data = conn.recv(4096)
                    if not data:
                        return
                    os.write(dev, data)
                if dev in ready:
                    with suppress(OSError):
                        conn.sendall(os.read(dev, 4096))

    thread = threading.Thread(target=pump, name="tcp-bridge", daemon=True)
    thread.start()
    try:
        yield f"socket://127.0.0.1:{port}"
    finally:
        stop.set()
        server.close()
        thread.join(10)
        os.close(dev)
