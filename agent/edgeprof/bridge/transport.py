"""Byte links to a device: serial through pyserial (any URL it accepts: ``/dev/ttyACM0``,
``socket://127.0.0.1:PORT``, ``rfc2217://``, a pty) and USB bulk endpoints through pyusb.

The layer below framing: it moves bytes and knows nothing of frames. Every read is bounded by
a timeout; every OS failure becomes a :class:`LinkError` whose message says it is likely the
connection or the driver, not edgeprof.
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from typing import Any

from edgeprof.device.board_registry import Board
from edgeprof.errors import EdgeprofError, InputError

DEFAULT_BAUD = 115_200


class LinkError(EdgeprofError):
    """The byte link failed (port vanished, permission, driver)."""


class Transport(ABC):
    """A bidirectional byte stream to one device."""

    description: str = ""

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Send all bytes."""

    @abstractmethod
    def read(self, timeout: float) -> bytes:
        """Bytes that arrived, waiting at most ``timeout`` s for the first; b"" on timeout."""

    @abstractmethod
    def close(self) -> None:
        """Release the port (idempotent)."""

    def drain_input(self, quiet: float = 0.05, limit: float = 1.0) -> int:
        """Discard what is pending until the link has been quiet for ``quiet`` s (bounded by
        ``limit``); returns the bytes discarded."""
        n = 0
        end = time.monotonic() + limit
        while time.monotonic() < end:
            got = self.read(quiet)
            if not got:
                break
            n += len(got)
        return n

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _link_error(what: str, exc: BaseException) -> LinkError:
    return LinkError(f"{what}: {exc} (likely the connection or its driver, not edgeprof)")


class SerialTransport(Transport):
    """A pyserial port: device path, pty, ``socket://``, ``rfc2217://``, ``loop://``."""

    def __init__(self, url: str, baudrate: int = DEFAULT_BAUD) -> None:
        import serial

        self.description = url
        try:
            self._port: Any = serial.serial_for_url(
                url, baudrate=baudrate, timeout=0.1, write_timeout=5.0, exclusive=None
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise _link_error(f"cannot open {url}", exc) from None
        self._serial = serial

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
            self._port.flush()
        except (self._serial.SerialException, OSError) as exc:
            raise _link_error(f"write to {self.description} failed", exc) from None

    def read(self, timeout: float) -> bytes:
        try:
            self._port.timeout = max(0.0, timeout)
            first = self._port.read(1)
            if not first:
                return b""
            waiting = self._port.in_waiting
            rest = self._port.read(waiting) if waiting else b""
            return bytes(first) + bytes(rest)
        except (self._serial.SerialException, OSError) as exc:
            raise _link_error(f"read from {self.description} failed", exc) from None

    def close(self) -> None:
        port, self._port = getattr(self, "_port", None), None
        if port is not None:
            with contextlib.suppress(self._serial.SerialException, OSError):
                port.close()


class UsbTransport(Transport):
    """The first bulk IN and bulk OUT endpoints of a USB device's interface (boards with
    native USB). VID/PID come from the board definition or the URL ``usb:VID:PID``."""

    def __init__(self, vid: int, pid: int, interface: int = 0) -> None:
        try:
            import usb.core
            import usb.util
        except ImportError as exc:
            raise LinkError(f"USB needs pyusb ({exc})") from None
        self.description = f"usb:{vid:04x}:{pid:04x}"
        self._usb = usb
        try:
            dev = usb.core.find(idVendor=vid, idProduct=pid)
        except usb.core.NoBackendError:
            raise LinkError("no libusb backend available (install libusb-1.0)") from None
        if dev is None:
            raise LinkError(f"no USB device {self.description} found (plugged in? udev rules?)")
        try:
            if dev.is_kernel_driver_active(interface):
                dev.detach_kernel_driver(interface)
            cfg = dev.get_active_configuration()
            intf = cfg[(interface, 0)]
            bulk = usb.util.ENDPOINT_TYPE_BULK

            def find(direction: int) -> Any:
                return usb.util.find_descriptor(
                    intf,
                    custom_match=lambda e: (
                        usb.util.endpoint_direction(e.bEndpointAddress) == direction
                        and usb.util.endpoint_type(e.bmAttributes) == bulk
                    ),
                )

            self._in = find(usb.util.ENDPOINT_IN)
            self._out = find(usb.util.ENDPOINT_OUT)
        except (usb.core.USBError, NotImplementedError) as exc:
            raise _link_error(f"cannot claim {self.description}", exc) from None
        if self._in is None or self._out is None:
            raise LinkError(f"{self.description} has no bulk IN/OUT endpoint pair")
        self._dev = dev

    def write(self, data: bytes) -> None:
        try:
            self._out.write(data, timeout=5000)
        except self._usb.core.USBError as exc:
            raise _link_error(f"write to {self.description} failed", exc) from None

    def read(self, timeout: float) -> bytes:
        try:
            size = max(64, int(self._in.wMaxPacketSize)) * 8
            return bytes(self._in.read(size, timeout=max(1, int(timeout * 1000))))
        except self._usb.core.USBTimeoutError:
            return b""
        except self._usb.core.USBError as exc:
            raise _link_error(f"read from {self.description} failed", exc) from None

    def close(self) -> None:
        dev, self._dev = getattr(self, "_dev", None), None
        if dev is not None:
            self._usb.util.dispose_resources(dev)


def parse_usb_url(url: str) -> tuple[int, int] | None:
    """``usb:0483:5740`` -> (0x0483, 0x5740); ``usb:`` -> None (take the board's ids)."""
    rest = url[len("usb:") :]
    if not rest:
        return None
    try:
        vid_s, pid_s = rest.split(":")
        return int(vid_s, 16), int(pid_s, 16)
    except ValueError:
        raise InputError(f"{url!r}: a USB port is usb:VID:PID in hex, or usb: alone") from None


def open_transport(url: str, board: Board | None = None, baudrate: int = DEFAULT_BAUD) -> Transport:
    """The transport a port string names: ``usb:[VID:PID]`` for USB bulk, anything else for
    pyserial."""
    if url.startswith("usb:"):
        ids = parse_usb_url(url)
        if ids is None:
            if board is None or not board.usb:
                raise InputError("usb: without VID:PID needs a board whose file lists USB ids")
            ids = (board.usb[0].vid, board.usb[0].pid)
        return UsbTransport(*ids)
    if not url:
        raise InputError("--port is empty")
    return SerialTransport(url, baudrate)
