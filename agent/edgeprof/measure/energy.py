"""Energy, mean power and peaks of sampled channels over inference regions.

A region is ``[begin_ns, end_ns]`` on CLOCK_MONOTONIC_RAW; samples are ``(t_ns, value)`` pairs,
``t_ns`` sorted int64. Between samples a channel is taken as linear, which is what the sampler
can honestly claim, so results are exact for piecewise-linear signals however short a region
is or however the samples fall: an inference between two power samples still gets the
interpolated mean power times its duration. Everything is vectorised (cumulative sums and
``searchsorted``), so tens of thousands of regions over a long 10 kHz trace take milliseconds.
A region not covered by samples (it starts before the first or ends after the last) is NaN, as
is one whose value depends on a NaN (a failed read). Needs at least two samples.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edgeprof.errors import InputError

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


def _ns(x: npt.ArrayLike, what: str) -> I64:
    """Integer nanoseconds as a 1-D int64 array."""
    a = np.asarray(x)
    if a.ndim != 1:
        raise InputError(f"{what} must be a 1-D array, not shape {list(a.shape)}")
    if a.size and a.dtype.kind not in "iu":
        raise InputError(f"{what} must be integer nanoseconds, not {a.dtype}")
    if a.dtype.kind == "u" and a.size and a.max() > np.iinfo(np.int64).max:
        raise InputError(f"{what} overflow int64 nanoseconds")
    return a.astype(np.int64, copy=False)


def _check(
    t_ns: npt.ArrayLike, values: npt.ArrayLike, begin_ns: npt.ArrayLike, end_ns: npt.ArrayLike
) -> tuple[I64, F64, I64, I64]:
    t = _ns(t_ns, "sample times")
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"sample values must be numbers: {exc}") from None
    if v.ndim != 1:
        raise InputError(f"sample values must be a 1-D array, not shape {list(v.shape)}")
    if v.size != t.size:
        raise InputError(f"{v.size} sample values for {t.size} sample times")
    if t.size > 1 and bool(np.any(t[1:] < t[:-1])):
        raise InputError("sample times must be sorted (non-decreasing)")
    b = _ns(begin_ns, "region begins")
    e = _ns(end_ns, "region ends")
    if b.shape != e.shape:
        raise InputError(f"{b.size} region begins but {e.size} region ends")
    backwards = np.flatnonzero(e < b)
    if backwards.size:
        raise InputError(
            f"{backwards.size} regions end before they begin (the first is region "
            f"{int(backwards[0])})"
        )
    return t, v, b, e


def _covered(t: I64, b: I64, e: I64) -> B:
    if t.size < 2:
        return np.zeros(b.shape, dtype=bool)
    covered: B = (b >= t[0]) & (e <= t[-1])
    return covered


class _Edges:
    """Where each time falls in the trace: segment ``i`` (``t[i] <= x <= t[i+1]``) and weight."""

    def __init__(self, t: I64, x: I64) -> None:
        n = t.size
        i = np.clip(np.searchsorted(t, x, side="right") - 1, 0, max(n - 2, 0))
        dt = (x - t[i]).astype(np.float64)  # exact: int64 differences, then float
        seg = (t[np.minimum(i + 1, n - 1)] - t[i]).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.where(seg > 0, dt / seg, 0.0)
        # On the last sample (the only time x == t[i+1] here): its own index, so that only
        # that sample is involved.
        last = w == 1.0
        self.i = np.where(last, i + 1, i)
        self.dt = np.where(last, 0.0, dt)
        self.w = np.where(last, 0.0, w)

    def partial(self, v: F64) -> F64:
        """``value(v) - v[i]``: kept apart so nearby edges difference without cancellation."""
        hi = v[np.minimum(self.i + 1, v.size - 1)]
        return np.where(self.w == 0.0, 0.0, (hi - v[self.i]) * self.w)

    def value(self, v: F64) -> F64:
        """``v`` linearly interpolated; exactly a sample's value (whatever its neighbour) there."""
        lo = v[self.i]
        hi = v[np.minimum(self.i + 1, v.size - 1)]
        return np.where(self.w == 0.0, lo, lo * (1.0 - self.w) + hi * self.w)


def _nans(b: I64) -> F64:
    return np.full(b.shape, np.nan)


