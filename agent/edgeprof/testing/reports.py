"""The report factory for tests and benchmarks: valid v1 report maps in one call.

``make_report()`` is a small valid report; keyword arguments change what a test cares about
(``latency_s`` sets the per-inference latencies and the summary follows them, so "the same
model, 5 % slower" is one line). ``detailed=True`` fills every section the way a real run on a
Linux board does (tensors, registry, rails, a trace): tests/golden/make_golden.py writes the
golden file from it, so the factory cannot drift from what that file holds. Whole sections can
be replaced by keyword (``summary=...``); the result is checked against the model.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from msgspec import UNSET, UnsetType

from edgeprof.report.builder import assemble, latency_summary, trace
from edgeprof.report.codec import uuid7

GOLDEN_RUNTIME = {"runtime": "litert", "runtime_version": "2.3.0"}


def _tensor(name: str, shape: list[int], scale: float, zero_point: int) -> dict[str, Any]:
    return {"name": name, "shape": shape, "dtype": "int8", "scale": scale, "zero_point": zero_point}


def _detailed(
    lat: npt.NDArray[np.float64], board: str, device: str, model: str, rails: Sequence[str]
) -> dict[str, Any]:
    """Sections of a realistic run: LiteRT on an x86-64 Linux box with power rails."""
    n = int(lat.size)
    return {
        "device": {
            "board_id": board,
            "device_id": device,
            "os": "Linux",
            "kernel": "6.1.0",
            "machine": "x86_64",
            "cpu_model": "Test CPU",
            "cpu_count": 4,
            "memory_total_bytes": 8 * 2**30,
            "runtimes": {"litert": "2.3.0"},
        },
        "model": {
            "name": model,
            "sha256": "ab" * 32,
            "size_bytes": 210512,
            "format": "tflite",
            "quantization": "int8",
            "inputs": [_tensor("input", [1, 490], 0.03, -2)],
            "outputs": [_tensor("softmax", [1, 12], 0.0039, -128)],
            "registry": {
                "model_id": "kws",
                "version": "3",
                "base_model": "kws-float",
                "quantization": "int8",
                "training_data_version": "2024-05",
            },
        },
        "runner": {"runner": "tflite", **GOLDEN_RUNTIME},
        "run": {
            "warmup_count": 10,
            "min_count": n,
            "min_s": 0.0,
            "max_s": 60.0,
            "delay_s": 0.0,
            "sampler_rate_hz": 1000.0,
            "input_source": "random (seed 0)",
            "seed": 0,
        },
        "environment": {
            "governors": {"cpu0": "performance"},
            "load_average": [0.1, 0.2, 0.3],
            "other_load_cores": 0.0,
        },
        "summary": {
            "count": n,
            "latency": latency_summary(lat),
            "inferences_per_s": 500.0,
            "measured_wall_s": n * 2e-3,
            "rss_peak_bytes": 50e6,
            "rails": {
                r: {"power_mean_w": 2.5, "power_peak_w": 3.0, "energy_per_inference_j": 2.6e-3}
                for r in rails
            },
            "primary_rail": rails[0] if rails else None,
            "energy_per_inference_j": 2.6e-3 if rails else None,
            "power_mean_w": 2.5 if rails else None,
        },
        "quality": None,
        "per_inference": {
            "begin_ns": (1_000_000 + np.arange(n, dtype=np.int64) * 2_000_000).astype(np.int64),
            "latency_s": lat,
            "peak_rss_bytes": np.full(n, 50e6),
            **{f"energy_j.{r}": lat * 2.5 for r in rails},
        },
    }


def _minimal(lat: npt.NDArray[np.float64], board: str, device: str, model: str) -> dict[str, Any]:
    """Only the required fields, with neutral values."""
    n = int(lat.size)
    return {
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
            "latency": latency_summary(lat),
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
    }


def _traces(padding: int, trace_samples: int, rails: Sequence[str]) -> dict[str, dict[str, Any]]:
    if trace_samples:  # memory plus one power column per rail, as a run on a board with rails
        channels = [{"name": "mem.rss", "unit": "B"}] + [{"name": r, "unit": "W"} for r in rails]
        t_ns = np.arange(trace_samples, dtype=np.int64) * 1_000_000
        return {"fast": trace(1000.0, channels, t_ns, np.ones((trace_samples, len(channels))))}
    if padding:  # about that many bytes of raw trace: int64 time + float64 value per sample
        k = max(1, padding // 16)
        values = np.random.default_rng(k).random((k, 1))
        t_ns = np.arange(k, dtype=np.int64) * 1_000_000
        return {"fast": trace(1000.0, [{"name": "rss", "unit": "B"}], t_ns, values)}
    return {}


def make_report(
    *,
    latency_s: npt.ArrayLike | None = None,
    model: str | None = None,
    board: str | None = None,
    device: str | None = None,
    detailed: bool = False,
    rails: Sequence[str] = (),
    trace_samples: int = 0,
    padding: int = 0,
    tags: dict[str, str] | None = None,
    warnings: Sequence[str] = (),
    created_ns: int | None = None,
    report_id: str | None = None,
    schema_version: Sequence[int] | UnsetType = UNSET,
    **sections: Any,
) -> dict[str, Any]:
    """A valid report map (numpy arrays, not yet encoded).

    ``latency_s`` defaults to three inferences of 1 ms; ``padding`` grows the report by about
    that many bytes of raw trace; ``rails`` adds power rails (with ``detailed``) and
    ``trace_samples`` a fast trace over memory and those rails. ``sections`` replace whole
    top-level sections (``summary=…``, ``traces=…``).
    """
    lat = np.full(3, 1e-3) if latency_s is None else np.asarray(latency_s, dtype=np.float64)
    if detailed:
        base = _detailed(
            lat,
            board or "generic-linux-x86_64",
            device or "machine-id:0123456789abcdef",
            model or "kws_mlp_int8",
            rails,
        )
    else:
        base = _minimal(lat, board or "test", device or "machine-id:test", model or "test")
    parts: dict[str, Any] = {
        "report_id": report_id or uuid7(),
        "created_ns": time.time_ns() if created_ns is None else created_ns,
        "agent": {"name": "edgeprof", "version": "0.1.0" if detailed else "test"},
        **base,
        "traces": _traces(padding, trace_samples, rails),
        "warnings": list(warnings),
        "tags": dict(tags or {}),
        **sections,
    }
    return assemble(**parts, schema_version=schema_version, validate=True)
