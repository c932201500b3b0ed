"""A baseline of another model is refused; other set-up differences are named in the decision."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from edgeprof.errors import InputError
from edgeprof.gate.comparable import differences
from edgeprof.gate.evaluate import evaluate
from edgeprof.gate.policy import parse_policy

ReportFactory = Callable[..., dict[str, Any]]  # the make_report fixture (tests/conftest.py)


def _other_model(report: dict[str, Any]) -> dict[str, Any]:
    r = copy.deepcopy(report)
    r["model"]["name"] = "ds_cnn_int8"
    r["model"]["sha256"] = "cd" * 32
    return r


def test_baseline_of_another_model_is_refused(
    make_report: ReportFactory, gate_policy: bytes
) -> None:
    cur = make_report(np.full(20, 0.01))
    base = _other_model(
        make_report(np.full(20, 0.01), report_id="01900000-0000-7000-8000-0000000000b1")
    )
    policy = parse_policy(gate_policy, "t.toml")
    with pytest.raises(InputError) as exc:
        evaluate([cur], policy, baseline=base)
    text = str(exc.value)
    assert "ds_cnn_int8" in text
    assert "--allow-other-model-baseline" in text
    assert "\n" not in text
    d = evaluate([cur], policy, baseline=base, allow_other_model_baseline=True)
    assert d.outcome == "pass"
    assert any(n.startswith("model: ") and "ds_cnn_int8" in n for n in d.comparability)
    assert "differs in model: " in d.justification
    assert d.to_json()["comparability"] == list(d.comparability)


def test_same_set_up_has_no_notes(make_report: ReportFactory, gate_policy: bytes) -> None:
    cur = make_report(np.full(20, 0.01))
    d = evaluate([cur], parse_policy(gate_policy, "t.toml"), baseline=copy.deepcopy(cur))
    assert d.comparability == ()
    assert "baseline that differs" not in d.justification
    assert evaluate([cur], parse_policy(gate_policy, "t.toml")).comparability == ()


def test_each_set_up_difference_is_named(make_report: ReportFactory) -> None:
    cur = make_report(np.full(5, 0.01))
    base = copy.deepcopy(cur)
    cur["runner"].update(runner="tflm", runtime="tflite-micro", threads=None)
    base["runner"].update(threads=4, delegate="xnnpack")
    base["device"]["board_id"] = "raspberry-pi-5"
    base["agent"]["version"] = "0.0.9"
    notes = differences(cur, base)
    labels = [n.split(":", 1)[0] for n in notes]
    assert labels == ["board", "runner", "runtime", "threads", "delegate", "agent version"]
    assert "runner: tflm (baseline tflite)" in notes
    assert "threads: not recorded (baseline 4)" in notes
