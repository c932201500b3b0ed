"""Small valid v1 reports for tests and benchmarks: one builder instead of a copy per user.

``minimal_report`` gives a report dict (numpy arrays, not yet encoded) that passes validation;
keyword overrides replace top-level sections, and ``latency_s`` sets the per-inference latencies
(the summary follows them), so a test can make "the same model, 5 % slower" in one line.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edgeprof.report.codec import uuid7


def minimal_report(
    *,
    latency_s: np.ndarray | None = None,
    model: str = "test",
    board: str = "test",
    device: str = "machine-id:test",
    padding: int = 0,
    tags: dict[str, str] | None = None,
    created_ns: int | None = None,
    **sections: Any,
) -> dict[str, Any]:
    """A valid report dict; ``padding`` grows it by about that many bytes of raw trace."""
    lat = np.full(3, 1e-3) if latency_s is None else np.asarray(latency_s, dtype=np.float64)
    n = int(lat.size)
    q = np.quantile(lat, [0.5, 0.9, 0.95, 0.99]) if n else np.zeros(4)
    latency = {
        "mean_s": float(lat.mean()) if n else 0.0,
        "min_s": float(lat.min()) if n else 0.0,
        "max_s": float(lat.max()) if n else 0.0,
        "p50_s": float(q[0]),
        "p90_s": float(q[1]),
        "p95_s": float(q[2]),
        "p99_s": float(q[3]),
    }
    all_tags = dict(tags or {})
    traces: dict[str, Any] = {}
    if padding:
        k = max(1, padding // 16)  # int64 time + float64 value per sample
        traces["fast"] = {
            "rate_hz": 1000.0,
            "channels": [{"name": "rss", "unit": "B"}],
            "t_ns": np.arange(k, dtype=np.int64) * 1_000_000,
            "values": np.random.default_rng(k).random((k, 1)),
        }
    report: dict[str, Any] = {
        "report_id": uuid7(),
        "created_ns": time.time_ns() if created_ns is None else created_ns,
        "agent": {"name": "edgeprof", "version": "test"},
        "device": {
            "board_id": board,
            "device_id": device,
            "os": "linux",
            "kernel": "test",
            "machine": "x86_64",
            "cpu_count": 1,
        },
        "model": {
            "name": model,
            "sha256": "0" * 64,
            "size_bytes": 1,
            "format": "tflite",
            "inputs": [],
            "outputs": [],
        },
        "runner": {"runner": "tflite"},
        "run": {
            "warmup_count": 0,
            "min_count": n,
            "min_s": 0.0,
            "max_s": 1.0,
            "delay_s": 0.0,
            "sampler_rate_hz": 0.0,
            "input_source": "zeros",
            "seed": 0,
        },
        "environment": {"governors": {}, "load_average": [0.0, 0.0, 0.0]},
        "summary": {
            "count": n,
            "latency": latency,
            "inferences_per_s": None,
            "measured_wall_s": float(lat.sum()),
            "rss_peak_bytes": None,
            "rails": {},
            "primary_rail": None,
        },
        "per_inference": {
            "begin_ns": np.arange(n, dtype=np.int64),
            "latency_s": lat,
            "peak_rss_bytes": np.zeros(n, dtype=np.int64),
        },
        "traces": traces,
        "warnings": [],
        "tags": all_tags,
    }
    report.update(sections)
    return report
