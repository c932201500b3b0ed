"""Protocol v1 commands against the real host firmware: typed device errors, duplicate
handling, boot ids, version negotiation, timeouts (docs/firmware-protocol.md)."""

from __future__ import annotations

import os
import pty
import tty
import zlib
from typing import Any

import msgpack
import pytest

from edgeprof.bridge.device import Device
from edgeprof.bridge.framing import encode_frame
from edgeprof.bridge.protocol import (
    BadRequestError,
    BootMismatchError,
    DeviceError,
    DeviceTimeoutError,
    ErrorCode,
    Link,
    Msg,
    UnknownWorkloadError,
    UnsupportedFeatureError,
    UploadCorruptError,
    UploadTooLargeError,
    VersionMismatchError,
    WrongStateError,
)
from edgeprof.bridge.transport import open_transport
from edgeprof.errors import InputError
from edgeprof.testing.fault_proxy import tcp_bridge
from edgeprof.testing.host_firmware import HostFirmware

pytestmark = pytest.mark.integration


def raw_request(
    link: Link, msg: int, seq: int, payload: bytes, boot: int = 0
) -> list[tuple[int, int, Any]]:
    """Send one hand-made frame and collect the device's answers for a moment."""
    link.transport.write(encode_frame(msg, seq, boot, payload))
    out: list[tuple[int, int, Any]] = []
    while (f := link.receive(0.3)) is not None:
        out.append((f.type, f.seq, msgpack.unpackb(f.payload) if f.payload else {}))
    return out


def test_no_common_version(fw: HostFirmware) -> None:
    with Device(open_transport(fw.path)) as d:
        link = d.link
        with pytest.raises(VersionMismatchError, match="E_VERSION") as exc:
            link.command(Msg.HELLO, {"v": [7, 8]})
        assert exc.value.detail == 1


def test_typed_errors(dev: Device) -> None:
    link = dev.link
    with pytest.raises(UnknownWorkloadError):
        link.command(Msg.RUN, {"w": "nope"})
    with pytest.raises(BadRequestError, match="E_MALFORMED"):
        link.command(Msg.RUN, {"n": 3})
    with pytest.raises(UploadTooLargeError):
        link.command(Msg.LOAD_BEGIN, {"kind": "model", "size": 1 << 30, "crc": 0})
    with pytest.raises(UnsupportedFeatureError):
        link.command(Msg.LOAD_BEGIN, {"kind": "model", "size": 4, "crc": 0, "slot": "flash"})
    with pytest.raises(WrongStateError):
        link.command(Msg.LOAD_END)
    with pytest.raises(WrongStateError):
        link.command(Msg.RUN, {"w": "dot", "input": "loaded"})
    link.command(Msg.LOAD_BEGIN, {"kind": "input", "size": 4, "crc": zlib.crc32(b"abcd")})
    link.command(Msg.LOAD_DATA, {"o": 0, "d": b"abcx"})
    with pytest.raises(UploadCorruptError) as exc:
        link.command(Msg.LOAD_END)
    assert exc.value.code == ErrorCode.E_LOAD_CRC
    assert exc.value.detail == zlib.crc32(b"abcx")
    with pytest.raises(BadRequestError, match="E_TYPE"):
        link.command(0x3F)
    assert dev.ping() > 0  # none of it upset the session


def test_duplicate_request_is_answered_from_the_cache(dev: Device) -> None:
    link = dev.link
    boot = link.boot or 0
    begin = msgpack.packb({"kind": "input", "size": 3, "crc": zlib.crc32(b"xyz")})
    assert raw_request(link, Msg.LOAD_BEGIN, 900, begin, boot)[0][0] == Msg.LOAD_BEGIN | 0x80
    data = msgpack.packb({"o": 0, "d": b"xyz"})
    first = raw_request(link, Msg.LOAD_DATA, 901, data, boot)
    again = raw_request(link, Msg.LOAD_DATA, 901, data, boot)
    assert first == again == [(Msg.LOAD_DATA | 0x80, 901, {"o": 3})]
    assert dev.telemetry()["dups"] == 1


def test_request_for_an_earlier_boot_is_refused(dev: Device) -> None:
    link = dev.link
    real = link.boot
    assert real is not None
    link.transport.write(encode_frame(Msg.PING, 77, real ^ 0x5A5A5A5A, b""))
    frame = link.receive(1.0)
    assert frame is not None
    assert frame.boot == real  # the device answers with its own boot id
    with pytest.raises(BootMismatchError):
        link.match(frame, Msg.PING, 77)
    assert dev.ping() > 0


def test_malformed_payload_is_refused_not_crashed(dev: Device) -> None:
    link = dev.link
    for payload in (b"\xc1", b"\x81\xa1v", b"\x92\x01\x02", b"\xcb" + b"\x00" * 8):
        (answer,) = raw_request(link, Msg.PING, 1000 + len(payload), payload, link.boot or 0)
        assert answer[0] == Msg.ERROR
        assert answer[2]["code"] == ErrorCode.E_MALFORMED
    assert dev.ping() > 0