def energy_in_regions(
    t_ns: npt.ArrayLike, power_w: npt.ArrayLike, begin_ns: npt.ArrayLike, end_ns: npt.ArrayLike
) -> F64:
    """Joules in each region from power samples (W): the exact integral of the linear trace.

    The cumulative trapezoid of the whole trace, evaluated exactly (quadratically) inside the
    edge segments, differenced at the edges. Non-finite power is a missing sample: a region
    involving one (the samples from the one at or before its begin to the one at or after its
    end) is NaN.
    """
    t, p, b, e = _check(t_ns, power_w, begin_ns, end_ns)
    out = _nans(b)
    covered = _covered(t, b, e)
    if not covered.any():
        return out
    bad = ~np.isfinite(p)
    pz = np.where(bad, 0.0, p)
    dt = np.diff(t).astype(np.float64)
    cum = np.concatenate(([0.0], np.cumsum((pz[1:] + pz[:-1]) * 0.5 * dt)))  # W*ns
    eb, ee = _Edges(t, b), _Edges(t, e)
    part_b = eb.dt * (pz[eb.i] + eb.value(pz)) * 0.5
    part_e = ee.dt * (pz[ee.i] + ee.value(pz)) * 0.5
    joules = ((cum[ee.i] - cum[eb.i]) + (part_e - part_b)) * 1e-9
    n_bad = np.concatenate(([0], np.cumsum(bad)))
    first = np.searchsorted(t, b, side="right") - 1  # the sample at or before the begin
    last = np.minimum(np.searchsorted(t, e, side="left"), t.size - 1)  # at or after the end
    first = np.clip(np.minimum(first, last), 0, None)
    clean = n_bad[last + 1] - n_bad[first] == 0
    ok = covered & clean
    out[ok] = joules[ok]
    return out


def energy_from_counter(
    t_ns: npt.ArrayLike, energy_j: npt.ArrayLike, begin_ns: npt.ArrayLike, end_ns: npt.ArrayLike
) -> F64:
    """Joules in each region from a cumulative energy counter (RAPL, already unwrapped).

    The counter is interpolated at both edges and differenced. A counter that only updates
    every millisecond or so (RAPL) makes short regions noisy but unbiased on average.
    """
    t, c, b, e = _check(t_ns, energy_j, begin_ns, end_ns)
    out = _nans(b)
    covered = _covered(t, b, e)
    if not covered.any():
        return out
    c = np.where(np.isfinite(c), c, np.nan)
    eb, ee = _Edges(t, b), _Edges(t, e)
    joules = (c[ee.i] - c[eb.i]) + (ee.partial(c) - eb.partial(c))
    out[covered] = joules[covered]
    return out


def mean_power_in_regions(
    t_ns: npt.ArrayLike, power_w: npt.ArrayLike, begin_ns: npt.ArrayLike, end_ns: npt.ArrayLike
) -> F64:
    """Mean power (W) in each region: energy over duration; the power at the instant if zero."""
    t, p, b, e = _check(t_ns, power_w, begin_ns, end_ns)
    joules = energy_in_regions(t, p, b, e)
    duration_s = (e - b).astype(np.float64) * 1e-9
    out = _nans(b)
    long = duration_s > 0
    out[long] = joules[long] / duration_s[long]
    instant = ~long & _covered(t, b, e)
    if instant.any():
        out[instant] = _Edges(t, b[instant]).value(np.where(np.isfinite(p), p, np.nan))
    return out


def peak_in_regions(
    t_ns: npt.ArrayLike, values: npt.ArrayLike, begin_ns: npt.ArrayLike, end_ns: npt.ArrayLike
) -> F64:
    """The largest value in each region: samples inside it and the interpolated edge values.

    Counting the edges means a region shorter than the sample period still gets a value. NaN
    samples are skipped (a peak over the readings that succeeded); a region with no finite
    value at all, or not covered, is NaN.
    """
    t, v, b, e = _check(t_ns, values, begin_ns, end_ns)
    out = _nans(b)
    covered = _covered(t, b, e)
    if not covered.any():
        return out
    v = np.where(np.isfinite(v), v, np.nan)
    # Samples strictly inside: [start, stop). Sorting regions by start makes the gaps that
    # reduceat also reduces disjoint, so the work is O(samples + total region length).
    start = np.searchsorted(t, b, side="right")
    stop = np.searchsorted(t, e, side="left")
    order = np.argsort(start, kind="stable")
    bounds = np.empty(2 * b.size, dtype=np.intp)
    bounds[0::2] = start[order]
    bounds[1::2] = stop[order]
    padded = np.append(np.where(np.isnan(v), -np.inf, v), -np.inf)  # index t.size is valid
    inner_sorted = np.maximum.reduceat(padded, bounds)[0::2]
    inner = np.empty(b.size)
    inner[order] = inner_sorted
    inner = np.where(start < stop, inner, -np.inf)
    edges = np.fmax(_Edges(t, b).value(v), _Edges(t, e).value(v))
    peak = np.fmax(inner, edges)
    peak = np.where(np.isneginf(peak), np.nan, peak)
    out[covered] = peak[covered]
    return out
