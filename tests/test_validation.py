"""edgeprof.validation: field paths to TOML lines, and msgspec errors as one line each."""

from __future__ import annotations

import tomllib
from typing import Annotated, Literal

import msgspec
import pytest

from edgeprof.errors import InputError
from edgeprof.validation import (
    Finite,
    NonBlank,
    convert,
    decode_toml,
    invalid,
    line_of,
    parse_path,
    toml_lines,
)

TEXT = """\
# a comment with [brackets] and key = "value"
top = 1
text = \"\"\"
[not_a_table]
fake = 2
\"\"\"
list = [
  "a",  # ]
  [1, 2],
]
inline = { a = 1, b = [2] }
"quoted key" = 3
dotted.key = 4

[table]
x = 1   # line 16

[[item]]
name = "first"

[[item]]
name = "second"  # line 22

[item.sub]
y = 'literal ]'

[[item.deep]]
z = 1  # line 28
"""


def test_toml_lines_names_every_key_and_table() -> None:
    tomllib.loads(TEXT)  # the fixture is valid TOML
    lines = toml_lines(TEXT)
    assert lines[("top",)] == 2
    assert lines[("text",)] == 3
    assert ("not_a_table",) not in lines  # inside a multi-line string
    assert ("fake",) not in lines
    assert lines[("list",)] == 7
    assert lines[("inline",)] == 11
    assert lines[("quoted key",)] == 12
    assert lines[("dotted", "key")] == 13
    assert lines[("table", "x")] == 16
    assert lines[("item", 0)] == 18
    assert lines[("item", 1, "name")] == 22
    assert lines[("item", 1, "sub", "y")] == 25
    assert lines[("item", 1, "deep", 0, "z")] == 28


def test_line_of_falls_back_to_the_closest_ancestor() -> None:
    assert line_of(TEXT, ("item", 1, "missing")) == 21
    assert line_of(TEXT, ("list", 1)) == 7
    assert line_of(TEXT, ("absent",)) is None
    assert line_of(TEXT, ()) is None


def test_parse_path() -> None:
    assert parse_path("$") == ()
    assert parse_path("$.rule[2].metric") == ("rule", 2, "metric")
    assert parse_path("$.a[...].b") == ("a",)


class Inner(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    level: Literal["low", "high"] = "low"
    size: Annotated[int, msgspec.Meta(ge=1)] = 1


class Outer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: NonBlank
    ratio: Finite = 0.0
    inner: tuple[Inner, ...] = ()
    low: int = 0
    high: int = 0

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise invalid("low", "exceeds high")


def error(text: str) -> str:
    data = text.encode()
    source, doc = decode_toml(data, "f.toml")
    with pytest.raises(InputError) as info:
        convert(doc, Outer, source, "f.toml")
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('name = "x"\n\n[[inner]]\n\n[[inner]]\nsize = 0\n',
         "f.toml:6: field 'inner[1].size': expected int >= 1"),
        ('name = "x"\n[[inner]]\nlevel = "mid"\n',
         "f.toml:3: field 'inner[0].level' is 'mid'; expected one of 'high', 'low'"),
        ('name = "x"\n[[inner]]\nsise = 2\n',
         "f.toml:3: unknown key 'inner[0].sise' (did you mean 'size'?)"),
        ("ratio = 1.0\n", "f.toml: field 'name' is missing"),
        ('name = " "\n', "f.toml:1: field 'name' must be a non-empty string"),
        ('name = "x"\nratio = inf\n', "f.toml:2: field 'ratio' must be a finite number"),
        ('name = "x"\nratio = nan\n', "f.toml:2: field 'ratio' must be a finite number"),
        ('name = "x"\nhigh = 1\nlow = 2\n', "f.toml:3: field 'low': exceeds high"),
        ('name = "x"\nlow = true\n', "f.toml:2: field 'low': expected int, got bool"),
    ],
)  # fmt: skip
def test_errors_name_file_line_and_field(text: str, expected: str) -> None:
    assert error(text) == expected


def test_decode_errors() -> None:
    with pytest.raises(InputError, match=r"^f.toml:2: not valid TOML"):
        decode_toml(b"a = 1\nb = = 2\n", "f.toml")
    with pytest.raises(InputError, match=r"^f.toml: not UTF-8 text"):
        decode_toml(b"\xff\xfe", "f.toml")
