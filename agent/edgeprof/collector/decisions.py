"""Gate decisions: accepted only when signed by an enrolled gate key over reports held here.

Why so strict: ``--baseline last-approved`` trusts what the collector marks approved. A pipeline
token may post, but a decision is kept only if (1) its signed part is well formed (else 422),
(2) an enrolled, unrevoked gate key signed it (:mod:`.signed_decision` for the bytes; else 403),
(3) its unsigned record hashes to the ``record_sha256`` it signed and (4) every report it names
is stored here with exactly the sha256 it names (else 422). The signature, the gate key and the
audit anchor (log id, seq, hash) are kept beside the decision, so ``edgeprof gate verify-log
--collector`` can compare a local audit log with what was posted. A report's ``gate_status``
is the verdict of its newest decision (by the signed time) from a key still enrolled; the same
signed decision posted twice is one decision.
"""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from edgeprof.collector.db import decision_proofs, decision_reports, decisions, gate_keys, reports
from edgeprof.collector.ingest import Refused
from edgeprof.collector.signed_decision import (
    canonical_json,
    check_signed,
    decision_message,
    ed25519_verify,
    record_sha256,
    signature_hex,
)
from edgeprof.errors import InputError
from edgeprof.report.codec import uuid7

FUTURE_SLACK_NS = 10 * 60 * 10**9  # a gate's clock may run this far ahead of ours
_BODY_KEYS = {"signed", "signature", "record"}

_ACTIVE_KEY = sa.select(gate_keys.c.public_key).where(
    gate_keys.c.key_id == sa.bindparam("kid"), gate_keys.c.revoked_ns.is_(None)
)


def _active_key(conn: Connection, kid: str) -> bytes | None:
    row = conn.execute(_ACTIVE_KEY, {"kid": kid}).first()
    return bytes(row.public_key) if row is not None else None


def _checked(body: dict[str, Any]) -> tuple[dict[str, Any], bytes, dict[str, Any]]:
    """(signed part, signature, record) of a body, each checked for form; Refused(422)."""
    extra = sorted(set(body) - _BODY_KEYS)
    if extra:
        raise Refused(
            422,
            f"unknown field {extra[0][:40]!r}: a decision is signed, signature and record "
            "(unsigned decisions are not accepted)",
        )
    try:
        signed = check_signed(body.get("signed"))
        signature = signature_hex(body.get("signature"))
    except InputError as exc:
        raise Refused(422, str(exc)) from None
    record = body.get("record", {})
    if not isinstance(record, dict):
        raise Refused(422, "record: an object")
    return signed, signature, record


def _check_content(signed: dict[str, Any], record: dict[str, Any]) -> None:
    """What only a signed decision is checked for (an unsigned one never gets this far)."""
    if not any(i["role"] == "candidate" for i in signed["inputs"]):
        raise Refused(422, "signed.inputs: no candidate")
    if signed["time_ns"] > time.time_ns() + FUTURE_SLACK_NS:
        raise Refused(422, "signed.time_ns: in the future (check the gate's clock)")
    try:
        digest = record_sha256(record)
    except ValueError:
        raise Refused(422, "record: holds NaN or infinity; send null instead") from None
    if digest != signed["record_sha256"]:
        raise Refused(422, "record: does not hash to the signed record_sha256")


def _check_reports(conn: Connection, signed: dict[str, Any]) -> None:
    ids = sorted({i["report_id"] for i in signed["inputs"]})
    query = sa.select(reports.c.id, reports.c.sha256).where(reports.c.id.in_(ids))
    stored = {r.id: r.sha256 for r in conn.execute(query)}
    for n, item in enumerate(signed["inputs"]):
        sha = stored.get(item["report_id"])
        if sha is None:
            raise Refused(422, f"signed.inputs[{n}]: no report {item['report_id']} here")
        if sha != item["sha256"]:
            raise Refused(
                422, f"signed.inputs[{n}]: sha256 does not match the stored report {sha[:16]}"
            )


