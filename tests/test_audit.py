"""edgeprof.gate.audit: the signed hash chain notices edits, deletions, insertions and
reordering; a partial last line is recovered by the next append. (Every tampering an attacker
may try, the end of the log included, is in tests/security/test_attack_audit.py.)"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from edgeprof.errors import InputError
from edgeprof.gate.audit import (
    GENESIS,
    append,
    canonical,
    entry_hash,
    head_path,
    own_hash,
    verify_log,
)
from edgeprof.gate.keys import GateKey, init_gate_key


@pytest.fixture
def key(tmp_path: Path) -> GateKey:
    return init_gate_key(tmp_path / "gate-key")


def _log(tmp_path: Path, key: GateKey, n: int = 4) -> Path:
    path = tmp_path / "audit.jsonl"
    for i in range(n):
        append(path, {"decision": {"outcome": "pass"}, "rules": [{"value": 0.001 * i}]}, key)
    return path


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def test_chain_is_intact_and_linked(tmp_path: Path, key: GateKey) -> None:
    path = _log(tmp_path, key)
    check = verify_log(path, key.public)
    assert check.ok
    assert check.entries == 4
    lines = _lines(path)
    first = json.loads(lines[0])
    assert first["prev"] == GENESIS
    assert first["seq"] == 0
    assert json.loads(lines[1])["prev"] == entry_hash(lines[0])
    assert check.head == entry_hash(lines[-1])
    assert canonical(first) == lines[0]


def test_edited_value_names_that_line(tmp_path: Path, key: GateKey) -> None:
    path = _log(tmp_path, key)
    lines = _lines(path)
    entry = json.loads(lines[2])
    entry["rules"][0]["value"] = 0.5
    lines[2] = canonical(entry)
    path.write_bytes(b"\n".join(lines) + b"\n")
    check = verify_log(path, key.public)
    assert not check.ok
    assert check.bad_line == 3
    assert "own sha256" in check.reason


def test_edit_with_recomputed_own_hash_fails_its_signature(tmp_path: Path, key: GateKey) -> None:
    path = _log(tmp_path, key)
    lines = _lines(path)
    entry = json.loads(lines[1])
    entry["decision"]["outcome"] = "fail"
    entry["sha256"] = own_hash(entry)
    lines[1] = canonical(entry)
    path.write_bytes(b"\n".join(lines) + b"\n")
    check = verify_log(path, key.public)
    assert not check.ok
    assert check.bad_line == 2
    assert "signature does not verify" in check.reason


def test_hand_edit_that_breaks_canonical_form(tmp_path: Path, key: GateKey) -> None:
    path = _log(tmp_path, key)
    text = path.read_bytes().replace(b'"outcome":"pass"', b'"outcome": "pass"', 1)
    path.write_bytes(text)
    check = verify_log(path, key.public)
    assert check.bad_line == 1
    assert "canonical" in check.reason


def test_deleted_entry(tmp_path: Path, key: GateKey) -> None:
    path = _log(tmp_path, key)
    lines = _lines(path)
    del lines[1]
    path.write_bytes(b"\n".join(lines) + b"\n")
    check = verify_log(path, key.public)
    assert not check.ok
    assert check.bad_line == 2
    assert "seq" in check.reason


def test_reordered_entries(tmp_path: Path, key: GateKey) -> None:
    path = _log(tmp_path, key)
    lines = _lines(path)
    lines[2], lines[3] = lines[3], lines[2]
    path.write_bytes(b"\n".join(lines) + b"\n")
    check = verify_log(path, key.public)
    assert not check.ok
    assert check.bad_line == 3


def test_partial_last_line_is_noted_then_removed_by_the_next_append(
    tmp_path: Path, key: GateKey
) -> None:
    path = _log(tmp_path, key)
    with path.open("ab") as f:
        f.write(b'{"half')  # what a power cut mid-append leaves
    check = verify_log(path, key.public)
    assert check.ok
    assert check.entries == 4
    assert "line 5 is incomplete (6 bytes" in check.notes[0]
    done = append(path, {"decision": {"outcome": "fail"}}, key)
    assert done.entry["seq"] == 4
    assert "removed an incomplete last line (6 bytes" in done.notes[0]
    assert done.entry["recovered"] == list(done.notes)
    check = verify_log(path, key.public)
    assert check.ok
    assert check.entries == 5
    assert check.notes == ()


def test_garbage_line(tmp_path: Path, key: GateKey) -> None:
    path = _log(tmp_path, key)
    path.write_bytes(b"not json\n")
    check = verify_log(path, key.public)
    assert check.bad_line == 1
    assert check.reason == "not a JSON object"


def test_a_new_log_and_its_head(tmp_path: Path, key: GateKey) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    check = verify_log(path, key.public)
    assert check.ok
    assert check.entries == 0
    assert check.head == GENESIS
    done = append(path, {"decision": {"outcome": "pass"}}, key)
    head = json.loads(head_path(path).read_bytes())
    assert head["entries"] == 1
    assert head["head"] == done.hash == done.log_id
    assert head["key_id"] == key.key_id


def test_a_log_signed_by_another_key_is_refused(tmp_path: Path, key: GateKey) -> None:
    path = _log(tmp_path, key)
    other = init_gate_key(tmp_path / "other-key")
    check = verify_log(path, other.public)
    assert check.bad_line == 1
    assert f"not the gate key {other.key_id}" in check.reason
    with pytest.raises(InputError, match="not appending"):
        append(path, {"decision": {"outcome": "pass"}}, other)


def test_concurrent_appends_keep_one_chain(tmp_path: Path, key: GateKey) -> None:
    path = tmp_path / "audit.jsonl"

    def worker(k: int) -> None:
        for i in range(10):
            append(path, {"worker": k, "i": i}, key)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check = verify_log(path, key.public)
    assert check.ok
    assert check.entries == 40
    assert json.loads(head_path(path).read_bytes())["entries"] == 40
