"""Gate policies: which report metrics must stay within which limits, read from TOML.

Why TOML and a hand-written checker: policies are written by people and reviewed like code, so
every mistake must name the file and the line (``tomllib`` gives positions only for syntax
errors; for a wrong key or value we find the line ourselves). A rule naming a metric that no
report can carry is an error, not a rule that silently never fires: a gate that checks nothing
must not look like a gate that passed.

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
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeprof.errors import InputError
from edgeprof.report.schema import FIELDS

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

_TOP_KEYS = frozenset({"schema_version", "name", "description", "rule", "regression", "drift"})
_RULE_KEYS = frozenset(
    {"id", "metric", "max", "min", "warn_at", "warn", "severity", "optional", "boards",
     "families", "source", "note"}
)  # fmt: skip
_REGRESSION_KEYS = frozenset({"metrics", "min_effect", "alpha", "severity", "source"})
_DRIFT_KEYS = frozenset({"metrics", "alert", "retrain", "bins", "severity", "source"})


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


@dataclass(frozen=True)
class RegressionConfig:
    """Comparison with a baseline: significant (alpha) AND practically large (min_effect)."""

    metrics: tuple[str, ...] = ("per_inference.latency_s",)
    min_effect: float = 0.03
    alpha: float = 0.01
    severity: str = "high"
    source: str = ""


@dataclass(frozen=True)
class DriftConfig:
    """Drift over a window of runs: PSI at ``alert`` warns, at ``retrain`` fails."""

    metrics: tuple[str, ...] = ("per_inference.latency_s",)
    alert: float = 0.05
    retrain: float = 0.10
    bins: int = 10
    severity: str = "medium"
    source: str = ""


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
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{origin}: not UTF-8 text (byte {exc.start})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line = m.group(1) if m else str(max(1, len(text.splitlines())))  # "at end of document"
        msg = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", str(exc))
        where = f"{origin}:{line}"
        raise InputError(f"{where}: malformed TOML: {msg}") from None
    return _Checker(text, origin).policy(doc, hashlib.sha256(data).hexdigest())


class _Checker:
    """Semantic checks; each error names the line of the offending key."""

    def __init__(self, text: str, origin: str) -> None:
        self.lines = text.splitlines()
        self.origin = origin

    def line_of(self, table: str | None, index: int, key: str | None) -> int:
        """Line (1-based) of ``key`` in the index-th ``[table]``/``[[table]]`` (None = top)."""
        header = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-\"]+)\s*\]\]?")
        current: str | None = None
        seen = -1
        start = 0
        for n, raw in enumerate(self.lines, 1):
            m = header.match(raw)
            if m:
                current = m.group(1).strip('"')
                if current == table:
                    seen += 1
                    if seen == index:
                        start = n
                        if key is None:
                            return n
                continue
            in_scope = current == table and (table is None or seen == index)
            if in_scope and key is not None and re.match(rf"^\s*\"?{re.escape(key)}\"?\s*=", raw):
                return n
        return start or 1

    def fail(self, table: str | None, index: int, key: str | None, problem: str) -> InputError:
        return InputError(f"{self.origin}:{self.line_of(table, index, key)}: {problem}")

    def policy(self, doc: dict[str, Any], sha: str) -> Policy:
        for k in doc:
            if k not in _TOP_KEYS:
                raise self.fail(None, 0, k, f"unknown key {k!r} (known: {sorted(_TOP_KEYS)})")
        version = doc.get("schema_version")
        if version != SCHEMA_VERSION:
            raise self.fail(
                None,
                0,
                "schema_version",
                f"schema_version must be {SCHEMA_VERSION}, got {version!r}",
            )
        name = doc.get("name", "unnamed")
        if not isinstance(name, str):
            raise self.fail(None, 0, "name", "name must be a string")
        raw_rules = doc.get("rule", [])
        if not isinstance(raw_rules, list):
            raise self.fail(None, 0, "rule", "rule must be an array of tables ([[rule]])")
        rules = tuple(self.rule(r, i) for i, r in enumerate(raw_rules))
        ids = [r.id for r in rules]
        for i, rid in enumerate(ids):
            if rid in ids[:i]:
                raise self.fail("rule", i, "id", f"duplicate rule id {rid!r}")
        regression = RegressionConfig(**self.section(doc, "regression", _REGRESSION_KEYS))
        drift = DriftConfig(**self.section(doc, "drift", _DRIFT_KEYS))
        if drift.alert > drift.retrain:
            raise self.fail("drift", 0, "alert", "drift.alert must not exceed drift.retrain")
        return Policy(name, rules, regression, drift, sha, self.origin)

    def number(self, t: dict[str, Any], table: str, i: int, key: str) -> float | None:
        v = t.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.fail(table, i, key, f"{key} must be a finite number, got {v!r}")
        return float(v)

    def severity(self, t: dict[str, Any], table: str, i: int, default: str) -> str:
        sev = t.get("severity", default)
        if sev not in SEVERITIES:
            raise self.fail(
                table, i, "severity", f"severity {sev!r} is not one of {', '.join(SEVERITIES)}"
            )
        return str(sev)

    def strings(self, t: dict[str, Any], table: str, i: int, key: str) -> tuple[str, ...]:
        v = t.get(key, [])
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            raise self.fail(table, i, key, f"{key} must be a list of strings")
        return tuple(v)

    def rule(self, t: Any, i: int) -> Rule:
        if not isinstance(t, dict):
            raise self.fail("rule", i, None, "each [[rule]] must be a table")
        for k in t:
            if k not in _RULE_KEYS:
                raise self.fail(
                    "rule", i, k, f"unknown rule key {k!r} (known: {sorted(_RULE_KEYS)})"
                )
        metric = t.get("metric")
        if not isinstance(metric, str):
            raise self.fail("rule", i, "metric" if "metric" in t else None, "rule needs a metric")
        if metric_unit(metric) is None:
            raise self.fail(
                "rule", i, "metric", f"unknown metric {metric!r}: not a summary or quality field"
            )
        rid = t.get("id", metric)
        if not isinstance(rid, str) or not rid:
            raise self.fail("rule", i, "id", "id must be a non-empty string")
        hi, lo = self.number(t, "rule", i, "max"), self.number(t, "rule", i, "min")
        if hi is None and lo is None:
            raise self.fail("rule", i, "metric", f"rule {rid!r} has neither max nor min")
        if hi is not None and lo is not None and lo > hi:
            raise self.fail("rule", i, "min", f"rule {rid!r}: min {lo} exceeds max {hi}")
        warn = self.number(t, "rule", i, "warn")
        warn_at = self.number(t, "rule", i, "warn_at")
        if warn is not None and warn_at is not None:
            raise self.fail("rule", i, "warn_at", "give warn or warn_at, not both")
        if warn_at is not None:
            if not 0 < warn_at <= 1:
                raise self.fail("rule", i, "warn_at", f"warn_at must be in (0, 1], got {warn_at}")
            if hi is not None and lo is not None:
                raise self.fail("rule", i, "warn_at", "warn_at needs a rule with only max or min")
            warn = hi * warn_at if hi is not None else (lo or 0.0) / warn_at
        if warn is not None:
            if hi is not None and warn > hi:
                raise self.fail("rule", i, "warn", f"warning threshold {warn} above max {hi}")
            if lo is not None and hi is None and warn < lo:
                raise self.fail("rule", i, "warn", f"warning threshold {warn} below min {lo}")
        optional = t.get("optional", False)
        if not isinstance(optional, bool):
            raise self.fail("rule", i, "optional", "optional must be true or false")
        source = t.get("source", "")
        if not isinstance(source, str):
            raise self.fail("rule", i, "source", "source must be a string")
        return Rule(
            id=rid,
            metric=metric,
            max=hi,
            min=lo,
            warn=warn,
            severity=self.severity(t, "rule", i, "high"),
            optional=optional,
            boards=self.strings(t, "rule", i, "boards"),
            families=self.strings(t, "rule", i, "families"),
            source=source,
            line=self.line_of("rule", i, None),
        )

    def section(self, doc: dict[str, Any], name: str, keys: frozenset[str]) -> dict[str, Any]:
        t = doc.get(name, {})
        if not isinstance(t, dict):
            raise self.fail(None, 0, name, f"{name} must be a table")
        out: dict[str, Any] = {}
        for k, v in t.items():
            if k not in keys:
                raise self.fail(name, 0, k, f"unknown {name} key {k!r} (known: {sorted(keys)})")
            if k == "metrics":
                metrics = self.strings(t, name, 0, k)
                for m in metrics:
                    if not m.startswith("per_inference."):
                        raise self.fail(
                            name, 0, k, f"{m!r}: {name} compares per_inference.* arrays"
                        )
                out[k] = metrics
            elif k == "severity":
                out[k] = self.severity(t, name, 0, "high")
            elif k == "source":
                if not isinstance(v, str):
                    raise self.fail(name, 0, k, "source must be a string")
                out[k] = v
            elif k == "bins":
                if not isinstance(v, int) or isinstance(v, bool) or not 2 <= v <= 100:
                    raise self.fail(name, 0, k, "bins must be an integer in 2..100")
                out[k] = v
            else:
                num = self.number(t, name, 0, k)
                if num is None or num < 0:
                    raise self.fail(name, 0, k, f"{name}.{k} must be a number >= 0")
                out[k] = num
        return out
