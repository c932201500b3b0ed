"""A failed native build names what is missing, instead of ending in compiler noise."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

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


def test_this_machine_passes_preflight(build_native: ModuleType) -> None:
    build_native.preflight()


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
