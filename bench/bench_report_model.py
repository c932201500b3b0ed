"""Issue 12: the typed report model (msgspec) against the hand-written walker it replaced.

The same large report as bench_report.py (10,000 inferences, 60 s x 1 kHz x 6 channels).
Validation: the walker of report/schema.py as of commit e5d2110 (loaded from git) against
``msgspec.convert`` through edgeprof.report.model; decode = codec.decode with each validator.
Encode: codec.encode (msgpack-python after a Python walk that packs arrays) against
msgspec's msgpack encoder with an enc_hook for the arrays (same bytes, checked). dataclasses or
attrs would keep the walker (they check nothing themselves), so the walker's row is their cost.
ABAB rounds in one process.

    .venv/bin/python bench/bench_report_model.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from _common import abab, save, summary
from bench_report import big_report

from edgeprof.report import codec
from edgeprof.report.schema import validate as model_validate

WALKER_COMMIT = "e5d2110"
ROOT = Path(__file__).resolve().parents[1]


def _old_walker() -> Callable[[dict[str, Any]], None]:
    src = subprocess.run(
        ["git", "show", f"{WALKER_COMMIT}:agent/edgeprof/report/schema.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "old_schema.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_schema", path)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["old_schema"] = mod
    spec.loader.exec_module(mod)
    fn: Callable[[dict[str, Any]], None] = mod.validate
    return fn


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return codec.pack_array(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot store a {type(obj).__name__} in a report")


def timed(fn: Callable[[], object]) -> Callable[[], float]:
    def run() -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    walker = _old_walker()
    report = big_report()
    data = codec.encode(report)
    decoded = codec.decode(data, validate=False)
    encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
    envelope = {"schema": "edgeprof.report", "schema_version": [1, 1]}
    assert encoder.encode({**envelope, **report}) == data, "msgspec bytes differ"

    def dec_with(check: Callable[[dict[str, Any]], object]) -> Callable[[], object]:
        def run() -> object:
            r = codec.decode(data, validate=False)
            return check(r)

        return run

    results: dict[str, Any] = {"report_bytes": len(data)}
    pairs = {
        "validate": [
            ("walker", timed(lambda: walker(decoded))),
            ("msgspec", timed(lambda: model_validate(decoded))),
        ],
        "decode": [
            ("walker", timed(dec_with(walker))),
            ("msgspec", timed(dec_with(model_validate))),
        ],
        "encode": [
            ("msgpack", timed(lambda: codec.encode(report))),
            ("msgspec", timed(lambda: encoder.encode({**envelope, **report}))),
        ],
    }
    for what, variants in pairs.items():
        got = abab(variants, args.rounds)
        (a, _), (b, _) = variants
        results[what] = {k: summary(v) for k, v in got.items()}
        ma, mb = results[what][a]["median"], results[what][b]["median"]
        results[what]["ratio"] = mb / ma
        line = f"{what:<9}{a:>8} {ma * 1e3:8.3f} ms  {b:>8} {mb * 1e3:8.3f} ms"
        print(f"{line}  ratio {mb / ma:5.2f}")
    print(f"saved {save('report_model', results)}", file=sys.stderr)


if __name__ == "__main__":
    main()
