"""Report v1 (msgpack, typed binary arrays) against the same content as JSON (arrays as lists).

A large run: 10,000 inferences (begin_ns, latency, peak RSS, 3 energy rails, cycles,
instructions) and 60 s of 1 kHz fast traces on 6 channels. Encode = the report dict to bytes
(``edgeprof.report.codec.encode`` against ``json.dumps`` of the arrays as lists); decode = bytes
back to a report with numpy arrays, validated (``decode``) against ``json.loads`` plus
``np.asarray`` on each array (no validation: JSON is given every advantage). ABAB rounds.

Goal (issue 4): v1 >= 5x faster and >= 2x smaller than JSON.

    .venv/bin/python bench/bench_report.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
from _common import abab, save, summary

from edgeprof.report.builder import trace
from edgeprof.report.codec import decode, encode
from edgeprof.testing.reports import make_report

N_INFER = 10_000
TRACE_S = 60
RATE_HZ = 1000
CHANNELS = 6


def big_report() -> dict[str, Any]:
    """Realistic values (noise in every digit), so neither format wins on repetition."""
    rng = np.random.default_rng(0)
    n, m = N_INFER, TRACE_S * RATE_HZ
    begin = np.cumsum(rng.integers(4_000_000, 6_000_000, n)).astype(np.int64)
    lat = 4e-3 + rng.gamma(2.0, 1e-4, n)
    rails = ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC")
    per: dict[str, Any] = {
        "begin_ns": begin,
        "latency_s": lat,
        "peak_rss_bytes": 5e7 + rng.normal(0, 1e5, n),
        "cycles": rng.integers(1_000_000, 2_000_000, n).astype(np.uint64),
        "instructions": rng.integers(2_000_000, 4_000_000, n).astype(np.uint64),
    }
    for r in rails:
        per[f"energy_j.{r}"] = lat * rng.normal(2.5, 0.1, n)
    channels = [{"name": f"ch{i}", "unit": "W"} for i in range(CHANNELS)]
    t_ns = (np.arange(m, dtype=np.int64) * 1_000_000 + rng.integers(0, 50_000, m)).astype(np.int64)
    values = rng.normal(2.0, 0.3, (m, CHANNELS))
    return make_report(
        detailed=True,
        latency_s=lat,
        rails=rails,
        board="jetson-orin-nano",
        per_inference=per,
        traces={"fast": trace(1000.0, channels, t_ns, values)},
    )


def _listify(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, dict):
        return {k: _listify(v) for k, v in obj.items()}
    return obj


def _arrayify(obj: dict[str, Any]) -> None:
    for key in ("per_inference",):
        obj[key] = {k: np.asarray(v) for k, v in obj[key].items()}
    for tr in obj["traces"].values():
        tr["t_ns"] = np.asarray(tr["t_ns"], dtype=np.int64)
        tr["values"] = np.asarray(tr["values"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    report = big_report()
    mp_bytes = encode(report)
    js_bytes = json.dumps(_listify(report)).encode()

    def enc_mp() -> float:
        t0 = time.perf_counter()
        encode(report)
        return time.perf_counter() - t0

    def enc_js() -> float:
        t0 = time.perf_counter()
        json.dumps(_listify(report)).encode()
        return time.perf_counter() - t0

    def dec_mp() -> float:
        t0 = time.perf_counter()
        decode(mp_bytes)
        return time.perf_counter() - t0

    def dec_js() -> float:
        t0 = time.perf_counter()
        _arrayify(json.loads(js_bytes))
        return time.perf_counter() - t0

    enc = abab([("msgpack_v1", enc_mp), ("json", enc_js)], args.rounds)
    dec = abab([("msgpack_v1", dec_mp), ("json", dec_js)], args.rounds)
    results: dict[str, Any] = {
        "inferences": N_INFER,
        "trace": f"{TRACE_S} s x {RATE_HZ} Hz x {CHANNELS} channels",
        "size_bytes": {"msgpack_v1": len(mp_bytes), "json": len(js_bytes)},
        "encode_s": {k: summary(v) for k, v in enc.items()},
        "decode_s": {k: summary(v) for k, v in dec.items()},
    }
    ratios = {
        "size": len(js_bytes) / len(mp_bytes),
        "encode": results["encode_s"]["json"]["median"]
        / results["encode_s"]["msgpack_v1"]["median"],
        "decode": results["decode_s"]["json"]["median"]
        / results["decode_s"]["msgpack_v1"]["median"],
    }
    results["json_over_msgpack"] = ratios
    for what in ("encode_s", "decode_s"):
        r = results[what]
        print(
            f"{what[:-2]:<7} msgpack v1 {r['msgpack_v1']['median'] * 1e3:8.2f} ms   "
            f"json {r['json']['median'] * 1e3:8.2f} ms   "
            f"ratio {ratios[what[:-2]]:5.1f}x (goal >= 5x)"
        )
    print(
        f"size    msgpack v1 {len(mp_bytes) / 1e6:8.2f} MB   json {len(js_bytes) / 1e6:8.2f} MB"
        f"   ratio {ratios['size']:5.1f}x (goal >= 2x)"
    )
    print(f"saved {save('report', results)}")


if __name__ == "__main__":
    main()
