"""An append-only, hash-chained, signed audit log of gate decisions (framework section 8.2).

Why each part:

- **Hash chain.** Each line is one entry in canonical JSON (sorted keys, no spaces, UTF-8)
  carrying ``seq`` (from 0), ``prev`` (the sha256 of the previous line's bytes; the first line
  chains to :data:`GENESIS`) and ``sha256`` (its own hash without ``sha256`` and ``sig``, so a
  plain edit is named at the edited line). Editing, deleting, inserting or reordering breaks the
  chain at or after that entry.
- **Signatures.** A chain alone can be recomputed by anyone who edits the file. Each entry also
  carries ``key_id`` and ``sig``: the gate key's Ed25519 signature over :data:`ENTRY_DOMAIN` and
  the entry without ``sig``. Without the gate key, no edited, inserted or appended entry verifies.
- **The head, outside the log.** Dropping entries from the end leaves a valid chain. After every
  append the gate writes ``FILE.head`` (atomically): the log id (the hash of entry 0), the entry
  count and the last entry's hash, signed by the gate key; the collector keeps the audit hash of
  every decision posted (``verify-log --collector``), which also catches an old head file put
  back with a truncated log. One gate key signs one log.
- **Whole or absent.** An append takes an exclusive ``flock``, writes its line with one
  ``write`` on an ``O_APPEND`` descriptor and ``fsync``\\ s it; a short write (a full disk) is cut
  back before the error is raised. A partial last line left by a power cut is removed by the next
  append, which records what it removed (``recovered``) and reports it: never a blocked gate.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgeprof.atomic import write_atomic
from edgeprof.collector.signed_decision import ed25519_verify, key_id
from edgeprof.errors import InputError
from edgeprof.gate.keys import GateKey

LOG_VERSION = 2
HEAD_VERSION = 1
GENESIS = "0" * 64  # what the first entry's ``prev`` is
ENTRY_DOMAIN = b"edgeprof audit entry v2\n"
HEAD_DOMAIN = b"edgeprof audit head v1\n"
_CHUNK = 64 * 1024


def canonical(entry: dict[str, Any]) -> bytes:
    """The one byte form of an entry: sorted keys, compact, UTF-8, no NaN."""
    return json.dumps(
        entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def entry_hash(line: bytes) -> str:
    """sha256 of an entry's canonical bytes (the line without its newline)."""
    return hashlib.sha256(line).hexdigest()


def own_hash(entry: dict[str, Any]) -> str:
    """The ``sha256`` an entry carries: its hash without ``sha256`` and ``sig``."""
    return entry_hash(canonical({k: v for k, v in entry.items() if k not in ("sha256", "sig")}))


def head_path(path: str | os.PathLike[str]) -> Path:
    """Where a log's signed head lives: ``FILE.head`` beside it."""
    return Path(os.fspath(path) + ".head")


def json_safe(obj: Any) -> Any:
    """JSON-ready: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        return json_safe(obj.item())
    return obj


def sign_entry(entry: dict[str, Any], key: GateKey) -> dict[str, Any]:
    """``entry`` with ``key_id``, its own ``sha256`` and the gate key's ``sig``."""
    out = {**entry, "key_id": key.key_id}
    out["sha256"] = own_hash(out)
    out["sig"] = key.sign(ENTRY_DOMAIN + canonical(out)).hex()
    return out


def entry_problem(entry: Any, line: bytes, public: bytes) -> str | None:
    """Why one line is not a sound entry on its own (form, own hash, key, signature), or None."""
    if not isinstance(entry, dict):
        return "not a JSON object"
    try:
        if canonical(entry) != line:
            return "not in canonical form (edited by hand?)"
    except ValueError:
        return "holds a value JSON cannot carry"
    if entry.get("sha256") != own_hash(entry):
        return "its content does not match its own sha256 (edited)"
    if entry.get("v") != LOG_VERSION or "sig" not in entry:
        return f"not a signed entry (log version {entry.get('v')!r}; this edgeprof writes 2)"
    if entry.get("key_id") != key_id(public):
        return f"signed by key {entry.get('key_id')!s:.16}, not the gate key {key_id(public)}"
    sig = entry["sig"]
    try:
        raw = bytes.fromhex(sig) if isinstance(sig, str) else b""
    except ValueError:
        raw = b""
    unsigned = {k: v for k, v in entry.items() if k != "sig"}
    if len(raw) != 64 or not ed25519_verify(public, ENTRY_DOMAIN + canonical(unsigned), raw):
        return "its signature does not verify with the gate key (forged or edited)"
    return None


