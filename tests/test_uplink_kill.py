"""Crash safety: SIGKILL while writing and while pushing, and a full disk.

The writer and pusher are forked children (the parent's imports are already loaded, so each
iteration costs milliseconds, not an interpreter start) killed with SIGKILL at random delays.
``EDGEPROF_KILL_ITERATIONS`` sets the total number of kills (default 100, half each).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgeprof.errors import InputError
from edgeprof.report.codec import decode
from edgeprof.report.store import save_report
from edgeprof.testing.standin_collector import StandinCollector, sample_report
from edgeprof.uplink.spool import SENT_DIR, push, spooled

pytestmark = pytest.mark.integration  # real processes (tests/conftest.py: tiers)

TOKEN = "kill-test-token"
ITERATIONS = int(os.environ.get("EDGEPROF_KILL_ITERATIONS", "100"))


def kill_after(delay_s: float, child: Callable[[], None]) -> None:
    """Fork, run child (never returning into pytest), SIGKILL it after delay_s, reap it."""
    pid = os.fork()
    if pid == 0:
        try:
            child()
        finally:
            os._exit(0)
    time.sleep(delay_s)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def reports_in(directory: Path) -> list[Path]:
    """Every file that is not write_atomic's hidden temp file."""
    return sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))


def test_kill_while_writing_leaves_only_whole_reports(tmp_path: Path) -> None:
    store = tmp_path / "store"
    rng = random.Random(1)

    def writer() -> None:
        while True:
            report_id, data = sample_report(padding=rng.randrange(0, 200_000))
            save_report(data, report_id, store)

    for _ in range(max(1, ITERATIONS // 2)):
        kill_after(rng.uniform(0.0, 0.03), writer)
    files = reports_in(store)
    assert files, "the writer never got a report out"
    for path in files:
        assert path.suffix == ".msgpack"
        assert decode(path.read_bytes(), str(path))["report_id"] == path.stem


def test_kill_while_pushing_delivers_each_report_once(tmp_path: Path) -> None:
    store, up = tmp_path / "store", tmp_path / "up"
    ids = set()
    for _ in range(60):
        report_id, data = sample_report(padding=20_000)
        save_report(data, report_id, store)
        ids.add(report_id)
    rng = random.Random(2)
    with StandinCollector(up, TOKEN) as c:
        for i in range(max(1, ITERATIONS // 2)):
            if i % 5 == 0:  # keep the spool fed so late kills still land mid-delivery
                report_id, data = sample_report(padding=20_000)
                save_report(data, report_id, store)
                ids.add(report_id)

            def pusher() -> None:
                push(store, c.url, TOKEN, max_attempts=2, timeout_s=2.0, sleep=lambda _: None)

            kill_after(rng.uniform(0.0, 0.02), pusher)
        final = push(store, c.url, TOKEN, timeout_s=5.0)
        stored = c.stored_ids()
    assert (final.remaining, final.failed, final.corrupt) == (0, 0, 0), final
    assert len(stored) == len(ids)
    assert set(stored) == ids
    assert spooled(store) == []
    assert {p.stem for p in (store / SENT_DIR).glob("*.msgpack")} == ids


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 128 KiB tmpfs (needs root); skipped locally without root, a failure under CI."""
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        reason = f"cannot mount a tmpfs (needs root): {proc.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=False, timeout=30)


def test_disk_full_is_a_clear_error_and_leaves_no_partial_report(tiny_fs: Path) -> None:
    store = tiny_fs / "store"
    written = 0
    error: InputError | None = None
    for _ in range(1000):
        report_id, data = sample_report(padding=15_000)
        try:
            save_report(data, report_id, store)
        except InputError as exc:
            error = exc
            break
        written += 1
    assert error is not None, "the 128 KiB file system never filled up"
    assert "No space left" in str(error)
    assert written >= 1
    files = sorted(store.iterdir())
    assert not [p for p in files if p.name.startswith(".")], "a temp file was left behind"
    assert len(files) == written
    for path in files:
        assert decode(path.read_bytes(), str(path))["report_id"] == path.stem
