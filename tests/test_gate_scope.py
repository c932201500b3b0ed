"""The default policy on each board family, and INCOMPLETE only for what a board can measure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from edgeprof.device.board_registry import load_boards
from edgeprof.gate.capability import unmeasurable
from edgeprof.gate.evaluate import evaluate
from edgeprof.gate.policy import load_policy, parse_policy

ReportFactory = Callable[..., dict[str, Any]]  # the make_report fixture (tests/conftest.py)

_POWER_ONLY = b"""
schema_version = 1
name = "power"
[[rule]]
id = "power"
metric = "summary.power_mean_w"
max = 10.0
"""


def _run(make_report: ReportFactory, board: str, **summary: Any) -> dict[str, Any]:
    r = make_report(np.full(20, 0.01), board=board)
    for k, v in summary.items():
        if v is None:
            r["summary"].pop(k, None)
        else:
            r["summary"][k] = v
    r["summary"]["rss_peak_bytes"] = 50_000_000
    return r


@pytest.mark.parametrize(
    ("board", "watts"), [("raspberry-pi-5", 3.2), ("jetson-orin-nano", 5.0), ("jetson-nano", None)]
)
def test_default_policy_can_pass_on_a_pi_and_a_jetson(
    make_report: ReportFactory, board: str, watts: float | None
) -> None:
    d = evaluate([_run(make_report, board, power_mean_w=watts)], load_policy())
    assert d.outcome == "pass", d.justification
    ids = {r.rule_id for r in d.results}
    assert "power-mean" not in ids  # an MCU's budget
    assert "memory-peak" in ids


def test_default_power_budget_still_binds_a_microcontroller(make_report: ReportFactory) -> None:
    d = evaluate([_run(make_report, "stm32f446-nucleo", power_mean_w=0.2)], load_policy())
    assert d.outcome == "fail"
    assert {r.rule_id: r.verdict for r in d.results}["power-mean"] == "fail"
    assert "memory-peak" not in {r.rule_id for r in d.results}


def test_a_sensor_the_board_lacks_is_not_missing(make_report: ReportFactory) -> None:
    d = evaluate([_run(make_report, "stm32f446-nucleo", power_mean_w=None)], load_policy())
    r = {r.rule_id: r for r in d.results}["power-mean"]
    assert r.verdict == "not-evaluated"
    assert r.optional
    assert "[power].rails" in r.justification
    assert d.outcome == "pass", d.justification


def test_a_metric_the_board_can_measure_is_missing(make_report: ReportFactory) -> None:
    policy = parse_policy(_POWER_ONLY, "p.toml")
    jetson = evaluate([_run(make_report, "jetson-orin-nano", power_mean_w=None)], policy)
    assert jetson.outcome == "incomplete"  # the Jetson's file lists rails: power was expected
    pi = evaluate([_run(make_report, "raspberry-pi-5", power_mean_w=None)], policy)
    assert pi.results[0].verdict == "not-evaluated"
    assert pi.outcome == "pass"  # nothing this board can measure was missing
    unknown = evaluate([_run(make_report, "my-own-board", power_mean_w=None)], policy)
    assert unknown.outcome == "incomplete"  # not in the registry: fail closed


def test_capability_reads_the_board_file() -> None:
    assert unmeasurable("summary.power_mean_w", "raspberry-pi-5") is not None
    assert unmeasurable("summary.rails.VDD_IN.power_mean_w", "stm32f446-nucleo") is not None
    assert unmeasurable("summary.power_mean_w", "jetson-orin-nano") is None
    assert unmeasurable("summary.latency.p95_s", "stm32f446-nucleo") is None


def test_default_policy_families_exist() -> None:
    families = {b.family for b in load_boards().values()}
    for rule in load_policy().rules:
        assert set(rule.families) <= families, rule.id
