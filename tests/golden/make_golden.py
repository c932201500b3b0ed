"""Write tests/golden/report_v1_0.msgpack: a small v1.0 report, signed with test_hmac.key.

Run once; the file is committed and stays in the tests forever, so a later reader that can no
longer read or verify a v1.0 report fails a test. Never regenerate it to make a test pass.
``build_report`` is also what tests/test_report_v1.py builds its reports from.

    .venv/bin/python tests/golden/make_golden.py
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "report_v1_0.msgpack"
KEY = HERE / "test_hmac.key"
REPORT_ID = "01900000-0000-7000-8000-000000000001"  # a fixed UUIDv7 (2024-06)


def build_report(n: int = 5, trace_samples: int = 8, rails: tuple[str, ...] = ("VDD_IN",)) -> Any:
    """A deterministic, valid v1 report with n inferences and one fast trace."""
    rng = np.random.default_rng(1)
    begin = (1_000_000 + np.arange(n, dtype=np.int64) * 2_000_000).astype(np.int64)
    latency = 1e-3 + rng.random(n) * 1e-4
    per: dict[str, Any] = {
        "begin_ns": begin,
        "latency_s": latency,
        "peak_rss_bytes": np.full(n, 50e6),
    }
    for r in rails:
        per[f"energy_j.{r}"] = latency * 2.5
    channels = [{"name": "mem.rss", "unit": "B"}] + [{"name": r, "unit": "W"} for r in rails]
    return {
        "schema": "edgeprof.report",
        "schema_version": [1, 0],
        "report_id": REPORT_ID,
        "created_ns": 1_717_000_000_000_000_000,
        "agent": {"name": "edgeprof", "version": "0.1.0"},
        "device": {
            "board_id": "generic-linux-x86_64",
            "device_id": "machine-id:0123456789abcdef",
            "os": "Linux",
            "kernel": "6.1.0",
            "machine": "x86_64",
            "cpu_model": "Test CPU",
            "cpu_count": 4,
            "memory_total_bytes": 8 * 2**30,
            "runtimes": {"litert": "2.3.0"},
        },
        "model": {
            "name": "kws_mlp_int8",
            "sha256": "ab" * 32,
            "size_bytes": 210512,
            "format": "tflite",
            "quantization": "int8",
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 490],
                    "dtype": "int8",
                    "scale": 0.03,
                    "zero_point": -2,
                }
            ],
            "outputs": [
                {
                    "name": "softmax",
                    "shape": [1, 12],
                    "dtype": "int8",
                    "scale": 0.0039,
                    "zero_point": -128,
                }
            ],
            "registry": {
                "model_id": "kws",
                "version": "3",
                "base_model": "kws-float",
                "quantization": "int8",
                "training_data_version": "2024-05",
            },
        },
        "runner": {"runner": "tflite", "runtime": "litert", "runtime_version": "2.3.0"},
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
            "latency": {
                "mean_s": float(latency.mean()),
                "min_s": float(latency.min()),
                "max_s": float(latency.max()),
                **{f"p{p}_s": float(np.percentile(latency, p)) for p in (50, 90, 95, 99)},
            },
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
        "per_inference": per,
        "traces": {
            "fast": {
                "rate_hz": 1000.0,
                "channels": channels,
                "t_ns": np.arange(trace_samples, dtype=np.int64) * 1_000_000,
                "values": np.ones((trace_samples, len(channels))),
            }
        },
        "warnings": ["only 5 samples"],
        "tags": {"purpose": "golden"},
    }


def main() -> None:
    from edgeprof.report.codec import encode
    from edgeprof.report.signing import Keys, sign

    keys = Keys(directory=HERE, hmac_key=KEY.read_bytes())
    GOLDEN.write_bytes(encode(sign(build_report(), keys)))
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
