"""Drift on model outputs: the predicted class per inference, compared per category.

A window of runs whose predictions spread over 12 classes against a run that predicts the same
spread (pass) and one that collapsed onto one class (fail at the retraining trigger).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from edgeprof.gate.drift import drift_categorical
from edgeprof.gate.evaluate import FAIL, PASS, check_drift
from edgeprof.gate.policy import load_policy
from edgeprof.testing.sample_reports import minimal_report


def with_outputs(classes: np.ndarray) -> dict[str, Any]:
    n = len(classes)
    r = minimal_report(latency_s=np.full(n, 1e-3))
    r["per_inference"]["output_top1"] = classes.astype(np.int32)
    r["per_inference"]["output_top_score"] = np.full(n, 0.9)
    return r


def test_categorical_drift_counts_categories_not_quantiles() -> None:
    rng = np.random.default_rng(0)
    same = drift_categorical(rng.integers(0, 12, 5000), rng.integers(0, 12, 5000))
    assert same.psi < 0.01
    assert same.chi2_dof == 11
    assert math.isnan(same.ks_d)
    new_class = drift_categorical(np.zeros(1000, int), np.r_[np.zeros(500, int), np.ones(500, int)])
    assert new_class.chi2_dof == 1
    assert new_class.psi > 1  # a class never seen before is a large shift
    with pytest.raises(ValueError, match="both samples"):
        drift_categorical([], [1])


def test_the_default_policy_catches_collapsed_predictions() -> None:
    policy = load_policy(None)
    rng = np.random.default_rng(1)
    window = [with_outputs(rng.integers(0, 12, 1000)) for _ in range(3)]
    steady = with_outputs(rng.integers(0, 12, 1000))
    collapsed = with_outputs(np.where(rng.random(1000) < 0.7, 3, rng.integers(0, 12, 1000)))

    def verdict(report: dict[str, Any]) -> str:
        (result,) = [r for r in check_drift(policy, report, window) if r.metric.endswith("top1")]
        assert "per category" in result.justification
        return result.verdict

    assert verdict(steady) == PASS
    assert verdict(collapsed) == FAIL
