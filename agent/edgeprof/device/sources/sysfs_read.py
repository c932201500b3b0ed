"""Validated reads of small sysfs files, shared by every channel discovery module.

Discovery reads each value once before handing its path to the C sampler, with the same
strictness as the C parser, so a file that would only ever sample as NaN is skipped with a
reason instead.
"""

from __future__ import annotations

import os
import re

from edgeprof.errors import InputError

_INT_RE = re.compile(r"[+-]?[0-9]+", re.ASCII)
_MAX_READ = 4096  # sysfs attributes are at most a page


def read_sysfs_text(path: str | os.PathLike[str]) -> str:
    """The stripped text of a small sysfs file; any read or decoding failure is an InputError.

    Sysfs attributes are short ASCII; anything else means the tree is not what it claims.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_READ)
    except OSError as e:
        raise InputError(f"{os.fspath(path)}: cannot read ({e.strerror or e})") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{os.fspath(path)}: not text") from e
    text = text.strip()
    if not text.isprintable():
        raise InputError(f"{os.fspath(path)}: unprintable characters in {text!r}")
    return text


def read_sysfs_int(path: str | os.PathLike[str]) -> int:
    """A decimal integer from a sysfs file; garbage raises InputError naming the file.

    Stricter than ``int()`` (no underscores, no non-ASCII digits) so that what passes here is
    exactly what the C parser accepts.
    """
    text = read_sysfs_text(path)
    if not _INT_RE.fullmatch(text):
        raise InputError(f"{os.fspath(path)}: expected an integer, got {text!r}")
    return int(text)


def is_readable(path: str) -> bool:
    """A separate function so tests running as root can pretend a file is root-only."""
    return os.access(path, os.R_OK)


def probe_int(path: str, notes: list[str], what: str) -> bool:
    """True when ``path`` is readable and holds an integer now; otherwise notes why not."""
    if not is_readable(path):
        notes.append(f"{what}: skipped, {path} is not readable (root only?)")
        return False
    try:
        read_sysfs_int(path)
    except InputError as e:
        notes.append(f"{what}: skipped, {e}")
        return False
    return True