def _parse(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None


# -- the head file --------------------------------------------------------------------------


@dataclass(frozen=True)
class Head:
    """What ``FILE.head`` says: which log, how many entries, the last one's hash."""

    log_id: str
    entries: int
    head: str
    time_ns: int


def write_head(path: str | os.PathLike[str], key: GateKey, log_id: str, n: int, last: str) -> None:
    doc: dict[str, Any] = {
        "v": HEAD_VERSION,
        "log_id": log_id,
        "entries": n,
        "head": last,
        "key_id": key.key_id,
        "time_ns": time.time_ns(),
    }
    doc["sig"] = key.sign(HEAD_DOMAIN + canonical(doc)).hex()
    write_atomic(head_path(path), canonical(doc) + b"\n")


def read_head(path: str | os.PathLike[str], public: bytes) -> Head | None:
    """The verified head of the log at ``path``; None when there is no head file;
    InputError when there is one that is not a head signed by ``public``."""
    hp = head_path(path)
    try:
        data = hp.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"{hp}: cannot read: {exc.strerror or exc}") from None
    doc = _parse(data.rstrip(b"\n"))
    if not isinstance(doc, dict) or not isinstance(doc.get("sig"), str):
        raise InputError(f"{hp}: not an audit head file")
    unsigned = {k: v for k, v in doc.items() if k != "sig"}
    try:
        sig = bytes.fromhex(doc["sig"])
        message = HEAD_DOMAIN + canonical(unsigned)
    except ValueError:
        raise InputError(f"{hp}: not an audit head file") from None
    if (
        doc.get("key_id") != key_id(public)
        or len(sig) != 64
        or not ed25519_verify(public, message, sig)
    ):
        raise InputError(f"{hp}: its signature does not verify with the gate key (forged?)")
    entries, log_id, last = doc.get("entries"), doc.get("log_id"), doc.get("head")
    if not (isinstance(entries, int) and entries >= 1 and isinstance(log_id, str)):
        raise InputError(f"{hp}: not an audit head file")
    return Head(log_id, entries, str(last), int(doc.get("time_ns") or 0))


# -- appending ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Appended:
    """One entry as written: the entry, its chain hash, the log id and what was noticed."""

    entry: dict[str, Any]
    hash: str
    log_id: str
    notes: tuple[str, ...] = ()


def _lines_from_end(fd: int, size: int) -> Iterator[bytes]:
    """The complete lines of the file, last first (the file ends with a newline)."""
    pos, rest = size, b""
    while pos > 0:
        step = min(_CHUNK, pos)
        pos -= step
        rest = os.pread(fd, step, pos) + rest
        parts = rest.split(b"\n")
        rest = parts[0]
        for line in reversed(parts[1:]):
            if line:
                yield line
    if rest:
        yield rest


def _first_line(fd: int, size: int) -> bytes:
    buf, pos = b"", 0
    while pos < size:
        chunk = os.pread(fd, _CHUNK, pos)
        if not chunk:
            break
        pos += len(chunk)
        buf += chunk
        if b"\n" in buf:
            break
    return buf.split(b"\n", 1)[0]


