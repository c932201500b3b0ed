"""Uplink against a real stand-in collector on loopback: real processes, real sockets, no mocks.

The invariant every test checks in its own way: a report leaves the spool only once the
collector has stored it, and the collector keeps each report id exactly once.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from edgeprof.report.store import save_report
from edgeprof.testing.standin_collector import StandinCollector, sample_report
from edgeprof.uplink.http import backoff_delay
from edgeprof.uplink.spool import (
    CORRUPT_DIR,
    REJECTED_DIR,
    SENT_DIR,
    PushResult,
    push,
    spooled,
)

pytestmark = pytest.mark.integration  # real processes (tests/conftest.py: tiers)

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(autouse=True)
def _isolated_default_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A push without --store must never touch the real default store of this machine."""
    monkeypatch.setenv("EDGEPROF_STORE", str(tmp_path / "default-store"))


def spool(store: Path, n: int, padding: int = 0) -> list[str]:
    """Write n reports into the store the way ``edgeprof run`` does; their ids."""
    ids = []
    for _ in range(n):
        report_id, data = sample_report(padding)
        save_report(data, report_id, store)
        ids.append(report_id)
    return sorted(ids)


def no_sleep(_: float) -> None:
    """Backoff without waiting (the delays themselves are tested in test_backoff_*)."""


