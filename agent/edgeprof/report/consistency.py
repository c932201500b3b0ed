"""Does a report's latency summary agree with its own per-inference latencies?

The gate judges ``summary.latency`` (p95, p99, …) while drift tests read
``per_inference.latency_s``; a report whose summary contradicts its arrays (every inference
0.5 s, p95 10 µs) would pass one and not the other. Both come from the same run, so the summary
is recomputed here from ``latency_s`` exactly as the agent computes it (count, min, max, mean,
and p50/p90/p95/p99 with numpy's default linear percentile, :func:`edgeprof.measure.stats
.percentile_ci`'s estimate) and a mismatch beyond floating-point tolerance is refused. The
bootstrap confidence intervals are not recomputed (they are random resamples, and no gate
decision reads them).

Tolerance: ``|summary - recomputed| <= REL_TOL * max(|summary|, |recomputed|) + ABS_TOL``,
generous for the few ulps another numpy build may differ by, far below any real difference.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np

from edgeprof.errors import InputError

REL_TOL: Final = 1e-9
ABS_TOL: Final = 1e-15  # seconds: a femtosecond, for values that should be 0
PERCENTILES: Final = (50, 90, 95, 99)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= REL_TOL * max(abs(a), abs(b)) + ABS_TOL


def recomputed(latency_s: Any) -> dict[str, float]:
    """``summary.latency``'s checked fields from the per-inference latencies (zeros if none).

    One sort, then numpy's linear percentile by hand (``(n - 1) * q / 100`` between two order
    statistics): the same values as ``np.percentile`` to an ulp, in a tenth of its time.
    """
    lat = np.asarray(latency_s, dtype=np.float64)
    names = ("mean_s", "min_s", "max_s", *(f"p{p}_s" for p in PERCENTILES))
    if not lat.size:
        return dict.fromkeys(names, 0.0)
    ordered = np.sort(lat).tolist()
    n = len(ordered)
    out = {"mean_s": float(lat.mean()), "min_s": ordered[0], "max_s": ordered[-1]}
    for p in PERCENTILES:
        h = (n - 1) * p / 100.0
        k = min(math.floor(h), n - 1)
        low = ordered[k]
        out[f"p{p}_s"] = low + (h - k) * (ordered[k + 1] - low) if k + 1 < n else low
    return out


def check_summary(report: dict[str, Any], origin: str = "report") -> None:
    """InputError naming the first summary figure its own arrays contradict.

    ``report`` is a validated report (numpy arrays), so ``summary.count`` already equals the
    number of latencies (the model checks that).
    """
    summary = report["summary"]
    stated = summary["latency"]
    for name, value in recomputed(report["per_inference"]["latency_s"]).items():
        given = stated.get(name)
        if not isinstance(given, (int, float)) or not math.isfinite(given):
            raise InputError(f"{origin}: summary.latency.{name} is missing or not a number")
        if not _close(float(given), value):
            raise InputError(
                f"{origin}: summary.latency.{name} is {given:.6g} s but "
                f"per_inference.latency_s gives {value:.6g} s: the summary contradicts the "
                "measurements"
            )
    host = summary.get("host_round_trip")
    rtt = report["per_inference"].get("host_round_trip_s")
    if isinstance(host, dict) and "p50_s" in host and rtt is not None and len(rtt):
        value = float(np.percentile(np.asarray(rtt, dtype=np.float64), 50))
        if not _close(float(host["p50_s"]), value):
            raise InputError(
                f"{origin}: summary.host_round_trip.p50_s is {host['p50_s']:.6g} s but "
                f"per_inference.host_round_trip_s gives {value:.6g} s"
            )
