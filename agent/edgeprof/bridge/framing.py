"""Protocol v1 frames (docs/firmware-protocol.md, section 1): header, msgpack payload, CRC-32,
COBS, a 0x00 delimiter.

Two small functions and a streaming decoder, in the manner of esptool's SLIP helpers. The
decoder hands out only frames whose CRC matches; everything else is counted and dropped, and a
receiver resynchronises on the next delimiter after garbage.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

HEADER = struct.Struct("<BBHI")  # type, flags, seq, boot
CRC = struct.Struct("<I")
OVERHEAD = HEADER.size + CRC.size
FLAG_DEVICE = 0x01
MIN_MAX_PAYLOAD = 256  # every device accepts this much; the host sends no more before INFO


@dataclass(frozen=True)
class Frame:
    """One decoded frame with a good CRC."""

    type: int
    flags: int
    seq: int
    boot: int
    payload: bytes

    @property
    def from_device(self) -> bool:
        return bool(self.flags & FLAG_DEVICE)


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode (no delimiter): the result holds no 0x00 byte."""
    out = bytearray()
    for part in data.split(b"\x00"):  # each part but the last ended in a zero
        i = 0
        while len(part) - i >= 254:
            out.append(255)
            out += part[i : i + 254]
            i += 254
        out.append(len(part) - i + 1)
        out += part[i:]
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Decode COBS (no delimiter); ValueError when it is not valid COBS."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        i += 1
        if code == 0 or i + code - 1 > n:
            raise ValueError("invalid COBS code byte")
        block = data[i : i + code - 1]
        if 0 in block:
            raise ValueError("zero byte inside a COBS block")
        out += block
        i += code - 1
        if code != 255 and i < n:
            out.append(0)
    return bytes(out)


def encode_frame(type_: int, seq: int, boot: int, payload: bytes, flags: int = 0) -> bytes:
    """The wire bytes of one frame, delimiter included."""
    body = HEADER.pack(type_, flags, seq & 0xFFFF, boot & 0xFFFFFFFF) + payload
    return cobs_encode(body + CRC.pack(zlib.crc32(body))) + b"\x00"


def decode_frame(encoded: bytes) -> Frame | None:
    """One frame from its COBS bytes (no delimiter), or None if it is not a valid frame."""
    try:
        raw = cobs_decode(encoded)
    except ValueError:
        return None
    if len(raw) < OVERHEAD:
        return None
    body, (crc,) = raw[: -CRC.size], CRC.unpack(raw[-CRC.size :])
    if zlib.crc32(body) != crc:
        return None
    type_, flags, seq, boot = HEADER.unpack(body[: HEADER.size])
    return Frame(type_, flags, seq, boot, bytes(body[HEADER.size :]))


def wire_size(payload_len: int) -> int:
    """Bytes on the wire for a payload of this length, delimiter included (worst case: COBS
    adds one byte per 254, plus one)."""
    n = payload_len + OVERHEAD
    return n + n // 254 + 2


class FrameDecoder:
    """Bytes in, good frames out. A frame longer than ``max_frame`` (decoded bytes) is
    dropped whole; the next delimiter starts afresh."""

    def __init__(self, max_payload: int = 65536) -> None:
        self.max_encoded = wire_size(max_payload)
        self._buf = bytearray()
        self._discarding = False
        self.good = 0
        self.bad = 0  # bad CRC, bad COBS, too short
        self.overflow = 0

    def feed(self, data: bytes) -> list[Frame]:
        """Frames completed by ``data``, in order."""
        frames: list[Frame] = []
        start = 0
        while start <= len(data):
            end = data.find(b"\x00", start)
            chunk = data[start:] if end < 0 else data[start:end]
            if not self._discarding:
                self._buf += chunk
                if len(self._buf) > self.max_encoded:
                    self.overflow += 1
                    self._discarding = True
                    self._buf.clear()
            if end < 0:
                break
            if self._discarding:
                self._discarding = False
            elif self._buf:
                frame = decode_frame(bytes(self._buf))
                if frame is None:
                    self.bad += 1
                else:
                    self.good += 1
                    frames.append(frame)
            self._buf.clear()
            start = end + 1
        return frames