def _recover_partial(fd: int, name: str) -> tuple[int, list[str]]:
    """Cut a partial last line (a power cut or a full disk mid-append); the new size and a
    note saying what was removed."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size, []
    keep = size
    while keep > 0:
        step = min(_CHUNK, keep)
        chunk = os.pread(fd, step, keep - step)
        at = chunk.rfind(b"\n")
        if at >= 0:
            keep = keep - step + at + 1
            break
        keep -= step
    partial = os.pread(fd, size - keep, keep)
    os.ftruncate(fd, keep)
    os.fsync(fd)
    note = (
        f"{name}: removed an incomplete last line ({len(partial)} bytes, sha256 "
        f"{entry_hash(partial)[:16]}) left by an interrupted append"
    )
    return keep, [note]


def _refuse(name: str, why: str) -> InputError:
    return InputError(
        f"{name}: {why}; not appending (check it with `edgeprof gate verify-log {name}`)"
    )


def _tail_state(fd: int, size: int, name: str, head: Head | None, key: GateKey) -> tuple[int, str]:
    """(next seq, prev hash) after checking the log's end against its signed head."""
    if size == 0:
        if head is not None:
            raise _refuse(name, f"the log is empty but its head file records {head.entries}")
        return 0, GENESIS
    after: str | None = None  # the hash the entry after this one chains to
    next_seq = None
    for line in _lines_from_end(fd, size):
        entry = _parse(line)
        problem = entry_problem(entry, line, key.public)
        if problem is not None:
            raise _refuse(name, f"its last entries are not sound: {problem}")
        seq, digest = entry.get("seq"), entry_hash(line)
        if not isinstance(seq, int):
            raise _refuse(name, "an entry without a seq")
        if next_seq is None:
            next_seq, last_hash = seq + 1, digest
        elif after != digest:
            raise _refuse(name, f"entry {seq} does not chain to the one after it")
        after = entry.get("prev")
        if head is None:
            if seq != 0 or entry.get("prev") != GENESIS:
                raise _refuse(name, f"{name}.head is missing (the log has {seq + 1} entries)")
            break
        if seq < head.entries - 1:
            raise _refuse(
                name, f"the log ends at entry {seq} but its head file records {head.entries}"
            )
        if seq == head.entries - 1:
            if digest != head.head:
                raise _refuse(name, f"entry {seq} is not the one its head file records")
            break
    if head is not None and entry_hash(_first_line(fd, size)) != head.log_id:
        raise _refuse(name, "its first entry is not the one its head file names (replaced?)")
    assert next_seq is not None
    return next_seq, last_hash


