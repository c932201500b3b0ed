"""Run a built firmware under ``qemu-system-arm -M mps2-an386`` and hand back a serial URL.

QEMU outlives its client: a test that fails, a Ctrl-C or a killed Python would otherwise leave
an emulator spinning on a shared machine. So every instance runs in its own process group and
is killed (SIGKILL to the group) by the context manager, by an atexit hook and, where
util-linux's ``setpriv`` exists, by the kernel when this process dies (``--pdeathsig KILL``).

UART0 is a TCP server that waits for its client before the guest starts (``wait=on``), so the
firmware's first bytes are never lost, and it sets TCP_NODELAY (``nodelay=on``): without it a
round trip costs 50 ms instead of a fraction of one. The firmware learns two things through the
semihosting command line: a boot id (under ``-icount`` every boot is otherwise identical) and
whether it runs under ``-icount`` (its SysTick then counts instructions, not cycles).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgeprof.errors import EdgeprofError, InputError, UnavailableError
from edgeprof.lifecycle import StartStop

MACHINE = "mps2-an386"
# -icount shift=3: 8 ns of virtual time per instruction, so a SysTick tick (40 ns at 25 MHz) is
# exactly 5 instructions, which lets the port count instructions exactly (docs/firmware-ports.md).
# QEMU's default sleep=on lets virtual time follow real time while the firmware idles in WFI
# waiting for input, so its read timeouts last about as long as the host expects; while it
# computes, virtual time runs at emulation speed.
DEFAULT_ICOUNT_SHIFT = 3
INSTALL_HINT = "apt-get install --no-install-recommends qemu-system-arm"
_READY = "waiting for connection on:"
_PTY = re.compile(r"char device redirected to (/dev/pts/\d+) \(label uart0\)")
UARTS = ("socket", "pty")
_PORT_TRIES = 5

_live: weakref.WeakSet[QemuMachine] = weakref.WeakSet()
_live_lock = threading.Lock()


def find_qemu() -> str:
    """Path of qemu-system-arm, or UnavailableError saying how to install it."""
    path = shutil.which("qemu-system-arm")
    if path is None:
        raise UnavailableError(f"qemu-system-arm not found ({INSTALL_HINT})")
    return path


def check_firmware(path: Path) -> None:
    """Refuse anything but a 32-bit little-endian Arm ELF before QEMU sees it."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError as exc:
        raise InputError(f"firmware {path}: {exc.strerror or exc}") from None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        raise InputError(f"firmware {path}: not an ELF file")
    if head[4] != 1 or head[5] != 1:
        raise InputError(f"firmware {path}: not a 32-bit little-endian ELF")
    if int.from_bytes(head[18:20], "little") != 40:  # EM_ARM
        raise InputError(f"firmware {path}: not an Arm ELF (build it for qemu-mps2-an386)")


