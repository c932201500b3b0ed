"""A first pass over msgpack bytes that allocates nothing: depth, object count and sizes bounded.

Why: msgpack makes a Python object of every byte that starts one, so 16 MiB of empty maps
decode to 16 million dicts (3.5 GiB, measured: docs/benchmarks.md). This walker reads only the
type bytes and lengths, skips string and binary payloads without copying them, and stops at the
first limit crossed, so a hostile body costs at most ``max_objects`` steps and no memory beyond
a small stack; only bodies that pass are handed to msgpack. A report's arrays are binary blobs,
so even a 64 MiB report holds a few hundred objects (a detailed run: about 200).

It also refuses what a report never holds: extension types and the reserved byte 0xc1, and it
tells truncation from trailing bytes so the envelope's messages stay what they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from edgeprof.errors import InputError


@dataclass(frozen=True)
class Bounds:
    """The most a report may hold; every limit is far above what the agent writes."""

    max_depth: int = 32  # a report nests 5 deep (summary.rails.<rail>.energy…)
    max_objects: int = 100_000  # every value, key and container counted once
    max_container: int = 65_536  # entries of one map or items of one list


DEFAULT_BOUNDS: Final = Bounds()


class TruncatedError(InputError):
    """The bytes end inside an object."""


class TrailingBytesError(InputError):
    """Bytes follow the one top-level object."""


# What each first byte is: (kind, size). kind 0: skip ``size`` payload bytes (fixints, nil,
# bools, numbers, fixstr); 1: a container of ``size`` values (fixmap: 2 per entry, fixarray);
# 2: a str/bin whose length takes ``size`` bytes; 3: an array, 4: a map whose entry count
# takes ``size`` bytes; 5: an extension type; 6: the reserved byte 0xc1.
def _table() -> tuple[tuple[int, int], ...]:
    rows = [(6, 0)] * 256
    for b in range(0x00, 0x80):
        rows[b] = (0, 0)
    for b in range(0xE0, 0x100):
        rows[b] = (0, 0)
    for b in range(0x80, 0x90):
        rows[b] = (1, 2 * (b & 0x0F))
    for b in range(0x90, 0xA0):
        rows[b] = (1, b & 0x0F)
    for b in range(0xA0, 0xC0):
        rows[b] = (0, b & 0x1F)
    for b, size in ((0xC0, 0), (0xC2, 0), (0xC3, 0), (0xCA, 4), (0xCB, 8), (0xCC, 1), (0xCD, 2),
                    (0xCE, 4), (0xCF, 8), (0xD0, 1), (0xD1, 2), (0xD2, 4), (0xD3, 8)):  # fmt: skip
        rows[b] = (0, size)
    for b, width in ((0xC4, 1), (0xC5, 2), (0xC6, 4), (0xD9, 1), (0xDA, 2), (0xDB, 4)):
        rows[b] = (2, width)
    rows[0xDC], rows[0xDD], rows[0xDE], rows[0xDF] = (3, 2), (3, 4), (4, 2), (4, 4)
    for b in (0xC7, 0xC8, 0xC9, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8):
        rows[b] = (5, 0)
    return tuple(rows)


_KINDS: Final = _table()


def check_bounds(data: bytes, origin: str, bounds: Bounds = DEFAULT_BOUNDS) -> int:
    """Walk one msgpack object in ``data``; its object count, or InputError saying which bound.

    Raises :class:`TruncatedError` or :class:`TrailingBytesError` for those two kinds of
    damage, and a plain InputError for a bound crossed, a byte msgpack reserves or one a
    report never uses.
    """
    n = len(data)
    pos = 0
    objects = 0
    max_objects, max_depth = bounds.max_objects, bounds.max_depth
    kinds = _KINDS
    left = 1  # values still to read at the current level; the top level holds one
    stack: list[int] = []  # the counts of the levels above
    while True:
        if not left:
            if not stack:
                break
            left = stack.pop()
            continue
        left -= 1
        if pos >= n:
            raise _truncated(origin, n)
        kind, size = kinds[data[pos]]
        pos += 1
        objects += 1
        if objects > max_objects:
            raise InputError(
                f"{origin}: more than {max_objects} values (a report holds a few hundred)"
            )
        if kind == 0:
            pos += size
            continue
        if kind == 2:
            pos += size + _length(data, pos, size, origin)
            continue
        if kind == 1:
            count = size
        elif kind == 3 or kind == 4:
            count = _container(_length(data, pos, size, origin), bounds, origin)
            count *= 2 if kind == 4 else 1
            pos += size
        elif kind == 5:
            b = data[pos - 1]
            raise InputError(f"{origin}: msgpack extension type 0x{b:02x}: not part of a report")
        else:
            raise InputError(f"{origin}: not a msgpack report (corrupted?): reserved byte 0xc1")
        if count:
            if len(stack) >= max_depth:
                raise InputError(f"{origin}: nested deeper than {max_depth} levels")
            stack.append(left)
            left = count
    if pos > n:
        raise _truncated(origin, n)
    if pos < n:
        raise TrailingBytesError(f"{origin}: corrupted: trailing bytes after the report")
    return objects


def _truncated(origin: str, n: int) -> TruncatedError:
    return TruncatedError(f"{origin}: truncated: the file ends inside the report ({n} bytes)")


def _length(data: bytes, pos: int, width: int, origin: str) -> int:
    if pos + width > len(data):
        raise _truncated(origin, len(data))
    return int.from_bytes(data[pos : pos + width], "big")


def _container(count: int, bounds: Bounds, origin: str) -> int:
    if count > bounds.max_container:
        raise InputError(
            f"{origin}: a map or list of {count} entries (the limit is {bounds.max_container})"
        )
    return count