def test_silent_port_times_out_with_a_clear_error() -> None:
    master, slave = pty.openpty()
    tty.setraw(slave)
    try:
        with (
            Device(open_transport(os.ttyname(slave)), timeout=0.1, tries=3) as d,
            pytest.raises(DeviceTimeoutError, match=r"no INFO .* after 3 HELLOs"),
        ):
            d.hello()
    finally:
        os.close(master)
        os.close(slave)


def test_stop_ends_a_run_early(dev: Device) -> None:
    got = []
    for r in dev.run("dot", 1000):
        got.append(r.index)
        if len(got) == 3:
            break  # closing the stream sends STOP
    assert got == [0, 1, 2]
    assert dev.stop() is None  # nothing runs any more
    assert dev.ping() > 0


def test_every_error_code_has_a_class() -> None:
    from edgeprof.bridge.protocol import ERROR_CLASSES

    for code in ErrorCode:
        assert issubclass(ERROR_CLASSES[code], DeviceError)


def test_hello_stops_a_run_an_earlier_session_left_behind(fw: HostFirmware) -> None:
    with Device(open_transport(fw.path)) as first:
        first.hello()
        link = first.link
        link.send(Msg.RUN, link.next_seq(), msgpack.packb({"w": "dot", "n": 100}))
        assert link.receive(1.0) is not None  # RUN_STARTED; then the host "crashes"
    with Device(open_transport(fw.path)) as second:
        second.hello()
        _, results = second.run_all("dot", 2)
        assert len(results) == 2


def test_socket_url_reaches_the_device(fw: HostFirmware) -> None:
    """pyserial's socket:// (how QEMU's UART is reached) through the same transport."""
    with tcp_bridge(fw.path) as url, Device(open_transport(url)) as d:
        assert d.hello().board == "host-firmware"
        _, results = d.run_all("dot", 3)
        assert [r.index for r in results] == [0, 1, 2]


def test_usb_without_the_device_is_a_clear_error() -> None:
    from edgeprof.bridge.transport import LinkError

    with pytest.raises(LinkError, match=r"no USB device|no libusb backend"):
        open_transport("usb:ffff:fffe")
    with pytest.raises(InputError, match="usb:VID:PID"):
        open_transport("usb:nothex")
    with pytest.raises(InputError, match="needs a board"):
        open_transport("usb:")


def _run_one(link: Link, seq: int, boot: int) -> int:
    """RUN 'dot' n=1 by hand up to its only RESULT (unacknowledged); returns the RESULT's index."""
    link.transport.write(encode_frame(Msg.RUN, seq, boot, msgpack.packb({"w": "dot", "n": 1})))
    while (f := link.receive(5.0)) is not None:
        assert f.type != Msg.ERROR, msgpack.unpackb(f.payload)
        if f.type == Msg.RESULT and f.seq == seq:
            index: int = msgpack.unpackb(f.payload)["i"]
            return index
    raise AssertionError("no RESULT")


def _answer(link: Link, seq: int) -> tuple[int, Any]:
    """The device's reply to request ``seq`` (RESULT retransmissions of an earlier run skipped)."""
    while (f := link.receive(5.0)) is not None:
        if f.seq == seq:
            return f.type, msgpack.unpackb(f.payload) if f.payload else {}
    raise AssertionError(f"no reply to {seq}")


def test_ack_and_the_next_request_in_one_write(dev: Device) -> None:
    # The ACK that ends a run and the host's next request arrive in one read: the request is
    # handled after the run, not refused E_BUSY as if the run were still going (issue 17, #1).
    link, boot = dev.link, dev.link.boot or 0
    for k in range(5):
        seq = 1000 + 2 * k
        index = _run_one(link, seq, boot)
        ack = encode_frame(Msg.ACK, seq, boot, msgpack.packb({"i": index}))
        ping = encode_frame(Msg.LOAD_BEGIN, seq + 1, boot, msgpack.packb({"kind": "input",
                            "size": 3, "crc": zlib.crc32(b"xyz")}))  # fmt: skip
        link.transport.write(ack + ping)
        assert _answer(link, seq + 1)[0] == Msg.LOAD_BEGIN | 0x80


def test_a_lost_last_ack_is_implied_by_the_next_request(dev: Device) -> None:
    # The last RESULT's ACK never arrives; the host's next request shows it has the RESULT, so
    # the device ends the run and answers the request (issue 17, #2), with nothing lost.
    link, boot = dev.link, dev.link.boot or 0
    _run_one(link, 1100, boot)  # no ACK sent
    index = _run_one(link, 1101, boot)  # the next RUN: started and run, not E_BUSY
    link.transport.write(encode_frame(Msg.ACK, 1101, boot, msgpack.packb({"i": index})))
    results = [r.index for r in dev.run("dot", 3)]  # and the device is usable as usual
    assert results == [0, 1, 2]
