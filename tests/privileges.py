"""Running a piece of a test without root's privileges.

The tests run as root (CI does), and root reads any file whatever its mode. To exercise the
permission-denied paths for real, fork, drop to uid/gid 65534 in the child, run the function
there and bring back its string result. The parent's imports are already loaded, so the child
needs no access to the interpreter's files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

NOBODY = 65534


def in_unprivileged_child(fn: Callable[[], str]) -> str:
    """Run fn in a forked child without root privileges; return what it returned."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.close(r)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            os.write(w, fn().encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the unprivileged child failed"
    return out


@contextmanager
def world_traversable_dir() -> Iterator[Path]:
    """A temporary directory the unprivileged child can walk (pytest's tmp_path is 0700)."""
    base = Path(tempfile.mkdtemp(prefix="edgeprof-perm-"))
    try:
        base.chmod(0o755)
        yield base
    finally:
        shutil.rmtree(base)
