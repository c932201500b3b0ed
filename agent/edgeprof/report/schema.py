"""The v1 report schema: the checks of a decoded report, and its field table for the docs.

The typed model (:mod:`edgeprof.report.model`, msgspec Structs) is the single source of truth:
:func:`validate` converts a decoded map through it, and :data:`FIELDS` is read from it, so
``python -m edgeprof.report.schema`` prints the Markdown table that ``docs/report-format.md``
embeds (a test checks that the two agree).

Path syntax: ``a.b`` is key ``b`` of map ``a``; ``a.*`` is every key of map ``a`` (keys may
themselves contain dots, e.g. ``per_inference.energy_j.VDD_IN``); ``a[]`` is every item of list
``a``. Types: ``str``, ``int``, ``number`` (int or float), ``bool``, ``map``, ``list``, ``bytes``,
``array`` (a typed binary array, decoded to numpy); a trailing ``?`` allows null. Unknown keys
are allowed anywhere: a newer minor version may add them.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
import numpy as np
from msgspec import UnsetType

from edgeprof.errors import InputError
from edgeprof.report.envelope import MAJOR as MAJOR
from edgeprof.report.envelope import MINOR as MINOR
from edgeprof.report.envelope import SCHEMA as SCHEMA
from edgeprof.report.model import Blob, Report, convert

__all__ = ["FIELDS", "MAJOR", "MINOR", "SCHEMA", "Field", "markdown_table", "validate"]


@dataclass(frozen=True)
class Field:
    """One row of the schema: where, what type, whether it must be there, its unit."""

    path: str
    type: str
    required: bool
    unit: str = ""
    note: str = ""


def _unwrap(tp: Any) -> tuple[Any, bool, dict[str, str]]:
    """(the type, whether null is allowed, its doc metadata) of an annotation."""
    extra: dict[str, str] = {}
    while typing.get_origin(tp) is Annotated:
        tp, *metas = typing.get_args(tp)
        for meta in metas:
            if isinstance(meta, msgspec.Meta) and meta.extra:
                extra.update(meta.extra)
    nullable = False
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not UnsetType]
        nullable = type(None) in args
        args = [a for a in args if a is not type(None)]
        tp = args[0] if len(args) == 1 else tp
    while typing.get_origin(tp) is Annotated:  # a constrained type inside the union (Amount)
        tp = typing.get_args(tp)[0]
    return tp, nullable, extra


def _kind(tp: Any) -> str:
    origin = typing.get_origin(tp) or tp
    if origin is np.ndarray:
        return "array"
    if isinstance(origin, type) and issubclass(origin, msgspec.Struct):
        return "map"
    names = {str: "str", int: "int", float: "number", bool: "bool", dict: "map", list: "list"}
    if origin in names:
        return names[origin]
    if origin is Blob or origin is bytes:
        return "bytes"
    raise AssertionError(f"no schema name for {tp!r}")  # pragma: no cover


def _rows(cls: type[msgspec.Struct], prefix: str) -> Iterator[Field]:
    hints = typing.get_type_hints(cls, include_extras=True)
    open_rows = getattr(cls, "OPEN_ROWS", {})
    for info in msgspec.structs.fields(cls):
        tp, nullable, extra = _unwrap(hints[info.name])
        path = f"{prefix}{info.name}"
        kind = _kind(tp) + ("?" if nullable else "")
        yield Field(path, kind, info.required, extra.get("unit", ""), extra.get("note", ""))
        if info.name in open_rows:
            for name, required, unit, note in open_rows[info.name]:
                yield Field(f"{path}.{name}", "array", required, unit, note)
            continue
        args = typing.get_args(tp)
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            yield from _rows(tp, f"{path}.")
        elif args and typing.get_origin(tp) in (list, dict):
            item, item_nullable, _ = _unwrap(args[-1])
            mark = "[]" if typing.get_origin(tp) is list else ".*"
            if isinstance(item, type) and issubclass(item, msgspec.Struct):
                yield from _rows(item, f"{path}{mark}.")
            elif item is not Any:
                yield Field(f"{path}{mark}", _kind(item) + ("?" if item_nullable else ""), True)


FIELDS: tuple[Field, ...] = tuple(_rows(Report, ""))


def _fail(path: str, problem: str) -> InputError:
    return InputError(f"{path}: {problem}")


def _check_envelope(report: dict[str, Any]) -> None:
    """Name and version first: a report of another major may differ anywhere else."""
    for key in ("schema", "schema_version"):
        if key not in report:
            raise _fail(key, "missing")
    if report["schema"] != SCHEMA:
        raise _fail("schema", f"{report['schema']!r} is not {SCHEMA!r}")
    version = report["schema_version"]
    if (
        not isinstance(version, list)
        or len(version) != 2
        or not all(type(v) is int and v >= 0 for v in version)
    ):
        raise _fail("schema_version", f"{version!r} is not [major, minor]")
    if version[0] != MAJOR:
        raise _fail(
            "schema_version",
            f"unsupported report schema version {version!r} (this reader knows major {MAJOR})",
        )


def validate(report: dict[str, Any]) -> Report:
    """Check a decoded report against v1; raise InputError naming the field and the problem.

    Arrays must already be numpy arrays (as :func:`edgeprof.report.codec.decode` returns them).
    Returns the typed view of the known fields; the map itself keeps any unknown ones.
    """
    if not isinstance(report, dict):
        raise InputError(f"report: expected a map, got {type(report).__name__}")
    _check_envelope(report)
    try:
        return convert(report)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def markdown_table() -> str:
    """The field table as Markdown, for docs/report-format.md."""
    rows = ["| path | type | required | unit | note |", "|---|---|---|---|---|"]
    for f in FIELDS:
        req = "yes" if f.required else "no"
        rows.append(f"| `{f.path}` | {f.type} | {req} | {f.unit} | {f.note} |")
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover
    print(markdown_table())
