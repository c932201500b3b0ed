"""Protocol v1 as commands (docs/firmware-protocol.md), in the shape of esptool's loader: a
message table, one :meth:`Link.command` that numbers, sends, retransmits and matches a request
with its reply, and device errors turned into typed exceptions. Everything above speaks in
commands, never in bytes.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import msgpack

from edgeprof.bridge.framing import MIN_MAX_PAYLOAD, Frame, FrameDecoder, encode_frame
from edgeprof.bridge.transport import LinkError, Transport
from edgeprof.errors import EdgeprofError

PROTOCOL_VERSIONS = (1,)  # what this host speaks, newest last
REPLY = 0x80


class Msg(IntEnum):
    """Message types (section 3). A reply's type is its request's | 0x80."""

    HELLO = 0x01
    PING = 0x02
    LOAD_BEGIN = 0x03
    LOAD_DATA = 0x04
    LOAD_END = 0x05
    RUN = 0x06
    ACK = 0x07
    STOP = 0x08
    RESET = 0x09
    TELEMETRY = 0x0A
    RESULT = 0xA0
    BOOT = 0xA1
    ERROR = 0xFF


class ErrorCode(IntEnum):
    """Device error codes (section 9)."""

    E_VERSION = 1
    E_TYPE = 2
    E_MALFORMED = 3
    E_TOO_LARGE = 4
    E_RANGE = 5
    E_LOAD_CRC = 6
    E_STATE = 7
    E_WORKLOAD = 8
    E_MODEL = 9
    E_BOOT = 10
    E_UNSUPPORTED = 11
    E_BUSY = 12
    E_INPUT = 13
    E_TIMEOUT = 14


class DeviceError(EdgeprofError):
    """The device refused a request; ``code`` says why (ErrorCode or an unknown int)."""

    def __init__(self, command: str, code: int, message: str, detail: int | None) -> None:
        self.command, self.code, self.device_message, self.detail = command, code, message, detail
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = f"error {code}"
        extra = f" (detail {detail})" if detail is not None else ""
        super().__init__(f"device refused {command}: {name}: {message}{extra}")


class VersionMismatchError(DeviceError):
    """No protocol version in common."""


class BadRequestError(DeviceError):
    """The device did not understand a request (a host/firmware mismatch)."""


class UploadTooLargeError(DeviceError):
    """The upload does not fit the device's buffer."""


class UploadCorruptError(DeviceError):
    """The uploaded bytes' CRC differs on the device."""


class WrongStateError(DeviceError):
    """Not possible now (no model loaded, LOAD_DATA without LOAD_BEGIN, ...)."""


class UnknownWorkloadError(DeviceError):
    """The firmware has no such workload."""


class ModelRefusedError(DeviceError):
    """The workload refused its data (the model blob) or failed to run."""


class BootMismatchError(DeviceError):
    """The request was meant for an earlier boot of the device."""


class UnsupportedFeatureError(DeviceError):
    """A feature this port does not have."""


class DeviceBusyError(DeviceError):
    """The device is running; STOP first."""


class InputMismatchError(DeviceError):
    """The uploaded input's size differs from the workload's input."""


class DeviceGaveUpError(DeviceError):
    """The device stopped waiting for the host."""


ERROR_CLASSES: dict[int, type[DeviceError]] = {
    ErrorCode.E_VERSION: VersionMismatchError,
    ErrorCode.E_TYPE: BadRequestError,
    ErrorCode.E_MALFORMED: BadRequestError,
    ErrorCode.E_TOO_LARGE: UploadTooLargeError,
    ErrorCode.E_RANGE: BadRequestError,
    ErrorCode.E_LOAD_CRC: UploadCorruptError,
    ErrorCode.E_STATE: WrongStateError,
    ErrorCode.E_WORKLOAD: UnknownWorkloadError,
    ErrorCode.E_MODEL: ModelRefusedError,
    ErrorCode.E_BOOT: BootMismatchError,
    ErrorCode.E_UNSUPPORTED: UnsupportedFeatureError,
    ErrorCode.E_BUSY: DeviceBusyError,
    ErrorCode.E_INPUT: InputMismatchError,
    ErrorCode.E_TIMEOUT: DeviceGaveUpError,
}


class DeviceTimeoutError(LinkError):
    """No valid reply within the timeout, after every retransmission."""


class DeviceResetError(EdgeprofError):
    """The device restarted (its boot id changed): uploads are gone, a run ended."""


class ProtocolViolationError(EdgeprofError):
    """The device sent something protocol v1 does not allow (a firmware bug, not the wire:
    wire damage fails the CRC and is retransmitted)."""


def msg_name(msg: int) -> str:
    """A message type's name, or its number when this host does not know it."""
    try:
        return Msg(msg).name
    except ValueError:
        return f"type {msg:#04x}"


def pack(fields: dict[str, Any] | None) -> bytes:
    """A request payload (an empty map packs to nothing)."""
    return msgpack.packb(fields, use_bin_type=True) if fields else b""


def unpack(payload: bytes, what: str) -> dict[str, Any]:
    """A device payload as a dict with str keys; ProtocolViolationError otherwise."""
    if not payload:
        return {}
    try:
        value = msgpack.unpackb(payload, raw=False, strict_map_key=True, use_list=True)
    except (ValueError, msgpack.UnpackException) as exc:
        raise ProtocolViolationError(f"{what}: payload is not msgpack ({exc})") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ProtocolViolationError(f"{what}: payload is not a map with string keys")
    return value


