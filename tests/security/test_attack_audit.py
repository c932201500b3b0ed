"""Attacks on the gate's audit log (issue 13, item 8): sixteen ways to edit it, a full disk.

The attacker can rewrite the log file and its head file but does not hold the gate key. Before
signed entries and the head, ``verify-log`` missed 7 of these 16: dropping the last entry or the
last four, emptying the file, appending a forged entry with recomputed hashes, editing or
deleting then recomputing the chain, replacing the log. With the collector's anchors, even an
old head file put back beside a truncated log (or a log replaced by someone holding the key)
is caught. A full disk during an append used to leave a partial line that blocked every later
gate run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from edgeprof.cli import main
from edgeprof.collector.gate_keys import add_gate_key
from edgeprof.gate.audit import append, canonical, entry_hash, head_path, own_hash, sign_entry
from edgeprof.gate.keys import GateKey, init_gate_key
from edgeprof.testing.attacks import Attack
from edgeprof.testing.collector_server import Deployment
from edgeprof.testing.sample_reports import minimal_report

Attacker = Callable[[str], Attack]
Lines = list[bytes]
N = 5  # entries in the log under attack


def _entries(lines: Lines) -> list[dict[str, Any]]:
    return [json.loads(x) for x in lines]


def _rechain(
    entries: list[dict[str, Any]], forger: GateKey, victim: GateKey, keep: Lines | None = None
) -> Lines:
    """What an attacker without the gate key can do at best: keep the first lines as they are,
    then fix seq, prev and sha256 along the rest of the chain and sign with a key of their own
    under the gate key's id."""
    out: Lines = list(keep or [])
    prev = entry_hash(out[-1]) if out else "0" * 64
    for seq, e in enumerate(entries[len(out) :], len(out)):
        e = {k: v for k, v in e.items() if k not in ("sha256", "sig", "key_id")}
        e.update(seq=seq, prev=prev)
        signed = sign_entry(e, forger)
        signed["key_id"] = victim.key_id
        signed["sha256"] = own_hash(signed)
        line = canonical(signed)
        out.append(line)
        prev = entry_hash(line)
    return out


def _tamperings(
    victim: GateKey, forger: GateKey
) -> list[tuple[str, Callable[[Lines], Lines], int]]:
    """(what, edit of the log's lines, the line verify-log must name)."""

    def edit_value(lines: Lines) -> Lines:
        e = json.loads(lines[1])
        e["decision"]["outcome"] = "pass"
        return [lines[0], canonical(e), *lines[2:]]

    def edit_own_hash(lines: Lines) -> Lines:
        e = json.loads(lines[1])
        e["decision"]["outcome"] = "pass"
        e["sha256"] = own_hash(e)
        return [lines[0], canonical(e), *lines[2:]]

    def forged_insert(lines: Lines) -> Lines:
        e = json.loads(lines[1])
        e["justification"] = "inserted"
        e["sha256"] = own_hash(e)
        return [lines[0], lines[1], canonical(e), *lines[2:]]

    def append_forged(lines: Lines) -> Lines:
        es = _entries(lines)
        return _rechain([*es, {**es[-1], "justification": "forged"}], forger, victim, lines)

    def edit_rechain(lines: Lines) -> Lines:
        es = _entries(lines)
        es[1]["decision"]["outcome"] = "pass"
        return _rechain(es, forger, victim, lines[:1])

    def delete_rechain(lines: Lines) -> Lines:
        es = _entries(lines)
        del es[1]
        return _rechain(es, forger, victim, lines[:1])

    def replace(lines: Lines) -> Lines:
        es = _entries(lines)
        return _rechain([{**e, "justification": "a whole new log"} for e in es], forger, victim)

    return [
        ("edit a value", edit_value, 2),
        ("edit a value and recompute its own sha256", edit_own_hash, 2),
        ("hand edit that breaks canonical form",
         lambda ls: [ls[0], ls[1].replace(b'":', b'": ', 1), *ls[2:]], 2),
        ("delete a middle entry", lambda ls: [ls[0], *ls[2:]], 2),
        ("reorder two entries", lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], 2),
        ("insert a garbage line", lambda ls: [ls[0], b"garbage", *ls[1:]], 2),
        ("replay (duplicate) an entry", lambda ls: [ls[0], ls[1], ls[1], *ls[2:]], 3),
        ("insert a forged entry with its own sha256", forged_insert, 3),
        ("cut into the last entry", lambda ls: [*ls[:-1], ls[-1][:40]], N),
        ("drop the last entry", lambda ls: ls[:-1], N),
        ("drop the last four entries", lambda ls: ls[:-4], N - 3),
        ("empty the file", lambda ls: [], 1),
        ("append a forged entry with recomputed hashes", append_forged, N + 1),
        ("edit then recompute the chain", edit_rechain, 2),
        ("delete then recompute the chain", delete_rechain, 2),
        ("replace the log with a new chain", replace, 1),
    ]  # fmt: skip


