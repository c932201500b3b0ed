"""Fuzzing the C core's strict parsers against a reference written from their contract."""

from __future__ import annotations

import re
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from edgeprof import native
from edgeprof.errors import InputError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_REFERENCE = re.compile(rb"[ \t\n\r]*([+-]?[0-9]+)[ \t\n\r]*")


def reference(data: bytes) -> int | None:
    """What the contract says: whitespace, an optional sign, digits, whitespace; int64 only."""
    m = _REFERENCE.fullmatch(data)
    if not m:
        return None
    v = int(m.group(1))
    return v if INT64_MIN <= v <= INT64_MAX else None


def parse(data: bytes) -> int | None:
    try:
        return native.parse_int64(data)
    except InputError:
        return None


@given(st.binary(max_size=40))
def test_random_bytes_agree_with_reference(data: bytes) -> None:
    assert parse(data) == reference(data)


@given(
    st.integers(min_value=INT64_MIN - 10, max_value=INT64_MAX + 10),
    st.sampled_from([b"", b" ", b"\n", b"  \t"]),
    st.sampled_from([b"", b"\n", b" \n", b"\r\n"]),
)
def test_numbers_with_whitespace(value: int, lead: bytes, trail: bytes) -> None:
    data = lead + str(value).encode() + trail
    assert parse(data) == reference(data)


@given(st.text(alphabet="0123456789+- \n\tx.eE", max_size=30))
def test_number_like_text(text: str) -> None:
    data = text.encode()
    assert parse(data) == reference(data)


def parse_or_none(fn: Callable[[bytes], int], data: bytes) -> int | None:
    try:
        return fn(data)
    except InputError:
        return None


@given(st.binary(max_size=200))
def test_statm_and_smaps_parsers_never_misread_garbage(data: bytes) -> None:
    # Whatever the bytes, the parsers return a value only when the structure is there.
    v = parse_or_none(native.parse_statm_resident, data)
    if v is not None:
        fields = data.split(b" ")
        assert fields[0].isdigit()
        assert int(fields[1].split(b"\n")[0]) == v
    pss = parse_or_none(native.parse_smaps_pss_kb, data)
    if pss is not None:
        assert b"\nPss:" in data
        assert pss >= 0


@given(
    st.lists(st.integers(min_value=0, max_value=2**40), min_size=7, max_size=7),
    st.integers(min_value=0, max_value=2**40),
    st.integers(min_value=0, max_value=2**40),
)
def test_statm_and_smaps_well_formed(fields: list[int], pss: int, rss: int) -> None:
    statm = " ".join(map(str, fields)).encode() + b"\n"
    assert native.parse_statm_resident(statm) == fields[1]
    rollup = (
        b"00400000-7ffd1000 ---p 00000000 00:00 0 [rollup]\n"
        + f"Rss:        {rss} kB\nPss:        {pss} kB\nPss_Anon:   1 kB\n".encode()
    )
    assert native.parse_smaps_pss_kb(rollup) == pss