def want_int(d: dict[str, Any], key: str, what: str, lo: int = 0, hi: int = 2**64 - 1) -> int:
    """d[key] as an int in [lo, hi]; ProtocolViolationError names the key otherwise."""
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ProtocolViolationError(
            f"{what}: {key!r} must be an integer in [{lo}, {hi}], got {v!r}"
        )
    return v


def want_str(d: dict[str, Any], key: str, what: str) -> str:
    v = d.get(key)
    if not isinstance(v, str):
        raise ProtocolViolationError(f"{what}: {key!r} must be a string, got {v!r}")
    return v


@dataclass
class LinkStats:
    """Counters of one link, for telemetry and the benchmarks."""

    requests: int = 0
    retransmits: int = 0
    stale_frames: int = 0  # device frames that answered nothing outstanding
    tx_wire_bytes: int = 0
    tx_payload_bytes: int = 0
    rx_wire_bytes: int = 0
    rx_payload_bytes: int = 0
    last_rtt_s: float = 0.0


class Link:
    """Frames over a transport: sequence numbers, retransmission, reply matching, reset
    detection by boot id. One request outstanding at a time."""

    def __init__(self, transport: Transport, *, timeout: float = 0.5, tries: int = 6) -> None:
        self.transport = transport
        self.timeout = timeout
        self.tries = tries
        self.boot: int | None = None  # the device's boot id, once INFO told it
        self.max_payload = MIN_MAX_PAYLOAD
        self.decoder = FrameDecoder()
        self.stats = LinkStats()
        self._pending: deque[Frame] = deque()
        self._seq = 0

    def next_seq(self) -> int:
        self._seq = self._seq % 0xFFFF + 1  # 1..65535; 0 is BOOT's
        return self._seq

    def send(self, type_: int, seq: int, payload: bytes) -> bytes:
        """Send one frame; returns its wire bytes (to retransmit them unchanged)."""
        if len(payload) > self.max_payload:
            raise EdgeprofError(
                f"{msg_name(type_)} payload of {len(payload)} bytes exceeds the device's "
                f"{self.max_payload}"
            )
        wire = encode_frame(type_, seq, self.boot or 0, payload)
        self.write(wire, len(payload))
        return wire

    def write(self, wire: bytes, payload_len: int) -> None:
        self.transport.write(wire)
        self.stats.tx_wire_bytes += len(wire)
        self.stats.tx_payload_bytes += payload_len

    def receive(self, timeout: float) -> Frame | None:
        """The next frame from the device within ``timeout`` s, or None. Raises DeviceResetError
        when the frame shows the device restarted."""
        deadline = time.monotonic() + timeout
        while not self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            data = self.transport.read(left)
            self.stats.rx_wire_bytes += len(data)
            for f in self.decoder.feed(data):
                if f.from_device:  # our own bytes echoed by a misconfigured tty are not
                    self._pending.append(f)
        frame = self._pending.popleft()
        self.stats.rx_payload_bytes += len(frame.payload)
        self._check_boot(frame)
        return frame

    def _check_boot(self, frame: Frame) -> None:
        if self.boot is None or frame.boot == self.boot:
            return
        old, self.boot = self.boot, None
        self._pending.clear()
        raise DeviceResetError(
            f"the device restarted (boot id {old:#010x} -> {frame.boot:#010x}): its uploads "
            "are gone and any run in progress ended"
        )

    def command(
        self,
        msg: Msg | int,
        fields: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        tries: int | None = None,
    ) -> dict[str, Any]:
        """Send one request and return its reply's fields; retransmits on timeout, raises the
        device's error as a typed DeviceError."""
        seq = self.next_seq()
        payload = pack(fields)
        wait = self.timeout if timeout is None else timeout
        attempts = self.tries if tries is None else tries
        self.stats.requests += 1
        wire = self.send(msg, seq, payload)
        for attempt in range(attempts):
            if attempt:
                self.stats.retransmits += 1
                self.write(wire, len(payload))
            t0 = time.perf_counter()
            deadline = time.monotonic() + wait
            while (left := deadline - time.monotonic()) > 0:
                frame = self.receive(left)
                if frame is None:
                    break
                reply = self.match(frame, msg, seq)
                if reply is not None:
                    self.stats.last_rtt_s = time.perf_counter() - t0
                    return reply
        raise DeviceTimeoutError(
            f"no reply to {msg_name(msg)} from {self.transport.description} after {attempts} tries "
            f"of {wait:g} s (device not running edgeprof firmware, wrong port or baud rate?)"
        )

    def match(self, frame: Frame, msg: Msg | int, seq: int) -> dict[str, Any] | None:
        """The fields of ``frame`` if it answers request (msg, seq); raises its error; None
        (counted as stale) if it answers something else."""
        if frame.seq != seq or frame.type not in (msg | REPLY, Msg.ERROR):
            self.stats.stale_frames += 1
            return None
        fields = unpack(frame.payload, f"{msg_name(msg)} reply")
        if frame.type == Msg.ERROR:
            raise device_error(msg_name(msg), fields)
        return fields


def device_error(command: str, fields: dict[str, Any]) -> DeviceError:
    """The typed exception for an ERROR payload."""
    code = fields.get("code")
    message = fields.get("msg")
    detail = fields.get("detail")
    if not isinstance(code, int):
        return DeviceError(command, 0, f"malformed ERROR payload {fields!r}", None)
    cls = ERROR_CLASSES.get(code, DeviceError)
    return cls(
        command,
        code,
        message if isinstance(message, str) else "",
        detail if isinstance(detail, int) and not isinstance(detail, bool) else None,
    )