def free_port() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str, token: str = TOKEN, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m edgeprof.cli.push ARGS`` as cron would run it, token from the environment."""
    env = {**os.environ, "EDGEPROF_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "edgeprof.cli.push", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_backoff_is_capped_full_jitter() -> None:
    assert backoff_delay(0, rand=lambda: 1.0) == 0.5
    assert backoff_delay(3, rand=lambda: 1.0) == 4.0
    assert backoff_delay(50, rand=lambda: 1.0) == 30.0
    assert backoff_delay(50, rand=lambda: 0.0) == 0.0
    assert 0.0 <= backoff_delay(2) <= 2.0


def test_happy_path_delivers_and_empties_the_spool(tmp_path: Path) -> None:
    store, up = tmp_path / "store", tmp_path / "up"
    ids = spool(store, 3)
    with StandinCollector(up, TOKEN) as c:
        result = push(store, c.url, TOKEN, sleep=no_sleep)
        assert c.stored_ids() == ids
    assert result == PushResult(sent=3)
    assert spooled(store) == []
    assert sorted(p.stem for p in (store / SENT_DIR).glob("*.msgpack")) == ids


def test_empty_or_missing_store_is_success(tmp_path: Path) -> None:
    assert push(tmp_path / "nothing", "http://127.0.0.1:9", TOKEN) == PushResult()
    proc = cli("--url", "http://127.0.0.1:9", "--store", str(tmp_path / "nothing"))
    assert proc.returncode == 0, proc.stderr


def test_collector_down_keeps_everything_then_delivers(tmp_path: Path) -> None:
    store, up = tmp_path / "store", tmp_path / "up"
    ids = spool(store, 3)
    down = f"http://127.0.0.1:{free_port()}"
    proc = cli("--url", down, "--store", str(store), "--max-attempts", "1", "--timeout", "2")
    assert proc.returncode == 1, proc.stderr
    assert "3 remaining" in proc.stdout
    assert "ConnectionRefused" in proc.stdout
    assert TOKEN not in proc.stdout + proc.stderr
    assert len(spooled(store)) == 3
    with StandinCollector(up, TOKEN) as c:
        proc = cli("--url", c.url, "--store", str(store), "--json")
        assert c.stored_ids() == ids
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["sent"] == 3
    assert spooled(store) == []


def test_slow_collector_beyond_timeout_never_duplicates(tmp_path: Path) -> None:
    store, up = tmp_path / "store", tmp_path / "up"
    ids = spool(store, 1)
    with StandinCollector(up, TOKEN, slow_s=1.5):
        pass
    with StandinCollector(up, TOKEN, slow_s=1.0) as c:
        result = push(store, c.url, TOKEN, max_attempts=2, timeout_s=0.3, sleep=no_sleep)
    assert result.failed == 1
    assert result.remaining == 1
    assert "timed out" in (result.error or "")
    with StandinCollector(up, TOKEN) as c:
        result = push(store, c.url, TOKEN, sleep=no_sleep)
        assert c.stored_ids() == ids  # stored once, whichever attempt got there first
    assert result.sent + result.duplicates == 1
    assert result.remaining == 0


def test_server_errors_then_ok_delivers_once(tmp_path: Path) -> None:
    store, up = tmp_path / "store", tmp_path / "up"
    ids = spool(store, 2)
    delays: list[float] = []
    with StandinCollector(up, TOKEN, fail_first=2) as c:
        result = push(store, c.url, TOKEN, sleep=delays.append)
        assert c.stored_ids() == ids
    assert result == PushResult(sent=2)
    assert len(delays) == 2
    assert all(0 <= d <= 1.0 for d in delays)


def test_server_errors_use_up_attempts_then_stop(tmp_path: Path) -> None:
    store, up = tmp_path / "store", tmp_path / "up"
    spool(store, 3)
    with StandinCollector(up, TOKEN, fail_first=100) as c:
        result = push(store, c.url, TOKEN, max_attempts=3, sleep=no_sleep)
        assert c.stored_ids() == []
    assert result.failed == 1
    assert result.remaining == 3
    assert "HTTP 500" in (result.error or "")


def test_close_mid_body_delivers_exactly_once(tmp_path: Path) -> None:
    store, up = tmp_path / "store", tmp_path / "up"
    ids = spool(store, 2, padding=300_000)  # big enough that the close interrupts the send
    with StandinCollector(up, TOKEN, close_mid_body=2) as c:
        first = push(store, c.url, TOKEN, max_attempts=1, sleep=no_sleep)
        assert first.failed == 1  # the close really interrupted the first attempt
        assert c.stored_ids() == []
        result = push(store, c.url, TOKEN, sleep=no_sleep)
        assert c.stored_ids() == ids
    assert result.sent == 2
    assert result.remaining == 0


def test_dropped_ack_is_retried_and_answered_duplicate(tmp_path: Path) -> None:
    store, up = tmp_path / "store", tmp_path / "up"
    ids = spool(store, 1)
    with StandinCollector(up, TOKEN, drop_ack=1) as c:
        result = push(store, c.url, TOKEN, sleep=no_sleep)
        assert c.stored_ids() == ids
    assert result == PushResult(duplicates=1)
    assert spooled(store) == []


def test_bad_token_stops_the_run_and_keeps_every_report(tmp_path: Path) -> None:
    store, up = tmp_path / "store", tmp_path / "up"
    ids = spool(store, 2)
    with StandinCollector(up, TOKEN) as c:
        proc = cli("--url", c.url, "--store", str(store), token="wrong-token")
        assert c.stored_ids() == []
        assert sorted(p.stem for p in spooled(store)) == ids  # nothing filed as rejected
        again = push(store, c.url, TOKEN)  # the right token delivers them
        assert sorted(c.stored_ids()) == ids
    assert proc.returncode == 2  # the device's configuration, not the reports (issue 13)
    assert "refused the token" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "wrong-token" not in proc.stdout + proc.stderr
    assert not (store / REJECTED_DIR).exists()
    assert again.sent == 2


def test_garbage_goes_to_corrupt_and_temp_files_are_ignored(tmp_path: Path) -> None:
    store, up = tmp_path / "store", tmp_path / "up"
    ids = spool(store, 1)
    (store / "junk.msgpack").write_bytes(b"\x93not a report")
    (store / "truncated.msgpack").write_bytes(sample_report()[1][:100])
    temp = store / f".{ids[0]}.msgpack.abcd1234.tmp"
    temp.write_bytes(b"half a rep")
    notes = store / "README.txt"
    notes.write_text("not ours")
    with StandinCollector(up, TOKEN) as c:
        result = push(store, c.url, TOKEN, sleep=no_sleep)
        assert c.stored_ids() == ids
    assert result.sent == 1
    assert result.corrupt == 2
    assert not result.delivered_all
    corrupt = store / CORRUPT_DIR
    assert sorted(p.name for p in corrupt.glob("*.msgpack")) == [
        "junk.msgpack",
        "truncated.msgpack",
    ]
    assert "truncated" in (corrupt / "truncated.msgpack.reason.txt").read_text()
    assert temp.read_bytes() == b"half a rep"
    assert notes.exists()


def test_two_concurrent_pushes_store_each_report_once(tmp_path: Path) -> None:
    store, up = tmp_path / "store", tmp_path / "up"
    ids = spool(store, 8)
    with StandinCollector(up, TOKEN, slow_s=0.05) as c:
        args = [sys.executable, "-m", "edgeprof.cli.push", "--url", c.url, "--store", str(store)]
        env = {**os.environ, "EDGEPROF_TOKEN": TOKEN}
        procs = [
            subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=60) for p in procs]
        assert c.stored_ids() == ids
    codes = sorted(p.returncode for p in procs)
    assert codes in ([0, 0], [0, 1]), outs
    if codes == [0, 1]:
        assert any(b"another push is running" in err for _, err in outs)
    assert spooled(store) == []


def test_bad_input_exits_2(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    for args in (
        ["--url", "ftp://x"],
        ["--url", "http://user:pw@127.0.0.1:9"],
        ["--url", "http://127.0.0.1:9", "--token", "a", "--token-file", str(token_file)],
        ["--url", "http://127.0.0.1:9", "--max-attempts", "0"],
    ):
        proc = cli(*args, "--store", str(tmp_path / "s"))
        assert proc.returncode == 2, (args, proc.stderr)
    proc = cli("--url", "http://127.0.0.1:9", "--token-file", str(token_file), token="")
    assert proc.returncode == 0, proc.stderr  # the default store is empty: nothing to send
