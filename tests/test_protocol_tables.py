"""The protocol's tables are written twice, in C for the firmware (core/ep_proto.h) and in Python
for the host (edgeprof.bridge.protocol and framing): message types, error codes and the frame
constants must be the same names with the same numbers, or a device's ERROR 7 reads as the
wrong exception. The header is parsed here, as test_build_preflight checks the cffi cdef
against native/include/edgeprof.h; a change on either side alone fails this test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgeprof.bridge import framing, protocol
from edgeprof.bridge.protocol import ErrorCode, Msg

pytestmark = pytest.mark.unit

HEADER = Path(__file__).resolve().parent.parent / "firmware_bridge/firmware/core/ep_proto.h"
ENTRY = re.compile(r"^([A-Z][A-Z0-9_]*)\s*=\s*(0[xX][0-9A-Fa-f]+|\d+)u?$")
DEFINE = re.compile(r"^#define\s+([A-Z][A-Z0-9_]*)\s+(0[xX][0-9A-Fa-f]+|\d+)u?\b", re.M)


def header_text() -> str:
    """ep_proto.h without its comments."""
    text = HEADER.read_text()
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))


def c_enum(name: str) -> dict[str, int]:
    """``enum name { A = 1, B = 0x02, ... };`` as a dict. Every enumerator must carry its value
    explicitly: an implicit one would be a number this parser (and a reader) has to guess."""
    match = re.search(rf"\benum\s+{name}\s*\{{(.*?)\}}\s*;", header_text(), flags=re.S)
    assert match, f"{HEADER.name}: no enum {name}"
    out: dict[str, int] = {}
    for entry in (e.strip() for e in match.group(1).split(",")):
        if not entry:
            continue
        parsed = ENTRY.match(entry)
        assert parsed, f"{HEADER.name}: enum {name}: {entry!r} has no explicit value"
        assert parsed.group(1) not in out, f"{HEADER.name}: {parsed.group(1)} twice"
        out[parsed.group(1)] = int(parsed.group(2), 0)
    return out


def c_defines() -> dict[str, int]:
    """The header's integer #defines (the first definition of each, i.e. the defaults)."""
    out: dict[str, int] = {}
    for name, value in DEFINE.findall(header_text()):
        out.setdefault(name, int(value, 0))
    return out


def test_the_parser_reads_what_is_there() -> None:
    # guards the guards: a parser that found nothing would make the comparisons below vacuous
    assert len(c_enum("ep_msg")) >= 10
    assert len(c_enum("ep_err")) >= 10
    assert {"EP_PROTO_VERSION", "EP_HDR_BYTES", "EP_CRC_BYTES"} <= set(c_defines())
    with pytest.raises(AssertionError, match="no enum"):
        c_enum("ep_no_such_enum")


def test_message_types_match() -> None:
    c = c_enum("ep_msg")
    assert c.pop("EP_T_REPLY") == protocol.REPLY
    assert {k.removeprefix("EP_T_"): v for k, v in c.items()} == {m.name: m.value for m in Msg}
    assert all(k.startswith("EP_T_") for k in c)


def test_error_codes_match() -> None:
    c = c_enum("ep_err")
    assert all(k.startswith("EP_E_") for k in c)
    assert {k.removeprefix("EP_"): v for k, v in c.items()} == {e.name: e.value for e in ErrorCode}


def test_frame_constants_match() -> None:
    d = c_defines()
    assert d["EP_PROTO_VERSION"] == max(protocol.PROTOCOL_VERSIONS)
    assert d["EP_HDR_BYTES"] == framing.HEADER.size
    assert d["EP_CRC_BYTES"] == framing.CRC.size
    assert d["EP_FLAG_DEVICE"] == framing.FLAG_DEVICE
    # the firmware refuses to build with less than what the host may send before INFO
    assert f"#if EP_MAX_PAYLOAD < {framing.MIN_MAX_PAYLOAD}" in header_text()
    assert d["EP_MAX_PAYLOAD"] >= framing.MIN_MAX_PAYLOAD
