"""Ctrl-C on a real `edgeprof run`: exit 130 (never 1, "the gate failed"), and what was measured
is kept as a signed, stored report marked interrupted (issue 14).

The signal is sent when the run has said, on its terminal, that it reached the phase under test
(the progress bar, drawn only on a TTY, so stderr is a pseudo-terminal here): a cause, not a sleep.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from edgeprof.report.codec import read_report
from edgeprof.report.signing import load_keys

if not os.environ.get("CI"):  # in CI a missing runtime fails the tests instead
    pytest.importorskip("ai_edge_litert", reason="needs LiteRT: pip install 'edgeprof[litert]'")

import edgeprof.models

pytestmark = pytest.mark.integration  # real processes (tests/conftest.py: tiers)

MLP = Path(edgeprof.models.DIRECTORY) / "kws_mlp_int8.tflite"
# Neither a count nor a time this run could reach before the test's timeout: only Ctrl-C ends it.
ENDLESS = ["--count", "1000000", "--min-seconds", "600", "--max-seconds", "600"]


class _Terminal:
    """A pseudo-terminal for the child's stderr, read on a thread until the child closes it."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.text = ""
        self._lock = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)

    def start(self) -> None:
        os.close(self.slave)  # the child holds it now
        self._thread.start()

    def _read(self) -> None:
        while True:
            ready, _, _ = select.select([self.master], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: every writer closed the terminal
                chunk = b""
            with self._lock:
                if not chunk:
                    self._lock.notify_all()
                    return
                self.text += chunk.decode(errors="replace")
                self._lock.notify_all()

    def wait_for(self, word: str, timeout: float) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: word in self.text, timeout=timeout)

    def close(self) -> str:
        self._thread.join(timeout=60)
        os.close(self.master)
        return self.text


def _start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], _Terminal]:
    term = _Terminal()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeprof", *args],
        stdout=subprocess.PIPE,
        stderr=term.slave,
        text=True,
        env=env,
    )
    term.start()
    return proc, term


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A signing key of its own, in a config dir this test and its child both read."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    full = dict(os.environ)
    subprocess.run(
        [sys.executable, "-m", "edgeprof", "keys", "init"],
        env=full,
        check=True,
        capture_output=True,
    )
    return full


def test_ctrl_c_while_measuring_keeps_a_signed_interrupted_report(
    tmp_path: Path, env: dict[str, str]
) -> None:
    store = tmp_path / "store"
    proc, term = _start(["run", str(MLP), *ENDLESS, "--warmup", "3", "--store", str(store)], env)
    try:
        assert term.wait_for("measure", timeout=120), term.text  # the measured phase began
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = term.close()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "edgeprof: interrupted after" in err
    (path,) = store.glob("*.msgpack")  # stored as usual
    assert str(path) in err
    assert str(path) in out
    report = read_report(path, verify=True)  # signed as usual, and the signature holds
    assert "signature" in report
    assert load_keys().any
    assert report["interrupted"] is True
    count = report["summary"]["count"]
    assert 1 <= count < 1_000_000  # what was measured, not what was asked
    assert len(report["per_inference"]["latency_s"]) == count
    assert any(w.startswith("interrupted (Ctrl-C) after") for w in report["warnings"])
    start, end = report["time_anchors"]["start"], report["time_anchors"]["end"]
    assert start["monotonic_raw_ns"] < int(report["per_inference"]["begin_ns"].max())
    assert int(report["per_inference"]["begin_ns"].max()) < end["monotonic_raw_ns"]


def test_ctrl_c_before_the_first_measured_inference_leaves_no_report(
    tmp_path: Path, env: dict[str, str]
) -> None:
    store = tmp_path / "store"
    args = ["run", str(MLP), *ENDLESS, "--warmup-seconds", "600", "--store", str(store)]
    proc, term = _start(args, env)
    try:
        assert term.wait_for("warm-up", timeout=120), term.text
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = term.close()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "edgeprof: interrupted" in err
    assert out == ""
    assert not store.exists() or not list(store.glob("*.msgpack"))