def append(path: str | os.PathLike[str], body: dict[str, Any], key: GateKey) -> Appended:
    """Append one signed entry (``body`` plus v, seq, time, prev, key_id, sha256, sig), then
    update the head file; InputError for a log that is not sound or a failed write."""
    name = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise InputError(f"{name}: cannot open the audit log: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            size, notes = _recover_partial(fd, name)
        except OSError as exc:
            raise InputError(f"{name}: cannot repair the last line: {exc.strerror}") from None
        try:
            head = read_head(path, key.public)
        except InputError as exc:
            raise _refuse(name, str(exc)) from None
        seq, prev = _tail_state(fd, size, name, head, key)
        now = time.time_ns()
        entry = {
            **json_safe(body),
            "v": LOG_VERSION,
            "seq": seq,
            "time": datetime.fromtimestamp(now / 1e9, UTC).isoformat(timespec="milliseconds"),
            "time_ns": now,
            "prev": prev,
        }
        if notes:
            entry["recovered"] = notes
        entry = sign_entry(entry, key)
        line = canonical(entry)
        _write_line(fd, line + b"\n", size, name)
        digest = entry_hash(line)
        log_id = digest if seq == 0 else entry_hash(_first_line(fd, size))
        try:
            write_head(path, key, log_id, seq + 1, digest)
        except OSError as exc:
            notes.append(
                f"{head_path(path)}: not updated ({exc.strerror}); the next append updates it"
            )
        return Appended(entry, digest, log_id, tuple(notes))
    finally:
        os.close(fd)  # closing releases the lock


def _write_line(fd: int, data: bytes, size: int, name: str) -> None:
    """One write and an fsync; on failure the file is cut back to ``size`` (whole or absent)."""
    try:
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(28, "No space left on device (short write)")
        os.fsync(fd)
    except OSError as exc:
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        except OSError:
            pass  # the next append removes the partial line
        raise InputError(
            f"{name}: the decision was not recorded: {exc.strerror or exc} (the log is unchanged)"
        ) from None


# -- verifying ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogCheck:
    """The result of :func:`verify_log`: ok, how many entries, the head hash, or the break."""

    ok: bool
    entries: int
    head: str
    bad_line: int | None = None
    reason: str = ""
    log_id: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def message(self) -> str:
        if self.ok:
            text = f"ok: {self.entries} entries, chain and signatures intact, head {self.head}"
        elif self.bad_line is None:
            text = f"broken: {self.reason}"
        else:
            text = f"broken at line {self.bad_line}: {self.reason}"
        return "\n".join([text, *(f"note: {n}" for n in self.notes)])


@dataclass(frozen=True)
class Anchor:
    """What the collector recorded of one audit entry: the decision posted with it."""

    log_id: str
    seq: int
    sha256: str
    decision_id: str


def verify_log(
    path: str | os.PathLike[str],
    public: bytes,
    anchors: Sequence[Anchor] | None = None,
) -> LogCheck:
    """Walk the chain, check every signature, then the end against the signed head file and,
    when given, the collector's anchors; the first broken entry is named by its line."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        name = os.fspath(path)
        raise InputError(f"{name}: cannot read the audit log: {exc.strerror}") from None
    notes: list[str] = []
    lines = data.split(b"\n")
    if lines[-1]:
        notes.append(
            f"line {len(lines)} is incomplete ({len(lines[-1])} bytes, an interrupted append); "
            "the next append removes it"
        )
    lines = lines[:-1]
    prev, hashes = GENESIS, []
    for n, line in enumerate(lines, 1):
        entry = _parse(line)
        problem = entry_problem(entry, line, public)
        if problem is None and entry.get("seq") != n - 1:
            problem = (
                f"seq is {entry.get('seq')!r}, expected {n - 1} (an entry deleted or reordered)"
            )
        if problem is None and entry.get("prev") != prev:
            problem = (
                "prev does not match the sha256 of the entry before it "
                "(that entry was edited, deleted or reordered)"
            )
        if problem is not None:
            return LogCheck(False, n - 1, prev, n, problem, notes=tuple(notes))
        prev = entry_hash(line)
        hashes.append(prev)
    log_id = hashes[0] if hashes else None
    broken = _check_head(path, public, hashes) or _check_anchors(hashes, anchors or [])
    if broken is not None:
        line_no, why = broken
        return LogCheck(False, len(hashes), prev, line_no, why, log_id, tuple(notes))
    head = read_head(path, public)
    if head is not None and len(hashes) > head.entries:
        notes.append(
            f"the head file lags by {len(hashes) - head.entries} entries (an append interrupted "
            "before it updated the head); the next append updates it"
        )
    return LogCheck(True, len(hashes), prev, log_id=log_id, notes=tuple(notes))


def _check_head(
    path: str | os.PathLike[str], public: bytes, hashes: list[str]
) -> tuple[int | None, str] | None:
    try:
        head = read_head(path, public)
    except InputError as exc:
        return None, str(exc)
    n = len(hashes)
    if head is None:
        if n > 1:
            return None, (
                f"{head_path(path)} is missing: entries removed from the end could not be "
                "seen (a head is written with every append)"
            )
        return None
    if n and hashes[0] != head.log_id:
        return 1, "not the first entry of the log the head file names (the log was replaced)"
    if n < head.entries:
        return n + 1, (
            f"entry {n} is missing: the signed head file records {head.entries} entries, the "
            f"log has {n} (entries removed from the end)"
        )
    if hashes[head.entries - 1] != head.head:
        return head.entries, "does not match the hash the signed head file records"
    return None


def _check_anchors(hashes: list[str], anchors: Sequence[Anchor]) -> tuple[int, str] | None:
    log_id = hashes[0] if hashes else None
    foreign = sorted({a.log_id for a in anchors if a.log_id != log_id})
    if foreign:
        held = [a for a in anchors if a.log_id == foreign[0]]
        newest = max(a.seq for a in held)
        return 1, (
            f"the collector holds {len(held)} decision(s) recorded in audit log "
            f"{foreign[0][:16]} (up to entry {newest}) signed by this gate key, which is not "
            "this log (replaced or emptied?)"
        )
    for a in sorted(anchors, key=lambda a: a.seq):
        if a.seq >= len(hashes):
            return len(hashes) + 1, (
                f"entry {len(hashes)} is missing: the collector recorded entry {a.seq} "
                f"(decision {a.decision_id}) (entries removed from the end)"
            )
        if hashes[a.seq] != a.sha256:
            return a.seq + 1, (
                f"does not match the hash the collector recorded for entry {a.seq} "
                f"(decision {a.decision_id})"
            )
    return None
