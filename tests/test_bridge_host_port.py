"""The reference firmware's host port: a real process serving a real pty, driven by
edgeprof.bridge exactly as a board is (pyserial opens the pty like any serial port)."""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest

from edgeprof.bridge.device import Device
from edgeprof.bridge.protocol import DeviceResetError, ModelRefusedError
from edgeprof.bridge.transport import open_transport
from edgeprof.testing.host_firmware import HostFirmware, dot_reference, xorshift_bytes

MODELS = __import__("pathlib").Path(__file__).resolve().parents[1] / "agent" / "edgeprof" / "models"


pytestmark = pytest.mark.integration


def test_info_describes_the_host_port(dev: Device) -> None:
    info = dev.info
    assert info is not None
    assert info.board == "host-firmware"
    assert info.version == 1
    assert info.cycle_source == "clock-monotonic"
    assert info.cycle_hz == 1_000_000_000
    assert info.max_payload == 4096
    assert {"dot", "model"} <= set(info.workloads)
    assert info.boot_id != 0


def test_ping_echoes(dev: Device) -> None:
    data = os.urandom(300)
    assert dev.ping(data) > 0
    assert dev.ping() > 0


def test_dot_workload_matches_the_reference_arithmetic(dev: Device) -> None:
    rows = np.frombuffer(os.urandom(256 * 8), dtype=np.int8)
    stats = dev.load("model", rows.tobytes())
    assert stats.size == len(rows)
    assert stats.wire_bytes > stats.size
    started, results = dev.run_all("dot", 5, warmup=2, seed=1234, outputs=True)
    assert (started.n, started.in_bytes, started.out_bytes) == (5, 256, 8)
    want = dot_reference(rows, xorshift_bytes(1234, 256))
    assert [r.index for r in results] == [0, 1, 2, 3, 4]
    for r in results:
        assert r.output == want.tobytes()
        assert r.digest == zlib.crc32(want.tobytes())
        assert r.cycles > 0
        assert r.heap_bytes == 8
        assert r.heap_hwm_bytes >= 8


def test_uploaded_input_is_used(dev: Device) -> None:
    x = np.frombuffer(os.urandom(256), dtype=np.int8)
    dev.load("input", x.tobytes())
    _, results = dev.run_all("dot", 1, loaded_input=True, outputs=True)
    rows = xorshift_bytes(0x5EED, 16 * 256)  # the built-in rows when nothing is uploaded
    assert results[0].output == dot_reference(rows, x).tobytes()


def test_model_workload_equals_litert_bit_for_bit(dev: Device) -> None:
    pytest.importorskip("ai_edge_litert")
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgeprof.bridge.model_blob import compile_tflite

    data = (MODELS / "ds_cnn_int8.tflite").read_bytes()
    dev.load("model", compile_tflite(data, "litert"))
    interp = Interpreter(
        model_content=data,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interp.allocate_tensors()
    i_det, o_det = interp.get_input_details()[0], interp.get_output_details()[0]
    rng = np.random.default_rng(3)
    for _ in range(3):
        x = rng.integers(-128, 128, size=i_det["shape"], dtype=np.int8)
        dev.load("input", x.tobytes())
        started, results = dev.run_all("model", 1, loaded_input=True, outputs=True, layers=True)
        interp.set_tensor(i_det["index"], x)
        interp.invoke()
        want = interp.get_tensor(o_det["index"])
        assert results[0].output == want.tobytes()
        assert started.ops
        assert results[0].layer_cycles is not None
        assert len(results[0].layer_cycles) == len(started.ops)
        assert started.arena_bytes > 0
        assert results[0].heap_bytes == started.arena_bytes


def test_reset_command_changes_the_boot_id(dev: Device) -> None:
    before = dev.info
    assert before is not None
    after = dev.reset()
    assert after.boot_id != before.boot_id
    assert dev.ping() > 0


def test_reset_button_mid_session_is_noticed(fw: HostFirmware, dev: Device) -> None:
    def ping_until_noticed() -> None:
        for _ in range(50):  # the re-exec takes a moment; each PING is bounded
            dev.ping()

    fw.reset_button()
    with pytest.raises(DeviceResetError, match="restarted"):
        ping_until_noticed()
    info = dev.hello()  # a new session with the new boot
    assert info.boot_id != 0
    with pytest.raises(ModelRefusedError, match="no model blob"):
        dev.run_all("model", 1)  # the upload did not survive the reset


def test_a_second_client_after_the_first_closed(fw: HostFirmware) -> None:
    for _ in range(2):
        with Device(open_transport(fw.path)) as d:
            d.hello()
            assert d.ping() > 0