def _write(path: Path, lines: Lines) -> None:
    text = b"\n".join(lines)
    if lines and not lines[-1].endswith(b"}"):  # a cut line: no newline after it
        path.write_bytes(text)
    else:
        path.write_bytes(text + b"\n" if lines else b"")


def _verify(log: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(main, ["gate", "verify-log", str(log), "--json", *extra])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[GateKey, GateKey]:
    monkeypatch.setenv("EDGEPROF_GATE_KEY_DIR", str(tmp_path / "gate-key"))
    return init_gate_key(tmp_path / "gate-key"), init_gate_key(tmp_path / "attacker-key")


def test_sixteen_tamperings_are_named_offline(
    tmp_path: Path, keys: tuple[GateKey, GateKey], attack: Attacker
) -> None:
    victim, forger = keys
    log = tmp_path / "audit.jsonl"
    for i in range(N):
        append(log, {"decision": {"outcome": "fail"}, "i": i, "justification": "FAIL"}, victim)
    original, head = log.read_bytes().splitlines(), head_path(log).read_bytes()
    assert _verify(log)[0] == 0
    a = attack("tamper with the audit log (16 ways) and its head kept")
    for what, tamper, line in _tamperings(victim, forger):
        _write(log, tamper(list(original)))
        head_path(log).write_bytes(head)
        code, doc = _verify(log)
        assert a.attempt(code == 1 and doc["bad_line"] == line), (what, doc)
    assert a.failed == 0


# -- with the collector's anchors --------------------------------------------------------------

POLICY = """schema_version = 1
name = "latency-only"

[[rule]]
id = "p95"
metric = "summary.latency.p95_s"
max = 0.100
"""


def _gate(c: Deployment, tmp: Path, log: Path) -> subprocess.CompletedProcess[str]:
    tok, policy = tmp / "pipe.tok", tmp / "policy.toml"
    tok.write_text(c.pipeline_token)
    policy.write_text(POLICY)
    return subprocess.run(
        [sys.executable, "-m", "edgeprof", "gate", "check", "--collector", c.url,
         "--token-file", str(tok), "--policy", str(policy), "--model", "kws",
         "--audit-log", str(log)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "EDGEPROF_GATE_KEY_DIR": str(tmp / "gate-key")},
    )  # fmt: skip


@pytest.mark.integration
def test_rollbacks_past_the_head_are_caught_by_the_collector(
    collector: Deployment, tmp_path: Path, keys: tuple[GateKey, GateKey], attack: Attacker
) -> None:
    victim, _ = keys
    add_gate_key(collector.engine, victim.public, "ci")
    log = tmp_path / "audit.jsonl"
    heads: list[bytes] = []
    for _ in range(N):
        r = minimal_report(latency_s=np.full(100, 0.01), model="kws", board="pi5")
        assert collector.upload(collector.signed(r))[0] == 201
        run = _gate(collector, tmp_path, log)
        assert run.returncode == 0, run.stderr
        heads.append(head_path(log).read_bytes())
    original = log.read_bytes().splitlines()
    tok = tmp_path / "pipe.tok"
    online = ["--collector", collector.url, "--token-file", str(tok)]
    code, doc = _verify(log, *online)
    assert (code, doc["collector_anchors"]) == (0, N)

    def replaced_by_key_holder(lines: Lines) -> Lines:
        shutil.move(log, tmp_path / "old.jsonl")
        shutil.move(head_path(log), tmp_path / "old.jsonl.head")
        append(log, {"decision": {"outcome": "pass"}, "justification": "rewritten"}, victim)
        return log.read_bytes().splitlines()

    tries: list[tuple[str, Callable[[Lines], Lines], bytes | None, int]] = [
        ("drop the last entry, put back the head before it", lambda ls: ls[:-1], heads[-2], N),
        ("drop the last four, put back the head of entry 0", lambda ls: ls[:1], heads[0], 2),
        ("empty the file, delete the head", lambda ls: [], None, 1),
        ("replace the log, holding the gate key", replaced_by_key_holder, b"", 1),
    ]  # fmt: skip
    a = attack("roll the audit log back with a matching head; ask the collector")
    for what, tamper, head, line in tries:
        lines = tamper(list(original))
        _write(log, lines)
        if head is None:
            head_path(log).unlink()
        elif head:
            head_path(log).write_bytes(head)
        offline = _verify(log)[0]
        code, doc = _verify(log, *online)
        assert a.attempt(code == 1 and doc["bad_line"] == line), (what, offline, doc)
        _write(log, original)
        head_path(log).write_bytes(heads[-1])
    assert a.failed == 0


# -- a full disk and a partial line -------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (we run as root in CI); else skip with the reason."""
    d = tmp_path / "small"
    d.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=False)


