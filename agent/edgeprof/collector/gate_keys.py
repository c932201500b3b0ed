"""The gate keys a collector trusts: whose signed decisions count.

Why apart from the device keys (:mod:`.keys`): a device key vouches for measurements, a gate
key for approvals; enrolling one must never grant the other. A decision is kept only when an
enrolled, unrevoked gate key signed it, and a report counts as approved only while the key of
its newest decision is still enrolled: revoking a gate key withdraws its approvals at once
(:func:`revoke_gate_key` recomputes the reports' ``gate_status``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from edgeprof.collector.db import decision_proofs, decision_reports, gate_keys
from edgeprof.collector.decisions import refresh_statuses
from edgeprof.collector.signed_decision import key_id
from edgeprof.errors import InputError

KEY_BYTES = 32
NAME_MAX = 128


@dataclass(frozen=True)
class GateKeyInfo:
    key_id: str
    name: str
    public_key: bytes
    created_ns: int
    revoked_ns: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "name": self.name,
            "public_key": self.public_key.hex(),
            "created_ns": self.created_ns,
            "revoked_ns": self.revoked_ns,
        }


def _info(row: Any) -> GateKeyInfo:
    return GateKeyInfo(row.key_id, row.name, bytes(row.public_key), row.created_ns, row.revoked_ns)


def add_gate_key(engine: Engine, public: bytes, name: str) -> GateKeyInfo:
    """Enrol a gate's Ed25519 public key (again: un-revokes it and renames it)."""
    if len(public) != KEY_BYTES:
        raise InputError(f"a gate public key has {KEY_BYTES} bytes, got {len(public)}")
    if not name or len(name) > NAME_MAX or "\x00" in name:
        raise InputError(f"--name: 1 to {NAME_MAX} characters, no NUL")
    kid = key_id(public)
    with engine.begin() as conn:
        found = conn.execute(sa.select(gate_keys).where(gate_keys.c.key_id == kid)).first()
        if found is None:
            conn.execute(
                gate_keys.insert().values(
                    key_id=kid, name=name, public_key=public, created_ns=time.time_ns()
                )
            )
        else:
            conn.execute(
                gate_keys.update()
                .where(gate_keys.c.key_id == kid)
                .values(revoked_ns=None, name=name)
            )
            refresh_statuses(conn, _reports_decided_by(conn, kid))
        row = conn.execute(sa.select(gate_keys).where(gate_keys.c.key_id == kid)).one()
    return _info(row)


def list_gate_keys(engine: Engine, *, revoked: bool = False) -> list[GateKeyInfo]:
    """The enrolled gate keys (and the revoked ones too when asked), oldest first."""
    query = sa.select(gate_keys).order_by(gate_keys.c.created_ns, gate_keys.c.key_id)
    if not revoked:
        query = query.where(gate_keys.c.revoked_ns.is_(None))
    with engine.connect() as conn:
        return [_info(r) for r in conn.execute(query)]


def _reports_decided_by(conn: Connection, kid: str) -> list[str]:
    rows = conn.execute(
        sa.select(decision_reports.c.report_id)
        .join(decision_proofs, decision_proofs.c.decision_id == decision_reports.c.decision_id)
        .where(decision_proofs.c.gate_key_id == kid, decision_reports.c.role == "candidate")
        .distinct()
    )
    return [r.report_id for r in rows]


def revoke_gate_key(engine: Engine, kid: str) -> GateKeyInfo:
    """Stop trusting a gate key: its decisions stay stored but no longer approve anything."""
    with engine.begin() as conn:
        result = conn.execute(
            gate_keys.update()
            .where(gate_keys.c.key_id == kid, gate_keys.c.revoked_ns.is_(None))
            .values(revoked_ns=time.time_ns())
        )
        if result.rowcount == 0:
            raise InputError(f"no enrolled gate key with id {kid[:40]!r}")
        refresh_statuses(conn, _reports_decided_by(conn, kid))
        row = conn.execute(sa.select(gate_keys).where(gate_keys.c.key_id == kid)).one()
    return _info(row)
