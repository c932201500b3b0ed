"""quantization_test metrics: known values, edge cases and the errors that name the mismatch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeprof.errors import InputError
from edgeprof.measure.quality import (
    accuracy,
    compression_ratio,
    dequantize,
    mean_abs_error,
    snr_db,
    top1_agreement,
)


def test_dequantize() -> None:
    q = np.array([-128, -3, 0, 127], dtype=np.int8)
    out = dequantize(q, 0.5, -3)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [-62.5, 0.0, 1.5, 65.0])
    # no int8 overflow on the subtraction
    assert dequantize(np.array([127], dtype=np.int8), 1.0, -128)[0] == 255.0


@pytest.mark.parametrize("scale", [0.0, -1.0, math.nan, math.inf])
def test_dequantize_needs_a_real_scale(scale: float) -> None:
    with pytest.raises(InputError, match="scale"):
        dequantize(np.zeros(3, dtype=np.int8), scale, 0)


def test_top1_agreement() -> None:
    a = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    b = np.array([[0.2, 0.8], [0.1, 0.9], [0.4, 0.6], [0.9, 0.1]])
    assert top1_agreement(a, b) == 0.75
    assert top1_agreement(a, a) == 1.0


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        (
            np.zeros((4, 3)),
            np.zeros((4, 2)),
            r"reference outputs have shape \[4, 3\] but test outputs \[4, 2\]",
        ),
        (np.zeros(4), np.zeros(4), r"\[examples, classes\]"),
        (np.zeros((0, 3)), np.zeros((0, 3)), "empty"),
        (np.array([["a"]]), np.zeros((1, 1)), "numeric"),
    ],
)
def test_top1_agreement_refuses_mismatches(a: np.ndarray, b: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        top1_agreement(a, b)


def test_mean_abs_error() -> None:
    assert mean_abs_error([[1.0, 2.0]], [[1.5, 1.0]]) == pytest.approx(0.75)
    assert mean_abs_error(np.array([1, 2], dtype=np.int8), np.array([3, -2], dtype=np.int8)) == 3


def test_snr() -> None:
    ref = np.array([[3.0, 4.0]])
    assert snr_db(ref, ref * 1.1) == pytest.approx(20.0)  # noise is a tenth of the signal
    assert snr_db(ref, ref) == math.inf
    assert snr_db(np.zeros((2, 2)), np.zeros((2, 2))) == math.inf
    assert snr_db(np.zeros((2, 2)), np.ones((2, 2))) == -math.inf


@pytest.mark.parametrize("f", [mean_abs_error, snr_db])
def test_pairwise_metrics_refuse_mismatched_shapes(f: object) -> None:
    with pytest.raises(
        InputError, match=r"reference outputs have shape \[2, 3\] but test outputs \[3, 2\]"
    ):
        f(np.zeros((2, 3)), np.zeros((3, 2)))  # type: ignore[operator]
    with pytest.raises(InputError, match="empty"):
        f(np.zeros((0, 3)), np.zeros((0, 3)))  # type: ignore[operator]


def test_accuracy_with_indices_columns_floats_and_one_hot() -> None:
    out = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.0, 0.2, 0.7], [0.3, 0.3, 0.4]])
    labels = np.array([1, 0, 2, 0])
    assert accuracy(out, labels) == 0.75
    assert accuracy(out, labels[:, None]) == 0.75
    assert accuracy(out, labels.astype(np.float32)) == 0.75
    assert accuracy(out, np.eye(3)[labels]) == 0.75
    assert accuracy(out, labels.astype(np.uint8)) == 0.75


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.array([0, 1, 2]), "3 labels for 4 examples"),
        (np.array([0, 1, 3, 0]), r"1 labels are outside the 3 classes \[0, 2\] \(e.g. 3\)"),
        (np.array([0, -1, 2, 0]), "outside the 3 classes"),
        (np.array([0.0, 1.5, 2.0, 0.0]), "whole class indices"),
        (np.array([0.0, np.nan, 2.0, 0.0]), "whole class indices"),
        (np.zeros((4, 2, 1)), r"class indices \[4\] or one-hot \[4, 3\]"),
        (np.array(["a", "b", "c", "d"]), "numeric"),
    ],
)
def test_accuracy_refuses_bad_labels(labels: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        accuracy(np.ones((4, 3)), labels)


def test_compression_ratio() -> None:
    assert compression_ratio(4000, 1000) == 4.0
    with pytest.raises(InputError, match="positive"):
        compression_ratio(4000, 0)
