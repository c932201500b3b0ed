"""Build the C core into ``edgeprof._native`` with cffi, in API mode, out of line.

setup.py hands ``ffibuilder`` to cffi's setuptools hook, so ``pip install .`` and
``pip install -e .`` compile it once at install time; nothing compiles at import time. The cdef
is the public header itself, stripped of preprocessor lines, so the C declarations live in one
place. Before compiling, :func:`preflight` checks the compiler and each header we need, so a
failed build names what is missing instead of ending in a wall of compiler output.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
HEADER = HERE / "include" / "edgeprof.h"
SOURCES = ["clock.c", "counters.c", "regions.c", "parse.c", "ring.c", "sampler.c"]

# header -> the Debian package that provides it
NEEDED_HEADERS = {
    "Python.h": "python3-dev",
    "linux/perf_event.h": "linux-libc-dev",
    "pthread.h": "libc6-dev",
    "stdatomic.h": "gcc (a C11 compiler)",
}


class NativeBuildError(RuntimeError):
    """The C core cannot be built on this machine; the message says what to install."""


def cdef_from_header(text: str) -> str:
    """The declarations of edgeprof.h in a form cffi's cdef parser accepts."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    # Preprocessor lines go; so do the C++ guard's `extern "C" {` and its lone closing brace.
    kept = [
        line
        for line in text.splitlines()
        if not line.strip().startswith("#") and line.strip() not in ('extern "C" {', "}")
    ]
    body = "\n".join(kept)
    return body + "\n#define EP_MAX_CHANNELS ...\n"


def _compiler() -> list[str]:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shlex.split(str(cc))


def preflight() -> None:
    """Fail early, naming the missing compiler or header and the package that provides it."""
    cc = _compiler()
    if not shutil.which(cc[0]):
        raise NativeBuildError(
            f"edgeprof's C core needs a C compiler, and {cc[0]!r} was not found. "
            "On Debian/Ubuntu: apt-get install gcc (or build-essential)."
        )
    include = sysconfig.get_paths()["include"]
    for header, package in NEEDED_HEADERS.items():
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "probe.c"
            src.write_text(f"#include <{header}>\nint main(void) {{ return 0; }}\n")
            proc = subprocess.run(
                [*cc, "-std=gnu11", f"-I{include}", "-c", str(src), "-o", str(Path(tmp) / "p.o")],
                capture_output=True,
                text=True,
                check=False,
            )
        if proc.returncode != 0:
            raise NativeBuildError(
                f"edgeprof's C core needs the header <{header}>, which {cc[0]} cannot find "
                f"(install {package}). Compiler said: {proc.stderr.strip()[:300]}"
            )


def make_builder() -> FFI:
    """The FFI builder for ``edgeprof._native``."""
    ffi = FFI()
    ffi.cdef(cdef_from_header(HEADER.read_text()))
    rel = os.path.relpath(HERE, Path.cwd())
    ffi.set_source(
        "edgeprof._native",
        '#include "edgeprof.h"\n',
        sources=[os.path.join(rel, "src", s) for s in SOURCES],
        include_dirs=[os.path.join(rel, "include")],
        extra_compile_args=["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        libraries=["m", "pthread"],
    )
    return ffi


if os.environ.get("EDGEPROF_SKIP_PREFLIGHT") != "1" and "egg_info" not in sys.argv:
    try:
        preflight()
    except NativeBuildError as exc:
        sys.stderr.write(f"\nerror: {exc}\n\n")
        raise
ffibuilder = make_builder()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
