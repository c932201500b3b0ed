"""``edgeprof gate REPORT...`` and ``edgeprof gate verify-log FILE``.

Kept out of cli.py like the report commands; the main group attaches it with
``main.add_command(gate_group)``. ``gate REPORT...`` is shorthand for ``gate check REPORT...``
(:class:`_DefaultGroup`), so CI lines stay short. Exit codes: 0 pass, 1 fail, 2 could not
evaluate (also any bad input: an unreadable, unsigned or tampered report, a malformed policy,
which the main group prints as one line).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from edgeprof.errors import InputError
from edgeprof.gate.audit import append, verify_log
from edgeprof.gate.evaluate import FAIL, NOT_EVALUATED, PASS, WARN, Decision, evaluate
from edgeprof.gate.inputs import CollectorSource, load_file
from edgeprof.gate.policy import load_policy

_FILE = click.Path(dir_okay=False, path_type=Path)
_COLOURS = {PASS: "green", WARN: "yellow", FAIL: "red", NOT_EVALUATED: "magenta"}


class _DefaultGroup(click.Group):
    """A group whose first argument, when not a subcommand name, goes to ``check``."""

    default_command = "check"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


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
@click.argument("reports", nargs=-1, type=_FILE)
@click.option("--policy", "policy_file", type=_FILE, help="Policy TOML (default: shipped).")
@click.option(
    "--baseline",
    help="Report file to test for regressions against, or `last-approved` (with --collector: "
    "the newest passed run of the same model on the same board).",
)
@click.option(
    "--window", multiple=True, type=_FILE, help="Earlier run for drift (repeat for a window)."
)
@click.option(
    "--drift-window",
    type=click.IntRange(min=1),
    help="With --collector: the N runs of the same model and board before the candidate.",
)
@click.option("--audit-log", type=_FILE, help="Append the decision to this hash-chained log.")
@click.option("--allow-unsigned", is_flag=True, help="Gate reports without a verified signature.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable decision on stdout.")
@click.option("--collector", "collector_url", help="Pull reports from this collector (base URL).")
@click.option("--token", default=None, help="Pipeline token for --collector (prefer a file).")
@click.option("--token-file", type=_FILE, default=None, help="Read the pipeline token here.")
@click.option("--model", help="With --collector: the model name to gate.")
@click.option("--model-sha256", help="With --collector: the model file's sha256.")
@click.option("--board", help="With --collector: only this board.")
@click.option("--device", help="With --collector: only this device.")
@click.option("--tag", multiple=True, metavar="KEY:VALUE", help="With --collector: repeatable.")
@click.option(
    "--latest",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="With --collector: gate the newest N matching reports.",
)
@click.option("--no-post", is_flag=True, help="With --collector: do not record the decision there.")
def check(
    reports: tuple[Path, ...],
    policy_file: Path | None,
    baseline: str | None,
    window: tuple[Path, ...],
    drift_window: int | None,
    audit_log: Path | None,
    allow_unsigned: bool,
    as_json: bool,
    collector_url: str | None,
    token: str | None,
    token_file: Path | None,
    tag: tuple[str, ...],
    latest: int,
    no_post: bool,
    **filters: str | None,
) -> None:
    """Evaluate REPORTS (files, or --collector with filters): exit 0 pass, 1 fail, 2 could not
    evaluate."""
    policy = load_policy(policy_file)
    source = None
    if collector_url is not None:
        from edgeprof.uplink.pull import Client
        from edgeprof.uplink.spool import resolve_token

        source = CollectorSource(Client.make(collector_url, resolve_token(token, token_file)))
    elif any(v is not None for v in filters.values()) or tag or drift_window:
        raise InputError("--model/--board/--device/--tag/--drift-window need --collector")
    current = [load_file(p, allow_unsigned) for p in reports]
    if source is not None:
        clean = {k: v for k, v in filters.items() if v is not None}
        if clean or tag or not current:
            current += source.candidates(clean, list(tag), latest)
    if not current:
        raise InputError("gate: give report files, or --collector with filters")
    base = None
    if baseline == "last-approved":
        if source is None:
            raise InputError("--baseline last-approved needs --collector")
        base = source.last_approved(current[-1].report)
    elif baseline is not None:
        base = load_file(Path(baseline), allow_unsigned)
    past = [load_file(p, allow_unsigned) for p in window]
    if drift_window is not None and source is not None:
        past += source.window(current[-1].report, drift_window)
    decision = evaluate(
        [c.report for c in current],
        policy,
        baseline=base.report if base is not None else None,
        window=[w.report for w in past] or None,
    )
    inputs = [c.describe("report") for c in current]
    inputs += [base.describe("baseline")] if base is not None else []
    inputs += [w.describe("window") for w in past]
    body = audit_body(decision, inputs, policy.origin)
    entry = append(audit_log, body) if audit_log is not None else None
    posted = None
    if source is not None and not no_post:
        record = {**body, "audit": _audit_ref(audit_log, entry)}
        posted = source.post_decision(decision.outcome, decision.severity, inputs, record)
    if as_json:
        doc = {**decision.to_json(), "inputs": inputs}
        if entry is not None and audit_log is not None:
            doc["audit"] = _audit_ref(audit_log, entry)
        if posted is not None:
            doc["collector_decision_id"] = posted
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(render(decision))
        if entry is not None:
            click.echo(f"audit: {audit_log} entry {entry['seq']} ({entry['sha256'][:16]})")
        if posted is not None:
            click.echo(f"collector: decision {posted} recorded")
    sys.exit(decision.exit_code)


def _audit_ref(path: Path | None, entry: dict[str, Any] | None) -> dict[str, Any] | None:
    if path is None or entry is None:
        return None
    return {"path": os.fspath(path), "seq": entry["seq"], "sha256": entry["sha256"]}


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
