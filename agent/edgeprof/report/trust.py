"""Which Ed25519 public keys this machine trusts when it checks a report offline.

A signature only says who signed when the key is known beforehand: the public key inside a
report proves nothing (anyone can make a key and sign with it). So ``edgeprof gate FILE`` and
``edgeprof report verify`` count an Ed25519 signature as verified only for a key from:

- ``--trust FILE|DIR`` (repeatable): a ``.pub`` or trust file, or a directory of ``*.pub``;
- else the trust store ``$XDG_CONFIG_HOME/edgeprof/trust/`` (``*.pub`` files), when it exists;
- and, always, this device's own key (``edgeprof keys init``): a report signed here, checked here.

A ``.pub`` or trust file holds one key a line, ``ed25519 HEX [label]`` (a bare ``HEX`` too);
blank lines and ``#`` comments are skipped. The label (else the file's name) names the signer
in messages. ``edgeprof keys init`` writes the device's ``ed25519.pub`` in this format.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from edgeprof.errors import InputError
from edgeprof.report.signing import KEY_BYTES, Keys, key_id, load_keys

TRUST_SUFFIX = ".pub"
OWN_KEY = "this device's key"


def trust_dir() -> Path:
    """``$XDG_CONFIG_HOME/edgeprof/trust``, else ``~/.config/edgeprof/trust``."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "edgeprof" / "trust"


def parse_public_key(text: str, origin: str) -> bytes:
    """One key written as ``ed25519 HEX`` or ``HEX``; InputError naming ``origin`` otherwise."""
    words = text.split()
    if len(words) >= 2 and words[0] == "ed25519":
        words = words[1:]
    try:
        public = bytes.fromhex(words[0]) if words else b""
    except ValueError:
        public = b""
    if len(public) != KEY_BYTES:
        raise InputError(f"{origin}: expected an Ed25519 public key (`ed25519` and 64 hex digits)")
    return public


def read_trust_file(path: Path) -> dict[bytes, str]:
    """The keys of one ``.pub`` or trust file, each with its label."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise InputError(f"{path}: cannot read the trust file: {why}") from None
    out: dict[bytes, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        public = parse_public_key(line, f"{path}:{number}")
        words = line.split()
        rest = words[2:] if words[0] == "ed25519" else words[1:]
        label = " ".join(rest) or path.name
        out[public] = f"trusted: {label}"
    if not out:
        raise InputError(f"{path}: no public key in it")
    return out


def read_trust(source: Path) -> dict[bytes, str]:
    """A trust file, or every ``*.pub`` of a directory."""
    if source.is_dir():
        out: dict[bytes, str] = {}
        for path in sorted(source.glob(f"*{TRUST_SUFFIX}")):
            out.update(read_trust_file(path))
        if not out:
            raise InputError(f"{source}: no *{TRUST_SUFFIX} file in it")
        return out
    if not source.exists():
        raise InputError(f"{source}: no such trust file or directory")
    return read_trust_file(source)


def load_trust(sources: Sequence[str | Path] = (), keys: Keys | None = None) -> dict[bytes, str]:
    """The trusted keys (public key -> who): ``sources`` (files, directories, or keys in hex),
    else the trust store, plus this device's own key (``keys``, default
    :func:`edgeprof.report.signing.load_keys`)."""
    out: dict[bytes, str] = {}
    if sources:
        for source in sources:
            path = Path(source)
            if not path.exists() and isinstance(source, str) and len(source.split()) <= 2:
                try:
                    public = parse_public_key(source, "--trust")
                except InputError:
                    raise InputError(f"{source}: no such trust file or directory") from None
                out[public] = f"trusted: key {key_id(public)}"
                continue
            out.update(read_trust(path))
    elif trust_dir().is_dir() and any(trust_dir().glob(f"*{TRUST_SUFFIX}")):
        out.update(read_trust(trust_dir()))
    own = (keys if keys is not None else load_keys()).ed25519_public_key
    if own is not None:
        out[own] = OWN_KEY
    return out
