"""Device identity on the collector: which Ed25519 public keys may sign for which device id.

Enrolment binds a device's public key to its device id (``edgeprof collector device enrol
--device-id ID --key-from DIR``), and optionally the device to the boards it may report; a
device token is bound to its device(s) in :mod:`edgeprof.collector.tokens`. Ingest
(:func:`edgeprof.collector.ingest.check_signature`) stores a report only when a live key of the
device it names signed it, its board is allowed, and the uploading token is bound to that device.

Only public keys are kept: a copy of the database lets nobody sign as a device. (Version 1 kept
HMAC secrets; migration 2 dropped them, :mod:`edgeprof.collector.db`.)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from edgeprof.collector.db import device_boards, device_keys, token_devices
from edgeprof.collector.tokens import check_device_id
from edgeprof.errors import InputError
from edgeprof.report.signing import ED25519_PUBLIC_FILE, KEY_BYTES, key_id, load_keys
from edgeprof.report.trust import parse_public_key

ED25519 = "ed25519"
BOARD_ID_MAX = 128


@dataclass(frozen=True)
class EnrolledKey:
    """One device's public key (no secret: the row is safe to show)."""

    device_id: str
    key_id: str
    public_key: bytes
    created_ns: int
    revoked_ns: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "key_id": self.key_id,
            "kind": ED25519,
            "public_key": self.public_key.hex(),
            "created_ns": self.created_ns,
            "revoked_ns": self.revoked_ns,
        }


@dataclass(frozen=True)
class Device:
    """An enrolled device: its keys (live and revoked) and the boards it may report."""

    device_id: str
    keys: tuple[EnrolledKey, ...]
    boards: tuple[str, ...]  # empty: any board

    def as_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "keys": [k.as_dict() for k in self.keys],
            "boards": list(self.boards),
        }


def public_key_from_dir(directory: Path) -> bytes:
    """The Ed25519 public key of a device's ``edgeprof keys`` directory: its ``ed25519.pub``,
    else derived from ``ed25519.key``. The HMAC key there is never read: it stays on the device."""
    pub = directory / ED25519_PUBLIC_FILE
    if pub.is_file():
        try:
            return parse_public_key(pub.read_text(encoding="utf-8"), str(pub))
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{pub}: cannot read: {exc}") from None
    public = load_keys(directory).ed25519_public_key
    if public is None:
        raise InputError(
            f"{directory}: no Ed25519 key there: on the device install the signing extra "
            "(pip install 'edgeprof[sign]') and run `edgeprof keys init --if-missing`"
        )
    return public


def public_key_from(value: str) -> bytes:
    """``--public-key``: a ``.pub`` file, or the key itself in hex."""
    path = Path(value)
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read: {exc}") from None
        return parse_public_key(text, str(path))
    return parse_public_key(value, "--public-key")


def _check_board(board: str) -> str:
    if not 0 < len(board) <= BOARD_ID_MAX or any(ord(c) < 0x20 for c in board):
        raise InputError(f"a board id is 1 to {BOARD_ID_MAX} characters, no control characters")
    return board


def enrol_device(
    engine: Engine, device_id: str, public_key: bytes, boards: Sequence[str] = ()
) -> EnrolledKey:
    """Bind ``public_key`` to ``device_id`` (again, if it was revoked) and allow ``boards``."""
    check_device_id(device_id)
    if len(public_key) != KEY_BYTES:
        raise InputError(f"an Ed25519 public key has {KEY_BYTES} bytes, got {len(public_key)}")
    wanted = list(dict.fromkeys(_check_board(b) for b in boards))
    kid = key_id(public_key)
    now = time.time_ns()
    with engine.begin() as conn:
        where = (device_keys.c.device_id == device_id, device_keys.c.key_id == kid)
        row = conn.execute(sa.select(device_keys).where(*where)).first()
        if row is None:
            conn.execute(
                device_keys.insert().values(
                    device_id=device_id, key_id=kid, public_key=public_key, created_ns=now
                )
            )
            created = now
        else:
            if bytes(row.public_key) != public_key:  # 64-bit id collision: refuse, never mix
                raise InputError(f"key id {kid} is taken by another key of {device_id!r}")
            conn.execute(device_keys.update().where(*where).values(revoked_ns=None))
            created = row.created_ns
        have = {
            r.board_id
            for r in conn.execute(
                sa.select(device_boards.c.board_id).where(device_boards.c.device_id == device_id)
            )
        }
        new = [b for b in wanted if b not in have]
        if new:
            conn.execute(
                device_boards.insert(), [{"device_id": device_id, "board_id": b} for b in new]
            )
    return EnrolledKey(device_id, kid, public_key, created, None)


