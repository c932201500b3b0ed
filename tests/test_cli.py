"""The ``edgeprof`` command as a user runs it: a real subprocess, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeprof.testing.fake_sysfs import fake_roots, make_jetson_like, make_rapl

pytestmark = pytest.mark.integration  # real processes (tests/conftest.py: tiers)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m edgeprof ARGS`` with a timeout, so a hang fails instead of blocking CI."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "edgeprof", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
        check=False,
    )


def test_version() -> None:
    proc = run("--version")
    assert proc.returncode == 0
    assert "edgeprof" in proc.stdout


def test_doctor_json_on_a_jetson_like_tree(tmp_path: Path) -> None:
    roots = fake_roots(tmp_path)
    make_jetson_like(roots.sysfs)
    proc = run("--sysfs-root", str(roots.sysfs), "doctor", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["roots"]["sysfs"] == str(roots.sysfs)
    rails = {c["label"]: c for c in report["power"]["channels"] if c["quantity"] == "power"}
    assert "VDD_IN" in rails
    vdd_in = rails["VDD_IN"]
    assert vdd_in["reading_unit"] == "W"
    # The reading is what the files hold, converted once: read them back independently.
    paths = vdd_in["paths"]
    raw = [int(Path(p).read_text()) for p in paths]
    expect = raw[0] * 1e-6 if len(raw) == 1 else raw[0] * raw[1] * 1e-6
    assert vdd_in["reading"] == pytest.approx(expect)
    assert report["clock"]["hz"] > 1e6
    assert report["memory"]["rss"]["available"] is True
    assert isinstance(report["perf_counters"]["available"], bool)
    freqs = [c for c in report["system"]["channels"] if c["quantity"] == "frequency"]
    assert freqs
    assert all(c["reading"] > 0 for c in freqs)


def test_doctor_env_root_and_rapl_as_power(tmp_path: Path) -> None:
    roots = fake_roots(tmp_path)
    make_rapl(roots.sysfs, {"intel-rapl:0": "package-0"})
    proc = run("doctor", "--json", env={"EDGEPROF_SYSFS_ROOT": str(roots.sysfs)})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    (rapl,) = report["power"]["channels"]
    assert rapl["kind"] == "counter"
    assert rapl["unit"] == "J"
    assert rapl["reading_unit"] == "W"
    assert rapl["reading"] == pytest.approx(0.0)  # the counter did not move


def test_doctor_text_on_an_empty_tree_exits_zero(tmp_path: Path) -> None:
    proc = run("--sysfs-root", str(tmp_path), "doctor")
    assert proc.returncode == 0, proc.stderr
    assert "Power rails" in proc.stdout
    assert "none found" in proc.stdout
    assert "\x1b[" not in proc.stdout  # no colour codes when not on a TTY
    assert "Traceback" not in proc.stderr


def test_a_nonexistent_root_is_refused_in_one_line(tmp_path: Path) -> None:
    # Read from a tree that is not there, every source would silently find nothing (issue 14).
    missing = tmp_path / "missing"
    for flag, env in (("--sysfs-root", {}), (None, {"EDGEPROF_SYSFS_ROOT": str(missing)})):
        args = (flag, str(missing)) if flag else ()
        proc = run(*args, "doctor", "--json", env=env)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr == f"edgeprof: error: --sysfs-root {missing}: no such directory\n"
        assert proc.stdout == ""


def test_unknown_command_is_a_usage_error() -> None:
    proc = run("frobnicate")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