def qemu_command(
    qemu: str,
    firmware: Path,
    tcp_port: int,
    *,
    icount_shift: int | None,
    boot_id: int,
    qmp: Path | None = None,
    uart: str = "socket",
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The qemu-system-arm command line for one run (also what docs/firmware-ports.md shows);
    ``qmp``: a Unix socket for QEMU's machine protocol (used to reset the machine from outside)."""
    semihost = f"enable=on,target=native,arg=edgeprof-fw,arg=bootid={boot_id:08x}"
    cmd = [qemu, "-M", MACHINE, "-nographic", "-monitor", "none", "-nodefaults"]
    if icount_shift is not None:
        cmd += ["-icount", f"shift={icount_shift}"]
        semihost += f",arg=icount={icount_shift}"
    if uart == "pty":
        chardev = "pty,id=uart0"
    else:
        chardev = f"socket,id=uart0,host=127.0.0.1,port={tcp_port},server=on,wait=on,nodelay=on"
    cmd += [
        "-chardev",
        chardev,
        "-serial",
        "chardev:uart0",
        "-semihosting-config",
        semihost,
        "-kernel",
        str(firmware),
    ]
    if qmp is not None:
        cmd += ["-qmp", f"unix:{qmp},server=on,wait=off"]
    cmd += extra_args
    return cmd


def _qmp_reply(f: Any, command: bytes | None) -> dict[str, Any]:
    """Send one QMP command (or none, for the greeting) and read up to its reply, skipping
    asynchronous events; a socket timeout bounds every read."""
    if command is not None:
        f.write(command + b"\n")
        f.flush()
    for _ in range(100):
        line = f.readline()
        if not line:
            raise ValueError("QMP connection closed")
        msg = json.loads(line)
        if not isinstance(msg, dict):
            raise ValueError(f"unexpected QMP message {line[:80]!r}")
        if "error" in msg:
            raise ValueError(str(msg["error"].get("desc", msg["error"])))
        if "return" in msg or (command is None and "QMP" in msg):
            return msg
    raise ValueError("no QMP reply")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class QemuMachine(StartStop):
    """One qemu-system-arm process running one firmware; use as a context manager.

    ``url`` (``socket://127.0.0.1:PORT``) is what pyserial's ``serial_for_url`` and the bridge
    open. ``wait()`` returns the firmware's semihosting exit status.
    """

    def __init__(
        self,
        firmware: Path | str,
        *,
        icount_shift: int | None = DEFAULT_ICOUNT_SHIFT,
        boot_id: int | None = None,
        qemu: str | None = None,
        start_timeout_s: float = 10.0,
        uart: str = "socket",
        extra_args: Sequence[str] = (),
    ) -> None:
        if icount_shift is not None and not 0 <= icount_shift <= 10:
            raise InputError(f"icount shift {icount_shift}: QEMU accepts 0..10")
        if uart not in UARTS:
            raise InputError(f"uart {uart!r}: one of {', '.join(UARTS)}")
        self.uart = uart
        self.pty: str | None = None
        self.firmware = Path(firmware)
        self.icount_shift = icount_shift
        self.boot_id = secrets.randbits(32) if boot_id is None else boot_id & 0xFFFFFFFF
        self._qemu = qemu
        self._start_timeout_s = start_timeout_s
        self._extra_args = tuple(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None  # holds QEMU's log and its QMP socket
        self.tcp_port = 0
        self.command: list[str] = []

    @property
    def url(self) -> str:
        """The serial URL of UART0, valid once started: ``socket://127.0.0.1:PORT``, or the
        pty's path with ``uart="pty"`` (QEMU then notices a new client within about a second,
        and drops what the firmware sends before that)."""
        if self.pty is not None:
            return self.pty
        if not self.tcp_port:
            raise EdgeprofError("QEMU is not started")
        return f"socket://127.0.0.1:{self.tcp_port}"

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The running QEMU process."""
        if self._proc is None:
            raise EdgeprofError("QEMU is not started")
        return self._proc

    @property
    def workdir(self) -> Path | None:
        """The temporary directory with QEMU's log and QMP socket (removed by close())."""
        return self._dir

    @property
    def pid(self) -> int | None:
        """QEMU's process id while it runs (also its process group id)."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> str:
        """Start QEMU and wait until UART0 listens; returns ``url``."""
        if self._proc is not None:
            raise EdgeprofError("QEMU is already started")
        qemu = self._qemu or find_qemu()
        check_firmware(self.firmware)
        last = ""
        for _ in range(_PORT_TRIES):
            port = _free_port()
            if self._launch(qemu, port):
                self.tcp_port = port
                return self.url
            last = self.log_text().strip()
            self.close()
            if self.uart == "pty" or "Address already in use" not in last:
                break
        lines = last.splitlines()
        raise EdgeprofError(f"QEMU did not start: {lines[-1] if lines else 'no message'}")

    def _launch(self, qemu: str, port: int) -> bool:
        """Start one QEMU on ``port``; True once its UART listens, False when it exited."""
        self._dir = Path(tempfile.mkdtemp(prefix="edgeprof-qemu-"))
        self.command = qemu_command(
            qemu,
            self.firmware,
            port,
            icount_shift=self.icount_shift,
            boot_id=self.boot_id,
            qmp=self._dir / "qmp.sock",
            uart=self.uart,
            extra_args=self._extra_args,
        )
        argv = list(self.command)
        setpriv = shutil.which("setpriv")
        if setpriv is not None:
            argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
        fd = os.open(self._dir / "qemu.log", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            os.close(fd)
        with _live_lock:
            _live.add(self)
        deadline = time.monotonic() + self._start_timeout_s
        while time.monotonic() < deadline:
            log = self.log_text()
            if self.uart == "pty" and (m := _PTY.search(log)):
                self.pty = m[1]
                return True
            if self.uart == "socket" and _READY in log:
                return True
            if self._proc.poll() is not None:
                return False
            time.sleep(0.01)
        self.close()
        raise EdgeprofError(
            f"QEMU did not open its UART within {self._start_timeout_s:g} s: {self.log_text()}"
        )

    def log_text(self) -> str:
        """What QEMU wrote on stdout/stderr so far (semihosting output included)."""
        if self._dir is None:
            return ""
        try:
            with open(self._dir / "qemu.log", "rb") as f:
                return f.read(65536).decode("utf-8", "replace")
        except OSError:
            return ""

    def wait(self, timeout_s: float) -> int:
        """Wait for the firmware to end QEMU (semihosting SYS_EXIT); its exit status."""
        if self._proc is None:
            raise EdgeprofError("QEMU is not started")
        try:
            return self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.close()
            raise EdgeprofError(f"QEMU did not exit within {timeout_s:g} s (killed)") from None

    def system_reset(self, timeout_s: float = 10.0) -> None:
        """Reset the emulated machine, as a board's reset button would (QMP ``system_reset``):
        the firmware reboots with a new boot id while the UART connection stays up."""
        if self._proc is None or self._dir is None:
            raise EdgeprofError("QEMU is not started")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout_s)
            try:
                s.connect(str(self._dir / "qmp.sock"))
                f = s.makefile("rwb")
                _qmp_reply(f, None)  # the greeting
                _qmp_reply(f, b'{"execute": "qmp_capabilities"}')
                _qmp_reply(f, b'{"execute": "system_reset"}')
            except (OSError, ValueError) as exc:
                raise EdgeprofError(f"QEMU's QMP refused system_reset: {exc}") from None

    def poll(self) -> int | None:
        """QEMU's exit status, or None while it runs."""
        return None if self._proc is None else self._proc.poll()

    def stop(self) -> None:
        """The end of a ``with`` block: :meth:`close`."""
        self.close()

    def close(self) -> None:
        """Kill QEMU (its whole process group) and wait for it; idempotent."""
        proc = self._proc
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not refused
                proc.kill()
                proc.wait(5)
        self._proc = None
        self.pty = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        with _live_lock:
            _live.discard(self)

    def __del__(self) -> None:
        if getattr(self, "_proc", None) is not None:
            self.close()


@atexit.register
def _kill_all() -> None:
    with _live_lock:
        machines = list(_live)
    for m in machines:
        m.close()
