"""Report signatures: HMAC-SHA256 with a per-device key, and Ed25519 when available.

Why two: the HMAC key never leaves the device; it lets the device itself check that a report in
its store was not edited, with nothing beyond the standard library. Ed25519 is what anyone else
trusts: the collector and offline gates hold only the device's *public* key (enrolled, or in a
trust store, :mod:`edgeprof.report.trust`), so no secret that can sign as a device is ever kept
upstream. It needs the optional ``cryptography`` package, so it is added only when that imports.

An Ed25519 signature is "verified" only against a key the caller trusts; one by any other key
is "unverified" even when it matches its own embedded public key (anyone can make such a
signature), and one that does not match is "FAILED".

Both sign the same bytes, :func:`canonical_bytes`: the report in its wire form (arrays as
``{"__array__", "dtype", "shape", "data"}`` maps) without its ``signature`` key, with every map's
keys sorted, packed by msgpack (see docs/report-format.md, "Signing").
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from edgeprof.errors import InputError
from edgeprof.report.codec import to_wire

ENV_KEY_DIR = "EDGEPROF_KEY_DIR"
HMAC_FILE = "hmac.key"
ED25519_FILE = "ed25519.key"
ED25519_PUBLIC_FILE = "ed25519.pub"
KEY_BYTES = 32


def key_id(key: bytes) -> str:
    """The first 16 hex digits of sha256(key): names a key without revealing it."""
    return hashlib.sha256(key).hexdigest()[:16]


def _ed25519() -> Any:
    """cryptography's ed25519 module, or None. Imported by name: it is an optional extra."""
    try:
        return importlib.import_module("cryptography.hazmat.primitives.asymmetric.ed25519")
    except ImportError:
        return None


def _ed25519_available() -> bool:
    return _ed25519() is not None


@dataclass
class Keys:
    """This device's signing keys (either may be absent) and where they live."""

    directory: Path
    hmac_key: bytes | None = None
    ed25519_seed: bytes | None = None  # the 32-byte raw private key

    @property
    def hmac_key_id(self) -> str | None:
        return key_id(self.hmac_key) if self.hmac_key is not None else None

    @property
    def ed25519_public_key(self) -> bytes | None:
        ed = _ed25519()
        if self.ed25519_seed is None or ed is None:
            return None
        priv = ed.Ed25519PrivateKey.from_private_bytes(self.ed25519_seed)
        return bytes(priv.public_key().public_bytes_raw())

    @property
    def any(self) -> bool:
        return self.hmac_key is not None or self.ed25519_seed is not None


@dataclass
class VerifyResult:
    """Which signatures a report carried, which verified, and why the others did not."""

    present: list[str] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    # present, but not by a key the caller trusts (or no key to check it with): unverified
    unchecked: dict[str, str] = field(default_factory=dict)
    # for a verified signature, whose key it was (a trust-store label, "this device's key")
    signer: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """At least one signature verified and none failed."""
        return bool(self.verified) and not self.failed

    def message(self) -> str:
        """One line for people."""
        if not self.present:
            return "unsigned"
        parts = [
            f"{name} verified ({self.signer[name]})" if name in self.signer else f"{name} verified"
            for name in self.verified
        ]
        parts += [f"{name} FAILED ({why})" for name, why in self.failed.items()]
        parts += [f"{name} unverified ({why})" for name, why in self.unchecked.items()]
        return "; ".join(parts)


def key_dir() -> Path:
    """$EDGEPROF_KEY_DIR, else $XDG_CONFIG_HOME/edgeprof/keys, else ~/.config/edgeprof/keys."""
    if os.environ.get(ENV_KEY_DIR):
        return Path(os.environ[ENV_KEY_DIR])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "edgeprof" / "keys"


