"""``edgeprof gate REPORT...`` and ``edgeprof gate verify-log FILE``: parse, call, print.

The work is :func:`edgeprof.gate.job.run_gate`. ``gate REPORT...`` is shorthand for
``gate check REPORT...`` (:class:`_DefaultGroup`), so CI lines stay short. Exit codes
(:mod:`edgeprof.exit_codes`): 0 pass, 1 fail, 2 could not evaluate (also any bad input: an
unreadable, unsigned or tampered report, a malformed policy, which the main group prints as one
line).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edgeprof import exit_codes
from edgeprof.errors import CollectorError, InputError
from edgeprof.gate.audit import Anchor, LogCheck, verify_log
from edgeprof.gate.evaluate import FAIL, NOT_EVALUATED, PASS, WARN, Decision
from edgeprof.gate.job import CollectorQuery, GateRequest, run_gate

_FILE = click.Path(dir_okay=False, path_type=Path)
_DIR = click.Path(file_okay=False, path_type=Path)
_GATE_KEY_HELP = (
    "The gate key directory (signs audit entries and posted decisions; default "
    "$EDGEPROF_GATE_KEY_DIR or ~/.config/edgeprof/gate-key)."
)
_COLOURS = {PASS: "green", WARN: "yellow", FAIL: "red", NOT_EVALUATED: "magenta"}


class _DefaultGroup(click.Group):
    """A group whose first argument, when not a subcommand name, goes to ``check``."""

    default_command = "check"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


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
    if decision.comparability:
        lines.append("baseline differs in:")
        lines.extend(f"  - {note}" for note in decision.comparability)
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
    "--allow-other-model-baseline",
    is_flag=True,
    help="Compare with a baseline of another model (another sha256, e.g. the previous version); "
    "refused otherwise, since the difference would be the model's, not a regression.",
)
@click.option(
    "--window", multiple=True, type=_FILE, help="Earlier run for drift (repeat for a window)."
)
@click.option(
    "--drift-window",
    type=click.IntRange(min=1),
    help="With --collector: the N runs of the same model and board before the candidate.",
)
@click.option("--audit-log", type=_FILE, help="Append the decision to this signed, chained log.")
@click.option("--gate-key", "gate_key", type=_DIR, default=None, help=_GATE_KEY_HELP)
@click.option(
    "--allow-unsigned",
    is_flag=True,
    help="Gate report files without a verified signature (unsigned, or unverified: signed by a "
    "key outside the trust store).",
)
@click.option(
    "--trust",
    multiple=True,
    metavar="FILE|DIR",
    help="Trusted Ed25519 public keys for report files: a .pub or trust file, a directory of "
    "*.pub, or a key in hex (repeatable; default: $XDG_CONFIG_HOME/edgeprof/trust/; this "
    "device's own key is always trusted).",
)
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
    allow_other_model_baseline: bool,
    window: tuple[Path, ...],
    drift_window: int | None,
    audit_log: Path | None,
    gate_key: Path | None,
    allow_unsigned: bool,
    trust: tuple[str, ...],
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
    clean = {k: v for k, v in filters.items() if v is not None}
    query = None
    if collector_url is not None:
        query = CollectorQuery(
            collector_url, token, token_file, clean, tag, latest, post=not no_post
        )
    result = run_gate(
        GateRequest(
            reports=reports,
            policy_file=policy_file,
            baseline=baseline,
            allow_other_model_baseline=allow_other_model_baseline,
            window=window,
            drift_window=drift_window,
            audit_log=audit_log,
            gate_key_dir=gate_key,
            allow_unsigned=allow_unsigned,
            trust=trust,
            collector=query,
            stray_filters=bool(clean or tag),
        )
    )
    decision = result.decision
    for note in (result.audit or {}).get("notes", []):
        click.echo(f"audit: {note}", err=True)
    if as_json:
        doc = {**decision.to_json(), "inputs": result.inputs}
        if result.audit is not None:
            doc["audit"] = result.audit
        if result.collector_decision_id is not None:
            doc["collector_decision_id"] = result.collector_decision_id
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(render(decision))
        if result.audit is not None:
            click.echo(
                f"audit: {audit_log} entry {result.audit['seq']} ({result.audit['sha256'][:16]})"
            )
        if result.collector_decision_id is not None:
            click.echo(f"collector: decision {result.collector_decision_id} recorded")
    sys.exit(result.exit_code)


@gate_group.command("keygen")
@click.option("--gate-key", "gate_key", type=_DIR, default=None, help=_GATE_KEY_HELP)
@click.option("--force", is_flag=True, help="Replace an existing gate key.")
def keygen(gate_key: Path | None, force: bool) -> None:
    """Create this gate's Ed25519 key; enrol its .pub file upstream with
    `edgeprof collector gate-key add --name NAME --public-key FILE`."""
    from edgeprof.gate.keys import PUBLIC_FILE, init_gate_key

    key = init_gate_key(gate_key, force=force)
    click.echo(f"gate key {key.key_id} in {key.directory}")
    click.echo(f"public key: {key.directory / PUBLIC_FILE} ({key.public.hex()})")


def _anchors(url: str, token: str | None, token_file: Path | None, kid: str) -> list[Anchor]:
    """What the collector recorded of this gate key's audit entries."""
    from edgeprof.uplink.http import resolve_token
    from edgeprof.uplink.pull import CollectorApi

    api = CollectorApi.make(url, resolve_token(token, token_file))
    try:
        doc = api.json("GET", f"/v1/decisions?gate_key={kid}")
        return [
            Anchor(str(a["log_id"]), int(a["seq"]), str(a["sha256"]), str(a["decision_id"]))
            for a in doc["anchors"]
        ]
    except CollectorError as exc:
        raise InputError(f"cannot compare with the collector: {exc}") from None
    except (KeyError, TypeError, ValueError):
        raise InputError("the collector's answer is not a list of audit anchors") from None


