"""A gate decision as signed bytes: the one encoding the gate signs and the collector checks.

Why here and free of SQLAlchemy: the gate (a later stage) imports it to sign, the collector to
verify, and a pipeline machine may have no collector extra installed. The signed part names
every report the decision was made on (id, sha256, role), the outcome, the policy's sha256, the
audit-log entry it was recorded as (log id, seq, hash), the decision time and the signing gate
key; ``record_sha256`` binds the unsigned record (rules, values, justification) to it. The bytes
are :data:`DOMAIN` followed by canonical JSON (sorted keys, no spaces, ASCII), so a signature
over a decision can never be replayed as a signature over an audit entry or a head file.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
from typing import Any

from edgeprof.errors import InputError

DOMAIN = b"edgeprof gate decision v1\n"
OUTCOMES = ("pass", "fail", "incomplete")
SEVERITIES = ("critical", "high", "medium", "low")
ROLES = ("candidate", "baseline", "window")
MAX_INPUTS = 1100  # --latest up to 1000 candidates, a baseline, a drift window
MAX_DEPTH = 32  # of any decision body: the audit record nests about 5 deep
MAX_BODY_BYTES = 1024 * 1024
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SHA = re.compile(r"[0-9a-f]{64}")
_KID = re.compile(r"[0-9a-f]{16}")
_SIG = re.compile(r"[0-9a-f]{128}")
SIGNED_KEYS = frozenset(
    {
        "v", "decision", "severity", "inputs", "policy_sha256", "audit", "time_ns",
        "gate_key_id", "record_sha256",
    }
)  # fmt: skip


def canonical_json(value: Any) -> bytes:
    """Sorted keys, compact, ASCII, no NaN: the same bytes on every machine."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def record_sha256(record: Any) -> str:
    """sha256 of a record's canonical JSON: what the signed part carries of the record."""
    return hashlib.sha256(canonical_json(record)).hexdigest()


def decision_message(signed: dict[str, Any]) -> bytes:
    """The exact bytes a gate key signs for a decision."""
    return DOMAIN + canonical_json(signed)


def key_id(public: bytes) -> str:
    """First 16 hex digits of sha256(public key): how entries and decisions name a key."""
    return hashlib.sha256(public).hexdigest()[:16]


def _ed25519() -> Any:
    try:
        return importlib.import_module("cryptography.hazmat.primitives.asymmetric.ed25519")
    except ImportError:
        raise InputError(
            "gate signatures need the cryptography package: pip install 'edgeprof[sign]'"
        ) from None


def ed25519_public(seed: bytes) -> bytes:
    """The public key of a 32-byte Ed25519 seed."""
    priv = _ed25519().Ed25519PrivateKey.from_private_bytes(seed)
    return bytes(priv.public_key().public_bytes_raw())


def ed25519_sign(seed: bytes, message: bytes) -> bytes:
    return bytes(_ed25519().Ed25519PrivateKey.from_private_bytes(seed).sign(message))


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is ``public``'s over ``message``; False for any mismatch."""
    ed = _ed25519()
    invalid = importlib.import_module("cryptography.exceptions").InvalidSignature
    try:
        ed.Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (invalid, ValueError):
        return False
    return True


def depth_ok(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests at most ``limit`` deep (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((c, depth + 1) for c in children)
    return True


def parse_body(body: bytes) -> dict[str, Any]:
    """A decision body as a JSON object, bounded: InputError for anything else.

    The nesting is bounded before the parser can recurse: a body with more brackets than the
    depth limit is parsed only when the parser survives it, then walked iteratively.
    """
    try:
        value = json.loads(body)
    except RecursionError:
        raise InputError(f"body: nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise InputError("body: not JSON") from None
    if not isinstance(value, dict):
        raise InputError("body: expected a JSON object")
    if not depth_ok(value):
        raise InputError(f"body: nested deeper than {MAX_DEPTH} levels")
    return value


def _hex(value: Any, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InputError(f"{what}: lowercase hex of the right length")
    return value


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise InputError(f"{what}: a whole number from 0 to 2^63-1")
    return value


def check_signed(signed: Any) -> dict[str, Any]:
    """The signed part, its every field checked for type and range; InputError names the first
    field that is wrong."""
    if not isinstance(signed, dict):
        raise InputError("signed: expected an object")
    extra = sorted(set(signed) - SIGNED_KEYS)
    if extra:
        raise InputError(f"signed: unknown field {extra[0][:40]!r}")
    missing = sorted(SIGNED_KEYS - set(signed))
    if missing:
        raise InputError(f"signed: missing field {missing[0]!r}")
    if signed.get("v") != 1:
        raise InputError("signed.v: 1")
    if signed.get("decision") not in OUTCOMES:
        raise InputError("signed.decision: 'pass', 'fail' or 'incomplete'")
    severity = signed.get("severity")
    if severity is not None and severity not in SEVERITIES:
        raise InputError("signed.severity: critical, high, medium, low or null")
    inputs = signed.get("inputs")
    if not isinstance(inputs, list) or not 1 <= len(inputs) <= MAX_INPUTS:
        raise InputError(f"signed.inputs: a list of 1 to {MAX_INPUTS} reports")
    for n, item in enumerate(inputs):
        if not isinstance(item, dict) or set(item) != {"report_id", "sha256", "role"}:
            raise InputError(f"signed.inputs[{n}]: exactly report_id, sha256 and role")
        if not isinstance(item["report_id"], str) or not _UUID.fullmatch(item["report_id"]):
            raise InputError(f"signed.inputs[{n}].report_id: a lowercase UUID")
        _hex(item["sha256"], _SHA, f"signed.inputs[{n}].sha256")
        if item["role"] not in ROLES:
            raise InputError(f"signed.inputs[{n}].role: candidate, baseline or window")
    _hex(signed.get("policy_sha256"), _SHA, "signed.policy_sha256")
    _hex(signed.get("record_sha256"), _SHA, "signed.record_sha256")
    _hex(signed.get("gate_key_id"), _KID, "signed.gate_key_id")
    _int(signed.get("time_ns"), "signed.time_ns")
    audit = signed.get("audit")
    if audit is not None:
        if not isinstance(audit, dict) or set(audit) != {"log_id", "seq", "sha256"}:
            raise InputError("signed.audit: null or exactly log_id, seq and sha256")
        _hex(audit["log_id"], _SHA, "signed.audit.log_id")
        _hex(audit["sha256"], _SHA, "signed.audit.sha256")
        _int(audit["seq"], "signed.audit.seq")
    return signed


def signature_hex(value: Any) -> bytes:
    """The 64-byte signature from its hex form; InputError otherwise."""
    return bytes.fromhex(_hex(value, _SIG, "signature"))
