"""``edgeprof gate REPORT...`` and ``edgeprof gate verify-log FILE``.

Kept out of cli.py like the report commands; the main group attaches it with
``main.add_command(gate_group)``. ``gate REPORT...`` is shorthand for ``gate check REPORT...``
(:class:`_DefaultGroup`), so CI lines stay short. Exit codes: 0 pass, 1 fail, 2 could not
evaluate (also any bad input: an unreadable, unsigned or tampered report, a malformed policy,
which the main group prints as one line).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from edgeprof.audit import append, verify_log
from edgeprof.errors import InputError
from edgeprof.gate import FAIL, NOT_EVALUATED, PASS, WARN, Decision, evaluate
from edgeprof.policy import load_policy
from edgeprof.report import decode_wire, from_wire

_FILE = click.Path(dir_okay=False, path_type=Path)
_COLOURS = {PASS: "green", WARN: "yellow", FAIL: "red", NOT_EVALUATED: "magenta"}


class _DefaultGroup(click.Group):
    """A group whose first argument, when not a subcommand name, goes to ``check``."""

    default_command = "check"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


class Loaded:
    """A report read for gating: the report, its path, file sha256 and signature status."""

    def __init__(self, report: dict[str, Any], path: Path, sha256: str, signature: str) -> None:
        self.report, self.path, self.sha256, self.signature = report, path, sha256, signature


def load_for_gate(path: Path, allow_unsigned: bool) -> Loaded:
    """Read, validate and verify a report; refuse tampered ones, and unsigned ones by default."""
    from edgeprof.signing import load_keys, verify_wire

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    wire = decode_wire(data, str(path))
    report = from_wire(wire, str(path))
    check = verify_wire(wire, load_keys())
    if check.failed:
        raise InputError(f"{path}: refused: signature mismatch: {check.message()}")
    if not check.verified and not allow_unsigned:
        why = "unsigned report" if not check.present else f"signature {check.message()}"
        raise InputError(f"{path}: refused: {why} (pass --allow-unsigned to gate it anyway)")
    return Loaded(report, path, hashlib.sha256(data).hexdigest(), check.message())


def _input(role: str, item: Loaded) -> dict[str, Any]:
    r = item.report
    return {
        "role": role,
        "path": os.fspath(item.path),
        "report_id": r["report_id"],
        "sha256": item.sha256,
        "signature": item.signature,
        "board_id": r["device"]["board_id"],
        "model": {"name": r["model"]["name"], "sha256": r["model"]["sha256"]},
    }


def audit_body(
    decision: Decision, inputs: list[dict[str, Any]], policy_origin: str
) -> dict[str, Any]:
    """What the audit log records of one decision (everything but the chain fields)."""
    doc = decision.to_json()
    return {
        "inputs": inputs,
        "policy": {**doc["policy"], "path": policy_origin},
        "decision": {k: doc[k] for k in ("outcome", "exit_code", "severity")},
        "rules": [
            {
                k: r[k]
                for k in (
                    "rule_id",
                    "kind",
                    "metric",
                    "report_id",
                    "value",
                    "threshold",
                    "warn_threshold",
                    "verdict",
                    "severity",
                    "justification",
                )
            }
            for r in doc["results"]
        ],
        "justification": doc["justification"],
    }


def render(decision: Decision) -> str:
    """A table for people: one row per result, then the decision."""
    rows = [("VERDICT", "SEVERITY", "RULE", "REPORT", "VALUE", "LIMIT")]
    for r in decision.results:
        value = "-" if r.value is None else f"{r.value:.4g}"
        limit = "-" if r.threshold is None else f"{r.threshold:.4g}"
        rows.append((r.verdict, r.severity, r.rule_id, r.report_id[:13], value, limit))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for i, row in enumerate(rows):
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=True)]
        if i:
            cells[0] = click.style(cells[0], fg=_COLOURS.get(row[0]))
        lines.append("  ".join(cells).rstrip())
    lines.append("")
    lines.extend(f"- {r.justification}" for r in decision.results if r.verdict != PASS)
    colour = {"pass": "green", "fail": "red"}.get(decision.outcome, "magenta")
    sev = f" (severity {decision.severity})" if decision.severity else ""
    lines.append(click.style(f"decision: {decision.outcome.upper()}{sev}", fg=colour, bold=True))
    return "\n".join(lines)


@click.group("gate", cls=_DefaultGroup)
def gate_group() -> None:
    """Approve or reject reports against a policy (`gate REPORT...` = `gate check REPORT...`)."""


@gate_group.command("check")
@click.argument("reports", nargs=-1, required=True, type=_FILE)
@click.option("--policy", "policy_file", type=_FILE, help="Policy TOML (default: shipped).")
@click.option("--baseline", type=_FILE, help="Report to test for regressions against.")
@click.option(
    "--window", multiple=True, type=_FILE, help="Earlier run for drift (repeat for a window)."
)
@click.option("--audit-log", type=_FILE, help="Append the decision to this hash-chained log.")
@click.option("--allow-unsigned", is_flag=True, help="Gate reports without a verified signature.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable decision on stdout.")
def check(
    reports: tuple[Path, ...],
    policy_file: Path | None,
    baseline: Path | None,
    window: tuple[Path, ...],
    audit_log: Path | None,
    allow_unsigned: bool,
    as_json: bool,
) -> None:
    """Evaluate REPORTS: exit 0 pass, 1 fail, 2 could not evaluate."""
    policy = load_policy(policy_file)
    current = [load_for_gate(p, allow_unsigned) for p in reports]
    base = load_for_gate(baseline, allow_unsigned) if baseline is not None else None
    past = [load_for_gate(p, allow_unsigned) for p in window]
    decision = evaluate(
        [c.report for c in current],
        policy,
        baseline=base.report if base is not None else None,
        window=[w.report for w in past] or None,
    )
    inputs = [_input("report", c) for c in current]
    inputs += [_input("baseline", base)] if base is not None else []
    inputs += [_input("window", w) for w in past]
    entry = None
    if audit_log is not None:
        entry = append(audit_log, audit_body(decision, inputs, policy.origin))
    if as_json:
        doc = {**decision.to_json(), "inputs": inputs}
        if entry is not None and audit_log is not None:
            doc["audit"] = {
                "path": os.fspath(audit_log),
                "seq": entry["seq"],
                "sha256": entry["sha256"],
            }
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(render(decision))
        if entry is not None:
            click.echo(f"audit: {audit_log} entry {entry['seq']} ({entry['sha256'][:16]})")
    sys.exit(decision.exit_code)


@gate_group.command("verify-log")
@click.argument("file", type=_FILE)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result.")
def verify_log_cmd(file: Path, as_json: bool) -> None:
    """Check the hash chain of an audit log: exit 0 intact, 1 broken (naming the line)."""
    result = verify_log(file)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": result.ok,
                    "entries": result.entries,
                    "head": result.head,
                    "bad_line": result.bad_line,
                    "reason": result.reason,
                }
            )
        )
    else:
        click.echo(f"{file}: {result.message()}")
    sys.exit(0 if result.ok else 1)
