"""One profiling run: load, warm up, measure, and turn ticks and samples into per-inference numbers.

The sequence is TFLite benchmark_model's: a timed load-and-allocate, a warm-up (a count and/or
seconds), then measured inferences until both a minimum count and a minimum time are reached,
bounded by a maximum time. Each measured ``invoke`` sits inside a native region; the monitor's
native threads sample memory and power throughout. Per inference: latency from the region's
ticks, energy of each power rail integrated over the region, peak RSS inside it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeprof import native
from edgeprof.device.channels import ChannelSpec, ReadKind
from edgeprof.device.envinfo import cpu_snapshot, load_average, other_load, steal_fraction
from edgeprof.device.monitor import Monitor, MonitorTraces
from edgeprof.device.roots import SystemRoots
from edgeprof.device.sampler import Trace
from edgeprof.device.sources.system import read_governors
from edgeprof.errors import InputError
from edgeprof.measure.anchors import read_anchor
from edgeprof.measure.energy import energy_from_counter, energy_in_regions, peak_in_regions
from edgeprof.measure.memory import lower_median, sampled_peak, sampled_peak_in_regions
from edgeprof.measure.stats import summarize
from edgeprof.native import ClockInfo
from edgeprof.runners.base import DeviceMeasurements, Runner

Progress = Callable[[str, int, float], None]  # phase, inferences done, fraction done (0..1)
PROGRESS_EVERY_S = 0.1  # redraw at most this often: a progress bar must not cost inferences
LOAD_MARGIN_S = 10.0  # seconds of trace reserved for loading the model
STEAL_WARN = 0.01  # hypervisor steal, as a share of all CPU time, above which a run is flagged


@dataclass(frozen=True)
class RunPlan:
    """How many inferences, for how long: benchmark_model's semantics."""

    warmup_count: int = 10
    warmup_seconds: float = 0.0
    min_count: int = 100
    min_seconds: float = 1.0
    max_seconds: float = 60.0
    max_count: int = 1_000_000
    delay_s: float = 0.0
    rate_hz: float = 1000.0
    slow_rate_hz: float = 10.0

    def __post_init__(self) -> None:
        checks = [
            (self.warmup_count >= 0, "--warmup must be >= 0"),
            (self.warmup_seconds >= 0, "--warmup-seconds must be >= 0"),
            (self.min_count >= 1, "--count must be >= 1"),
            (self.min_seconds >= 0, "--min-seconds must be >= 0"),
            (self.max_seconds > 0, "--max-seconds must be > 0"),
            (
                self.max_seconds >= self.min_seconds,
                f"--max-seconds {self.max_seconds:g} is below --min-seconds {self.min_seconds:g}",
            ),
            (self.max_count >= self.min_count, "the maximum count is below --count"),
            (self.delay_s >= 0, "--delay-ms must be >= 0"),
            (0 < self.rate_hz <= 100_000, "--rate-hz must be in (0, 100000]"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message)

    @property
    def monitored_seconds(self) -> float:
        """How long the monitor may sample: the warm-up and the measurement are each bounded
        by max_seconds; the load gets a margin (a longer one lets the trace grow past it)."""
        return 2 * self.max_seconds + LOAD_MARGIN_S

    def describe(self) -> dict[str, Any]:
        """For the report's run configuration."""
        return {
            "warmup_count": self.warmup_count,
            "warmup_s": self.warmup_seconds,
            "min_count": self.min_count,
            "min_s": self.min_seconds,
            "max_s": self.max_seconds,
            "max_count": self.max_count,
            "delay_s": self.delay_s,
            "sampler_rate_hz": self.rate_hz,
            "slow_sampler_rate_hz": self.slow_rate_hz,
        }


@dataclass
class SessionResult:
    """Everything a run measured, before it becomes a report."""

    clock: ClockInfo
    init: dict[str, Any]
    begin_ns: np.ndarray
    end_ns: np.ndarray
    latency_s: np.ndarray
    cycles: np.ndarray | None
    instructions: np.ndarray | None
    energy_j: dict[str, np.ndarray]
    peak_rss_bytes: np.ndarray
    traces: MonitorTraces
    summary: dict[str, Any]
    environment: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    counters_reason: str = ""
    # A runner whose device measures itself (MCU): latency_s is the device's, and the host's
    # time around each invoke is only the round trip, kept here apart.
    device: DeviceMeasurements | None = None
    host_round_trip_s: np.ndarray | None = None
    # Per inference, of the first output: the arg-max (class) and its dequantized value.
    output_top1: np.ndarray | None = None
    output_top_score: np.ndarray | None = None
    # Ctrl-C during the measured loop: what was measured up to then (at least one inference).
    interrupted: bool = False
    # read_anchor() before the model loads and after the sampler stops: the report's
    # time_anchors (start, end), which tie the tick to CLOCK_REALTIME and CLOCK_MONOTONIC.
    anchors: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Measured inferences."""
        return int(self.latency_s.shape[0])


def _finite_first(values: np.ndarray) -> float | None:
    """The first readable sample (a failed read is NaN), or None when there is none."""
    ok = values[np.isfinite(values)]
    return float(ok[0]) if ok.size else None


@dataclass
class OutputBuffers:
    """Per-inference output facts (arg-max class and its value), preallocated like the region
    buffer: sized to the plan's maximum count and written once (every page touched) before the
    RSS baseline, so the measured loop never grows the process it measures."""

    top1: np.ndarray
    top_score: np.ndarray

    @classmethod
    def allocate(cls, capacity: int) -> OutputBuffers:
        """``capacity`` entries of each, resident now."""
        top1 = np.empty(capacity, dtype=np.int32)
        top_score = np.empty(capacity, dtype=np.float64)
        top1.fill(0)  # np.zeros would map untouched zero pages that fault in during the run
        top_score.fill(0.0)
        return cls(top1, top_score)

    @property
    def nbytes(self) -> int:
        """Bytes held (all resident)."""
        return int(self.top1.nbytes + self.top_score.nbytes)


def _column(trace: Trace, spec: ChannelSpec) -> np.ndarray:
    return trace.values[:, trace.names.index(spec.name)]


def _rail_energy(
    trace: Trace, t_ns: np.ndarray, begin: np.ndarray, end: np.ndarray
) -> dict[str, np.ndarray]:
    """Energy per inference for every power rail (W channels) and energy counter (J)."""
    out: dict[str, np.ndarray] = {}
    for spec in trace.specs:
        if spec.quantity == "power":
            out[spec.name] = energy_in_regions(t_ns, _column(trace, spec), begin, end)
        elif spec.kind is ReadKind.COUNTER and spec.unit == "J":
            out[spec.name] = energy_from_counter(t_ns, _column(trace, spec), begin, end)
    return out


def primary_rail(specs: Sequence[ChannelSpec]) -> str | None:
    """The rail that stands for the whole device: a board input (VDD_IN), RAPL psys or package."""
    candidates = [s for s in specs if s.quantity == "power" or s.kind is ReadKind.COUNTER]
    for test in (
        lambda s: s.label.upper() in ("VDD_IN", "VIN", "IN"),
        lambda s: "psys" in s.name,
        lambda s: s.name.startswith("rapl.package-0.") or s.name == "rapl.package-0.energy",
        lambda s: True,
    ):
        for s in candidates:
            if test(s):
                return s.name
    return None


def _pick_example(examples: Sequence[dict[str, np.ndarray]], i: int) -> dict[str, np.ndarray]:
    return examples[i % len(examples)]


def _region_bytes(regions: native.Regions) -> int:
    """The region buffer's size: begin and end ticks, plus cycles and instructions at both
    marks when hardware counters are open (8 bytes each per inference)."""
    return regions.capacity * 8 * (6 if regions.has_counters else 2)


def _warm_up(
    runner: Runner,
    examples: Sequence[dict[str, np.ndarray]],
    plan: RunPlan,
    progress: Progress | None,
) -> int:
    n = 0
    start = last = time.perf_counter()
    while n < plan.warmup_count or time.perf_counter() - start < plan.warmup_seconds:
        runner.set_inputs(_pick_example(examples, n))
        runner.invoke()
        n += 1
        now = time.perf_counter()
        if progress and now - last >= PROGRESS_EVERY_S:
            last = now
            progress(
                "warm-up", n, _fraction(n, plan.warmup_count, now - start, plan.warmup_seconds)
            )
        if now - start > plan.max_seconds:
            break
    if progress:
        progress("warm-up", n, 1.0)
    return n


def _fraction(n: int, count: int, elapsed: float, seconds: float) -> float:
    """How far a phase that ends when both a count and a duration are reached has come."""
    by_count = n / count if count else 1.0
    by_time = elapsed / seconds if seconds else 1.0
    return min(1.0, by_count, by_time)


def _measure(
    runner: Runner,
    examples: Sequence[dict[str, np.ndarray]],
    plan: RunPlan,
    regions: native.Regions,
    progress: Progress | None,
    outputs: OutputBuffers,
) -> tuple[float, bool]:
    """The measured loop. Returns its wall time in seconds and whether Ctrl-C ended it.

    After each region (never inside it) the first output's arg-max and its value are written to
    the preallocated buffers, so the report carries the output distribution that drift checks
    compare between runs without the loop allocating anything per inference. Ctrl-C
    (KeyboardInterrupt) ends the loop and keeps the complete regions; an inference it cut in
    the middle is not counted (its region has no end).
    """
    begin, end = native.mark_begin, native.mark_end
    set_inputs, invoke, get_outputs = runner.set_inputs, runner.invoke, runner.get_outputs
    out_info = runner.outputs[0] if runner.outputs else None
    scale = out_info.scale if out_info is not None and out_info.quantized else 1.0
    zero = out_info.zero_point if out_info is not None and out_info.quantized else 0
    clock = time.perf_counter
    delay = plan.delay_s
    top1, top_score = outputs.top1, outputs.top_score
    regions.activate()
    start = clock()
    last = 0.0
    n = 0
    interrupted = False
    try:
        while True:
            set_inputs(_pick_example(examples, n))
            begin()
            invoke()
            end()
            if out_info is not None:
                first = get_outputs()[0].reshape(-1)
                k = int(np.argmax(first))
                top1[n] = k
                top_score[n] = (float(first[k]) - zero) * scale
            n += 1
            elapsed = clock() - start
            if (n >= plan.min_count and elapsed >= plan.min_seconds) or n >= plan.max_count:
                break
            if elapsed >= plan.max_seconds:
                break
            if progress and elapsed - last >= PROGRESS_EVERY_S:
                last = elapsed
                frac = _fraction(n, plan.min_count, elapsed, plan.min_seconds)
                progress("measure", n, max(frac, elapsed / plan.max_seconds))
            if delay:
                time.sleep(delay)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        regions.deactivate()
    if progress and not interrupted:
        progress("measure", n, 1.0)
    return clock() - start, interrupted


def _slow_extremes(slow: Trace | None, quantity: str) -> dict[str, dict[str, float]]:
    """Per channel of a quantity: first, last, min and max of the slow trace (finite values)."""
    out: dict[str, dict[str, float]] = {}
    if slow is None or len(slow) == 0:
        return out
    for spec in slow.specs:
        if spec.quantity != quantity:
            continue
        col = _column(slow, spec)
        col = col[np.isfinite(col)]
        if len(col):
            out[spec.name] = {
                "start": float(col[0]),
                "end": float(col[-1]),
                "min": float(col.min()),
                "max": float(col.max()),
            }
    return out


def _freq_warnings(slow: Trace | None) -> list[str]:
    out: list[str] = []
    if slow is None or len(slow) == 0:
        return out
    for spec in slow.specs:
        col = _column(slow, spec)
        col = col[np.isfinite(col)]
        if not len(col):
            continue
        if spec.quantity == "frequency" and col.max() > col.min():
            out.append(
                f"CPU frequency changed during the run ({spec.name}: "
                f"{col.min() / 1e6:.0f}-{col.max() / 1e6:.0f} MHz): throttling or a "
                "non-performance governor"
            )
        if spec.quantity == "temperature" and col.max() - col.min() >= 5.0:
            out.append(
                f"{spec.name} rose {col.max() - col.min():.1f} °C during the run "
                f"(to {col.max():.1f} °C): thermal throttling may follow"
            )
    return out


Examples = Sequence[dict[str, np.ndarray]]


def run_session(
    runner: Runner,
    make_examples: Callable[[Runner], Examples],
    plan: RunPlan,
    roots: SystemRoots | None = None,
    *,
    counters: bool = True,
    progress: Progress | None = None,
) -> SessionResult:
    """Profile ``runner`` following ``plan``, cycling through the examples that
    ``make_examples`` gives once the model is loaded (its input tensors are known then)."""
    roots = roots or SystemRoots.from_env()
    clock = native.clock_info()
    pid = os.getpid()
    governors = read_governors(roots)
    monitor = Monitor(
        roots,
        pid,
        rate_hz=plan.rate_hz,
        slow_rate_hz=plan.slow_rate_hz,
        reserve_seconds=plan.monitored_seconds,
    )
    rss_spec = monitor.fast.specs[0]
    # The tool's own buffers (region marks, output facts) exist and are resident before the
    # baseline, so load RSS is the model's and nothing the loop writes grows the process.
    regions = native.Regions(plan.max_count, counters=counters)
    outputs = OutputBuffers.allocate(plan.max_count)
    _, rss_now = monitor.fast.read_now()
    rss_before = float(rss_now[0])
    runner.probe()
    start_anchor = read_anchor()
    monitor.start()
    try:
        t_load0 = native.tick()
        runner.prepare()
        t_load1 = native.tick()
        if progress:
            progress("load", 1, 1.0)
        examples = make_examples(runner)
        if not examples:
            raise InputError("no input examples to run")
        warm = _warm_up(runner, examples, plan, progress)
        runner.device_measurements()  # the warm-up's, if the device measures: not reported
        cpu0 = cpu_snapshot(roots, pid)
        wall, interrupted = _measure(runner, examples, plan, regions, progress, outputs)
        cpu1 = cpu_snapshot(roots, pid)
    finally:
        traces = monitor.stop()
    end_anchor = read_anchor()
    marks = regions.arrays()
    if interrupted and not len(marks["begin_tick"]):
        raise KeyboardInterrupt  # nothing measured: nothing to report
    if regions.dropped:
        raise InputError(f"{regions.dropped} inferences did not fit the region buffer")
    begin_ns = clock.ticks_to_ns(marks["begin_tick"])
    end_ns = clock.ticks_to_ns(marks["end_tick"])
    latency = clock.ticks_to_seconds(marks["end_tick"] - marks["begin_tick"])
    device = runner.device_measurements()
    host_round_trip = None
    if device is not None:
        if len(device.latency_s) != len(latency):
            raise InputError(
                f"the device reported {len(device.latency_s)} inferences, the host made "
                f"{len(latency)}"
            )
        host_round_trip, latency = latency, device.latency_s
    measured = len(marks["begin_tick"])
    has_outputs = bool(runner.outputs) and measured > 0
    fast = traces.fast
    t_ns = fast.times_ns(clock)
    energy = _rail_energy(fast, t_ns, begin_ns, end_ns)
    rss = _column(fast, rss_spec)
    peak_rss = sampled_peak_in_regions(t_ns, rss, begin_ns, end_ns)
    load_ns = clock.ticks_to_ns(np.array([t_load0, t_load1], dtype=np.uint64))
    after_load = t_ns >= load_ns[1]
    rss_after = _finite_first(rss[after_load])
    # The baseline is the sampler's last reading before the load when it has one: the same
    # method as rss_after, with the monitor's own threads already running in both.
    before_load = rss[t_ns <= load_ns[0]]
    before_load = before_load[np.isfinite(before_load)]
    if before_load.size:
        rss_before = float(before_load[-1])
    # The load's peak: the baseline, the samples bracketing the load and those inside it, so it
    # is never below the baseline or the after-load figure reported next to it.
    load_peak = sampled_peak_in_regions(t_ns, rss, load_ns[:1], load_ns[1:])[0]
    init = {
        "time_s": float(clock.ticks_to_seconds(t_load1 - t_load0)),
        "rss_before_bytes": rss_before,
        "rss_after_bytes": rss_after,
        "rss_peak_bytes": sampled_peak(np.array([load_peak]), rss_before, rss_after),
        "tool_buffers_bytes": _region_bytes(regions) + outputs.nbytes + monitor.reserved_bytes,
        "warmup_inferences": warm,
    }
    lat = summarize(latency)
    warnings = list(lat.warnings)
    if interrupted:
        warnings.append(
            f"interrupted (Ctrl-C) after {len(latency)} of at least {plan.min_count} "
            "measured inferences: the numbers cover only those"
        )
    if device is not None:
        warnings.extend(device.warnings)
    summary: dict[str, Any] = {
        "latency": lat.describe(),
        "inferences_per_s": len(latency) / wall if wall > 0 else None,
        "measured_wall_s": wall,
        "rss_peak_bytes": sampled_peak(rss, rss_before),
        "rss_steady_bytes": lower_median(peak_rss),
    }
    rails: dict[str, Any] = {}
    # The measured phase as one region: mean power = its energy / its duration, with the power
    # interpolated at its edges, so a phase shorter than a sample period still gets a value.
    phase_b, phase_e = begin_ns[:1], end_ns[-1:]
    phase_s = float((phase_e[0] - phase_b[0]) / 1e9) if len(phase_b) else 0.0
    for name, per_inf in energy.items():
        spec = next(s for s in fast.specs if s.name == name)
        col = _column(fast, spec)
        avg = peak = None
        if phase_s > 0:
            if spec.kind is ReadKind.COUNTER:
                phase_j = energy_from_counter(t_ns, col, phase_b, phase_e)[0]
            else:
                phase_j = energy_in_regions(t_ns, col, phase_b, phase_e)[0]
                peak_w = peak_in_regions(t_ns, col, phase_b, phase_e)[0]
                peak = float(peak_w) if np.isfinite(peak_w) else None
            avg = float(phase_j / phase_s) if np.isfinite(phase_j) else None
        rails[name] = {
            "label": spec.label,
            "source": spec.source,
            "power_mean_w": avg,
            "power_peak_w": peak,
            "energy_per_inference_j": float(np.nanmean(per_inf))
            if np.isfinite(per_inf).any()
            else None,
        }
    if device is not None and host_round_trip is not None:
        summary["latency_source"] = "device"
        summary["host_round_trip"] = summarize(host_round_trip).describe()
        summary["device"] = dict(device.summary)
    summary["rails"] = rails
    summary["primary_rail"] = primary_rail(fast.specs)
    if summary["primary_rail"]:
        summary["energy_per_inference_j"] = rails[summary["primary_rail"]]["energy_per_inference_j"]
        summary["power_mean_w"] = rails[summary["primary_rail"]]["power_mean_w"]
    gov = sorted(set(governors.values()))
    if gov and gov != ["performance"]:
        warnings.append(
            f"CPU governor is {', '.join(gov)}, not performance: clocks may vary during the run"
        )
    warnings.extend(_freq_warnings(traces.slow))
    others = other_load(cpu0, cpu1, wall)
    steal = steal_fraction(cpu0, cpu1)
    if steal is not None and steal > STEAL_WARN:
        warnings.append(
            f"the hypervisor stole {steal:.1%} of CPU time during the measurement: "
            "latencies and sampler deadlines are perturbed (a virtual machine under contention)"
        )
    if others is not None and others > 0.1:
        warnings.append(
            f"other processes used {others:.2f} CPU cores during the measurement: "
            "results may be perturbed"
        )
    stats = fast.stats
    if stats.missed_ratio > 0.001:
        warnings.append(
            f"the sampler missed {stats.missed_ratio:.2%} of its deadlines at {plan.rate_hz:g} Hz"
        )
    if not stats.realtime:
        warnings.append("the sampler ran without real-time priority (no CAP_SYS_NICE)")
    for name, (count, why) in {**fast.channel_errors}.items():
        warnings.append(f"channel {name}: {count} reads failed ({why})")
    env = {
        "governors": governors,
        "load_average": load_average(roots),
        "other_load_cores": others,
        "steal_fraction": steal,
        "sampler": stats.describe(),
        "slow_sampler": traces.slow.stats.describe() if traces.slow else None,
        "cpu_freq_hz": _slow_extremes(traces.slow, "frequency"),
        "temperature_c": _slow_extremes(traces.slow, "temperature"),
        "channel_notes": traces.notes,
    }
    return SessionResult(
        clock=clock,
        init=init,
        begin_ns=begin_ns,
        end_ns=end_ns,
        latency_s=latency,
        cycles=marks.get("cycles"),
        instructions=marks.get("instructions"),
        energy_j=energy,
        peak_rss_bytes=peak_rss,
        traces=traces,
        summary=summary,
        environment=env,
        warnings=warnings,
        counters_reason=regions.counters_reason,
        device=device,
        host_round_trip_s=host_round_trip,
        output_top1=outputs.top1[:measured].copy() if has_outputs else None,
        output_top_score=outputs.top_score[:measured].copy() if has_outputs else None,
        interrupted=interrupted,
        anchors={"start": start_anchor, "end": end_anchor},
    )
