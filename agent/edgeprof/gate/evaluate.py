"""Evaluate reports against a policy: per-rule verdicts with reasons, and one decision.

Why every result carries a sentence: the framework's audit trail (section 8.2) wants every
decision with its justification, and an auditor reads sentences, not booleans. Why "not
evaluated" fails closed: a report that lacks the evidence a rule needs has not shown that it
meets the rule (only ``optional`` rules may be skipped).

Exit codes (:attr:`Decision.exit_code`): 0 pass (warnings allowed), 1 fail (a rule failed),
2 could not evaluate (a required rule had no value to judge, and nothing failed outright).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from edgeprof.errors import InputError
from edgeprof.exit_codes import for_gate
from edgeprof.gate.capability import unmeasurable
from edgeprof.gate.comparable import comparability
from edgeprof.gate.drift import drift, drift_categorical, mann_whitney_u
from edgeprof.gate.policy import SEVERITIES, Policy, Rule, metric_unit

PASS, WARN, FAIL, NOT_EVALUATED = "pass", "warn", "fail", "not-evaluated"

_UNIT_TEXT = {"s": "s", "bytes": "B", "w": "W", "j": "J", "per_s": "/s", "hz": "Hz"}


@dataclass(frozen=True)
class RuleResult:
    """One rule (or regression/drift check) applied to one report."""

    rule_id: str
    kind: str  # "threshold", "regression", "drift"
    metric: str
    report_id: str
    board_id: str
    value: float | None
    threshold: float | None
    warn_threshold: float | None
    verdict: str
    severity: str
    justification: str
    details: dict[str, Any] = field(default_factory=dict)
    optional: bool = False  # not evaluated but not blocking: optional, or no sensor for it


@dataclass(frozen=True)
class Decision:
    """The outcome of a gate run: ``pass``, ``fail`` or ``incomplete``, and why."""

    outcome: str
    severity: str | None  # the highest severity among failed (or unevaluated) rules
    results: tuple[RuleResult, ...]
    policy_name: str
    policy_sha256: str
    # what differs between the reports and the baseline (board, runner, …; see gate.comparable)
    comparability: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return for_gate(self.outcome)

    @property
    def justification(self) -> str:
        """One paragraph: the decision, then every failing, unevaluated and warning result."""
        counts = {v: sum(r.verdict == v for r in self.results) for v in (PASS, WARN, FAIL)}
        missing = sum(r.verdict == NOT_EVALUATED and not r.optional for r in self.results)
        head = (
            f"{self.outcome.upper()}"
            + (f" (severity {self.severity})" if self.severity else "")
            + f": {counts[FAIL]} failed, {missing} not evaluated, {counts[WARN]} warnings, "
            f"{counts[PASS]} passed under policy {self.policy_name!r} "
            f"(sha256 {self.policy_sha256[:16]})."
        )
        notable = [r for r in self.results if r.verdict != PASS and not r.optional]
        compared = (
            [f"Compared with a baseline that differs in {'; '.join(self.comparability)}."]
            if self.comparability
            else []
        )
        return " ".join([head, *(f"[{r.verdict}] {r.justification}." for r in notable), *compared])

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "severity": self.severity,
            "policy": {"name": self.policy_name, "sha256": self.policy_sha256},
            "justification": self.justification,
            "comparability": list(self.comparability),
            "results": [_clean(asdict(r)) for r in self.results],
        }


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN/inf to None, numpy scalars to Python."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def lookup(report: dict[str, Any], path: str) -> float | None:
    """The number at a dotted path, None when absent, null or not a finite number.

    Keys may contain dots (rail names): at each level the longest matching key wins.
    """
    obj: Any = report
    parts = path.split(".")
    i = 0
    while i < len(parts):
        if not isinstance(obj, dict):
            return None
        for j in range(len(parts), i, -1):
            key = ".".join(parts[i:j])
            if key in obj:
                obj, i = obj[key], j
                break
        else:
            return None
    if isinstance(obj, bool) or not isinstance(obj, (int, float, np.number)):
        return None
    value = float(obj)
    return value if math.isfinite(value) else None


def _fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "-"
    unit = metric_unit(metric) or ""
    suffix = _UNIT_TEXT.get(unit, unit)
    text = f"{value:.4g}" if abs(value) < 1e5 else f"{value:.6g}"
    return f"{text} {suffix}".rstrip()


def _family(board_id: str) -> str | None:
    from edgeprof.device.board_registry import load_boards

    board = load_boards().get(board_id)
    return board.family if board is not None else None


def _cite(rule_source: str) -> str:
    return f" ({rule_source})" if rule_source else ""


def check_rule(rule: Rule, report: dict[str, Any]) -> RuleResult:
    """Apply one threshold rule to one report."""
    value = lookup(report, rule.metric)
    rid, board = str(report.get("report_id", "?")), str(report["device"]["board_id"])
    limit = rule.max if rule.max is not None else rule.min

    def result(verdict: str, text: str, threshold: float | None) -> RuleResult:
        return RuleResult(
            rule.id,
            "threshold",
            rule.metric,
            rid,
            board,
            value,
            threshold,
            rule.warn,
            verdict,
            rule.severity,
            text + _cite(rule.source),
            optional=rule.optional,
        )

    if value is None:
        why_not = unmeasurable(rule.metric, board)
        if why_not is not None:  # no sensor for it: nothing missing, the rule cannot apply
            return replace(result(NOT_EVALUATED, why_not, limit), optional=True)
        if rule.optional:
            return result(
                NOT_EVALUATED, f"{rule.metric} absent from the report; the rule is optional", limit
            )
        return result(
            NOT_EVALUATED,
            f"{rule.metric} absent from report {rid[:13]}…: cannot show it meets the rule",
            limit,
        )
    v = _fmt(value, rule.metric)
    if rule.max is not None and value > rule.max:
        return result(FAIL, f"{rule.metric} = {v} > max {_fmt(rule.max, rule.metric)}", rule.max)
    if rule.min is not None and value < rule.min:
        return result(FAIL, f"{rule.metric} = {v} < min {_fmt(rule.min, rule.metric)}", rule.min)
    parts = []
    if rule.max is not None:
        parts.append(f"≤ max {_fmt(rule.max, rule.metric)}")
    if rule.min is not None:
        parts.append(f"≥ min {_fmt(rule.min, rule.metric)}")
    ok = f"{rule.metric} = {v} " + " and ".join(parts)
    if rule.warn is not None:
        w = _fmt(rule.warn, rule.metric)
        upper = rule.max is not None
        if (upper and value > rule.warn) or (not upper and value < rule.warn):
            side = "above" if upper else "below"
            return result(WARN, f"{ok}, but {side} the warning level {w}", limit)
    return result(PASS, ok, limit)


def check_regression(
    policy: Policy, report: dict[str, Any], baseline: dict[str, Any]
) -> list[RuleResult]:
    """Each regression metric: worse only if significant (one-sided MWU) AND >= min_effect."""
    cfg = policy.regression
    out = []
    rid, board = str(report["report_id"]), str(report["device"]["board_id"])
    for metric in cfg.metrics:
        name = metric.removeprefix("per_inference.")
        cur = report["per_inference"].get(name)
        base = baseline["per_inference"].get(name)
        rule_id = f"regression:{name}"
        if cur is None or base is None or len(cur) == 0 or len(base) == 0:
            which = "report" if cur is None or len(cur) == 0 else "baseline"
            out.append(
                RuleResult(
                    rule_id,
                    "regression",
                    metric,
                    rid,
                    board,
                    None,
                    cfg.min_effect,
                    None,
                    NOT_EVALUATED,
                    cfg.severity,
                    f"{metric} missing from the {which}",
                )
            )
            continue
        med_c, med_b = float(np.median(cur)), float(np.median(base))
        rel = (med_c - med_b) / abs(med_b) if med_b != 0 else (math.inf if med_c > 0 else 0.0)
        test = mann_whitney_u(cur, base, alternative="greater")
        significant = test.p < cfg.alpha
        large = rel > cfg.min_effect
        text = (
            f"{metric} median {med_c:.4g} vs "
            f"baseline {med_b:.4g}: {rel:+.2%} (practical limit +{cfg.min_effect:.0%}), "
            f"Mann-Whitney one-sided p = {test.p:.3g} (alpha {cfg.alpha}), "
            f"n = {len(cur)} vs {len(base)} against baseline {baseline['report_id'][:13]}…"
        )
        verdict = FAIL if significant and large else PASS
        if verdict == PASS:
            why = "not significant" if not significant else "below the practical limit"
            text += f": no regression ({why})" if rel > 0 else ": no regression"
        else:
            text += ": significant regression"
        out.append(
            RuleResult(
                rule_id,
                "regression",
                metric,
                rid,
                board,
                rel,
                cfg.min_effect,
                None,
                verdict,
                cfg.severity,
                text + _cite(cfg.source),
                {
                    "median": med_c,
                    "baseline_median": med_b,
                    "p": test.p,
                    "u": test.u,
                    "z": test.z,
                    "n": len(cur),
                    "n_baseline": len(base),
                    "baseline_id": baseline["report_id"],
                },
            )
        )
    return out


def check_drift(
    policy: Policy, report: dict[str, Any], window: Sequence[dict[str, Any]]
) -> list[RuleResult]:
    """PSI of each drift metric against the pooled window: alert warns, retrain fails."""
    cfg = policy.drift
    out = []
    rid, board = str(report["report_id"]), str(report["device"]["board_id"])
    for metric in cfg.metrics:
        name = metric.removeprefix("per_inference.")
        rule_id = f"drift:{name}"
        ref_parts = [w["per_inference"][name] for w in window if name in w["per_inference"]]
        cur = report["per_inference"].get(name)
        if not ref_parts or cur is None or len(cur) == 0:
            out.append(
                RuleResult(
                    rule_id,
                    "drift",
                    metric,
                    rid,
                    board,
                    None,
                    cfg.retrain,
                    cfg.alert,
                    NOT_EVALUATED,
                    cfg.severity,
                    f"{metric} missing from the report or window",
                )
            )
            continue
        categorical = all(np.asarray(p).dtype.kind in "iub" for p in [*ref_parts, cur])
        if categorical:  # class indices: one bin per category, not quantile bins
            d = drift_categorical(np.concatenate([np.asarray(p) for p in ref_parts]), cur)
        else:
            ref = np.concatenate([np.asarray(p, np.float64) for p in ref_parts])
            d = drift(ref, cur, cfg.bins)
        ks = "per category, no KS" if categorical else f"KS D = {d.ks_d:.4f} p = {d.ks_p:.3g}"
        text = (
            f"{metric} PSI = {d.psi:.4f} against a window of {len(ref_parts)} runs "
            f"(alert {cfg.alert}, retraining trigger {cfg.retrain}); {ks}; "
            f"chi-square = {d.chi2:.4g} (dof {d.chi2_dof}) p = {d.chi2_p:.3g}"
        )
        if d.psi >= cfg.retrain:
            verdict, text = FAIL, text + ": drift at the retraining trigger"
        elif d.psi >= cfg.alert:
            verdict, text = WARN, text + ": drift alert"
        else:
            verdict = PASS
        out.append(
            RuleResult(
                rule_id,
                "drift",
                metric,
                rid,
                board,
                d.psi,
                cfg.retrain,
                cfg.alert,
                verdict,
                cfg.severity,
                text + _cite(cfg.source),
                _clean(asdict(d)),
            )
        )
    return out


def evaluate(
    reports: Sequence[dict[str, Any]],
    policy: Policy,
    baseline: dict[str, Any] | None = None,
    window: Sequence[dict[str, Any]] | None = None,
    allow_other_model_baseline: bool = False,
) -> Decision:
    """Apply every in-scope rule to every report, plus regression and drift when given.

    A baseline of another model is refused (InputError) unless ``allow_other_model_baseline``;
    any other difference in set-up is named in :attr:`Decision.comparability`.
    """
    if not reports:
        raise InputError("gate: no reports to evaluate")
    notes: tuple[str, ...] = ()
    if baseline is not None:
        notes = comparability(list(reports), baseline, allow_other_model_baseline)
    results: list[RuleResult] = []
    for report in reports:
        board = str(report["device"]["board_id"])
        family = _family(board)
        results.extend(check_rule(r, report) for r in policy.rules if r.applies_to(board, family))
        if baseline is not None:
            results.extend(check_regression(policy, report, baseline))
        if window:
            results.extend(check_drift(policy, report, window))
    failed = [r for r in results if r.verdict == FAIL]
    missing = [r for r in results if r.verdict == NOT_EVALUATED and not r.optional]
    if failed:
        outcome, bad = "fail", failed
    elif missing:
        outcome, bad = "incomplete", missing
    elif not results:
        outcome, bad = "incomplete", []  # nothing applied: nothing was shown
    else:
        outcome, bad = "pass", []
    severity = max((r.severity for r in bad), key=SEVERITIES.index, default=None)
    return Decision(outcome, severity, tuple(results), policy.name, policy.sha256, notes)
