"""A failed native build names what is missing, instead of ending in compiler noise."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.integration  # real processes (tests/conftest.py: tiers)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def build_native(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("EDGEPROF_SKIP_PREFLIGHT", "1")  # importing it must not probe yet
    spec = importlib.util.spec_from_file_location("build_native", ROOT / "native/build_native.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "build_native", module)
    monkeypatch.chdir(ROOT)
    spec.loader.exec_module(module)
    return module


def test_this_machine_passes_preflight_having_probed_every_header(
    build_native: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The real compiler behind a wrapper that logs each probe it is given, so that passing
    # means every needed header was compiled against, with Python's include directory.
    real_cc = shutil.which(os.environ.get("CC") or "cc") or shutil.which("gcc")
    if real_cc is None:
        pytest.skip("needs a C compiler (apt-get install gcc)")
    log = tmp_path / "probes.log"
    wrapper = tmp_path / "cc-wrapper"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'echo "ARGS $*" >> "{log}"\n'
        f'for a in "$@"; do case "$a" in *.c) cat "$a" >> "{log}";; esac; done\n'
        f'exec "{real_cc}" "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("CC", str(wrapper))
    build_native.preflight()
    probes = log.read_text()
    for header in build_native.NEEDED_HEADERS:
        assert f"#include <{header}>" in probes, header
    assert f"-I{sysconfig.get_paths()['include']}" in probes


def test_missing_compiler_is_named(
    build_native: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC", "/nonexistent/edgeprof-cc")
    with pytest.raises(build_native.NativeBuildError, match=r"C compiler.*edgeprof-cc.*not found"):
        build_native.preflight()


def test_missing_header_is_named_with_its_package(
    build_native: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(build_native.NEEDED_HEADERS, "edgeprof/no_such.h", "edgeprof-dev")
    with pytest.raises(build_native.NativeBuildError, match=r"<edgeprof/no_such.h>.*edgeprof-dev"):
        build_native.preflight()


def test_cdef_is_the_public_header(build_native: ModuleType) -> None:
    cdef = build_native.cdef_from_header(build_native.HEADER.read_text())
    assert "#" not in cdef.replace("#define EP_MAX_CHANNELS ...", "")
    for name in ("ep_tick", "ep_sampler_add", "ep_region_begin", "ep_ring_drain"):
        assert f"{name}(" in cdef
