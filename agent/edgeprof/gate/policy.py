"""Gate policies: which report metrics must stay within which limits, read from TOML.

Why TOML, checked as msgspec Structs by :mod:`edgeprof.validation`: policies are written by people
and reviewed like code, so every mistake must name the file, the line and the field (``tomllib``
gives positions only for syntax errors; the shared helper finds the line of any field). A rule
naming a metric that no report can carry is an error, not a rule that silently never fires: a
gate that checks nothing must not look like a gate that passed.

Format (``docs/policy.md`` has every key)::

    schema_version = 1
    name = "default"

    [[rule]]
    id = "latency-p95"
    metric = "summary.latency.p95_s"
    max = 0.100
    warn_at = 0.85            # or warn = 0.085 (explicit warning threshold)
    severity = "high"         # critical | high | medium | low (framework section 6.1)
    optional = false          # a missing metric fails closed unless optional
    boards = ["raspberry-pi-5"]
    families = ["jetson"]
    source = "framework §5.1"

    [regression]              # against a baseline report
    metrics = ["per_inference.latency_s"]
    min_effect = 0.03
    alpha = 0.01
    severity = "high"

    [drift]                   # over a window of earlier runs
    metrics = ["per_inference.latency_s"]
    alert = 0.05
    retrain = 0.10
    bins = 10
    severity = "medium"
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from edgeprof.errors import InputError
from edgeprof.report.schema import FIELDS
from edgeprof.validation import FINITE_MAX, Finite, convert, decode_toml, invalid, line_of

SCHEMA_VERSION = 1
SEVERITIES = ("low", "medium", "high", "critical")  # ascending; framework section 6.1
DEFAULT_POLICY = Path(__file__).resolve().parent / "policies" / "default.toml"

# Quality-block keys (edgeprof.measure.profile writes them; the schema leaves quality open) and
# summary metrics that LLM runners will add (tokens): known so rules may name them, optional in
# reports.
_QUALITY_KEYS = (
    "accuracy",
    "accuracy_retention",
    "reference_accuracy",
    "compression_ratio",
    "top1_agreement",
    "mean_abs_error",
    "snr_db",
)
_EXTRA_SUMMARY = {
    "summary.tokens_per_s": "per_s",
    "summary.tokens_per_mw": "tokens/mW",
    "summary.energy_per_token_j": "j",
}

Severity = Literal["low", "medium", "high", "critical"]
_Number = Finite
_NonNegative = Annotated[float, msgspec.Meta(ge=0, le=FINITE_MAX)]


def _known_metrics() -> dict[str, str]:
    """Every metric a rule may name -> its unit; ``*`` in a pattern matches one key."""
    known = {
        f.path: f.unit
        for f in FIELDS
        if f.path.startswith("summary.") and f.type.rstrip("?") in ("number", "int")
    }
    known.update(_EXTRA_SUMMARY)
    known.update({f"quality.{k}": "" for k in _QUALITY_KEYS})
    return known


KNOWN_METRICS = _known_metrics()


def metric_unit(metric: str) -> str | None:
    """The unit of a known metric (``""`` when unitless), None for an unknown one."""
    if metric in KNOWN_METRICS:
        return KNOWN_METRICS[metric]
    parts = metric.split(".")
    for pattern, unit in KNOWN_METRICS.items():
        p = pattern.split(".")
        if len(p) == len(parts) and all(a in ("*", b) for a, b in zip(p, parts, strict=True)):
            return unit
    return None


class _Table(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A table of a policy file: immutable, and no key the format does not name."""


def _check_per_inference(section: str, metrics: tuple[str, ...]) -> None:
    for m in metrics:
        if not m.startswith("per_inference."):
            raise invalid("metrics", f"{m!r}: {section} compares per_inference.* arrays")


class RuleSpec(_Table, frozen=True):
    """One ``[[rule]]`` as written; :class:`Rule` is what the gate applies."""

    metric: str
    id: Annotated[str, msgspec.Meta(min_length=1)] | None = None  # default: the metric
    max: _Number | None = None
    min: _Number | None = None
    warn_at: Annotated[float, msgspec.Meta(gt=0, le=1)] | None = None  # a fraction of the limit
    warn: _Number | None = None  # an explicit warning threshold
    severity: Severity = "high"
    optional: bool = False
    boards: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    source: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        rid = self.id or self.metric
        hi, lo = self.max, self.min
        if metric_unit(self.metric) is None:
            raise invalid(
                "metric", f"unknown metric {self.metric!r}: not a summary or quality field"
            )
        if hi is None and lo is None:
            raise invalid("metric", f"rule {rid!r} has neither max nor min")
        if hi is not None and lo is not None and lo > hi:
            raise invalid("min", f"rule {rid!r}: min {lo} exceeds max {hi}")
        if self.warn is not None and self.warn_at is not None:
            raise invalid("warn_at", "give warn or warn_at, not both")
        if self.warn_at is not None and hi is not None and lo is not None:
            raise invalid("warn_at", "warn_at needs a rule with only max or min")
        warn = self.warning
        if warn is not None:
            if hi is not None and warn > hi:
                raise invalid("warn", f"warning threshold {warn} above max {hi}")
            if lo is not None and hi is None and warn < lo:
                raise invalid("warn", f"warning threshold {warn} below min {lo}")

    @property
    def warning(self) -> float | None:
        """The warning threshold, ``warn`` or resolved from ``warn_at``."""
        if self.warn_at is None:
            return self.warn
        if self.max is not None:
            return self.max * self.warn_at
        return (self.min or 0.0) / self.warn_at


