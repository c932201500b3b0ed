"""``edgeprof report show|export|verify`` and ``edgeprof keys init|show``.

Registered lazily in :data:`edgeprof.cli.COMMANDS` (numpy is imported only when they run).
Failures raise :class:`~edgeprof.errors.InputError`, which the main group turns into one line
and exit 2; ``report verify`` exits 1 for a signature that does not match (or none to check).
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path
from typing import Any

import click
import numpy as np

from edgeprof import exit_codes
from edgeprof.errors import InputError
from edgeprof.report.codec import decode_wire, from_wire
from edgeprof.report.signing import (
    ED25519_FILE,
    ED25519_PUBLIC_FILE,
    HMAC_FILE,
    Keys,
    VerifyResult,
    init_keys,
    key_id,
    load_keys,
    verify_wire,
)
from edgeprof.report.trust import load_trust

_FILE = click.Path(dir_okay=False, path_type=Path)


def _load(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(report with numpy arrays, wire form) of a file; InputError saying what is wrong."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    wire = decode_wire(data, str(path))
    return from_wire(wire, str(path)), wire


def _check(wire: dict[str, Any], keys: Keys, trust: tuple[str, ...] = ()) -> VerifyResult:
    """Signatures checked with this device's keys, its own Ed25519 key trusted, and ``trust``
    (else the trust store): :mod:`edgeprof.report.trust`."""
    return verify_wire(wire, keys, trusted_public_keys=load_trust(trust, keys))


def _jsonable(obj: Any) -> Any:
    """Arrays to lists, NaN/inf to null, bytes to hex: JSON that any tool reads."""
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, bytes):
        return obj.hex()
    return obj


def _fmt(value: Any, unit: str, scale: float = 1.0, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value * scale:.{digits}g} {unit}"


def render(report: dict[str, Any], check: VerifyResult) -> str:
    """A human summary of a report."""
    m, d, s = report["model"], report["device"], report["summary"]
    lat = s["latency"]
    lines = [
        f"report     {report['report_id']}  (schema {report['schema_version'][0]}."
        f"{report['schema_version'][1]}, agent {report['agent']['version']})",
        f"model      {m['name']}  {m['format']}  {m['size_bytes']} B  "
        f"quantization {m.get('quantization', '-')}  sha256 {m['sha256'][:16]}…",
        f"device     {d['board_id']}  {d['device_id']}  {d['os']} {d['kernel']} {d['machine']}",
        f"runner     {report['runner'].get('runner')} {report['runner'].get('runtime') or ''} "
        f"{report['runner'].get('runtime_version') or ''}".rstrip(),
        f"latency    n={s['count']}  mean {_fmt(lat['mean_s'], 'ms', 1e3)}  "
        + "  ".join(f"{p} {_fmt(lat.get(f'{p}_s'), 'ms', 1e3)}" for p in ("p50", "p90", "p99")),
        f"memory     peak RSS {_fmt(s.get('rss_peak_bytes'), 'MiB', 1 / 2**20)}  "
        f"steady {_fmt(s.get('rss_steady_bytes'), 'MiB', 1 / 2**20)}",
    ]
    rail = s.get("primary_rail")
    if rail:
        lines.append(
            f"power      {rail}: mean {_fmt(s.get('power_mean_w'), 'W')}  "
            f"energy/inference {_fmt(s.get('energy_per_inference_j'), 'mJ', 1e3)}"
        )
    else:
        lines.append("power      no power rail measured")
    q = report.get("quality")
    if q:
        shown = {k: v for k, v in q.items() if isinstance(v, (int, float)) and k != "examples"}
        lines.append("quality    " + "  ".join(f"{k} {v:.4g}" for k, v in shown.items()))
    for w in report["warnings"]:
        lines.append(f"warning    {w}")
    lines.append(f"signature  {check.message()}")
    return "\n".join(lines)


def _csv(report: dict[str, Any]) -> str:
    """One row per inference: begin_ns, latency_s, energy columns, peak_rss_bytes, counters."""
    per = report["per_inference"]
    energy = sorted(k for k in per if k.startswith("energy_j."))
    extra = [k for k in ("cycles", "instructions") if k in per]
    columns = ["begin_ns", "latency_s", *energy, "peak_rss_bytes", *extra]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(columns)
    arrays = [per[c].tolist() for c in columns]
    for row in zip(*arrays, strict=True):
        w.writerow(["" if isinstance(v, float) and not math.isfinite(v) else v for v in row])
    return out.getvalue()


@click.group("report")
def report_group() -> None:
    """Read, export and verify report files."""


@report_group.command("show")
@click.argument("file", type=_FILE)
def show(file: Path) -> None:
    """A human summary of FILE: model, device, latency, memory, power, quality, signature."""
    report, wire = _load(file)
    click.echo(render(report, _check(wire, load_keys())))


@report_group.command("export")
@click.argument("file", type=_FILE)
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json")
@click.option("-o", "--output", type=_FILE, help="Write here instead of stdout.")
def export(file: Path, fmt: str, output: Path | None) -> None:
    """FILE as JSON (the whole report, arrays as lists) or CSV (one row per inference)."""
    report, _ = _load(file)
    text = json.dumps(_jsonable(report), indent=2) + "\n" if fmt == "json" else _csv(report)
    if output is None:
        sys.stdout.write(text)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{output}: cannot write: {exc.strerror or exc}") from None


@report_group.command("verify")
@click.argument("file", type=_FILE)
@click.option(
    "--hmac-key", "hmac_key_file", type=_FILE, help="HMAC key file (default: this device's)."
)
@click.option(
    "--trust",
    multiple=True,
    metavar="FILE|DIR",
    help="Trusted Ed25519 public keys: a .pub or trust file, a directory of *.pub, or a key in "
    "hex (repeatable; default: the trust store $XDG_CONFIG_HOME/edgeprof/trust/). This "
    "device's own key is always trusted.",
)
def verify_cmd(file: Path, hmac_key_file: Path | None, trust: tuple[str, ...]) -> None:
    """Check FILE's signatures: exit 0 verified, 1 mismatch or nothing verified (unsigned, or
    signed by a key outside the trust store: unverified), 2 unreadable."""
    _, wire = _load(file)
    keys = load_keys()
    if hmac_key_file is not None:
        try:
            keys = Keys(
                directory=keys.directory,
                hmac_key=hmac_key_file.read_bytes(),
                ed25519_seed=keys.ed25519_seed,
            )
        except OSError as exc:
            raise InputError(f"{hmac_key_file}: cannot read: {exc.strerror or exc}") from None
    result = _check(wire, keys, trust)
    click.echo(f"{file}: {result.message()}")
    if not result.ok:
        sys.exit(exit_codes.FAILED)


@click.group("keys")
def keys_group() -> None:
    """This device's report-signing keys."""


