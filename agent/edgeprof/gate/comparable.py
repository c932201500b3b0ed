"""Whether a baseline is a fair comparison for a candidate, and what differs between them.

Why: a regression test against a baseline of another model (another sha256) measures the
change of model, not a regression, yet passed without a word; and a run on another runner,
runtime, thread count, delegate, board or agent version compares two set-ups. The first is
refused unless asked for explicitly; the others are named in the decision so that a reader
sees what the numbers compare.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgeprof.errors import InputError

# (what the note calls it, path into the report); runner keys beyond the schema's are optional
_SETUP: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("board", ("device", "board_id")),
    ("runner", ("runner", "runner")),
    ("runtime", ("runner", "runtime")),
    ("runtime version", ("runner", "runtime_version")),
    ("threads", ("runner", "threads")),
    ("delegate", ("runner", "delegate")),
    ("default delegates", ("runner", "default_delegates")),
    ("agent version", ("agent", "version")),
)


def _get(report: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    obj: Any = report
    for key in path:
        if not isinstance(obj, Mapping) or key not in obj:
            return None
        obj = obj[key]
    return obj


def _model(report: Mapping[str, Any]) -> tuple[str, str]:
    m = report.get("model") or {}
    return str(m.get("name", "?")), str(m.get("sha256", ""))


def check_same_model(
    report: Mapping[str, Any], baseline: Mapping[str, Any], allow_other_model: bool
) -> str | None:
    """Raise InputError when the baseline is of another model (sha256) and that was not
    allowed; with ``allow_other_model``, the note that says so (None when the same model)."""
    (name, sha), (bname, bsha) = _model(report), _model(baseline)
    if sha == bsha:
        return None
    what = (
        f"baseline {str(baseline.get('report_id', '?'))[:13]}… is of model {bname} "
        f"(sha256 {bsha[:12]}), report {str(report.get('report_id', '?'))[:13]}… of {name} "
        f"(sha256 {sha[:12]})"
    )
    if not allow_other_model:
        raise InputError(
            f"gate: {what}: a regression against another model measures the change of model "
            "(pass --allow-other-model-baseline to compare them anyway)"
        )
    return f"model: {what} (allowed by --allow-other-model-baseline)"


def differences(report: Mapping[str, Any], baseline: Mapping[str, Any]) -> list[str]:
    """One note per set-up field that differs: ``"runner: tflm (baseline tflite)"``."""
    notes = []
    for label, path in _SETUP:
        mine, theirs = _get(report, path), _get(baseline, path)
        if mine is None and theirs is None:
            continue
        if mine != theirs:
            notes.append(f"{label}: {_show(mine)} (baseline {_show(theirs)})")
    return notes


def _show(value: Any) -> str:
    return "not recorded" if value is None else str(value)


def comparability(
    reports: list[Mapping[str, Any]], baseline: Mapping[str, Any], allow_other_model: bool
) -> tuple[str, ...]:
    """Check each report against the baseline; the notes for the decision, in report order."""
    notes: list[str] = []
    for report in reports:
        model_note = check_same_model(report, baseline, allow_other_model)
        rid = str(report.get("report_id", "?"))[:13]
        found = ([model_note] if model_note else []) + differences(report, baseline)
        prefix = f"report {rid}…: " if len(reports) > 1 else ""
        notes.extend(prefix + n for n in found if prefix + n not in notes)
    return tuple(notes)
