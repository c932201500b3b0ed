"""Files that are whole or absent: the one place that writes them.

A report, a reason file, a stored upload: each is written to a hidden temp file in the same
directory, fsynced, renamed over the target and the directory fsynced, so a crash or a kill -9
at any point leaves either the old state or the new file, never a partial one that looks real.
Temp files are named ``.<name>.<random>.tmp``: readers skip hidden files.
"""

from __future__ import annotations

import contextlib
import os
import secrets


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename or a new file in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """temp file, fsync, rename, fsync the directory: the file is whole or absent."""
    target = os.fspath(path)
    directory = os.path.dirname(target) or "."
    tmp = os.path.join(directory, f".{os.path.basename(target)}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    fsync_dir(directory)


def write_atomic_at(dir_fd: int, name: str, data: bytes) -> None:
    """:func:`write_atomic` of ``name`` inside the directory open as ``dir_fd``.

    For callers that opened a directory once and must not follow a symlink anywhere under it:
    the temp file is created with ``O_EXCL | O_NOFOLLOW`` and renamed over ``name`` (a symlink
    already there is replaced, never written through).
    """
    tmp = f".{name}.{secrets.token_hex(4)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o644, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    os.fsync(dir_fd)