def add_decision(engine: Engine, body: dict[str, Any], posted_by: str) -> tuple[str, bool]:
    """Check and keep one signed decision; (its id, whether it is new). Refused says why not."""
    signed, signature, record = _checked(body)
    decision_id = uuid7()
    links: dict[str, str] = {}
    for item in signed["inputs"]:
        links.setdefault(item["report_id"], item["role"])
    audit = signed["audit"] or {}
    try:
        with engine.begin() as conn:
            public = _active_key(conn, signed["gate_key_id"])
            if public is None:
                raise Refused(
                    403, f"gate key {signed['gate_key_id']} is not enrolled here (or revoked)"
                )
            if not ed25519_verify(public, decision_message(signed), signature):
                raise Refused(403, "signature: does not verify with the gate key (edited?)")
            _check_content(signed, record)
            _check_reports(conn, signed)
            conn.execute(
                decisions.insert().values(
                    id=decision_id,
                    received_ns=time.time_ns(),
                    decision=signed["decision"],
                    severity=signed["severity"],
                    record=json.dumps(record, sort_keys=True, allow_nan=False),
                    posted_by=posted_by,
                )
            )
            conn.execute(
                decision_proofs.insert().values(
                    decision_id=decision_id,
                    gate_key_id=signed["gate_key_id"],
                    decided_ns=signed["time_ns"],
                    policy_sha256=signed["policy_sha256"],
                    signed=canonical_json(signed).decode(),
                    signature=signature.hex(),
                    audit_log_id=audit.get("log_id"),
                    audit_seq=audit.get("seq"),
                    audit_sha256=audit.get("sha256"),
                )
            )
            conn.execute(
                decision_reports.insert(),
                [{"decision_id": decision_id, "report_id": r, "role": v} for r, v in links.items()],
            )
            refresh_statuses(conn, [r for r, v in links.items() if v == "candidate"])
    except sa.exc.IntegrityError:
        with engine.connect() as conn:
            known = conn.execute(
                sa.select(decision_proofs.c.decision_id).where(
                    decision_proofs.c.signature == signature.hex()
                )
            ).scalar()
        if known is None:  # not a replay: a report vanished mid-way (cannot: reports stay)
            raise
        return str(known), False
    return decision_id, True


def refresh_statuses(conn: Connection, report_ids: list[str]) -> None:
    """Set each report's ``gate_status`` to its newest decision from an enrolled gate key."""
    for rid in report_ids:
        newest = conn.execute(
            sa.select(decisions.c.decision)
            .join(decision_reports, decision_reports.c.decision_id == decisions.c.id)
            .join(decision_proofs, decision_proofs.c.decision_id == decisions.c.id)
            .join(gate_keys, gate_keys.c.key_id == decision_proofs.c.gate_key_id)
            .where(
                decision_reports.c.report_id == rid,
                decision_reports.c.role == "candidate",
                gate_keys.c.revoked_ns.is_(None),
            )
            .order_by(decision_proofs.c.decided_ns.desc(), decisions.c.received_ns.desc())
            .limit(1)
        ).scalar()
        conn.execute(
            reports.update().where(reports.c.id == rid).values(gate_status=newest or "none")
        )


def _proof(conn: Connection, row: Any) -> dict[str, Any]:
    """The signed part of a stored decision and whether it verifies now (key still enrolled)."""
    if row.signature is None:
        return {"signed": None, "signature": None, "gate_key_id": None, "verified": False}
    signed = json.loads(row.signed)
    public = _active_key(conn, row.gate_key_id)
    ok = public is not None and ed25519_verify(
        public, decision_message(signed), bytes.fromhex(row.signature)
    )
    return {
        "signed": signed,
        "signature": row.signature,
        "gate_key_id": row.gate_key_id,
        "verified": ok,
    }


def decisions_for(engine: Engine, report_id: str) -> list[dict[str, Any]]:
    """Every decision that names this report, oldest first, each re-verified as read."""
    p = decision_proofs.c
    with engine.connect() as conn:
        rows = list(
            conn.execute(
                sa.select(decisions, decision_reports.c.role, p.signed, p.signature, p.gate_key_id)
                .join(decision_reports, decision_reports.c.decision_id == decisions.c.id)
                .outerjoin(decision_proofs, p.decision_id == decisions.c.id)
                .where(decision_reports.c.report_id == report_id)
                .order_by(decisions.c.received_ns, decisions.c.id)
            )
        )
        return [
            {
                "id": r.id,
                "received_ns": r.received_ns,
                "decision": r.decision,
                "severity": r.severity,
                "role": r.role,
                "record": json.loads(r.record),
                **_proof(conn, r),
            }
            for r in rows
        ]


def anchors(engine: Engine, gate_key_id: str) -> list[dict[str, Any]]:
    """The audit entries (log id, seq, hash) a gate key's decisions were recorded as."""
    p = decision_proofs.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(p.decision_id, p.audit_log_id, p.audit_seq, p.audit_sha256, p.decided_ns)
            .where(p.gate_key_id == gate_key_id, p.audit_log_id.is_not(None))
            .order_by(p.audit_log_id, p.audit_seq)
        )
        return [
            {
                "decision_id": r.decision_id,
                "log_id": r.audit_log_id,
                "seq": r.audit_seq,
                "sha256": r.audit_sha256,
                "decided_ns": r.decided_ns,
            }
            for r in rows
        ]
