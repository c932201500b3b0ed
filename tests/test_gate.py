"""edgeprof.gate.evaluate and edgeprof.gate.policy: hand-made reports with known right answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from edgeprof.errors import InputError
from edgeprof.gate.evaluate import evaluate, lookup
from edgeprof.gate.policy import KNOWN_METRICS, load_policy, parse_policy

ReportFactory = Callable[..., dict[str, Any]]  # the make_report fixture (tests/conftest.py)


def verdicts(decision: Any) -> dict[str, str]:
    return {r.rule_id: r.verdict for r in decision.results}


def test_default_policy_carries_the_seed_thresholds() -> None:
    p = load_policy()
    by_id = {r.id: r for r in p.rules}
    assert by_id["latency-p95"].max == 0.100
    assert by_id["latency-p99"].max == 0.200
    assert by_id["acceptance-latency-p95"].max == 2.0
    assert by_id["memory-peak"].max == 400e6
    assert by_id["memory-peak"].warn == pytest.approx(340e6)
    assert by_id["power-mean"].max == 0.050
    assert by_id["efficiency-tokens-per-mw"].min == 2.0
    assert by_id["efficiency-tokens-per-mw"].optional
    assert (by_id["accuracy-monitoring"].min, by_id["accuracy-monitoring"].warn) == (0.85, 0.90)
    assert by_id["accuracy-monitoring"].severity == "critical"
    assert all("§" in r.source for r in p.rules)
    assert (p.drift.alert, p.drift.retrain, p.regression.min_effect) == (0.05, 0.10, 0.03)


def test_near_threshold_both_sides(make_report: ReportFactory, gate_policy: bytes) -> None:
    below = make_report(np.full(20, 0.0999))
    above = make_report(np.full(20, 0.1001))
    d = evaluate([below], parse_policy(gate_policy, "t.toml"))
    assert verdicts(d)["p95"] == "pass"
    assert d.outcome == "pass"
    assert d.exit_code == 0
    r = next(r for r in d.results if r.rule_id == "p95")
    assert r.justification == ("summary.latency.p95_s = 0.0999 s ≤ max 0.1 s (framework §5.1)")
    d = evaluate([above], parse_policy(gate_policy, "t.toml"))
    assert verdicts(d)["p95"] == "fail"
    assert d.outcome == "fail"
    assert d.exit_code == 1
    assert d.severity == "high"


def test_warn_vs_fail_and_highest_severity(make_report: ReportFactory, gate_policy: bytes) -> None:
    warn = make_report(summary={"rss_peak_bytes": 350e6}, quality={"accuracy": 0.89})
    d = evaluate([warn], parse_policy(gate_policy, "t.toml"))
    assert verdicts(d)["mem"] == "warn"
    assert verdicts(d)["acc"] == "warn"
    assert d.outcome == "pass"
    assert d.exit_code == 0
    assert d.severity is None
    ok = make_report(summary={"rss_peak_bytes": 339e6}, quality={"accuracy": 0.91})
    assert verdicts(evaluate([ok], parse_policy(gate_policy, "t.toml")))["mem"] == "pass"
    bad = make_report(summary={"rss_peak_bytes": 401e6}, quality={"accuracy": 0.84})
    d = evaluate([bad], parse_policy(gate_policy, "t.toml"))
    assert verdicts(d)["mem"] == "fail"
    assert verdicts(d)["acc"] == "fail"
    assert d.severity == "critical"  # the highest of medium and critical


def test_missing_metric_fails_closed_unless_optional(
    make_report: ReportFactory, gate_policy: bytes
) -> None:
    d = evaluate([make_report(quality={})], parse_policy(gate_policy, "t.toml"))
    assert verdicts(d)["acc"] == "not-evaluated"
    assert verdicts(d)["tok"] == "not-evaluated"
    assert d.outcome == "incomplete"
    assert d.exit_code == 2
    d = evaluate(
        [make_report()], parse_policy(gate_policy, "t.toml")
    )  # only the optional tokens rule lacks a value
    assert d.outcome == "pass"
    d = evaluate([make_report(summary={"tokens_per_mw": 1.9})], parse_policy(gate_policy, "t.toml"))
    assert verdicts(d)["tok"] == "fail"


def test_board_and_family_scoping(make_report: ReportFactory, gate_policy: bytes) -> None:
    text = (
        gate_policy
        + b"""
[[rule]]
id = "pi-only"
metric = "summary.latency.p50_s"
max = 0.0005
families = ["raspberry-pi"]

