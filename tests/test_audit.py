"""edgeprof.gate.audit: the hash chain notices edits, deletions, insertions and reordering."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from edgeprof.gate.audit import GENESIS, append, canonical, entry_hash, verify_log


def _log(tmp_path: Path, n: int = 4) -> Path:
    path = tmp_path / "audit.jsonl"
    for i in range(n):
        append(path, {"decision": {"outcome": "pass"}, "rules": [{"value": 0.001 * i}]})
    return path


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def test_chain_is_intact_and_linked(tmp_path: Path) -> None:
    path = _log(tmp_path)
    check = verify_log(path)
    assert check.ok
    assert check.entries == 4
    lines = _lines(path)
    first = json.loads(lines[0])
    assert first["prev"] == GENESIS
    assert first["seq"] == 0
    assert json.loads(lines[1])["prev"] == entry_hash(lines[0])
    assert check.head == entry_hash(lines[-1])
    assert canonical(first) == lines[0]


def test_edited_value_names_that_line(tmp_path: Path) -> None:
    path = _log(tmp_path)
    lines = _lines(path)
    entry = json.loads(lines[2])
    entry["rules"][0]["value"] = 0.5
    lines[2] = canonical(entry)
    path.write_bytes(b"\n".join(lines) + b"\n")
    check = verify_log(path)
    assert not check.ok
    assert check.bad_line == 3
    assert "own sha256" in check.reason


def test_edit_with_recomputed_own_hash_breaks_the_next_line(tmp_path: Path) -> None:
    path = _log(tmp_path)
    lines = _lines(path)
    entry = json.loads(lines[1])
    entry["decision"]["outcome"] = "fail"
    del entry["sha256"]
    entry["sha256"] = entry_hash(canonical(entry))
    lines[1] = canonical(entry)
    path.write_bytes(b"\n".join(lines) + b"\n")
    check = verify_log(path)
    assert not check.ok
    assert check.bad_line == 3
    assert "prev" in check.reason


def test_hand_edit_that_breaks_canonical_form(tmp_path: Path) -> None:
    path = _log(tmp_path)
    text = path.read_bytes().replace(b'"outcome":"pass"', b'"outcome": "pass"', 1)
    path.write_bytes(text)
    check = verify_log(path)
    assert check.bad_line == 1
    assert "canonical" in check.reason


def test_deleted_entry(tmp_path: Path) -> None:
    path = _log(tmp_path)
    lines = _lines(path)
    del lines[1]
    path.write_bytes(b"\n".join(lines) + b"\n")
    check = verify_log(path)
    assert not check.ok
    assert check.bad_line == 2
    assert "seq" in check.reason


def test_reordered_entries(tmp_path: Path) -> None:
    path = _log(tmp_path)
    lines = _lines(path)
    lines[2], lines[3] = lines[3], lines[2]
    path.write_bytes(b"\n".join(lines) + b"\n")
    check = verify_log(path)
    assert not check.ok
    assert check.bad_line == 3


def test_garbage_and_truncation(tmp_path: Path) -> None:
    path = _log(tmp_path)
    with path.open("ab") as f:
        f.write(b'{"half')
    check = verify_log(path)
    assert not check.ok
    assert check.bad_line == 5
    assert "incomplete" in check.reason
    path.write_bytes(b"not json\n")
    assert verify_log(path).bad_line == 1


def test_empty_log_is_ok(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    check = verify_log(path)
    assert check.ok
    assert check.entries == 0
    assert check.head == GENESIS


def test_concurrent_appends_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"

    def worker(k: int) -> None:
        for i in range(10):
            append(path, {"worker": k, "i": i})

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check = verify_log(path)
    assert check.ok
    assert check.entries == 40
