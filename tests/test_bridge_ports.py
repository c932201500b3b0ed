"""Port and USB listing: board matching on constructed data, pyusb's failure paths patched."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import usb.core
from serial.tools.list_ports import comports
from serial.tools.list_ports_common import ListPortInfo

from edgeprof.device.board_registry import Board, load_boards, parse_board
from edgeprof.device.ports import (
    SerialPortInfo,
    UsbDeviceInfo,
    list_serial_ports,
    list_usb_devices,
    match_usb_boards,
    serial_port_info,
)


def cp2102_board(board_id: str) -> Board:
    text = (
        f'schema_version = 1\nid = "{board_id}"\nname = "x"\nfamily = "esp32"\nkind = "mcu"\n'
        'arch = "xtensa"\ncpu = "Xtensa LX6"\ncpu_hz = 1\nsram_bytes = 1\nflash_bytes = 1\n'
        "[[usb]]\nvid = 0x10C4\npid = 0xEA60\n"
    )
    return parse_board(text.encode(), f"{board_id}.toml")


def port(device: str, vid: int | None, pid: int | None) -> ListPortInfo:
    p = ListPortInfo(device, skip_link_detection=True)
    p.vid, p.pid = vid, pid
    p.serial_number = "0671FF3833554B3043164817" if vid else None
    p.manufacturer = "STMicroelectronics" if vid else None
    p.description = "STM32 STLink" if vid else "n/a"
    p.hwid = p.usb_info() if vid else "n/a"
    return p


@pytest.mark.parametrize(
    ("vid", "pid", "expected"),
    [
        (0x0483, 0x374B, ("stm32f446-nucleo",)),
        (0x303A, 0x1001, ("esp32-s3-devkitc-1",)),
        (0x10C4, 0xEA60, ("esp32-devkitc",)),
        (0x046D, 0xC52B, ()),
        (None, None, ()),
    ],
)
def test_match_shipped_boards(vid: int | None, pid: int | None, expected: tuple[str, ...]) -> None:
    assert match_usb_boards(vid, pid) == expected


def test_shared_bridge_gives_candidates_not_a_guess() -> None:
    boards = {b.id: b for b in (cp2102_board("board-b"), cp2102_board("board-a"))}
    info = serial_port_info(port("/dev/ttyUSB0", 0x10C4, 0xEA60), boards)
    assert info.board_candidates == ("board-a", "board-b")
    assert info.board_id is None


def test_serial_port_info_from_pyserial() -> None:
    info = serial_port_info(port("/dev/ttyACM0", 0x0483, 0x374B), load_boards())
    assert info == SerialPortInfo(
        device="/dev/ttyACM0",
        description="STM32 STLink",
        hwid="USB VID:PID=0483:374B SER=0671FF3833554B3043164817",
        vid=0x0483,
        pid=0x374B,
        serial_number="0671FF3833554B3043164817",
        manufacturer="STMicroelectronics",
        board_candidates=("stm32f446-nucleo",),
        board_id="stm32f446-nucleo",
    )


def test_list_serial_ports_sorts_and_matches() -> None:
    ports = [port("/dev/ttyS0", None, None), port("/dev/ttyACM0", 0x0483, 0x374B)]
    infos = list_serial_ports(comports=lambda: ports)
    assert [i.device for i in infos] == ["/dev/ttyACM0", "/dev/ttyS0"]
    assert [i.board_id for i in infos] == ["stm32f446-nucleo", None]


def test_list_serial_ports_on_this_host() -> None:
    # Whatever this host has (usually no boards): real pyserial, no crash, well-typed.
    here = list_serial_ports()
    assert all(isinstance(info, SerialPortInfo) for info in here)
    # A pty of our own, described by pyserial as it describes any port: listed with the host's,
    # in order, with no board (no USB ids), so the per-port path surely ran.
    master, slave = os.openpty()
    try:
        path = os.ttyname(slave)
        infos = list_serial_ports(comports=lambda: [*comports(), ListPortInfo(path)])
    finally:
        os.close(master)
        os.close(slave)
    assert len(infos) == len(here) + 1
    assert [i.device for i in infos] == sorted(i.device for i in infos)
    (mine,) = [i for i in infos if i.device == path]
    assert (mine.vid, mine.pid, mine.board_id, mine.board_candidates) == (None, None, None, ())


def test_usb_without_backend_gives_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_backend(**_: object) -> object:
        raise usb.core.NoBackendError("No backend available")

    monkeypatch.setattr(usb.core, "find", no_backend)
    result = list_usb_devices()
    assert isinstance(result, str)
    assert "libusb" in result


def test_usb_error_gives_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**_: object) -> object:
        raise usb.core.USBError("Access denied")

    monkeypatch.setattr(usb.core, "find", broken)
    result = list_usb_devices()
    assert isinstance(result, str)
    assert "Access denied" in result


def test_usb_devices_matched_from_descriptors(monkeypatch: pytest.MonkeyPatch) -> None:
    # Objects with only what the device descriptor gives: reading a string descriptor fails.
    devices = [
        SimpleNamespace(idVendor=0x303A, idProduct=0x1001, bus=3, address=7),
        SimpleNamespace(idVendor=0x1D6B, idProduct=0x0002, bus=1, address=1),
    ]
    monkeypatch.setattr(usb.core, "find", lambda **_: iter(devices))
    assert list_usb_devices() == [
        UsbDeviceInfo(vid=0x1D6B, pid=0x0002, bus=1, address=1),
        UsbDeviceInfo(
            vid=0x303A,
            pid=0x1001,
            bus=3,
            address=7,
            board_candidates=("esp32-s3-devkitc-1",),
            board_id="esp32-s3-devkitc-1",
        ),
    ]
