"""The board files, read and checked in one place.

Boards are data (``boards/<id>.toml``, shipped as package ``edgeprof.device.boards``) so adding one
needs no code. This module is the only reader. The types below are the file format itself
(msgspec Structs, checked by :mod:`edgeprof.validation`): every field is validated, keys the
schema does not know are refused (a typo must not silently become "no detection rule"), and a
file written for a newer schema is refused rather than half-read.

A board's quirks live in its file, not in code: ``[firmware].port`` names the firmware port
that runs on it, ``[link]`` how patient the host must be with it (QEMU answers slower than a
real Cortex-M4), ``[power].rails`` the rails discovery should find there.
"""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Iterable
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated

import msgspec

from edgeprof.errors import InputError
from edgeprof.validation import NonBlank, convert, decode_toml, invalid

# History: 1 (first release); 2 ([firmware] and [link] for mcu boards). Both are read.
SCHEMA_VERSION = 2
BOARDS_PACKAGE = "edgeprof.device.boards"

_Id = Annotated[str, msgspec.Meta(pattern=r"\A[a-z0-9][a-z0-9_-]*\Z")]
_Family = Annotated[str, msgspec.Meta(pattern=r"\A[a-z0-9][a-z0-9-]*\Z")]
_Positive = Annotated[int, msgspec.Meta(ge=1)]
_U16 = Annotated[int, msgspec.Meta(ge=0, le=0xFFFF)]
_Strings = Annotated[tuple[NonBlank, ...], msgspec.Meta(min_length=1)]
_Seconds = Annotated[float, msgspec.Meta(gt=0, le=3600)]


class BoardKind(StrEnum):
    """Whether the agent runs on the board (linux) or talks to it over a link (mcu)."""

    LINUX = "linux"
    MCU = "mcu"


class Arch(StrEnum):
    """Instruction set of the board's application core."""

    AARCH64 = "aarch64"
    ARMV7E_M = "armv7e-m"
    XTENSA = "xtensa"
    RISCV32 = "riscv32"
    X86_64 = "x86_64"


