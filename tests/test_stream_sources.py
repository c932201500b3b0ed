"""Stream sources end to end: real helper processes feed samples that land in the sampler's
trace, on the native clock's ticks, next to the channels the C sampler reads itself."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgeprof.device.channels import ReadKind
from edgeprof.device.roots import SystemRoots
from edgeprof.device.sampler import Sampler, Trace
from edgeprof.device.sources import registry
from edgeprof.device.sources.base import StreamSamples, hold
from edgeprof.device.sources.stream import LineStream, ProcStatusStream, stream_channel
from edgeprof.device.sources.system import rss_channel
from edgeprof.errors import InputError

ROOTS = SystemRoots.from_env()


def reference_hold(trace: Trace, samples: StreamSamples) -> np.ndarray:
    """The held column computed the slow, obvious way."""
    out = np.full((len(trace), samples.values.shape[1]), np.nan)
    for i, t in enumerate(trace.ticks):
        earlier = np.nonzero(samples.ticks <= t)[0]
        if len(earlier):
            out[i] = samples.values[earlier[-1]]
    return out


def feed(script: str) -> subprocess.Popen[bytes]:
    """A helper process whose stdout is the stream."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE)


def test_a_pipe_from_a_helper_process_lands_in_the_trace() -> None:
    proc = feed(
        """
        import sys
        for i in range(200):
            sys.stdout.write(f"{i * 1000} {i}\\n")   # milliwatts and a counter
            sys.stdout.flush()
        """
    )
    assert proc.stdout is not None
    channels = [
        stream_channel("meter.power", "power", "W", "meter:test", scale=1e-3, label="USB-C"),
        stream_channel("meter.seq", "count", "", "meter:test"),
    ]
    stream = LineStream(proc.stdout.fileno(), channels, name="meter")
    with Sampler([rss_channel(ROOTS, os.getpid())], 500.0, streams=[stream]) as sampler:
        assert proc.wait(timeout=60) == 0
    proc.stdout.close()
    trace = sampler.trace
    assert trace is not None
    assert trace.names == ["mem.rss", "meter.power", "meter.seq"]
    assert [s.kind for s in trace.specs] == [ReadKind.STATM_RSS, ReadKind.STREAM, ReadKind.STREAM]
    got = trace.streams["meter"]
    # every line, in order, scaled once, with non-decreasing ticks of the native clock
    np.testing.assert_array_equal(got.values[:, 1], np.arange(200))
    np.testing.assert_allclose(got.values[:, 0], np.arange(200) * 1.0)
    assert np.all(np.diff(got.ticks.astype(np.int64)) >= 0)
    assert got.errors == 0
    # the trace's columns hold, at each native tick, the latest line that had arrived
    np.testing.assert_array_equal(trace.values[:, 1:], reference_hold(trace, got))
    assert trace.values.shape == (len(trace), 3)
    assert "meter.power" not in trace.channel_errors
    assert trace.specs[1].describe()["kind"] == "stream"


def test_malformed_lines_are_counted_not_guessed() -> None:
    proc = feed(
        """
        print("1")
        print("2 3")      # two values for one channel
        print("watts")    # not a number
        print("inf")      # not finite
        print("")         # blank: nothing
        print("4", end="")  # the last line needs no newline
        """
    )
    assert proc.stdout is not None
    stream = LineStream(proc.stdout.fileno(), [stream_channel("x.v", "voltage", "V", "t")])
    with Sampler([rss_channel(ROOTS, os.getpid())], 200.0, streams=[stream]) as sampler:
        assert proc.wait(timeout=60) == 0
    proc.stdout.close()
    assert sampler.trace is not None
    got = sampler.trace.streams["lines"]
    assert got.values[:, 0].tolist() == [1.0, 4.0]
    assert got.errors == 3
    assert "not a finite number" in got.last_error
    assert sampler.trace.channel_errors["x.v"] == (3, got.last_error)


def test_peak_rss_of_a_child_from_proc_status() -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; b = bytearray(64 << 20); b[::4096] = b'x' * len(b[::4096]); "
            "print('touched', flush=True); del b; sys.stdin.readline()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        stream = ProcStatusStream(ROOTS, child.pid, rate_hz=100.0)
        with Sampler([rss_channel(ROOTS, child.pid)], 200.0, streams=[stream]) as sampler:
            assert child.stdout.readline().strip() == "touched"  # 64 MiB touched, then freed
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.wait(timeout=60) == 0
    finally:
        child.kill()
        child.wait()
    assert sampler.trace is not None
    got = sampler.trace.streams["proc-status"]
    hwm, rss = got.values[:, 0], got.values[:, 1]
    assert len(got.ticks) >= 2  # one at start, one at stop at least
    # Each reading is consistent (the kernel reports VmHWM as at least VmRSS), but VmHWM is not
    # monotonic across readings: while memory grows it is the live RSS, summed from per-CPU
    # counters that lag, so it can dip by a few pages (seen: -60 KiB under load).
    assert np.all(rss <= hwm)
    # the last reading came after the child touched 64 MiB: the peak shows although the
    # memory was freed before anyone may have sampled it
    assert hwm[-1] >= 64 << 20
    assert sampler.trace.names == ["mem.rss", "mem.vmhwm", "mem.vmrss"]


def test_hold_before_between_and_after() -> None:
    samples = StreamSamples(
        np.array([10, 20, 20, 30], dtype=np.uint64), np.array([[1.0], [2.0], [3.0], [4.0]])
    )
    ticks = np.array([5, 10, 15, 20, 25, 35], dtype=np.uint64)
    held = hold(ticks, samples)[:, 0]
    np.testing.assert_array_equal(held, [np.nan, 1.0, 1.0, 3.0, 3.0, 4.0])
    assert hold(ticks, StreamSamples.empty(2)).shape == (6, 2)


def test_stream_channels_are_checked() -> None:
    with pytest.raises(InputError, match="not a stream one"):
        LineStream(0, [rss_channel(ROOTS, os.getpid())])
    with pytest.raises(InputError, match="stream channel: pass its source"):
        Sampler([stream_channel("a", "power", "W", "t")], 100.0)
    r, w = os.pipe()
    try:
        clash = LineStream(r, [stream_channel("mem.rss", "memory", "B", "t")])
        with pytest.raises(InputError, match="duplicate channel names"):
            Sampler([rss_channel(ROOTS, os.getpid())], 100.0, streams=[clash])
    finally:
        os.close(r)
        os.close(w)


def test_registry_lists_file_and_stream_sources() -> None:
    assert [s.name for s in registry.POWER_SOURCES] == ["hwmon", "iio-ina3221x", "powercap"]
    assert [s.name for s in registry.SYSTEM_SOURCES] == ["cpufreq", "thermal"]
    assert set(registry.PROCESS_SOURCES) == {"statm", "smaps_rollup"}
    assert dict(registry.STREAM_SOURCES) == {"lines": LineStream, "proc-status": ProcStatusStream}
