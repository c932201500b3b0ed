"""Which serial ports and USB devices might be boards edgeprof knows.

A USB VID/PID names the bridge chip or debug probe, not the board: an ST-LINK/V2-1 sits on
every Nucleo-64, a CP2102 on countless boards. So a match yields candidate board ids, and
``board_id`` is set only when exactly one board claims the pair.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from edgeprof.device.board_registry import Board, load_boards


@dataclass(frozen=True)
class SerialPortInfo:
    """One serial port as pyserial reports it, plus the boards its USB ids suggest."""

    device: str
    description: str
    hwid: str
    vid: int | None
    pid: int | None
    serial_number: str | None
    manufacturer: str | None
    board_candidates: tuple[str, ...] = ()
    board_id: str | None = None  # set only when exactly one board claims vid:pid


@dataclass(frozen=True)
class UsbDeviceInfo:
    """One USB device from its device descriptor only (string descriptors need permissions
    and can hang on a wedged device, so they are never read)."""

    vid: int
    pid: int
    bus: int | None
    address: int | None
    board_candidates: tuple[str, ...] = ()
    board_id: str | None = None


def match_usb_boards(
    vid: int | None, pid: int | None, boards: Mapping[str, Board] | None = None
) -> tuple[str, ...]:
    """Ids of the boards that list ``vid:pid`` among their USB ids, sorted."""
    if vid is None or pid is None:
        return ()
    boards = load_boards() if boards is None else boards
    return tuple(
        sorted(b.id for b in boards.values() if any(u.vid == vid and u.pid == pid for u in b.usb))
    )


def list_serial_ports(
    boards: Mapping[str, Board] | None = None,
    comports: Callable[[], Iterable[Any]] | None = None,
) -> list[SerialPortInfo]:
    """Serial ports on this host, sorted by device; ``comports`` replaces pyserial's in tests."""
    if comports is None:
        from serial.tools import list_ports  # a declared dependency; imported late to keep
        # the board-matching half of this module usable without it

        comports = list_ports.comports
    boards = load_boards() if boards is None else boards
    return sorted((serial_port_info(p, boards) for p in comports()), key=lambda p: p.device)


def serial_port_info(port: Any, boards: Mapping[str, Board] | None = None) -> SerialPortInfo:
    """Convert one pyserial ``ListPortInfo`` (or anything with its attributes)."""
    vid, pid = _opt_int(getattr(port, "vid", None)), _opt_int(getattr(port, "pid", None))
    candidates = match_usb_boards(vid, pid, boards)
    return SerialPortInfo(
        device=str(port.device),
        description=_opt_str(getattr(port, "description", None)) or "",
        hwid=_opt_str(getattr(port, "hwid", None)) or "",
        vid=vid,
        pid=pid,
        serial_number=_opt_str(getattr(port, "serial_number", None)),
        manufacturer=_opt_str(getattr(port, "manufacturer", None)),
        board_candidates=candidates,
        board_id=candidates[0] if len(candidates) == 1 else None,
    )


def list_usb_devices(boards: Mapping[str, Board] | None = None) -> list[UsbDeviceInfo] | str:
    """USB devices on this host, or a short reason why they cannot be listed."""
    try:
        import usb.core
    except ImportError:
        return "pyusb is not installed"
    try:
        devices = list(usb.core.find(find_all=True))
    except usb.core.NoBackendError:
        return "no libusb backend available (install libusb-1.0)"
    except (usb.core.USBError, OSError) as e:
        return f"USB enumeration failed: {e}"
    boards = load_boards() if boards is None else boards
    out = []
    for dev in devices:
        vid = _opt_int(getattr(dev, "idVendor", None))
        pid = _opt_int(getattr(dev, "idProduct", None))
        if vid is None or pid is None:
            continue
        candidates = match_usb_boards(vid, pid, boards)
        out.append(
            UsbDeviceInfo(
                vid=vid,
                pid=pid,
                bus=_opt_int(getattr(dev, "bus", None)),
                address=_opt_int(getattr(dev, "address", None)),
                board_candidates=candidates,
                board_id=candidates[0] if len(candidates) == 1 else None,
            )
        )
    return sorted(out, key=lambda d: (d.bus or 0, d.address or 0, d.vid, d.pid))


def _opt_int(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _opt_str(v: object) -> str | None:
    return str(v) if v is not None else None