@gate_group.command("verify-log")
@click.argument("file", type=_FILE)
@click.option("--gate-key", "gate_key", type=_DIR, default=None, help=_GATE_KEY_HELP)
@click.option(
    "--public-key",
    type=_FILE,
    default=None,
    help="Check signatures with this gate public key (hex file) instead of a key directory.",
)
@click.option("--collector", "collector_url", help="Also compare with what this collector holds.")
@click.option("--token", default=None, help="Pipeline token for --collector (prefer a file).")
@click.option("--token-file", type=_FILE, default=None, help="Read the pipeline token here.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result.")
def verify_log_cmd(
    file: Path,
    gate_key: Path | None,
    public_key: Path | None,
    collector_url: str | None,
    token: str | None,
    token_file: Path | None,
    as_json: bool,
) -> None:
    """Check an audit log: chain, signatures, its signed head file and (with --collector) the
    decisions recorded upstream; exit 0 intact, 1 broken (naming the first broken line)."""
    from edgeprof.collector.signed_decision import key_id
    from edgeprof.gate.keys import public_key_of, read_public_key

    public = read_public_key(public_key) if public_key is not None else public_key_of(gate_key)
    anchors = None
    if collector_url is not None:
        anchors = _anchors(collector_url, token, token_file, key_id(public))
    result: LogCheck = verify_log(file, public, anchors)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": result.ok,
                    "entries": result.entries,
                    "head": result.head,
                    "log_id": result.log_id,
                    "bad_line": result.bad_line,
                    "reason": result.reason,
                    "notes": list(result.notes),
                    "collector_anchors": None if anchors is None else len(anchors),
                }
            )
        )
    else:
        click.echo(f"{file}: {result.message()}")
        if anchors is not None and result.ok:
            click.echo(f"collector: {len(anchors)} recorded decision(s) match the log")
    sys.exit(exit_codes.OK if result.ok else exit_codes.FAILED)