def _read_secret(path: Path) -> bytes | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the key: {exc.strerror or exc}") from None
    if st.st_mode & 0o077:
        raise InputError(
            f"{path}: key file is readable by others (mode {st.st_mode & 0o777:o}); "
            "chmod 600 it or run `edgeprof keys init --force`"
        )
    data = path.read_bytes()
    if len(data) != KEY_BYTES:
        raise InputError(f"{path}: {len(data)} bytes, a key has {KEY_BYTES}")
    return data


def load_keys(directory: Path | None = None) -> Keys:
    """The keys in ``directory`` (default :func:`key_dir`); absent files give None, not errors."""
    d = directory or key_dir()
    return Keys(
        directory=d,
        hmac_key=_read_secret(d / HMAC_FILE),
        ed25519_seed=_read_secret(d / ED25519_FILE),
    )


def write_secret(path: Path, data: bytes, force: bool) -> None:
    """Create with mode 0600 from the start (never chmod after: no window of exposure)."""
    if force:
        path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def public_key_line(public: bytes, comment: str = "") -> str:
    """A public key as one line of a ``.pub`` or trust file: ``ed25519 HEX [comment]``."""
    return f"ed25519 {public.hex()} {comment}".rstrip() + "\n"


def _write_public(d: Path, keys: Keys) -> None:
    """``ed25519.pub`` beside the private key (0644: it is what others enrol and trust)."""
    public = keys.ed25519_public_key
    if public is None:
        return
    path = d / ED25519_PUBLIC_FILE
    line = public_key_line(public, f"key {key_id(public)}").encode()
    if path.exists() and path.read_bytes() == line:
        return
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.fchmod(fd, 0o644)  # whatever the umask: it is meant to be copied and read
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def init_keys(
    force: bool = False, directory: Path | None = None, *, if_missing: bool = False
) -> Keys:
    """Create the key directory (0700) and new keys; refuse to replace keys unless ``force``.

    ``if_missing`` creates only the keys that are not there yet and keeps the others (what
    ``./scripts/demo`` runs every time); either way ``ed25519.pub`` is (re)written to match.
    """
    d = directory or key_dir()
    files = [d / HMAC_FILE] + ([d / ED25519_FILE] if _ed25519_available() else [])
    existing = [p for p in files if p.exists()]
    if existing and not force and not if_missing:
        raise InputError(
            f"{existing[0]} exists: reports signed with it could no longer be checked here; "
            "use --force to replace it"
        )
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(d, 0o700)
        for path in files:
            if force or path not in existing:
                write_secret(path, secrets.token_bytes(KEY_BYTES), force)
        keys = load_keys(d)
        _write_public(d, keys)
    except OSError as exc:
        raise InputError(f"cannot create keys in {d}: {exc.strerror or exc}") from None
    return keys


