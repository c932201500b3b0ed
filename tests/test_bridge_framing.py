"""Framing (docs/firmware-protocol.md, section 1): COBS, CRC-32, the streaming decoder.

Pure functions, checked against their definitions with hypothesis; the C side is checked
against the same frames through the real host firmware (test_bridge_host_port.py)."""

from __future__ import annotations

import contextlib
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprof.bridge.framing import (
    OVERHEAD,
    Frame,
    FrameDecoder,
    cobs_decode,
    cobs_encode,
    decode_frame,
    encode_frame,
    wire_size,
)


@given(st.binary(max_size=2000))
def test_cobs_round_trip_has_no_zero_and_bounded_overhead(data: bytes) -> None:
    enc = cobs_encode(data)
    assert 0 not in enc
    assert len(enc) <= len(data) + len(data) // 254 + 1
    assert cobs_decode(enc) == data


def test_cobs_known_vectors() -> None:
    # the examples of Cheshire & Baker / Wikipedia
    assert cobs_encode(b"\x00") == b"\x01\x01"
    assert cobs_encode(b"\x00\x00") == b"\x01\x01\x01"
    assert cobs_encode(b"\x11\x22\x00\x33") == b"\x03\x11\x22\x02\x33"
    assert cobs_encode(b"\x11\x00\x00\x00") == b"\x02\x11\x01\x01\x01"
    block = bytes(range(1, 255))
    assert cobs_encode(block) == b"\xff" + block + b"\x01"
    assert cobs_encode(b"\x00" + block) == b"\x01\xff" + block + b"\x01"


def test_crc_is_zlibs() -> None:
    wire = encode_frame(1, 2, 3, b"")
    raw = cobs_decode(wire[:-1])
    assert int.from_bytes(raw[-4:], "little") == zlib.crc32(raw[:-4])
    assert zlib.crc32(b"123456789") == 0xCBF43926


@given(
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.integers(0, 2**32 - 1),
    st.binary(max_size=600),
)
def test_frame_round_trip(type_: int, seq: int, boot: int, payload: bytes) -> None:
    wire = encode_frame(type_, seq, boot, payload, flags=1)
    assert wire.endswith(b"\x00")
    assert wire.count(0) == 1
    assert len(wire) <= wire_size(len(payload))
    assert decode_frame(wire[:-1]) == Frame(type_, 1, seq, boot, payload)


@settings(max_examples=50)
@given(st.binary(min_size=1, max_size=300), st.data())
def test_every_single_bit_flip_is_refused(payload: bytes, data: st.DataObject) -> None:
    wire = bytearray(encode_frame(0x84, 7, 9, payload))
    at = data.draw(st.integers(0, len(wire) - 2))
    bit = data.draw(st.integers(0, 7))
    wire[at] ^= 1 << bit
    dec = FrameDecoder()
    frames = dec.feed(bytes(wire))
    # a flip may turn a byte into a delimiter, splitting the frame: still nothing accepted
    assert frames == []
    assert dec.bad >= 1 or dec.overflow >= 1


@given(st.lists(st.binary(max_size=80), max_size=6), st.binary(max_size=200))
def test_decoder_resynchronises_after_garbage(garbage: list[bytes], payload: bytes) -> None:
    dec = FrameDecoder()
    good = encode_frame(5, 6, 7, payload)
    stream = b"".join(g + b"\x00" for g in garbage) + good
    frames = []
    for i in range(0, len(stream), 7):  # byte stream split at arbitrary points
        frames += dec.feed(stream[i : i + 7])
    assert frames[-1:] == [Frame(5, 0, 6, 7, payload)]
    # garbage that happens to be a valid frame is astronomically unlikely (CRC-32)
    assert len(frames) == 1


def test_oversized_frame_is_dropped_and_the_next_one_decodes() -> None:
    dec = FrameDecoder(max_payload=64)
    big = encode_frame(1, 1, 1, b"x" * 500)
    small = encode_frame(2, 2, 2, b"ok")
    assert dec.feed(big + small) == [Frame(2, 0, 2, 2, b"ok")]
    assert dec.overflow == 1


def test_short_and_empty_frames() -> None:
    dec = FrameDecoder()
    assert dec.feed(b"\x00\x00\x00") == []
    assert dec.bad == 0  # lone delimiters are not errors
    assert dec.feed(cobs_encode(b"\x01" * (OVERHEAD - 1)) + b"\x00") == []
    assert dec.bad == 1


@given(st.binary(max_size=200))
def test_decoder_and_payload_reader_never_raise_on_garbage(data: bytes) -> None:
    from edgeprof.bridge.protocol import ProtocolViolationError, unpack

    dec = FrameDecoder(max_payload=256)
    for frame in dec.feed(data) + dec.feed(b"\x00"):
        assert isinstance(frame, Frame)
    with contextlib.suppress(ProtocolViolationError):  # the one error it may raise
        assert isinstance(unpack(data, "fuzz"), dict)
