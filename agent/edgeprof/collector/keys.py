"""The signing keys a collector trusts: which devices' reports it accepts.

A report is accepted only when at least one of its signatures verifies against an enrolled key
and none fails (:mod:`edgeprof.report.signing` does the cryptography). HMAC keys are shared secrets,
so the collector must hold them; an Ed25519 device needs only its public key enrolled.
Enrol a device with ``edgeprof collector key add --from-key-dir DIR`` (its ``edgeprof keys``
directory) or ``--hmac-key-file`` / ``--ed25519-public-key HEX``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from edgeprof.collector.db import signing_keys
from edgeprof.errors import InputError
from edgeprof.report.signing import KEY_BYTES, VerifyResult, key_id, load_keys, verify_wire

HMAC = "hmac_sha256"
ED25519 = "ed25519"


@dataclass(frozen=True)
class TrustedKey:
    key_id: str
    kind: str
    name: str
    material: bytes

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key_id": self.key_id, "kind": self.kind, "name": self.name}
        if self.kind == ED25519:
            out["public_key"] = self.material.hex()
        return out


def add_key(engine: Engine, kind: str, material: bytes, name: str) -> TrustedKey:
    """Enrol one key (idempotent for the same key)."""
    if kind not in (HMAC, ED25519) or len(material) != KEY_BYTES:
        raise InputError(f"a {kind} key has {KEY_BYTES} bytes, got {len(material)}")
    key = TrustedKey(key_id(material), kind, name, material)
    with engine.begin() as conn:
        exists = conn.execute(
            sa.select(signing_keys.c.key_id).where(signing_keys.c.key_id == key.key_id)
        ).first()
        if exists is None:
            conn.execute(
                signing_keys.insert().values(
                    key_id=key.key_id,
                    kind=kind,
                    name=name,
                    material=material,
                    created_ns=time.time_ns(),
                )
            )
        else:
            conn.execute(
                signing_keys.update()
                .where(signing_keys.c.key_id == key.key_id)
                .values(revoked_ns=None, name=name)
            )
    return key


def keys_from_dir(directory: Path) -> list[tuple[str, bytes]]:
    """The (kind, material) pairs to enrol for an ``edgeprof keys`` directory."""
    keys = load_keys(directory)
    out: list[tuple[str, bytes]] = []
    if keys.hmac_key is not None:
        out.append((HMAC, keys.hmac_key))
    public = keys.ed25519_public_key
    if public is not None:
        out.append((ED25519, public))
    if not out:
        raise InputError(f"{directory}: no keys there (run `edgeprof keys init` on the device)")
    return out


def list_keys(engine: Engine) -> list[TrustedKey]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(signing_keys)
            .where(signing_keys.c.revoked_ns.is_(None))
            .order_by(signing_keys.c.created_ns)
        )
        return [TrustedKey(r.key_id, r.kind, r.name, r.material) for r in rows]


def revoke_key(engine: Engine, kid: str) -> None:
    with engine.begin() as conn:
        result = conn.execute(
            signing_keys.update()
            .where(signing_keys.c.key_id == kid)
            .values(revoked_ns=time.time_ns())
        )
    if result.rowcount == 0:
        raise InputError(f"no enrolled key with id {kid!r}")


# Built once: constructing a statement costs more than running it (hot path of every upload).
_LOOKUP = sa.select(signing_keys.c.material).where(
    signing_keys.c.key_id == sa.bindparam("kid"),
    signing_keys.c.kind == sa.bindparam("kind"),
    signing_keys.c.revoked_ns.is_(None),
)


def _lookup(conn: Connection, kid: object, kind: str) -> bytes | None:
    if not isinstance(kid, str):
        return None
    row = conn.execute(_LOOKUP, {"kid": kid, "kind": kind}).first()
    return bytes(row.material) if row is not None else None


def verify_trusted(conn: Connection, wire: dict[str, Any]) -> VerifyResult:
    """Check a report's signatures against the enrolled keys only.

    A signature by a key that is not enrolled is "not checked" (it neither counts for nor
    against the report); one by an enrolled key that does not match fails the report.
    """
    sig = wire.get("signature")
    if not isinstance(sig, dict):
        return VerifyResult()
    hmac_key = None
    trusted: list[bytes] = []
    known: dict[str, Any] = {}
    unknown: dict[str, str] = {}
    hm = sig.get(HMAC)
    if isinstance(hm, dict):
        hmac_key = _lookup(conn, hm.get("key_id"), HMAC)
        if hmac_key is None:
            unknown[HMAC] = f"key {hm.get('key_id')!s:.16} is not enrolled"
        else:
            known[HMAC] = hm
    ed = sig.get(ED25519)
    if isinstance(ed, dict):
        public = ed.get("public_key")
        material = _lookup(conn, key_id(public), ED25519) if isinstance(public, bytes) else None
        if material is None:
            unknown[ED25519] = "public key is not enrolled"
        else:
            trusted.append(material)
            known[ED25519] = ed
    # The signed message excludes the signature block, so checking a copy that keeps only the
    # enrolled keys' signatures checks exactly those.
    result = verify_wire(
        {**wire, "signature": known}, hmac_key=hmac_key, trusted_public_keys=trusted
    )
    result.present = sorted([*result.present, *unknown])
    result.unchecked.update(unknown)
    return result