@keys_group.command("init")
@click.option("--force", is_flag=True, help="Replace existing keys.")
@click.option(
    "--if-missing", is_flag=True, help="Create only the keys not there yet; keep the others."
)
def keys_init(force: bool, if_missing: bool) -> None:
    """Create the signing keys (HMAC, and Ed25519 when cryptography is installed) and
    ed25519.pub, the public key a collector enrols and others trust."""
    if force and if_missing:
        raise InputError("--force replaces keys, --if-missing keeps them: give one")
    keys = init_keys(force, if_missing=if_missing)
    click.echo(f"keys in {keys.directory}")
    _show(keys)


def _show(keys: Keys) -> None:
    if keys.hmac_key is not None:
        click.echo(f"hmac_sha256  key id {keys.hmac_key_id}  {keys.directory / HMAC_FILE}")
    pub = keys.ed25519_public_key
    if pub is not None:
        click.echo(
            f"ed25519      key id {key_id(pub)}  public key {pub.hex()}  "
            f"{keys.directory / ED25519_FILE}"
        )
        if (keys.directory / ED25519_PUBLIC_FILE).is_file():
            click.echo(f"public key   {keys.directory / ED25519_PUBLIC_FILE} (enrol or trust this)")
    elif keys.ed25519_seed is not None:
        click.echo("ed25519      present, but the cryptography package is not installed")
    if not keys.any:
        click.echo(f"no keys in {keys.directory}: run `edgeprof keys init`")


@keys_group.command("show")
def keys_show() -> None:
    """Key ids and paths (never the secrets); exit 1 when there are none."""
    keys = load_keys()
    _show(keys)
    if not keys.any:
        sys.exit(exit_codes.FAILED)