def _gate_file(tmp: Path, log: Path, report: Path) -> subprocess.CompletedProcess[str]:
    policy = tmp / "policy.toml"
    policy.write_text(POLICY)
    return subprocess.run(
        [sys.executable, "-m", "edgeprof", "gate", "check", str(report), "--policy", str(policy),
         "--allow-unsigned", "--audit-log", str(log)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "EDGEPROF_GATE_KEY_DIR": str(tmp / "gate-key")},
    )  # fmt: skip


def _fill(directory: Path) -> Path:
    """Fill the file system to the last byte."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 512)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_during_an_append_blocks_no_later_run(
    small_disk: Path, tmp_path: Path, keys: tuple[GateKey, GateKey], attack: Attacker
) -> None:
    from edgeprof.report.codec import encode

    report = tmp_path / "r.msgpack"
    report.write_bytes(encode(minimal_report(latency_s=np.full(50, 0.01))))
    log = small_disk / "audit.jsonl"
    page = os.statvfs(small_disk).f_bsize
    entries, size = 0, 0
    while entries < 2 or page - size % page > size / entries:  # till the next one spills over
        assert _gate_file(tmp_path, log, report).returncode == 0
        entries, size = entries + 1, log.stat().st_size
    a = attack("fill the disk during an audit append, then gate again")
    filler = _fill(small_disk)
    run = _gate_file(tmp_path, log, report)
    refused = run.returncode == 2 and "not recorded" in run.stderr
    refused = refused and len(run.stderr.strip().splitlines()) == 1
    code, doc = _verify(log)
    a.attempt(refused and code == 0 and doc["entries"] == entries and doc["notes"] == [])
    assert log.stat().st_size == size  # cut back: whole or absent
    filler.unlink()
    run = _gate_file(tmp_path, log, report)
    code, doc = _verify(log)
    a.attempt(run.returncode == 0 and code == 0 and doc["entries"] == entries + 1)
    assert a.failed == 0, run.stderr


def test_a_partial_last_line_is_recovered_and_reported_by_the_next_run(
    tmp_path: Path, keys: tuple[GateKey, GateKey], attack: Attacker
) -> None:
    from edgeprof.report.codec import encode

    report = tmp_path / "r.msgpack"
    report.write_bytes(encode(minimal_report(latency_s=np.full(50, 0.01))))
    log = tmp_path / "audit.jsonl"
    assert _gate_file(tmp_path, log, report).returncode == 0
    a = attack("a power cut mid-append leaves a partial line; gate again")
    with log.open("ab") as f:
        f.write(log.read_bytes()[:300])  # what a short write or a power cut leaves
    run = _gate_file(tmp_path, log, report)
    code, doc = _verify(log)
    held = run.returncode == 0 and "removed an incomplete last line (300 bytes" in run.stderr
    a.attempt(held and code == 0 and doc["entries"] == 2)
    last = json.loads(log.read_bytes().splitlines()[-1])
    assert a.failed == 0, run.stderr
    assert "removed an incomplete last line" in last["recovered"][0]


def test_a_file_size_limit_hit_mid_append_leaves_the_log_whole(
    tmp_path: Path, keys: tuple[GateKey, GateKey], attack: Attacker
) -> None:
    """The same refusal without a mount: RLIMIT_FSIZE in a child makes the write stop part-way
    (where a small tmpfs cannot be mounted, this is the full disk)."""
    import resource
    import signal

    victim, _ = keys
    log = tmp_path / "audit.jsonl"
    append(log, {"decision": {"outcome": "pass"}, "justification": "PASS"}, victim)
    size = log.stat().st_size
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        message = "appended"
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a short write, not a kill
            resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, size + 100))
            append(log, {"decision": {"outcome": "fail"}, "justification": "x" * 500}, victim)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
        finally:
            os.write(w, message.encode())
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        said = f.read().decode()
    os.waitpid(pid, 0)
    a = attack("hit the file size limit during an audit append, then append again")
    a.attempt("InputError" in said and "not recorded" in said and log.stat().st_size == size)
    done = append(log, {"decision": {"outcome": "pass"}, "justification": "PASS"}, victim)
    code, doc = _verify(log)
    a.attempt(done.entry["seq"] == 1 and done.notes == () and code == 0 and doc["entries"] == 2)
    assert a.failed == 0, said
