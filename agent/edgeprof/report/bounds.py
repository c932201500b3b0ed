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


# Fixed sizes of the payload after the type byte (0 for nil/bool): scalars and the lengths of
# str/bin/ext headers. Containers are handled separately.
_SCALAR: Final = {
    0xC0: 0, 0xC2: 0, 0xC3: 0,  # nil, false, true
    0xCA: 4, 0xCB: 8,  # float32, float64
    0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8,  # uint8..64
    0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8,  # int8..64
}  # fmt: skip
_SIZED: Final = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}  # bin8..32, str8..32
_ARRAY: Final = {0xDC: 2, 0xDD: 4}
_MAP: Final = {0xDE: 2, 0xDF: 4}
_EXT: Final = frozenset({0xC7, 0xC8, 0xC9, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8})


def check_bounds(data: bytes, origin: str, bounds: Bounds = DEFAULT_BOUNDS) -> int:
    """Walk one msgpack object in ``data``; its object count, or InputError saying which bound.

    Raises :class:`TruncatedError` or :class:`TrailingBytesError` for those two kinds of
    damage, and a plain InputError for a bound crossed, a byte msgpack reserves or one a
    report never uses.
    """
    n = len(data)
    pos = 0
    objects = 0
    pending = [1]  # values still to read at each open level; the bottom is the top object
    while pending:
        if pending[-1] == 0:
            pending.pop()
            continue
        pending[-1] -= 1
        if pos >= n:
            raise _truncated(origin, n)
        b = data[pos]
        pos += 1
        objects += 1
        if objects > bounds.max_objects:
            raise InputError(
                f"{origin}: more than {bounds.max_objects} values (a report holds a few hundred)"
            )
        if b <= 0x7F or b >= 0xE0:  # fixints
            continue
        count = -1  # entries of a container opened here
        if b <= 0x8F:
            count = 2 * (b & 0x0F)
        elif b <= 0x9F:
            count = b & 0x0F
        elif b <= 0xBF:
            pos += b & 0x1F
        elif b in _SCALAR:
            pos += _SCALAR[b]
        elif b in _SIZED:
            width = _SIZED[b]
            pos += width + _length(data, pos, width, origin)
        elif b in _ARRAY:
            width = _ARRAY[b]
            count = _container(_length(data, pos, width, origin), bounds, origin)
            pos += width
        elif b in _MAP:
            width = _MAP[b]
            count = 2 * _container(_length(data, pos, width, origin), bounds, origin)
            pos += width
        elif b in _EXT:
            raise InputError(f"{origin}: msgpack extension type 0x{b:02x}: not part of a report")
        else:  # 0xc1: never used
            raise InputError(f"{origin}: not a msgpack report (corrupted?): reserved byte 0xc1")
        if count > 0:
            if len(pending) > bounds.max_depth:
                raise InputError(f"{origin}: nested deeper than {bounds.max_depth} levels")
            pending.append(count)
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