def list_devices(engine: Engine) -> list[Device]:
    """Every enrolled device, oldest key first."""
    with engine.connect() as conn:
        keys: dict[str, list[EnrolledKey]] = {}
        for r in conn.execute(
            sa.select(device_keys).order_by(device_keys.c.device_id, device_keys.c.created_ns)
        ):
            keys.setdefault(r.device_id, []).append(
                EnrolledKey(r.device_id, r.key_id, bytes(r.public_key), r.created_ns, r.revoked_ns)
            )
        boards: dict[str, list[str]] = {}
        for r in conn.execute(sa.select(device_boards).order_by(device_boards.c.board_id)):
            boards.setdefault(r.device_id, []).append(r.board_id)
    return [Device(d, tuple(k), tuple(boards.get(d, ()))) for d, k in keys.items()]


def revoke_key(engine: Engine, kid: str, device_id: str | None = None) -> int:
    """Stop trusting a key (for one device, or for every device it is enrolled for); stored
    reports stay stored. Returns how many bindings were revoked."""
    clauses = [device_keys.c.key_id == kid, device_keys.c.revoked_ns.is_(None)]
    if device_id is not None:
        clauses.append(device_keys.c.device_id == device_id)
    with engine.begin() as conn:
        result = conn.execute(
            device_keys.update().where(*clauses).values(revoked_ns=time.time_ns())
        )
    if result.rowcount == 0:
        raise InputError(f"no live enrolled key with id {kid!r}")
    return int(result.rowcount)


# Built once: constructing a statement costs more than running it (hot path of every upload).
_LIVE_KEYS = sa.select(device_keys.c.public_key).where(
    device_keys.c.device_id == sa.bindparam("device"), device_keys.c.revoked_ns.is_(None)
)
_BOARDS = sa.select(device_boards.c.board_id).where(
    device_boards.c.device_id == sa.bindparam("device")
)
_TOKEN_DEVICES = sa.select(token_devices.c.device_id).where(
    token_devices.c.token_id == sa.bindparam("token")
)
_KEY_DEVICES = sa.select(device_keys.c.device_id).where(
    device_keys.c.key_id == sa.bindparam("kid"), device_keys.c.revoked_ns.is_(None)
)


def live_keys(conn: Connection, device_id: str) -> list[bytes]:
    """The public keys that may sign reports naming ``device_id``."""
    return [bytes(r.public_key) for r in conn.execute(_LIVE_KEYS, {"device": device_id})]


def allowed_boards(conn: Connection, device_id: str) -> list[str]:
    """The boards ``device_id`` may report; empty means any."""
    return [r.board_id for r in conn.execute(_BOARDS, {"device": device_id})]


def token_devices_of(conn: Connection, token_id: str) -> list[str]:
    """The devices a token may upload for."""
    return [r.device_id for r in conn.execute(_TOKEN_DEVICES, {"token": token_id})]


def devices_of_key(conn: Connection, public_key: bytes) -> list[str]:
    """The devices a public key is enrolled (live) for: to say what a refused report was."""
    return [r.device_id for r in conn.execute(_KEY_DEVICES, {"kid": key_id(public_key)})]