class _Table(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A table of a board file: immutable, and no key the schema does not name."""


class UsbId(_Table, frozen=True):
    """A USB vendor/product pair a board shows up as; a hint, since bridges are shared."""

    vid: _U16
    pid: _U16
    note: NonBlank = ""

    def __str__(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}"


class DetectRules(_Table, frozen=True):
    """How :mod:`edgeprof.device.detect` recognises the board it runs on.

    Every rule that is given must hold (a list holds when any of its substrings occurs,
    compared case-insensitively). A board with no rules is never detected; a ``fallback`` board
    is chosen by architecture when nothing else matches.
    """

    device_tree_model: _Strings = ()
    dmi_product_name: _Strings = ()
    dmi_sys_vendor: _Strings = ()
    jetson_release: bool | None = None  # True: /etc/nv_tegra_release must exist; False: absent
    fallback: bool = False

    @property
    def has_rules(self) -> bool:
        """Whether any matching rule is given (a fallback has none)."""
        return bool(
            self.device_tree_model
            or self.dmi_product_name
            or self.dmi_sys_vendor
            or self.jetson_release is not None
        )


class PowerInfo(_Table, frozen=True):
    """What power measurement to expect on the board, for discovery and for people."""

    sensor: NonBlank | None = None  # driver name, e.g. "ina3221"
    # Rail labels the driver reports (e.g. "VDD_IN"): `edgeprof doctor` names any it cannot find.
    rails: _Strings = ()
    notes: NonBlank = ""


class FirmwareInfo(_Table, frozen=True):
    """Which port of the reference firmware runs on the board (docs/firmware-ports.md)."""

    port: _Family  # firmware_bridge/firmware/ports/<port>, `edgeprof firmware build --port-name`


class LinkInfo(_Table, frozen=True):
    """How patient the host is with the board's link; the defaults suit a real MCU on USB."""

    request_timeout_s: _Seconds = 0.5  # per request (HELLO and every command) before a resend
    tries: Annotated[int, msgspec.Meta(ge=1, le=100)] = 6  # sends of one request, in all
    result_timeout_s: _Seconds = 60.0  # for one inference's RESULT (then a PING asks why)


class Board(_Table, frozen=True):
    """One board file, validated."""

    schema_version: Annotated[int, msgspec.Meta(ge=1, le=SCHEMA_VERSION)]
    id: _Id
    name: NonBlank
    family: _Family
    kind: BoardKind
    arch: Arch
    cpu: NonBlank | None = None  # core name, e.g. "Cortex-A76"; None only for fallback boards
    cpu_hz: _Positive | None = None  # nominal top clock; None only for fallback boards
    cores: _Positive | None = None
    soc: NonBlank | None = None
    sram_bytes: _Positive | None = None  # MCUs only
    flash_bytes: _Positive | None = None  # MCUs only
    usb: tuple[UsbId, ...] = ()
    detect: DetectRules = DetectRules()
    power: PowerInfo | None = None
    firmware: FirmwareInfo | None = None  # MCUs only (schema 2)
    link: LinkInfo | None = None  # MCUs only (schema 2); see :attr:`link_timeouts`
    notes: NonBlank = ""

    def __post_init__(self) -> None:
        if not self.detect.fallback:
            for name in ("cpu", "cpu_hz"):
                if getattr(self, name) is None:
                    raise invalid(name, "is missing (only fallback boards may leave it out)")
        for name in ("sram_bytes", "flash_bytes"):
            if self.kind is BoardKind.MCU and getattr(self, name) is None:
                raise invalid(name, "is missing (required for mcu boards)")
        for name in ("sram_bytes", "flash_bytes", "firmware", "link"):
            if self.kind is BoardKind.LINUX and getattr(self, name) is not None:
                raise invalid(name, "is only for mcu boards")
        for name in ("firmware", "link"):
            if self.schema_version < 2 and getattr(self, name) is not None:
                raise invalid(name, "needs schema_version = 2 (schema 1 has no such table)")
        if self.detect.fallback and (self.detect.has_rules or self.kind is not BoardKind.LINUX):
            raise invalid("detect.fallback", "needs a linux board with no other detect rules")

    @property
    def link_timeouts(self) -> LinkInfo:
        """The board's ``[link]`` values, or the defaults where it has none."""
        return self.link if self.link is not None else LinkInfo()


def load_boards() -> dict[str, Board]:
    """Every shipped board by id (read and validated once per process)."""
    return {b.id: b for b in _shipped_boards()}


def get_board(board_id: str) -> Board:
    """The shipped board ``board_id``; an unknown id names the closest known ones."""
    boards = load_boards()
    try:
        return boards[board_id]
    except KeyError:
        pass
    close = difflib.get_close_matches(board_id, list(boards), n=3, cutoff=0.5)
    hint = f"did you mean {_or_list(close)}?" if close else f"known boards: {', '.join(boards)}"
    raise InputError(f"unknown board {board_id!r}; {hint}") from None


def load_board_file(path: str | os.PathLike[str]) -> Board:
    """A user-supplied board file, held to the same rules as the shipped ones."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read board file {p}: {e.strerror or e}") from e
    return parse_board(data, str(p))


def parse_board(data: bytes, origin: str, expected_id: str | None = None) -> Board:
    """Validate one board file's bytes; ``origin`` names it in every error message."""
    text, doc = decode_toml(data, origin)
    # The version comes first, so a newer file is refused for its version rather than for a
    # field this release has never heard of.
    version = doc.get("schema_version")
    if type(version) is int and version > SCHEMA_VERSION:
        raise InputError(
            f"{origin}: schema_version {version} is newer than this edgeprof reads "
            f"(up to {SCHEMA_VERSION}); upgrade edgeprof"
        )
    board = convert(doc, Board, text, origin)
    if expected_id is not None and board.id != expected_id:
        raise InputError(f"{origin}: id {board.id!r} does not match the file name {expected_id!r}")
    return board


@functools.cache
def _shipped_boards() -> tuple[Board, ...]:
    root = resources.files(BOARDS_PACKAGE)
    entries = sorted(
        (e for e in root.iterdir() if e.name.endswith(".toml") and e.is_file()),
        key=lambda e: e.name,
    )
    boards = tuple(
        parse_board(e.read_bytes(), f"{BOARDS_PACKAGE}/{e.name}", e.name.removesuffix(".toml"))
        for e in entries
    )
    fallbacks: dict[Arch, str] = {}
    for b in boards:
        if b.detect.fallback:
            if b.arch in fallbacks:
                raise InputError(
                    f"{BOARDS_PACKAGE}/{b.id}.toml: a second fallback board for {b.arch} "
                    f"(already {fallbacks[b.arch]!r})"
                )
            fallbacks[b.arch] = b.id
    return boards


def _or_list(items: Iterable[str]) -> str:
    quoted = [repr(i) for i in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
