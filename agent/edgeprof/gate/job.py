"""The gate job: read the candidates and their comparison runs, evaluate, record, post back.

``edgeprof gate check`` is this function plus parsing and printing (:mod:`edgeprof.cli.gate`);
a pipeline can call :func:`run_gate` directly with a :class:`GateRequest` and get a
:class:`GateResult` back, with nothing printed and no exit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeprof.errors import InputError
from edgeprof.gate.audit import append
from edgeprof.gate.evaluate import Decision, evaluate
from edgeprof.gate.inputs import CollectorSource, GateInput, load_file
from edgeprof.gate.keys import GateKey, load_gate_key
from edgeprof.gate.policy import load_policy
from edgeprof.report.trust import load_trust

LAST_APPROVED = "last-approved"


@dataclass(frozen=True)
class CollectorQuery:
    """Where (and which) reports come from a collector, and whether the decision goes back."""

    url: str
    token: str | None = None  # else token_file, else $EDGEPROF_TOKEN
    token_file: Path | None = None
    filters: Mapping[str, str] = field(default_factory=dict)  # model, board, device, ...
    tags: tuple[str, ...] = ()
    latest: int = 1
    post: bool = True


@dataclass(frozen=True)
class GateRequest:
    """One gate run: candidates (files and/or a collector), policy, baseline, drift window."""

    reports: tuple[Path, ...] = ()
    policy_file: Path | None = None  # None: the shipped default policy
    baseline: str | None = None  # a report file, or LAST_APPROVED (needs a collector)
    allow_other_model_baseline: bool = False  # else a baseline of another sha256 is refused
    window: tuple[Path, ...] = ()  # earlier runs for drift, as files
    drift_window: int | None = None  # with a collector: the N runs before the candidate
    audit_log: Path | None = None
    gate_key_dir: Path | None = None  # signs audit entries and posted decisions (None: default)
    allow_unsigned: bool = False
    # Trusted Ed25519 public keys for report files: .pub/trust files, directories, keys in hex;
    # empty: the trust store. This device's own key is trusted either way.
    trust: tuple[str | Path, ...] = ()
    collector: CollectorQuery | None = None
    # Filters given without a collector: refused with a reason rather than ignored.
    stray_filters: bool = False


@dataclass(frozen=True)
class GateResult:
    """The decision, what it was made on, and where it was recorded."""

    decision: Decision
    inputs: list[dict[str, Any]]  # as the audit log and the collector record them
    audit: dict[str, Any] | None  # {"path", "log_id", "seq", "sha256", "notes"} of the entry
    collector_decision_id: str | None

    @property
    def exit_code(self) -> int:
        return self.decision.exit_code


def audit_body(
    decision: Decision, inputs: list[dict[str, Any]], policy_origin: str
) -> dict[str, Any]:
    """What the audit log records of one decision (everything but the chain fields)."""
    doc = decision.to_json()
    return {
        "inputs": inputs,
        "policy": {**doc["policy"], "path": policy_origin},
        "decision": {k: doc[k] for k in ("outcome", "exit_code", "severity")},
        "comparability": doc["comparability"],
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


def _source(query: CollectorQuery, key_dir: Path | None) -> CollectorSource:
    from edgeprof.gate.keys import public_key_of
    from edgeprof.uplink.http import resolve_token
    from edgeprof.uplink.pull import CollectorApi

    try:  # a gate that holds its own key also re-checks its own decisions it reads back
        own = public_key_of(key_dir)
    except InputError:
        own = None
    return CollectorSource(
        CollectorApi.make(query.url, resolve_token(query.token, query.token_file)), own
    )


def _is_file(baseline: str | None) -> bool:
    return baseline is not None and baseline != LAST_APPROVED


def run_gate(req: GateRequest) -> GateResult:
    """Evaluate the request's reports; :class:`InputError` when it cannot be evaluated at all."""
    policy = load_policy(req.policy_file)
    query = req.collector
    source = _source(query, req.gate_key_dir) if query is not None else None
    posting = source is not None and query is not None and query.post
    # Loaded before any work: a gate that cannot sign refuses at once, not after evaluating.
    key: GateKey | None = None
    if req.audit_log is not None or posting:
        key = load_gate_key(req.gate_key_dir)
    if query is None and (req.stray_filters or req.drift_window):
        raise InputError("--model/--board/--device/--tag/--drift-window need --collector")
    trusted = load_trust(req.trust) if req.reports or req.window or _is_file(req.baseline) else {}
    current = [load_file(p, req.allow_unsigned, trusted) for p in req.reports]
    if source is not None and query is not None:
        filters = dict(query.filters)
        if filters or query.tags or not current:
            current += source.candidates(filters, list(query.tags), query.latest)
    if not current:
        raise InputError("gate: give report files, or --collector with filters")
    base: GateInput | None = None
    if req.baseline == LAST_APPROVED:
        if source is None:
            raise InputError("--baseline last-approved needs --collector")
        base = source.last_approved(current[-1].report)
    elif req.baseline is not None:
        base = load_file(Path(req.baseline), req.allow_unsigned, trusted)
    past = [load_file(p, req.allow_unsigned, trusted) for p in req.window]
    if req.drift_window is not None and source is not None:
        past += source.window(current[-1].report, req.drift_window)
    decision = evaluate(
        [c.report for c in current],
        policy,
        baseline=base.report if base is not None else None,
        window=[w.report for w in past] or None,
        allow_other_model_baseline=req.allow_other_model_baseline,
    )
    inputs = [c.describe("report") for c in current]
    inputs += [base.describe("baseline")] if base is not None else []
    inputs += [w.describe("window") for w in past]
    body = audit_body(decision, inputs, policy.origin)
    audit = None
    if req.audit_log is not None and key is not None:
        done = append(req.audit_log, body, key)
        audit = {
            "path": os.fspath(req.audit_log),
            "log_id": done.log_id,
            "seq": done.entry["seq"],
            "sha256": done.hash,
            "notes": list(done.notes),
        }
    posted = None
    if posting and source is not None and key is not None:
        record = {**body, "audit": audit}
        posted = source.post_decision(decision, inputs, record, key)
    return GateResult(decision, inputs, audit, posted)
