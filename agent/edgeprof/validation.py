"""One way to check files people write (board files, gate policies): msgspec Structs.

A file format is a tree of frozen ``msgspec.Struct`` types with ``forbid_unknown_fields=True``
(a typo must be refused as a typo, not read as the field it misspells being absent), ranges and
patterns as ``msgspec.Meta`` constraints, enums as ``StrEnum``/``Literal``, and rules that span
fields as ``__post_init__`` checks raising :func:`invalid`. :func:`convert` runs
``msgspec.convert`` on the decoded document and turns its error into one line that names the
file, the line and the field, because people fix files by line: ``tomllib`` gives positions only
for syntax errors, so :func:`line_of` finds the line of a field path (``$.rule[2].metric``) in the
TOML text itself. Nothing here knows a particular format.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, TypeVar

import msgspec
import msgspec.inspect as mi

from edgeprof.errors import InputError

__all__ = [
    "FINITE_MAX",
    "Finite",
    "NonBlank",
    "Path",
    "convert",
    "decode_toml",
    "invalid",
    "line_of",
    "parse_path",
    "toml_lines",
]

T = TypeVar("T")
Path = tuple[str | int, ...]  # a field path: ("rule", 2, "metric")
NonBlank = Annotated[str, msgspec.Meta(pattern=r"\S")]  # a string with something in it
FINITE_MAX = 1.7976931348623157e308  # the largest float: as a bound, it refuses inf and nan
Finite = Annotated[float, msgspec.Meta(ge=-FINITE_MAX, le=FINITE_MAX)]
_NOT_FINITE = re.compile(r"^Expected `float` (<= |>= -)1\.7976931348623157e\+308$")
_NON_BLANK = "Expected `str` matching regex '\\\\S'"

_PATH_TOKEN = re.compile(r"\.([^.\[\]`]+)|\[(\d+)\]|\[\.\.\.\]")
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.S)
_FIELD = re.compile(r"^field `(?P<field>[^`]+)`: (?P<problem>.*)$", re.S)
_MISSING = re.compile(r"^Object missing required field `(?P<key>[^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<key>[^`]+)`$")
_ENUM = re.compile(r"^Invalid enum value (?P<value>.+)$")


def invalid(field: str, problem: str) -> ValueError:
    """The error a ``__post_init__`` check raises: ``field`` (relative to the struct being
    checked, e.g. ``"alert"`` or ``"rule[3].id"``) is where :func:`convert` points the line."""
    return ValueError(f"field `{field}`: {problem}")


def decode_toml(data: bytes, origin: str) -> tuple[str, dict[str, Any]]:
    """The text and the document of a TOML file; InputError ``origin[:line]: ...`` if neither."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{origin}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column \d+\)", str(e))
        line = m.group(1) if m else str(max(1, len(text.splitlines())))  # "at end of document"
        msg = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", str(e))
        raise InputError(f"{origin}:{line}: not valid TOML: {msg}") from None


def convert(doc: Any, type_: type[T], text: str, origin: str) -> T:
    """``doc`` as ``type_``; any problem is one InputError ``origin:line: field 'a.b': ...``."""
    try:
        return msgspec.convert(doc, type_)
    except msgspec.ValidationError as e:
        raise InputError(_explain(str(e), type_, text, origin)) from None


def parse_path(path: str) -> Path:
    """``$.usb[0].vid`` -> ``("usb", 0, "vid")``; a dict key msgspec elides (``[...]``) ends it."""
    out: list[str | int] = []
    rest = path.removeprefix("$")
    pos = 0
    for m in _PATH_TOKEN.finditer(rest):
        if m.start() != pos or m.group(0) == "[...]":
            break
        out.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    return tuple(out)


def _show(path: Path) -> str:
    """``("usb", 0, "vid")`` -> ``usb[0].vid``."""
    s = ""
    for part in path:
        s += f"[{part}]" if isinstance(part, int) else (f".{part}" if s else part)
    return s


