"""Fault injection: a proxy between two pty pairs corrupts, drops, duplicates and delays bytes
(and presses the reset button) between edgeprof.bridge and the real host firmware.

The outcome is always a recovered session whose every number is right, or a clear
EdgeprofError; never a wrong number accepted, never a hang (every wait is bounded)."""

from __future__ import annotations

import os
import re
import zlib

import numpy as np
import pytest

from edgeprof.bridge.device import Device
from edgeprof.bridge.protocol import DeviceResetError, DeviceTimeoutError
from edgeprof.bridge.transport import open_transport
from edgeprof.errors import EdgeprofError
from edgeprof.testing.fault_proxy import FaultProxy, Faults
from edgeprof.testing.host_firmware import HostFirmware, dot_reference, xorshift_bytes

pytestmark = pytest.mark.integration

ROWS = np.frombuffer(np.random.default_rng(11).bytes(256 * 24), dtype=np.int8)


def session(proxy: FaultProxy, runs: int) -> int:
    """Upload, run, check every number; returns the results checked."""
    checked = 0
    with Device(open_transport(proxy.path), timeout=0.15, tries=12, result_timeout=5.0) as d:
        d.hello()
        d.load("model", ROWS.tobytes(), chunk=512)
        want = dot_reference(ROWS, xorshift_bytes(77, 256)).tobytes()
        for _ in range(runs):
            _, results = d.run_all("dot", 8, seed=77, outputs=True)
            assert [r.index for r in results] == list(range(8))
            for r in results:
                assert r.output == want
                assert r.digest == zlib.crc32(want)
                checked += 1
        x = np.frombuffer(os.urandom(256), dtype=np.int8)
        d.load("input", x.tobytes())
        _, results = d.run_all("dot", 2, loaded_input=True, outputs=True)
        assert all(r.output == dot_reference(ROWS, x).tobytes() for r in results)
    return checked


MILD = Faults(corrupt=0.03, drop=0.03, duplicate=0.03, delay_max_s=0.002, garbage=0.03)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mild_damage_both_ways_recovers_with_exact_numbers(fw: HostFirmware, seed: int) -> None:
    with FaultProxy(fw, to_device=MILD, to_host=MILD, seed=seed) as proxy:
        assert session(proxy, runs=3) == 24
    st = proxy.stats
    assert st.corrupted + st.dropped + st.duplicated + st.garbage > 0  # it really damaged


@pytest.mark.parametrize("seed", [4, 5])
def test_heavy_damage_gives_exact_numbers_or_a_clear_error(fw: HostFirmware, seed: int) -> None:
    heavy = Faults(corrupt=0.3, drop=0.2, duplicate=0.2, delay_max_s=0.005, garbage=0.2)
    # Every number the session returns is checked inside it. Damaged frames fail their CRC and
    # are dropped, so the one way such a session may end instead is the link giving up: a
    # DeviceTimeoutError that names the request and the tries. A damaged frame taken for a
    # good one would show as a ProtocolViolationError or a device error, and fail the test.
    with FaultProxy(fw, to_device=heavy, to_host=heavy, seed=seed) as proxy:
        try:
            outcome = f"{session(proxy, runs=1)} results checked"
        except DeviceTimeoutError as exc:
            outcome = str(exc)
    gave_up = r"^no (reply to [A-Z_]+ .* after \d+ tries|RESULT|RUN_STARTED)"
    assert outcome == "8 results checked" or re.match(gave_up, outcome), outcome
    st = proxy.stats
    assert st.corrupted > 0
    assert st.dropped > 0


def test_reset_mid_run_is_reported_not_stitched(fw: HostFirmware) -> None:
    with (
        FaultProxy(fw, reset_after_bytes=4000) as proxy,
        Device(open_transport(proxy.path), timeout=0.2, result_timeout=3.0) as d,
    ):
        first_boot = d.hello().boot_id
        results: list[object] = []
        with pytest.raises(DeviceResetError):
            results.extend(d.run("dot", 10_000, outputs=True))
        info = d.hello()  # the session starts again with the new boot
        assert info.boot_id != first_boot
        _, again = d.run_all("dot", 3)
        assert len(again) == 3


def test_device_that_vanishes_mid_run_times_out(fw: HostFirmware) -> None:
    with (
        FaultProxy(fw) as proxy,
        Device(open_transport(proxy.path), timeout=0.1, tries=3, result_timeout=1.0) as d,
    ):
        d.hello()
        proxy.to_host.drop = 1.0  # the link goes dead from the device's side
        with pytest.raises(EdgeprofError, match=r"no RESULT|no reply|no RUN_STARTED"):
            list(d.run("dot", 5))
