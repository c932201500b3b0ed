"""Summary values from sampled columns: a failed read is NaN in the trace, never in the report
(the report model refuses NaN for a physical amount, so a run whose RSS reads all failed must
still write its report, saying "not measured" with None)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprof.errors import InputError
from edgeprof.measure.memory import lower_median, sampled_peak
from edgeprof.measure.session import _finite_first
from edgeprof.testing.reports import make_report

pytestmark = pytest.mark.unit
NAN = float("nan")


def test_failed_reads_are_skipped_and_none_means_not_measured() -> None:
    column = np.array([NAN, 3.0, NAN, 7.0, 5.0])
    assert _finite_first(column) == 3.0
    assert sampled_peak(column) == 7.0
    assert lower_median(column) == 5.0
    for f in (_finite_first, sampled_peak, lower_median):
        assert f(np.array([NAN, NAN])) is None
        assert f(np.array([])) is None


def test_the_model_takes_none_and_refuses_nan_for_peak_rss() -> None:
    report = make_report()
    report["summary"]["rss_peak_bytes"] = None
    make_report(summary=report["summary"])  # validated by the factory
    report["summary"]["rss_peak_bytes"] = NAN
    with pytest.raises(InputError, match="rss_peak_bytes: negative, infinite or NaN"):
        make_report(summary=report["summary"])
