"""Bearer tokens and their roles, stored hashed.

Roles keep duties apart: a ``device`` token can only upload reports, and only reports naming a
device it is bound to (:data:`~edgeprof.collector.db.token_devices`), a ``pipeline`` token can
only read them (and append gate decisions, which never change a report), an ``admin`` token
manages tokens. No token can change or delete a stored report: there is no such operation.

Tokens are 256 random bits, so a plain SHA-256 is the right hash (a slow password hash buys
nothing against a secret that cannot be guessed); the token itself is shown once, at creation.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from edgeprof.collector.db import token_devices, tokens
from edgeprof.errors import InputError
from edgeprof.report.codec import uuid7


class Role(StrEnum):
    """What a token may do."""

    DEVICE = "device"
    PIPELINE = "pipeline"
    ADMIN = "admin"


_PREFIX = {Role.DEVICE: "epd", Role.PIPELINE: "epp", Role.ADMIN: "epa"}


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    """A token's row, without the secret."""

    id: str
    name: str
    role: Role
    created_ns: int
    revoked_ns: int | None
    devices: tuple[str, ...] = ()  # a device token: the device ids it may upload for

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role.value,
            "created_ns": self.created_ns,
            "revoked_ns": self.revoked_ns,
            "devices": list(self.devices),
        }


NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]{1,128}$"
_NAME_RE = re.compile(NAME_PATTERN)


def _check_name(name: str) -> str:
    """1 to 128 characters, no control characters, encodable (no lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError("a token name must be valid Unicode text") from None
    if not _NAME_RE.fullmatch(name):
        raise InputError("a token name is 1 to 128 characters without control characters")
    return name


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InputError(
            f"unknown role {value!r} (choose one of {', '.join(r.value for r in Role)})"
        ) from None


DEVICE_ID_MAX = 256
DEVICE_ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]{1,256}$"
_DEVICE_ID_RE = re.compile(DEVICE_ID_PATTERN)


def check_device_id(device_id: str) -> str:
    """A device id as reports carry it: 1 to 256 characters, no control characters."""
    try:
        device_id.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError("a device id must be valid Unicode text") from None
    if not _DEVICE_ID_RE.fullmatch(device_id):
        raise InputError(
            f"a device id is 1 to {DEVICE_ID_MAX} characters without control characters"
        )
    return device_id


def _devices_for(role: Role, devices: Sequence[str]) -> tuple[str, ...]:
    if role is not Role.DEVICE and devices:
        raise InputError("only a device token is bound to devices")
    if role is Role.DEVICE and not devices:
        raise InputError(
            "a device token is bound to the device(s) it uploads for: give its device id "
            "(--device ID; `edgeprof doctor` on the device prints it)"
        )
    return tuple(dict.fromkeys(check_device_id(d) for d in devices))


def create_token(
    engine: Engine, role: Role, name: str, devices: Sequence[str] = ()
) -> tuple[TokenInfo, str]:
    """A new token: its row and the secret (shown once; only its hash is kept).

    A device token needs the device id(s) whose reports it may upload.
    """
    bound = _devices_for(role, devices)
    secret = f"{_PREFIX[role]}_{secrets.token_urlsafe(32)}"
    info = TokenInfo(uuid7(), _check_name(name), role, time.time_ns(), None, bound)
    with engine.begin() as conn:
        conn.execute(
            tokens.insert().values(
                id=info.id,
                name=info.name,
                role=role.value,
                token_sha256=hash_token(secret),
                created_ns=info.created_ns,
            )
        )
        if bound:
            conn.execute(
                token_devices.insert(), [{"token_id": info.id, "device_id": d} for d in bound]
            )
    return info, secret


def bind_token(engine: Engine, token_id: str, devices: Sequence[str]) -> TokenInfo:
    """Let an existing device token upload for more devices (tokens made before version 2
    are bound to none and upload nothing until bound)."""
    with engine.begin() as conn:
        row = conn.execute(sa.select(tokens).where(tokens.c.id == token_id)).first()
        if row is None:
            raise InputError(f"no token with id {token_id!r}")
        bound = _devices_for(Role(row.role), devices)
        have = set(_bound(conn, [token_id]).get(token_id, ()))
        new = [d for d in bound if d not in have]
        if new:
            conn.execute(
                token_devices.insert(), [{"token_id": token_id, "device_id": d} for d in new]
            )
        return _info(row, _bound(conn, [token_id]))


def _bound(conn: Connection, ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
    rows = conn.execute(
        sa.select(token_devices)
        .where(token_devices.c.token_id.in_(ids))
        .order_by(token_devices.c.device_id)
    )
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r.token_id, []).append(r.device_id)
    return {k: tuple(v) for k, v in out.items()}


def _info(row: Any, bound: dict[str, tuple[str, ...]] | None = None) -> TokenInfo:
    devices = (bound or {}).get(row.id, ())
    return TokenInfo(row.id, row.name, Role(row.role), row.created_ns, row.revoked_ns, devices)


def list_tokens(engine: Engine) -> list[TokenInfo]:
    with engine.connect() as conn:
        rows = list(conn.execute(sa.select(tokens).order_by(tokens.c.created_ns, tokens.c.id)))
        bound = _bound(conn, [r.id for r in rows]) if rows else {}
        return [_info(r, bound) for r in rows]


def revoke_token(engine: Engine, token_id: str) -> TokenInfo:
    """Revoke by id (idempotent); InputError when no such token."""
    with engine.begin() as conn:
        conn.execute(
            tokens.update()
            .where(tokens.c.id == token_id, tokens.c.revoked_ns.is_(None))
            .values(revoked_ns=time.time_ns())
        )
        row = conn.execute(sa.select(tokens).where(tokens.c.id == token_id)).first()
        if row is None:
            raise InputError(f"no token with id {token_id!r}")
        return _info(row, _bound(conn, [token_id]))


_BY_HASH = sa.select(tokens).where(tokens.c.token_sha256 == sa.bindparam("h"))


def authenticate(engine: Engine, secret: str) -> TokenInfo | None:
    """The live token with this secret, or None (unknown or revoked)."""
    with engine.connect() as conn:
        row = conn.execute(_BY_HASH, {"h": hash_token(secret)}).first()
    if row is None or row.revoked_ns is not None:
        return None
    return _info(row)
