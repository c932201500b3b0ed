"""Write tests/golden/report_v1_0.msgpack: a small v1.0 report, signed with test_hmac.key.

Run once; the file is committed and stays in the tests forever, so a later reader that can no
longer read or verify a v1.0 report fails a test. Never regenerate it to make a test pass.
``build_report`` is also what tests/test_report_v1.py builds its reports from; it is the report
factory (:func:`edgeprof.testing.reports.make_report`) with fixed values, and
tests/test_report_v1.py checks that it still makes the committed file byte for byte.

    .venv/bin/python tests/golden/make_golden.py
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeprof.testing.reports import make_report

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "report_v1_0.msgpack"
KEY = HERE / "test_hmac.key"
REPORT_ID = "01900000-0000-7000-8000-000000000001"  # a fixed UUIDv7 (2024-06)


def build_report(n: int = 5, trace_samples: int = 8, rails: tuple[str, ...] = ("VDD_IN",)) -> Any:
    """A deterministic, valid v1.0 report with n inferences and one fast trace (the factory's)."""
    latency = 1e-3 + np.random.default_rng(1).random(n) * 1e-4
    return make_report(
        detailed=True,
        latency_s=latency,
        rails=rails,
        trace_samples=trace_samples,
        report_id=REPORT_ID,
        created_ns=1_717_000_000_000_000_000,
        schema_version=(1, 0),
        warnings=["only 5 samples"],
        tags={"purpose": "golden"},
    )


def golden_bytes() -> bytes:
    """The golden file's bytes as this code makes them: signed with test_hmac.key."""
    from edgeprof.report.codec import encode
    from edgeprof.report.signing import Keys, sign

    keys = Keys(directory=HERE, hmac_key=KEY.read_bytes())
    return encode(sign(build_report(), keys))


def main() -> None:
    GOLDEN.write_bytes(golden_bytes())
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