@dataclass(frozen=True)
class Rule:
    """One limit on one metric, with the severity a breach carries and where it comes from."""

    id: str
    metric: str
    max: float | None = None
    min: float | None = None
    warn: float | None = None  # the warning threshold, already resolved from warn_at
    severity: str = "high"
    optional: bool = False
    boards: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    source: str = ""
    line: int = 0

    def applies_to(self, board_id: str, family: str | None) -> bool:
        """Unscoped rules apply everywhere; scoped ones to a listed board or family."""
        if not self.boards and not self.families:
            return True
        return board_id in self.boards or (family is not None and family in self.families)


class RegressionConfig(_Table, frozen=True):
    """Comparison with a baseline: significant (alpha) AND practically large (min_effect)."""

    metrics: tuple[str, ...] = ("per_inference.latency_s",)
    min_effect: _NonNegative = 0.03
    alpha: _NonNegative = 0.01
    severity: Severity = "high"
    source: str = ""

    def __post_init__(self) -> None:
        _check_per_inference("regression", self.metrics)


class DriftConfig(_Table, frozen=True):
    """Drift over a window of runs: PSI at ``alert`` warns, at ``retrain`` fails."""

    metrics: tuple[str, ...] = ("per_inference.latency_s",)
    alert: _NonNegative = 0.05
    retrain: _NonNegative = 0.10
    bins: Annotated[int, msgspec.Meta(ge=2, le=100)] = 10
    severity: Severity = "medium"
    source: str = ""

    def __post_init__(self) -> None:
        _check_per_inference("drift", self.metrics)
        if self.alert > self.retrain:
            raise invalid("alert", "drift.alert must not exceed drift.retrain")


class PolicyFile(_Table, frozen=True):
    """A policy file as written."""

    schema_version: Literal[1]
    name: str = "unnamed"
    description: str = ""
    rule: tuple[RuleSpec, ...] = ()
    regression: RegressionConfig = RegressionConfig()
    drift: DriftConfig = DriftConfig()

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for i, r in enumerate(self.rule):
            rid = r.id or r.metric
            if rid in seen:
                raise invalid(f"rule[{i}].id", f"duplicate rule id {rid!r}")
            seen.add(rid)


@dataclass(frozen=True)
class Policy:
    """A parsed policy and the sha256 of its bytes (the audit log records which one gated)."""

    name: str
    rules: tuple[Rule, ...]
    regression: RegressionConfig = field(default_factory=RegressionConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    sha256: str = ""
    origin: str = ""


def load_policy(path: str | os.PathLike[str] | None = None) -> Policy:
    """Read and check a policy file (default: the shipped ``policies/default.toml``)."""
    p = Path(path) if path is not None else DEFAULT_POLICY
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{p}: cannot read the policy: {exc.strerror or exc}") from None
    return parse_policy(data, str(p))


def parse_policy(data: bytes, origin: str = "policy") -> Policy:
    """Parse policy bytes; InputError ``origin:line: problem`` for anything wrong."""
    text, doc = decode_toml(data, origin)
    version = doc.get("schema_version")
    if type(version) is int and version != SCHEMA_VERSION:  # before keys a newer one may add
        raise InputError(
            f"{origin}:{line_of(text, ('schema_version',))}: schema_version must be "
            f"{SCHEMA_VERSION}, got {version}"
        )
    f = convert(doc, PolicyFile, text, origin)
    rules = tuple(
        Rule(
            id=r.id or r.metric,
            metric=r.metric,
            max=r.max,
            min=r.min,
            warn=r.warning,
            severity=r.severity,
            optional=r.optional,
            boards=r.boards,
            families=r.families,
            source=r.source,
            line=line_of(text, ("rule", i)) or 0,
        )
        for i, r in enumerate(f.rule)
    )
    return Policy(f.name, rules, f.regression, f.drift, hashlib.sha256(data).hexdigest(), origin)
