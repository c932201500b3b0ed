"""Memory without the tool in it, peaks that are samples, and steal time from /proc/stat.

The RSS checks are causal and in bytes, never in time: the measured loop allocates nothing per
inference (the RSS it reports does not grow with the count), the tool's own buffers are in the
baseline (load RSS is a bare LiteRT load's), and every peak is a sample the run took.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeprof.device.envinfo import cpu_snapshot, steal_fraction
from edgeprof.device.roots import SystemRoots
from edgeprof.errors import InputError
from edgeprof.measure.inputs import random_inputs
from edgeprof.measure.memory import lower_median, sampled_peak, sampled_peak_in_regions
from edgeprof.measure.session import STEAL_WARN, RunPlan, run_session
from edgeprof.report.codec import decode
from edgeprof.testing.reports import make_report

# --- peaks are samples -------------------------------------------------------------------------


def brute_peak(t: np.ndarray, v: np.ndarray, b: int, e: int) -> float:
    """From the last sample at or before b to the first at or after e, finite values only."""
    lo = int(np.flatnonzero(t <= b)[-1]) if (t <= b).any() else -1
    hi = int(np.flatnonzero(t >= e)[0]) if (t >= e).any() else -1
    if lo < 0 or hi < 0:
        return float("nan")
    w = v[lo : hi + 1]
    w = w[np.isfinite(w)]
    return float(w.max()) if w.size else float("nan")


def test_a_short_region_takes_its_bracketing_samples_not_an_interpolation() -> None:
    t = np.array([0, 1000, 2000, 3000])
    v = np.array([4096.0, 8192.0, 12288.0, 4096.0])
    # inside one sample period: the larger of the two samples around it, not 5324.8
    assert sampled_peak_in_regions(t, v, [100], [400]).tolist() == [8192.0]
    # on a sample: that sample and the next one (at or after the end)
    assert sampled_peak_in_regions(t, v, [1000], [1000]).tolist() == [8192.0]
    assert sampled_peak_in_regions(t, v, [2500], [3000]).tolist() == [12288.0]
    # outside the trace on either side: not measured
    assert np.isnan(sampled_peak_in_regions(t, v, [-5, 2900], [10, 3001])).all()


def test_failed_reads_are_skipped_and_all_failed_is_nan() -> None:
    t = np.array([0, 10, 20, 30])
    v = np.array([np.nan, 100.0, np.nan, np.nan])
    got = sampled_peak_in_regions(t, v, [0, 21], [10, 29])
    assert got[0] == 100.0
    assert np.isnan(got[1])


def test_matches_brute_force_on_random_traces() -> None:
    rng = np.random.default_rng(5)
    for _ in range(20):
        t = np.cumsum(rng.integers(1, 50, 200))
        v = rng.integers(1, 1000, 200).astype(float) * 4096
        v[rng.random(200) < 0.1] = np.nan
        b = np.sort(rng.integers(-20, int(t[-1]) + 20, 60))
        e = b + rng.integers(0, 80, 60)
        got = sampled_peak_in_regions(t, v, b, e)
        want = [brute_peak(t, v, int(x), int(y)) for x, y in zip(b, e, strict=True)]
        np.testing.assert_array_equal(got, want)
        ok = got[np.isfinite(got)]
        assert np.isin(ok, v).all()  # every peak is a sample that was taken


def test_lower_median_and_peak_are_values_that_were_read() -> None:
    assert lower_median([4.0, 1.0, 3.0, 2.0]) == 2.0  # not 2.5
    assert lower_median([np.nan, 7.0]) == 7.0
    assert lower_median([np.nan]) is None
    assert sampled_peak([1.0, np.nan, 3.0], 2.0) == 3.0
    assert sampled_peak([1.0], 5.0, None) == 5.0
    assert sampled_peak([np.nan]) is None


# --- steal time ---------------------------------------------------------------------------------


def write_stat(root: Path, user: int, idle: int, steal: int) -> None:
    """A /proc/stat whose aggregate line has the given USER_HZ ticks (the rest small)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "stat").write_text(
        f"cpu  {user} 0 10 {idle} 5 0 1 {steal} 0 0\ncpu0 1 0 0 1 0 0 0 0 0 0\nintr 0\n"
    )


def test_steal_fraction_from_proc_stat(tmp_path: Path) -> None:
    roots = SystemRoots(procfs=tmp_path / "proc", sysfs=tmp_path / "sys", etc=tmp_path / "etc")
    write_stat(roots.procfs, user=1000, idle=1000, steal=0)
    before = cpu_snapshot(roots, os.getpid())
    write_stat(roots.procfs, user=1700, idle=1250, steal=50)  # 1000 ticks passed, 50 stolen
    after = cpu_snapshot(roots, os.getpid())
    assert steal_fraction(before, after) == pytest.approx(0.05)
    assert steal_fraction(before, before) is None  # no CPU time passed


def test_no_steal_column_is_not_measured(tmp_path: Path) -> None:
    """Kernels before 2.6.11 have no steal field: not 0 %, unknown."""
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "stat").write_text("cpu  100 0 10 1000 5\n")
    roots = SystemRoots(procfs=proc, sysfs=tmp_path / "sys", etc=tmp_path / "etc")
    snap = cpu_snapshot(roots, os.getpid())
    assert snap.steal_s is None
    assert steal_fraction(snap, snap) is None


def test_the_report_takes_the_new_fields_and_refuses_nonsense() -> None:
    """Optional since report 1.2: absent is fine (older reports), a steal share is in [0, 1],
    a byte count is a non-negative int."""
    env = {"governors": {}, "load_average": [0.0, 0.0, 0.0]}
    make_report(environment={**env, "steal_fraction": 0.03}, init={"tool_buffers_bytes": 1 << 20})
    make_report(environment={**env, "steal_fraction": None})
    with pytest.raises(InputError, match="steal_fraction"):
        make_report(environment={**env, "steal_fraction": 1.5})
    with pytest.raises(InputError, match="tool_buffers_bytes"):
        make_report(environment=env, init={"tool_buffers_bytes": -1})


