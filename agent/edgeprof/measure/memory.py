"""Memory figures from sampled RSS: peaks are samples that were taken, never interpolations.

Power is a rate, and interpolating it at a region's edges is how its energy is integrated
(:mod:`edgeprof.measure.energy`). RSS is a level the kernel reports in whole pages: a value
between two samples was never observed, and a "peak" below a sample the same run reported
would be a contradiction. So each region's peak here is the largest sample among those that
bracket it: the last one at or before its start, those inside, the first one at or after its
end. A region shorter than the sample period still gets a value (its two bracketing samples).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = np.ndarray[Any, np.dtype[np.float64]]


def sampled_peak_in_regions(
    t_ns: npt.ArrayLike, values: npt.ArrayLike, begin_ns: npt.ArrayLike, end_ns: npt.ArrayLike
) -> F64:
    """Per region ``[begin, end]``: the largest finite sample from the one at or before
    ``begin`` to the one at or after ``end``. NaN where no sample brackets the region (it lies
    outside the trace) or every bracketing sample failed to read (NaN)."""
    t = np.asarray(t_ns, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    b = np.asarray(begin_ns, dtype=np.int64)
    e = np.asarray(end_ns, dtype=np.int64)
    out = np.full(b.shape, np.nan)
    if t.size == 0 or b.size == 0:
        return out
    lo = np.searchsorted(t, b, side="right") - 1  # last sample at or before begin
    hi = np.searchsorted(t, e, side="left")  # first sample at or after end
    ok = (lo >= 0) & (hi < t.size) & (lo <= hi)
    if not ok.any():
        return out
    # reduceat over [lo, hi + 1) for each region; the odd slots (hi + 1 -> next lo) are junk
    # and dropped. Bounds need not be monotonic: reduceat reduces each pair on its own.
    padded = np.append(np.where(np.isfinite(v), v, -np.inf), -np.inf)
    bounds = np.empty(2 * int(ok.sum()), dtype=np.intp)
    bounds[0::2] = lo[ok]
    bounds[1::2] = hi[ok] + 1
    peaks = np.maximum.reduceat(padded, bounds)[0::2]
    out[ok] = np.where(np.isfinite(peaks), peaks, np.nan)
    return out


def sampled_peak(values: npt.ArrayLike, *also: float | None) -> float | None:
    """The largest finite sample, with any extra readings taken by the same run (a baseline
    read before the sampler started); None when nothing was read."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    found = [float(v.max())] if v.size else []
    found += [float(x) for x in also if x is not None and math.isfinite(x)]
    return max(found) if found else None


def lower_median(values: npt.ArrayLike) -> float | None:
    """The median of the finite values that is one of them (the lower middle one for an even
    count), so a "steady" level is a sample that was taken; None when there are none."""
    v = np.asarray(values, dtype=np.float64)
    v = np.sort(v[np.isfinite(v)])
    return float(v[(v.size - 1) // 2]) if v.size else None
