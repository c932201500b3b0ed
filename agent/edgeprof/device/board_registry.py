"""The board files, read and checked in one place.

Boards are data (``boards/<id>.toml``, shipped as package ``edgeprof.device.boards``) so adding one
needs no code. This module is the only reader: it validates every field, refuses keys it does
not know (a typo must not silently become "no detection rule"), and refuses files written for a
newer schema rather than half-reading them.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from edgeprof.errors import InputError

SCHEMA_VERSION = 1  # History: 1 (first release).
BOARDS_PACKAGE = "edgeprof.device.boards"

_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
_FAMILY_RE = re.compile(r"[a-z0-9][a-z0-9-]*")

_TOP_KEYS = frozenset(
    {
        "schema_version", "id", "name", "family", "kind", "arch", "cpu", "cpu_hz", "cores",
        "soc", "sram_bytes", "flash_bytes", "usb", "detect", "power", "notes",
    }
)  # fmt: skip
_DETECT_KEYS = frozenset(
    {"device_tree_model", "dmi_product_name", "dmi_sys_vendor", "jetson_release", "fallback"}
)
_USB_KEYS = frozenset({"vid", "pid", "note"})
_POWER_KEYS = frozenset({"sensor", "rails", "notes"})

_T = TypeVar("_T")
_E = TypeVar("_E", bound=StrEnum)


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


@dataclass(frozen=True)
class UsbId:
    """A USB vendor/product pair a board shows up as; a hint, since bridges are shared."""

    vid: int
    pid: int
    note: str = ""

    def __str__(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}"


@dataclass(frozen=True)
class DetectRules:
    """How :mod:`edgeprof.device.detect` recognises the board it runs on.

    Every rule that is given must hold (a list holds when any of its substrings occurs,
    compared case-insensitively). A board with no rules is never detected; a ``fallback`` board
    is chosen by architecture when nothing else matches.
    """

    device_tree_model: tuple[str, ...] = ()
    dmi_product_name: tuple[str, ...] = ()
    dmi_sys_vendor: tuple[str, ...] = ()
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


@dataclass(frozen=True)
class PowerInfo:
    """What power measurement to expect on the board, for discovery and for people."""

    sensor: str | None = None  # driver name, e.g. "ina3221"
    rails: tuple[str, ...] = ()  # rail labels the driver reports, e.g. "VDD_IN"
    notes: str = ""


@dataclass(frozen=True)
class Board:
    """One board file, validated."""

    id: str
    name: str
    family: str
    kind: BoardKind
    arch: Arch
    cpu: str | None = None  # core name, e.g. "Cortex-A76"; None only for fallback boards
    cpu_hz: int | None = None  # nominal top clock; None only for fallback boards
    cores: int | None = None
    soc: str | None = None
    sram_bytes: int | None = None  # MCUs only
    flash_bytes: int | None = None  # MCUs only
    usb: tuple[UsbId, ...] = ()
    detect: DetectRules = field(default_factory=DetectRules)
    power: PowerInfo | None = None
    notes: str = ""
    origin: str = field(default="", compare=False)  # the file it came from, for messages


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
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise InputError(f"{origin}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{origin}: not valid TOML: {e}") from e
    board = _build_board(_Table(doc, origin, "", _TOP_KEYS))
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
                    f"{b.origin}: a second fallback board for {b.arch} "
                    f"(already {fallbacks[b.arch]!r})"
                )
            fallbacks[b.arch] = b.id
    return boards


def _build_board(t: _Table) -> Board:
    # The version comes first, so a newer file is refused for its version rather than for a
    # field this release has never heard of.
    version = t.int_("schema_version", minimum=1)
    if version is None:
        raise t.error("schema_version", "is missing")
    if version > SCHEMA_VERSION:
        raise InputError(
            f"{t.origin}: schema_version {version} is newer than this edgeprof reads "
            f"(up to {SCHEMA_VERSION}); upgrade edgeprof"
        )
    t.check_keys()

    board_id = t.required(t.str_("id", pattern=_ID_RE), "id")
    kind = t.required(t.enum("kind", BoardKind), "kind")
    detect = _build_detect(t.table("detect", _DETECT_KEYS))
    usb = tuple(_build_usb(u) for u in t.tables("usb", _USB_KEYS))
    power_t = t.table("power", _POWER_KEYS)
    board = Board(
        id=board_id,
        name=t.required(t.str_("name"), "name"),
        family=t.required(t.str_("family", pattern=_FAMILY_RE), "family"),
        kind=kind,
        arch=t.required(t.enum("arch", Arch), "arch"),
        cpu=t.str_("cpu"),
        cpu_hz=t.int_("cpu_hz", minimum=1),
        cores=t.int_("cores", minimum=1),
        soc=t.str_("soc"),
        sram_bytes=t.int_("sram_bytes", minimum=1),
        flash_bytes=t.int_("flash_bytes", minimum=1),
        usb=usb,
        detect=detect,
        power=_build_power(power_t) if power_t is not None else None,
        notes=t.str_("notes") or "",
        origin=t.origin,
    )
    _check_consistency(board, t)
    return board


def _check_consistency(b: Board, t: _Table) -> None:
    if not b.detect.fallback:
        for name in ("cpu", "cpu_hz"):
            if getattr(b, name) is None:
                raise t.error(name, "is missing (only fallback boards may leave it out)")
    for name in ("sram_bytes", "flash_bytes"):
        present = getattr(b, name) is not None
        if b.kind is BoardKind.MCU and not present:
            raise t.error(name, "is missing (required for mcu boards)")
        if b.kind is BoardKind.LINUX and present:
            raise t.error(name, "is only for mcu boards")
    if b.detect.fallback and (b.detect.has_rules or b.kind is not BoardKind.LINUX):
        raise t.error("detect.fallback", "needs a linux board with no other detect rules")


def _build_detect(t: _Table | None) -> DetectRules:
    if t is None:
        return DetectRules()
    return DetectRules(
        device_tree_model=t.str_list("device_tree_model"),
        dmi_product_name=t.str_list("dmi_product_name"),
        dmi_sys_vendor=t.str_list("dmi_sys_vendor"),
        jetson_release=t.bool_("jetson_release"),
        fallback=bool(t.bool_("fallback")),
    )


def _build_usb(t: _Table) -> UsbId:
    return UsbId(
        vid=t.required(t.int_("vid", minimum=0, maximum=0xFFFF), "vid"),
        pid=t.required(t.int_("pid", minimum=0, maximum=0xFFFF), "pid"),
        note=t.str_("note") or "",
    )


def _build_power(t: _Table) -> PowerInfo:
    return PowerInfo(
        sensor=t.str_("sensor"),
        rails=t.str_list("rails"),
        notes=t.str_("notes") or "",
    )


class _Table:
    """One TOML table being read: typed getters, each error naming the file and the field."""

    def __init__(
        self, data: dict[str, Any], origin: str, prefix: str, keys: frozenset[str]
    ) -> None:
        self.data = data
        self.origin = origin
        self.prefix = prefix
        self.keys = keys

    def error(self, key: str, problem: str) -> InputError:
        return InputError(f"{self.origin}: field {self.prefix + key!r} {problem}")

    def _get(self, key: str) -> Any:
        assert key in self.keys, f"{key!r} is read but not in the table's key list"
        return self.data.get(key)

    def required(self, value: _T | None, key: str) -> _T:
        if value is None:
            raise self.error(key, "is missing")
        return value

    def str_(self, key: str, pattern: re.Pattern[str] | None = None) -> str | None:
        v = self._get(key)
        if v is None:
            return None
        if not isinstance(v, str) or not v.strip():
            raise self.error(key, f"must be a non-empty string, got {_describe(v)}")
        if pattern is not None and not pattern.fullmatch(v):
            raise self.error(key, f"{v!r} must match {pattern.pattern}")
        return v

    def int_(self, key: str, minimum: int, maximum: int | None = None) -> int | None:
        v = self._get(key)
        if v is None:
            return None
        if type(v) is not int:  # bool is an int subclass; true must not read as 1
            raise self.error(key, f"must be an integer, got {_describe(v)}")
        if v < minimum or (maximum is not None and v > maximum):
            upper = f" and at most {maximum:#x}" if maximum is not None else ""
            raise self.error(key, f"must be at least {minimum}{upper}, got {v}")
        return v

    def bool_(self, key: str) -> bool | None:
        v = self._get(key)
        if v is None:
            return None
        if not isinstance(v, bool):
            raise self.error(key, f"must be true or false, got {_describe(v)}")
        return v

    def enum(self, key: str, enum: type[_E]) -> _E | None:
        v = self.str_(key)
        if v is None:
            return None
        try:
            return enum(v)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in enum)
            raise self.error(key, f"is {v!r}; expected one of {allowed}") from None

    def str_list(self, key: str) -> tuple[str, ...]:
        v = self._get(key)
        if v is None:
            return ()
        if not isinstance(v, list) or not v or not all(isinstance(s, str) and s.strip() for s in v):
            raise self.error(key, f"must be a non-empty list of non-empty strings, got {v!r}")
        return tuple(v)

    def table(self, key: str, keys: frozenset[str]) -> _Table | None:
        v = self._get(key)
        if v is None:
            return None
        if not isinstance(v, dict):
            raise self.error(key, f"must be a table, got {_describe(v)}")
        t = _Table(v, self.origin, f"{self.prefix}{key}.", keys)
        t.check_keys()
        return t

    def tables(self, key: str, keys: frozenset[str]) -> list[_Table]:
        v = self._get(key)
        if v is None:
            return []
        if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
            raise self.error(key, f"must be an array of tables ([[{key}]]), got {_describe(v)}")
        out = [_Table(x, self.origin, f"{self.prefix}{key}[{i}].", keys) for i, x in enumerate(v)]
        for t in out:
            t.check_keys()
        return out

    def check_keys(self) -> None:
        """Refuse keys the schema does not have: in a data file a typo is otherwise invisible,
        and it must be reported as a typo, not as the field it misspells being missing."""
        unknown = sorted(set(self.data) - self.keys)
        if unknown:
            key = unknown[0]
            close = difflib.get_close_matches(key, sorted(self.keys), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputError(f"{self.origin}: unknown key {self.prefix + key!r}{hint}")


def _describe(v: object) -> str:
    return f"{type(v).__name__} {v!r}"


def _or_list(items: Iterable[str]) -> str:
    quoted = [repr(i) for i in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