if not os.environ.get("CI"):  # in CI a missing runtime fails the tests instead
    pytest.importorskip("ai_edge_litert", reason="needs LiteRT: pip install 'edgeprof[litert]'")

import edgeprof.models  # noqa: E402
from edgeprof.runners import make_runner  # noqa: E402
from edgeprof.runners.base import ModelFile  # noqa: E402

MLP = Path(edgeprof.models.DIRECTORY) / "kws_mlp_int8.tflite"


def stolen_during_the_measurement(tmp_path: Path) -> SystemRoots:
    """A procfs root: the real process directories, a /proc/stat this test writes."""
    proc = tmp_path / "proc"
    proc.mkdir()
    pid = str(os.getpid())
    (proc / pid).symlink_to(f"/proc/{pid}")
    (proc / "loadavg").write_text("0.10 0.20 0.30 1/100 1\n")
    write_stat(proc, user=1000, idle=1000, steal=0)
    return SystemRoots(procfs=proc, sysfs=tmp_path / "sys", etc=tmp_path / "etc")


@pytest.mark.integration
def test_a_run_records_steal_and_warns_above_the_threshold(tmp_path: Path) -> None:
    """The hypervisor steals 3 % of CPU time while the loop runs (the fake /proc/stat moves
    when the measurement reports it is done, before the closing snapshot)."""
    roots = stolen_during_the_measurement(tmp_path)

    def progress(phase: str, n: int, fraction: float) -> None:
        if phase == "measure" and fraction == 1.0:
            write_stat(roots.procfs, user=1900, idle=1070, steal=30)  # 1000 ticks, 30 stolen

    runner = make_runner("tflite", ModelFile.load(MLP))
    plan = RunPlan(warmup_count=2, min_count=50, min_seconds=0.0, max_count=100, rate_hz=200)
    result = run_session(
        runner,
        lambda r: random_inputs(r.inputs, 4),
        plan,
        roots,
        counters=False,
        progress=progress,
    )
    assert result.environment["steal_fraction"] == pytest.approx(0.03)
    assert STEAL_WARN < 0.03
    (warning,) = [w for w in result.warnings if "hypervisor" in w]
    assert "3.0% of CPU time" in warning


# --- the tool is not in the memory it reports ----------------------------------------------------


def cli_run(tmp: Path, *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "edgeprof", "run", str(MLP), "--json", "--store", str(tmp), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = decode(Path(json.loads(proc.stdout)["report_path"]).read_bytes())
    return report


@pytest.fixture(scope="module")
def long_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """200,000 inferences (the old per-inference lists grew RSS by ~10 MB over them)."""
    tmp = tmp_path_factory.mktemp("long")
    return cli_run(tmp, "--count", "200000", "--min-seconds", "0", "--warmup", "3")


@pytest.mark.integration
def test_rss_does_not_grow_with_the_count(long_run: dict[str, Any]) -> None:
    """From inference 50,000 to 200,000 the reported peak RSS may move by a page or two of
    interpreter housekeeping, not by bytes per inference: < 1 KiB per 10,000 inferences."""
    peak = long_run["per_inference"]["peak_rss_bytes"]
    assert len(peak) == 200_000
    n = 50_000
    grown = float(np.nanmax(peak[3 * n :]) - np.nanmax(peak[n - 1000 : n]))
    limit = 1024 * (len(peak) - n) / 10_000
    assert grown < limit, f"RSS grew {grown:.0f} B over {3 * n} inferences"


@pytest.mark.integration
def test_every_peak_is_a_sample_never_below_a_reported_value(long_run: dict[str, Any]) -> None:
    peak = long_run["per_inference"]["peak_rss_bytes"]
    ok = peak[np.isfinite(peak)]
    assert ok.size
    rss = long_run["traces"]["fast"]["values"][:, 0]  # mem.rss
    assert np.isin(ok, rss).all()  # each is a sample of the trace, whole bytes
    assert np.array_equal(ok, np.floor(ok))
    init, summary = long_run["init"], long_run["summary"]
    assert init["rss_peak_bytes"] >= init["rss_after_bytes"]
    assert init["rss_peak_bytes"] >= init["rss_before_bytes"]
    assert summary["rss_steady_bytes"] in set(ok.tolist())
    assert summary["rss_peak_bytes"] >= max(float(ok.max()), init["rss_peak_bytes"])
    assert summary["rss_peak_bytes"] == float(int(summary["rss_peak_bytes"]))


BARE_LOAD = """
import os, sys
from ai_edge_litert.interpreter import Interpreter
def rss():
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = rss()
it = Interpreter(model_path=sys.argv[1])
it.allocate_tensors()
print(rss() - before)
"""


@pytest.mark.integration
def test_load_rss_is_a_bare_litert_load(tmp_path: Path, long_run: dict[str, Any]) -> None:
    """rss_after - rss_before measures the model, not the tool's buffers: the tool's own
    (region marks, output facts, the trace) are resident before the baseline, and they are tens
    of MB for the 1,000,000-inference default, so being within 1 MiB of a bare load says so."""
    bare = subprocess.run(
        [sys.executable, "-c", BARE_LOAD, str(MLP)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    bare_load = int(bare.stdout.split()[-1])
    init = long_run["init"]
    ours = init["rss_after_bytes"] - init["rss_before_bytes"]
    assert init["tool_buffers_bytes"] > 16 * 1024 * 1024
    assert abs(ours - bare_load) < 1024 * 1024, (ours, bare_load)
