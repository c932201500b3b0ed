"""The gate's own Ed25519 key: it signs every decision and every audit-log entry.

Why a key of its own: a pipeline token only says *who may post*; a signature says *this gate
made this decision on these bytes*, and an audit log whose entries are signed cannot be rewritten
by someone who can edit the file but does not hold the key. The key lives in a directory (mode
0700): ``gate.ed25519.key`` (the 32-byte seed, 0600) and ``gate.ed25519.pub`` (the public key in
hex, to enrol upstream with ``edgeprof collector gate-key add --public-key FILE``). The default
directory is ``$EDGEPROF_GATE_KEY_DIR``, else ``$XDG_CONFIG_HOME/edgeprof/gate-key``.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from edgeprof.collector.signed_decision import ed25519_public, ed25519_sign, key_id
from edgeprof.errors import InputError
from edgeprof.report.signing import write_secret

ENV_GATE_KEY_DIR = "EDGEPROF_GATE_KEY_DIR"
SEED_FILE = "gate.ed25519.key"
PUBLIC_FILE = "gate.ed25519.pub"
KEY_BYTES = 32


def gate_key_dir() -> Path:
    """$EDGEPROF_GATE_KEY_DIR, else $XDG_CONFIG_HOME/edgeprof/gate-key (~/.config/...)."""
    if os.environ.get(ENV_GATE_KEY_DIR):
        return Path(os.environ[ENV_GATE_KEY_DIR])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "edgeprof" / "gate-key"


@dataclass(frozen=True)
class GateKey:
    """A gate's signing key: its seed, public key and key id."""

    directory: Path
    seed: bytes
    public: bytes

    @property
    def key_id(self) -> str:
        return key_id(self.public)

    def sign(self, message: bytes) -> bytes:
        return ed25519_sign(self.seed, message)


def read_public_key(path: Path) -> bytes:
    """A public key file: 64 hex digits (what ``gate keygen`` writes) or 32 raw bytes."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the public key: {exc.strerror or exc}") from None
    if len(data) == KEY_BYTES:
        return data
    try:
        public = bytes.fromhex(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        public = b""
    if len(public) != KEY_BYTES:
        raise InputError(f"{path}: not an Ed25519 public key (64 hex digits or 32 bytes)")
    return public


def load_gate_key(directory: Path | None = None) -> GateKey:
    """The gate key in ``directory`` (default :func:`gate_key_dir`); InputError naming the
    fix when there is none or its file is readable by others."""
    d = directory or gate_key_dir()
    path = d / SEED_FILE
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(
            f"no gate key in {d}: run `edgeprof gate keygen --gate-key {d}` and enrol "
            f"{d / PUBLIC_FILE} upstream (`edgeprof collector gate-key add`)"
        ) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the gate key: {exc.strerror or exc}") from None
    if st.st_mode & 0o077:
        raise InputError(f"{path}: readable by others (mode {st.st_mode & 0o777:o}); chmod 600 it")
    try:
        seed = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the gate key: {exc.strerror or exc}") from None
    if len(seed) != KEY_BYTES:
        raise InputError(f"{path}: {len(seed)} bytes, a gate key has {KEY_BYTES}")
    return GateKey(d, seed, ed25519_public(seed))


def public_key_of(directory: Path | None = None) -> bytes:
    """The gate's public key: from its seed when readable, else its ``.pub`` file (a verifier
    may hold only that)."""
    d = directory or gate_key_dir()
    if (d / SEED_FILE).exists():
        return load_gate_key(d).public
    if (d / PUBLIC_FILE).exists():
        return read_public_key(d / PUBLIC_FILE)
    raise InputError(f"no gate key in {d}: give --gate-key DIR or --public-key FILE")


def init_gate_key(directory: Path | None = None, force: bool = False) -> GateKey:
    """Create the directory (0700), a new seed (0600) and its public key file."""
    d = directory or gate_key_dir()
    seed_path, pub_path = d / SEED_FILE, d / PUBLIC_FILE
    if seed_path.exists() and not force:
        raise InputError(
            f"{seed_path} exists: decisions and audit logs it signed are checked with it; "
            "use --force to replace it"
        )
    seed = secrets.token_bytes(KEY_BYTES)
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(d, 0o700)
        write_secret(seed_path, seed, force=True)
        pub_path.write_text(ed25519_public(seed).hex() + "\n")
    except OSError as exc:
        raise InputError(f"cannot create the gate key in {d}: {exc.strerror or exc}") from None
    return GateKey(d, seed, ed25519_public(seed))