[[rule]]
id = "nano-only"
metric = "summary.latency.p50_s"
max = 0.0005
boards = ["jetson-nano"]
"""
    )
    p = parse_policy(text, "s.toml")
    pi = evaluate([make_report(board="raspberry-pi-5")], p)
    assert verdicts(pi)["pi-only"] == "fail"
    assert "nano-only" not in verdicts(pi)
    nano = evaluate([make_report(board="jetson-nano")], p)
    assert verdicts(nano)["nano-only"] == "fail"
    assert "pi-only" not in verdicts(nano)
    x86 = evaluate([make_report()], p)
    assert "pi-only" not in verdicts(x86)
    assert x86.outcome == "pass"


def test_lookup_handles_dotted_rail_names(make_report: ReportFactory) -> None:
    r = make_report()
    assert lookup(r, "summary.rails.VDD_IN.power_mean_w") == 2.5
    assert lookup(r, "summary.nothing") is None
    assert "summary.rails.*.power_mean_w" in KNOWN_METRICS


def _lat(seed: int, n: int, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 0.010 * scale * rng.lognormal(0.0, 0.15, n)


def test_noisy_but_equal_passes(make_report: ReportFactory, gate_policy: bytes) -> None:
    base = make_report(_lat(1, 2000))
    for seed in range(2, 7):
        d = evaluate(
            [make_report(_lat(seed, 2000))], parse_policy(gate_policy, "t.toml"), baseline=base
        )
        assert verdicts(d)["regression:latency_s"] == "pass", d.justification


def test_real_five_percent_shift_fails(make_report: ReportFactory, gate_policy: bytes) -> None:
    base = make_report(_lat(1, 2000))
    d = evaluate(
        [make_report(_lat(2, 2000, 1.05))], parse_policy(gate_policy, "t.toml"), baseline=base
    )
    r = next(r for r in d.results if r.kind == "regression")
    assert r.verdict == "fail", r.justification
    assert r.value == pytest.approx(0.05, abs=0.015)
    assert d.outcome == "fail"
    assert d.severity == "high"


def test_significant_but_tiny_shift_passes(make_report: ReportFactory, gate_policy: bytes) -> None:
    base = make_report(_lat(1, 20000))
    d = evaluate(
        [make_report(_lat(2, 20000, 1.02))], parse_policy(gate_policy, "t.toml"), baseline=base
    )
    r = next(r for r in d.results if r.kind == "regression")
    assert r.details["p"] < 0.01
    assert r.verdict == "pass"
    assert "below the practical limit" in r.justification


def _normal(mu: float, seed: int, n: int = 5000) -> np.ndarray:
    """Latency-like samples: 10 ms + 1 ms x N(mu, 1)."""
    return 0.010 + 0.001 * np.random.default_rng(seed).normal(mu, 1.0, n)


def test_drift_window_crosses_alert_and_retrain(
    make_report: ReportFactory, gate_policy: bytes
) -> None:
    ids = [f"01900000-0000-7000-8000-00000000000{i}" for i in (2, 3)]
    window = [make_report(_normal(0.0, i), report_id=rid) for i, rid in enumerate(ids)]
    for mu, expected in ((0.1, "pass"), (0.3, "warn"), (0.45, "fail")):
        d = evaluate(
            [make_report(_normal(mu, 7))], parse_policy(gate_policy, "t.toml"), window=window
        )
        r = next(r for r in d.results if r.kind == "drift")
        assert r.verdict == expected, (mu, r.justification)
        assert "KS D" in r.justification
        assert "chi-square" in r.justification
    assert d.severity == "medium"


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        (b'schema_version = 1\n[[rule]]\nmetric = "summary.latency.p95_s"\nmax = [\n', 4, "TOML"),
        (b'schema_version = 1\n\n[[rule]]\nmetric = "summary.latncy.p95_s"\nmax = 1\n', 4,
         "unknown metric"),
        (b'schema_version = 1\n[[rule]]\nmetric = "quality.accuracy"\nmin = 1\n'
         b'[[rule]]\nmetric = "quality.accuracy"\nmin = 1\nseverity = "urgent"\n', 8, "severity"),
        (b'schema_version = 2\n', 1, "schema_version"),
        (b'schema_version = 1\n[[rule]]\nmetric = "summary.rss_peak_bytes"\nmax = 1\n'
         b'warn_at = 1.5\n', 5, "warn_at"),
        (b'schema_version = 1\n[drift]\nalert = 0.2\nretrain = 0.1\n', 3, "alert"),
        (b'schema_version = 1\n[regression]\nmetrics = ["summary.x"]\n', 3, "per_inference"),
        (b'schema_version = 1\n[[rule]]\nmetric = "quality.accuracy"\nmin = 1\nbogus = 2\n', 5,
         "unknown key 'rule[0].bogus'"),
    ],
)  # fmt: skip
def test_malformed_policy_names_file_and_line(text: bytes, line: int, needle: str) -> None:
    with pytest.raises(InputError) as exc:
        parse_policy(text, "bad.toml")
    assert str(exc.value).startswith(f"bad.toml:{line}: "), str(exc.value)
    assert needle in str(exc.value)