def _explain(message: str, type_: type[Any], text: str, origin: str) -> str:
    at = _AT.match(message)
    assert at is not None  # the pattern matches any string
    msg, path = at.group("msg"), parse_path(at.group("path") or "$")
    if f := _FIELD.match(msg):  # a __post_init__ check naming its field
        path += parse_path("$." + f.group("field"))
        problem = f.group("problem")
    elif m := _MISSING.match(msg):
        path += (m.group("key"),)
        problem = "is missing"
    elif m := _UNKNOWN.match(msg):
        key = m.group("key")
        close = difflib.get_close_matches(key, _field_names(_type_at(type_, path)), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{_where(origin, text, (*path, key))}unknown key {_show((*path, key))!r}{hint}"
    elif m := _ENUM.match(msg):
        allowed = _choices(_type_at(type_, path))
        problem = f"is {m.group('value')}; expected one of {', '.join(map(repr, allowed))}"
    elif _NOT_FINITE.match(msg):
        problem = "must be a finite number"
    elif msg == _NON_BLANK:
        problem = "must be a non-empty string"
    else:
        problem = msg.replace("`", "")
        problem = problem[:1].lower() + problem[1:].replace("\\\\", "\\")
    field = f"field {_show(path)!r} " if path else ""
    if field and not problem.startswith(("is ", "must ", "needs ")):
        field = field.rstrip() + ": "
    return f"{_where(origin, text, path)}{field}{problem}"


def _where(origin: str, text: str, path: Path) -> str:
    line = line_of(text, path)
    return f"{origin}:{line}: " if line is not None else f"{origin}: "


# ---- what the type says at a path (for hints) -------------------------------------------------


def _unwrap(t: mi.Type) -> mi.Type:
    while isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(t, mi.UnionType):  # Optional[X]: the non-None member
        members = [m for m in t.types if not isinstance(m, mi.NoneType)]
        if len(members) == 1:
            return _unwrap(members[0])
    return t


def _type_at(type_: type[Any], path: Path) -> mi.Type | None:
    t: mi.Type | None = _unwrap(mi.type_info(type_))
    for part in path:
        if isinstance(part, int) and isinstance(t, mi.VarTupleType | mi.ListType):
            t = _unwrap(t.item_type)
        elif isinstance(part, str) and isinstance(t, mi.StructType):
            t = next((_unwrap(f.type) for f in t.fields if f.encode_name == part), None)
        else:
            return None
    return t


def _field_names(t: mi.Type | None) -> list[str]:
    return [f.encode_name for f in t.fields] if isinstance(t, mi.StructType) else []


def _choices(t: mi.Type | None) -> list[Any]:
    if isinstance(t, mi.EnumType):
        return [m.value for m in t.cls]
    if isinstance(t, mi.LiteralType):
        return list(t.values)
    return []


# ---- where a field path is in TOML text --------------------------------------------------------

_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r"\"(?:[^\"\\]|\\.)*\"|'[^']*'"
_KEY = rf"(?:{_BARE}|{_QUOTED})"
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED})\s*\]\]?")
_ASSIGN = re.compile(rf"^\s*({_DOTTED})\s*=")
_STRINGS = re.compile(r'"""|\'\'\'|' + _QUOTED)


def _split_key(dotted: str) -> list[str]:
    return [
        k[1:-1] if k[:1] in "\"'" else k
        for k in re.findall(_KEY, dotted)  # the separators and spaces are not keys
    ]


def toml_lines(text: str) -> dict[Path, int]:
    """Every table and key of a TOML document by field path -> its 1-based line.

    Arrays of tables get their index (``[[rule]]`` -> ``("rule", 0)``, ``("rule", 1)``...).
    Lines inside multi-line strings and multi-line arrays are not mistaken for keys or headers.
    It reads only files ``tomllib`` already accepted, so it can afford to be simple.
    """
    lines: dict[Path, int] = {}
    aot_index: dict[Path, int] = {}  # arrays of tables seen so far -> their current index
    current: Path = ()
    depth = 0  # open brackets/braces of a multi-line value
    in_string: str | None = None  # the delimiter of an open multi-line string
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw
        if in_string is not None:
            end = line.find(in_string)
            if end < 0:
                continue
            line, in_string = line[end + 3 :], None
        elif depth == 0:
            if h := _HEADER.match(line):
                parts = _split_key(h.group(2))
                path = (*_resolve(tuple(parts[:-1]), aot_index), parts[-1])
                if h.group(1) == "[[":
                    aot_index[path] = aot_index.get(path, -1) + 1
                    lines.setdefault(path, n)
                    path += (aot_index[path],)
                current = path
                lines.setdefault(current, n)
                continue
            if a := _ASSIGN.match(line):
                key = current
                for part in _split_key(a.group(1)):
                    key += (part,)
                    lines.setdefault(key, n)
                line = line[a.end() :]
        for token in _tokens(line):
            if token in ('"""', "'''"):
                in_string = token
                break
            depth += 1 if token in "[{" else -1
    return lines


def _tokens(line: str) -> Iterator[str]:
    """Brackets and braces outside strings and comments, and an unclosed multi-line quote."""
    pos = 0
    while pos < len(line):
        c = line[pos]
        if c == "#":
            return
        if c in "\"'":
            m = _STRINGS.match(line, pos)
            if m is None:
                return
            tok = m.group(0)
            if tok in ('"""', "'''"):
                close = line.find(tok, m.end())
                if close < 0:
                    yield tok
                    return
                pos = close + 3
                continue
            pos = m.end()
            continue
        if c in "[]{}":
            yield c
        pos += 1


def _resolve(parts: Sequence[str], aot_index: dict[Path, int]) -> Path:
    """A header's parent keys as a path: an array of tables among them gets its last index."""
    path: Path = ()
    for part in parts:
        path += (part,)
        if path in aot_index:
            path += (aot_index[path],)
    return path


def line_of(text: str, path: Path) -> int | None:
    """The line of ``path`` in ``text``, or of its closest ancestor that is there; None for the
    top level (a missing top-level key has no line)."""
    lines = toml_lines(text)
    p = tuple(path)
    while p:
        if p in lines:
            return lines[p]
        p = p[:-1]
    return None