def _sorted(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _sorted(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [_sorted(v) for v in obj]
    return obj


def canonical_wire(wire: dict[str, Any]) -> bytes:
    """The signed bytes of a report in wire form: msgpack, keys sorted, no ``signature``."""
    body = {k: v for k, v in wire.items() if k != "signature"}
    return bytes(msgpack.packb(_sorted(body), use_bin_type=True))


def canonical_bytes(report: dict[str, Any]) -> bytes:
    """The signed bytes of a report as a dict (numpy arrays allowed)."""
    return canonical_wire(to_wire(report))


def sign(report: dict[str, Any], keys: Keys) -> dict[str, Any]:
    """A copy of the report with a ``signature`` block from every key ``keys`` holds."""
    if not keys.any:
        raise InputError("no signing keys: run `edgeprof keys init`")
    message = canonical_bytes(report)
    sig: dict[str, Any] = {}
    if keys.hmac_key is not None:
        sig["hmac_sha256"] = {
            "key_id": key_id(keys.hmac_key),
            "value": hmac.new(keys.hmac_key, message, hashlib.sha256).digest(),
        }
    ed = _ed25519()
    if keys.ed25519_seed is not None and ed is not None:
        priv = ed.Ed25519PrivateKey.from_private_bytes(keys.ed25519_seed)
        sig["ed25519"] = {
            "public_key": bytes(priv.public_key().public_bytes_raw()),
            "value": bytes(priv.sign(message)),
        }
    return {**report, "signature": sig}


Trusted = Mapping[bytes, str] | Iterable[bytes]


def _trust_map(trusted: Trusted | None) -> dict[bytes, str]:
    """Public key -> who it is, for messages; a plain list of keys gets a generic label."""
    if trusted is None:
        return {}
    if isinstance(trusted, Mapping):
        return {bytes(k): str(v) for k, v in trusted.items()}
    return {bytes(k): f"trusted key {key_id(bytes(k))}" for k in trusted}


def _verify_ed25519(
    block: dict[str, Any], message: bytes, trusted: dict[bytes, str], result: VerifyResult
) -> None:
    name = "ed25519"
    ed = _ed25519()
    if ed is None:
        result.unchecked[name] = "the cryptography package is not installed"
        return
    invalid = importlib.import_module("cryptography.exceptions").InvalidSignature

    public = block.get("public_key")
    value = block.get("value")
    if not isinstance(public, bytes) or not isinstance(value, bytes):
        result.failed[name] = "malformed signature block"
        return
    try:
        ed.Ed25519PublicKey.from_public_bytes(public).verify(value, message)
    except (invalid, ValueError):
        result.failed[name] = "signature does not match the report (tampered?)"
        return
    label = trusted.get(public)
    if label is None:
        # It matches its own embedded key, which proves nothing about who made it.
        result.unchecked[name] = f"key {key_id(public)} is not in the trust store"
        return
    result.verified.append(name)
    result.signer[name] = label


def verify_wire(
    wire: dict[str, Any],
    keys: Keys | None = None,
    *,
    hmac_key: bytes | None = None,
    trusted_public_keys: Trusted | None = None,
) -> VerifyResult:
    """Check the signatures of a report in wire form (see :func:`verify`)."""
    if keys is not None:
        hmac_key = hmac_key if hmac_key is not None else keys.hmac_key
    result = VerifyResult()
    sig = wire.get("signature")
    if not isinstance(sig, dict):
        return result
    message = canonical_wire(wire)
    result.present = sorted(k for k in sig if k in ("hmac_sha256", "ed25519"))
    hm = sig.get("hmac_sha256")
    if isinstance(hm, dict):
        name = "hmac_sha256"
        value = hm.get("value")
        if hmac_key is None:
            result.unchecked[name] = "no HMAC key to check it with"
        elif hm.get("key_id") != key_id(hmac_key):
            # Another device's key (HMAC keys never leave their device): not checkable here.
            result.unchecked[name] = (
                f"signed with HMAC key {hm.get('key_id')!s:.16}, "
                f"this device's is {key_id(hmac_key)}"
            )
        elif not isinstance(value, bytes) or not hmac.compare_digest(
            value, hmac.new(hmac_key, message, hashlib.sha256).digest()
        ):
            result.failed[name] = "signature does not match the report (tampered?)"
        else:
            result.verified.append(name)
    ed = sig.get("ed25519")
    if isinstance(ed, dict):
        _verify_ed25519(ed, message, _trust_map(trusted_public_keys), result)
    return result


def verify(
    report: dict[str, Any],
    hmac_key: bytes | None = None,
    trusted_public_keys: Trusted | None = None,
) -> VerifyResult:
    """Check a report's signatures.

    HMAC is checked when ``hmac_key`` is given (else listed as unverified). Ed25519 is checked
    against its embedded public key, and is verified only when that key is one of
    ``trusted_public_keys`` (a list, or a map of key to who it is); any other key leaves it
    unverified: a matching signature by an unknown key proves nothing about who made it.
    """
    return verify_wire(to_wire(report), hmac_key=hmac_key, trusted_public_keys=trusted_public_keys)
