"""The human summary of ``edgeprof run``: a short table, warnings last, colour only on a TTY."""

from __future__ import annotations

from typing import Any

import click


def _ms(v: float | None) -> str:
    """A duration in the unit that keeps 3-4 significant digits readable."""
    if v is None:
        return "-"
    for unit, factor in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(v) >= factor:
            return f"{v / factor:.4g} {unit}"
    return f"{v * 1e9:.4g} ns"


def _mib(v: float | None) -> str:
    return "-" if v is None else f"{v / 2**20:.1f} MiB"


def _watts(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v * 1e3:.1f} mW" if abs(v) < 1 else f"{v:.3f} W"


def _joules(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) < 1e-3:
        return f"{v * 1e6:.1f} µJ"
    return f"{v * 1e3:.3f} mJ" if abs(v) < 1 else f"{v:.3f} J"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.2f} %"


def render(report: dict[str, Any], path: str | None) -> str:
    """The run as a few aligned lines."""
    s = report["summary"]
    lat = s["latency"]
    runner = report["runner"]
    model = report["model"]
    rows: list[tuple[str, str]] = []
    head = (
        f"{model['name']} ({model['size_bytes'] / 1024:.1f} KiB) on "
        f"{report['device']['board_id'] or 'unknown board'} with {runner['runner']} "
        f"({runner['runtime']} {runner['runtime_version']})"
    )
    rate = s.get("inferences_per_s")
    rows.append(
        (
            "inferences",
            f"{s['count']} measured in {s['measured_wall_s']:.2f} s"
            + (f" ({rate:.1f}/s)" if rate else "")
            + f", warm-up {report['init']['warmup_inferences']}",
        )
    )
    init = report["init"]
    grew = None
    if init.get("rss_after_bytes") is not None and init.get("rss_before_bytes") is not None:
        grew = init["rss_after_bytes"] - init["rss_before_bytes"]
    rows.append(
        (
            "load",
            f"{_ms(s['init_time_s'])}"
            + (f", RSS +{_mib(grew)} (peak {_mib(init.get('rss_peak_bytes'))})" if grew else ""),
        )
    )
    if runner.get("arena_min_bytes"):
        need, said = runner["arena_min_bytes"], runner.get("arena_reported_bytes")
        text = f"{need} B needed (bisection, one inference per probe)"
        if said is not None:
            text += f"; TFLM itself reports {said} B"
            if said < need:
                text += " — too small for this model"
        rows.append(("arena", text))
    rows.append(
        (
            "latency",
            f"mean {_ms(lat['mean_s'])} ± {_ms(lat['std_s'])}, "
            f"min {_ms(lat['min_s'])}, max {_ms(lat['max_s'])}",
        )
    )
    for p in ("p50", "p90", "p95", "p99"):
        ci = lat.get(f"{p}_ci_s") or [None, None]
        rows.append(("", f"{p} {_ms(lat[f'{p}_s'])}  [95 % CI {_ms(ci[0])} to {_ms(ci[1])}]"))
    dev = s.get("device")
    if isinstance(dev, dict):  # an MCU timed itself: say how, and keep the link time apart
        rows.append(
            ("counter", f"{dev.get('cycle_source')} at {dev.get('cycle_hz')} Hz "
             f"(counts {dev.get('counts')}); latency is the device's"),
        )  # fmt: skip
        rtt = s.get("host_round_trip") or {}
        rows.append(
            ("round trip", f"host, not in latency: p50 {_ms(rtt.get('p50_s'))}, "
             f"max {_ms(rtt.get('max_s'))}"),
        )  # fmt: skip
        rows.append(
            ("device mem", f"heap peak {dev.get('heap_peak_bytes')} B (arena "
             f"{dev.get('arena_bytes')} B), stack peak {dev.get('stack_peak_bytes')} B"),
        )  # fmt: skip
    rows.append(
        (
            "memory",
            f"peak RSS {_mib(s.get('rss_peak_bytes'))}, steady {_mib(s.get('rss_steady_bytes'))}",
        )
    )
    rails = s.get("rails") or {}
    if not rails:
        rows.append(("power", "no power rails on this machine (see edgeprof doctor)"))
    for name, r in rails.items():
        label = r.get("label") or name
        marker = " *" if name == s.get("primary_rail") else ""
        rows.append(
            (
                f"power {label}{marker}",
                f"mean {_watts(r['power_mean_w'])}, peak {_watts(r['power_peak_w'])}, "
                f"per inference {_joules(r['energy_per_inference_j'])}",
            )
        )
    q = report.get("quality")
    if q:
        parts = []
        if "top1_agreement" in q:
            parts.append(f"top-1 agreement {_pct(q['top1_agreement'])}")
            parts.append(f"SNR {q['snr_db']:.1f} dB")
            parts.append(f"MAE {q['mean_abs_error']:.4g}")
            parts.append(f"compression {q['compression_ratio']:.2f}x")
        if "accuracy" in q:
            acc = f"accuracy {_pct(q['accuracy'])}"
            if q.get("reference_accuracy") is not None:
                acc += f" (float {_pct(q['reference_accuracy'])}, retention "
                acc += f"{q['accuracy_retention']:.3f})"
            parts.append(acc)
        rows.append(("quality", f"{', '.join(parts)} on {q['examples']} examples"))
    width = max(len(k) for k, _ in rows)
    lines = [click.style(head, bold=True)]
    lines += [f"  {k:<{width}}  {v}" for k, v in rows]
    for w in report.get("warnings", []):
        lines.append(click.style(f"  ! {w}", fg="yellow"))
    for note in report.get("run", {}).get("input_notes", []):
        lines.append(click.style(f"  - {note}", dim=True))
    if path:
        lines.append(f"  report {path}")
    return "\n".join(lines)
