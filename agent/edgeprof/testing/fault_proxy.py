"""A fault-injecting proxy between two pty pairs, and a TCP bridge onto a pty.

Real bytes between real pseudo-terminals, damaged on purpose (bit flips, drops, duplicates,
delays, garbage, a reset button pressed mid-stream), to test that the bridge recovers with exact
numbers or says clearly why not. Works with anything that serves a pty and has a reset button:
the host firmware (:mod:`edgeprof.testing.host_firmware`) or a QEMU board.
"""

from __future__ import annotations

import os
import random
import select
import threading
import time
import tty
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Protocol


class Board(Protocol):
    """What the proxy needs of the device side: its pty and its reset button."""

    path: str

    def reset_button(self) -> None: ...


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

    firmware: Board
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
