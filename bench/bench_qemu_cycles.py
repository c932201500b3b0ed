"""Device-side counts of the demo models on the QEMU Cortex-M4 port, and how repeatable they are.

For each demo model (``kws_mlp_int8``, ``ds_cnn_int8``, both kernel flavours of the blob) and each
mode, several fresh QEMU processes each upload the blob and RUN it on seeded inputs (the
firmware's xorshift32, seed 1: the same inputs in every process); per inference index, the counts
of all processes are compared.

- ``-icount shift=3`` (the harness's default): one count per guest instruction, exact
  (``systick-icount``, 125 MHz of virtual time). Goal: the same count on every run.
- no ``-icount``: SysTick on QEMU's virtual clock, which follows the host's time, for contrast.

Also recorded: the per-layer split of one inference, the host's wall time per inference
(emulation speed, which depends on this machine and is not a property of the firmware), and the
model upload's throughput (QEMU feeds its UART one byte per main-loop turn).

    .venv/bin/python bench/bench_qemu_cycles.py [--processes 3] [--inferences 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

from _common import save

from edgeprof.bridge import firmware_build
from edgeprof.bridge.device import Device
from edgeprof.bridge.model_blob import Flavour, compile_tflite
from edgeprof.bridge.qemu import DEFAULT_ICOUNT_SHIFT, QemuMachine
from edgeprof.bridge.transport import open_transport

MODELS = ("kws_mlp_int8", "ds_cnn_int8")
FLAVOURS: tuple[Flavour, ...] = ("litert", "xnnpack")


def one_process(
    elf: Path, blobs: dict[tuple[str, Flavour], bytes], shift: int | None, n: int
) -> dict[str, Any]:
    """One QEMU: every blob, n inferences each; counts, layers and wall time per inference."""
    out: dict[str, Any] = {}
    with (
        QemuMachine(elf, icount_shift=shift) as machine,
        Device(open_transport(machine.url), timeout=5.0, result_timeout=120.0) as dev,
    ):
        info = dev.hello()
        out["_info"] = {"cycle_source": info.cycle_source, "cycle_hz": info.cycle_hz}
        for (model, flavour), blob in blobs.items():
            upload = dev.load("model", blob)
            t0 = time.perf_counter()
            started, results = dev.run_all("model", n, warmup=1, seed=1, layers=True)
            wall = (time.perf_counter() - t0) / (n + 1)
            out[f"{model}/{flavour}"] = {
                "counts": [r.cycles for r in results],
                "layers": dict(
                    zip(
                        [f"{i}:{op}" for i, op in enumerate(started.ops)],
                        results[0].layer_cycles or (),
                        strict=False,
                    )
                ),
                "stack_hwm": results[0].stack_hwm_bytes,
                "heap_hwm": results[0].heap_hwm_bytes,
                "wall_s_per_inference": wall,
                "upload_bytes_per_s": upload.size / upload.seconds,
                "upload_efficiency": upload.payload_bytes / upload.wire_bytes,
            }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--processes", type=int, default=3, help="fresh QEMU processes per mode")
    ap.add_argument("--inferences", type=int, default=5, help="measured inferences per RUN")
    ap.add_argument("--build-dir", type=Path, default=None)
    ap.add_argument(
        "--modes", default="icount,no-icount", help="comma-separated: icount, no-icount"
    )
    args = ap.parse_args()

    build = firmware_build.build_port("qemu-mps2-an386", args.build_dir, jobs=2)
    elf = build.image("edgeprof-fw").path
    blobs = {
        (m, f): compile_tflite((files("edgeprof.models") / f"{m}.tflite").read_bytes(), f)
        for m in MODELS
        for f in FLAVOURS
    }
    result: dict[str, Any] = {
        "firmware": {
            i.path.name: {"text": i.text, "data": i.data, "bss": i.bss, "stack": i.stack}
            for i in build.images
        }
    }
    modes = {
        "icount": (f"icount-shift-{DEFAULT_ICOUNT_SHIFT}", DEFAULT_ICOUNT_SHIFT),
        "no-icount": ("no-icount", None),
    }
    for label, shift in (modes[m] for m in args.modes.split(",")):
        runs = [one_process(elf, blobs, shift, args.inferences) for _ in range(args.processes)]
        mode: dict[str, Any] = {"device": runs[0]["_info"]}
        hz = runs[0]["_info"]["cycle_hz"]
        print(f"\n{label}: {runs[0]['_info']['cycle_source']} at {hz / 1e6:g} MHz")
        print(
            f"  {'model/flavour':<24}{'count (median)':>16}{'distinct':>10}"
            f"{'spread':>10}{'virtual ms':>12}{'wall ms':>10}{'upload kB/s':>13}"
        )
        for key in blobs:
            name = f"{key[0]}/{key[1]}"
            per_index = [[r[name]["counts"][i] for r in runs] for i in range(args.inferences)]
            counts = [c for col in per_index for c in col]
            distinct = max(len(set(col)) for col in per_index)
            med = statistics.median(counts)
            wall = statistics.median(r[name]["wall_s_per_inference"] for r in runs)
            spread = max(counts) - min(counts)
            mode[name] = {
                "counts_by_process": [r[name]["counts"] for r in runs],
                "median": med,
                "distinct_per_index": distinct,
                "spread": spread,
                "virtual_ms": med / hz * 1e3,
                "wall_ms_per_inference": wall * 1e3,
                "layers": runs[0][name]["layers"],
                "stack_hwm": runs[0][name]["stack_hwm"],
                "heap_hwm": runs[0][name]["heap_hwm"],
                "upload_kB_per_s": statistics.median(
                    r[name]["upload_bytes_per_s"] / 1e3 for r in runs
                ),
                "upload_efficiency": runs[0][name]["upload_efficiency"],
            }
            print(
                f"  {name:<24}{med:>16,.0f}{distinct:>10}{spread:>10,}"
                f"{med / hz * 1e3:>12.2f}{wall * 1e3:>10.1f}"
                f"{mode[name]['upload_kB_per_s']:>13.1f}"
            )
        result[label] = mode
    path = save("bench_qemu_cycles", result)
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
