"""The QEMU Cortex-M4 port (mps2-an386) under qemu-system-arm, driven through edgeprof.bridge.qemu.

Real parts only: the firmware is built with arm-none-eabi-gcc by ``edgeprof.bridge.firmware_build``
(the code behind ``edgeprof firmware build``), runs under a real QEMU, and is reached through
pyserial's ``socket://`` URL exactly as the bridge reaches it. The bring-up firmware
(``edgeprof-smoke``) checks the port alone: UART, SysTick with its wrap, the DWT fallback, the
boot id, RESET and the semihosting exit status. The reference firmware (``edgeprof-fw``) is then
driven through the protocol (edgeprof.bridge.device) and end to end through ``edgeprof run``.
Every QEMU is killed even when a test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import serial

from edgeprof.bridge import firmware_build
from edgeprof.bridge.device import Device
from edgeprof.bridge.model_blob import compile_tflite
from edgeprof.bridge.protocol import DeviceResetError
from edgeprof.bridge.qemu import QemuMachine, check_firmware
from edgeprof.bridge.transport import open_transport
from edgeprof.errors import EdgeprofError, InputError
from edgeprof.testing.fault_proxy import FaultProxy, Faults
from edgeprof.testing.host_firmware import HostFirmware

ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = ROOT / "build" / "fw-qemu-tests"  # kept between sessions: rebuilt incrementally
EDGEPROF = [sys.executable, "-m", "edgeprof"]

TOOLS = ("arm-none-eabi-gcc", "qemu-system-arm", "cmake")
INSTALL = (
    "apt-get install --no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi "
    "qemu-system-arm cmake"
)
SYSTICK_PERIOD = 1 << 24

pytestmark = pytest.mark.qemu


def _need_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        msg = f"needs {', '.join(missing)} ({INSTALL})"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="module")
def build() -> firmware_build.BuildResult:
    _need_tools()
    return firmware_build.build_port("qemu-mps2-an386", BUILD_DIR, jobs=2)


@pytest.fixture
def smoke_elf(build: firmware_build.BuildResult) -> Path:
    return build.image("edgeprof-smoke").path


class Line:
    """A line-oriented client of the smoke firmware over pyserial (every read bounded)."""

    def __init__(self, url: str) -> None:
        self.port = serial.serial_for_url(url, timeout=20)

    def read(self) -> str:
        raw: bytes = self.port.readline()
        assert raw.endswith(b"\n"), f"no complete line from the firmware (got {raw!r})"
        return raw.decode("ascii").strip()

    def ask(self, command: str) -> str:
        self.port.write(command.encode("ascii") + b"\n")
        return self.read()

    def fields(self, command: str) -> dict[str, str]:
        return dict(part.split("=", 1) for part in self.ask(command).split())

    def close(self) -> None:
        self.port.close()


@pytest.fixture
def smoke(smoke_elf: Path) -> Iterator[tuple[QemuMachine, Line]]:
    with QemuMachine(smoke_elf, boot_id=0x1234ABCD) as machine:
        line = Line(machine.url)
        try:
            yield machine, line
        finally:
            line.close()


def boot_id(banner: str) -> str:
    assert banner.startswith("edgeprof-smoke boot="), banner
    return banner.split("=", 1)[1]


def test_build_reports_sizes(build: firmware_build.BuildResult) -> None:
    fw = build.image("edgeprof-smoke")
    assert fw.path.suffix == ".elf"
    assert 1000 < fw.text < 64 * 1024
    assert fw.stack == 32 * 1024  # the linker script's STACK_SIZE, not counted in bss
    assert fw.bss < 4096
    image = (fw.path.parent / "edgeprof-smoke.bin").stat().st_size
    assert fw.flash <= image <= fw.flash + 256  # plus the alignment padding between sections


def test_uart_echo_and_info(smoke: tuple[QemuMachine, Line]) -> None:
    _, line = smoke
    banner = line.read()
    assert line.ask("echo hello, cortex-m4") == "hello, cortex-m4"
    info = line.fields("info")
    assert info["board"] == "qemu-mps2-an386"
    assert info["source"] == "systick-icount"  # QEMU's DWT CYCCNT is detected as dead
    assert info["cpu_hz"] == "25000000"
    assert info["hz"] == "125000000"  # one count per instruction: 8 ns of virtual time
    assert info["boot"] == boot_id(banner)
    assert info["stack"] == str(32 * 1024)


def test_long_line_survives_one_byte_rx_buffer(smoke: tuple[QemuMachine, Line]) -> None:
    _, line = smoke
    line.read()
    text = "x" * 100
    assert line.ask("echo " + text) == text


def spin_counts(elf: Path, iterations: list[int]) -> list[int]:
    with QemuMachine(elf) as machine:
        line = Line(machine.url)
        try:
            line.read()
            return [int(line.fields(f"spin {n}")["cycles"]) for n in iterations]
        finally:
            line.close()


def test_icount_counts_are_exact_instructions_across_wraps(smoke_elf: Path) -> None:
    runs = [0, 1000, 1000, 40_000_000]
    first = spin_counts(smoke_elf, runs)
    second = spin_counts(smoke_elf, runs)
    assert first == second  # the same instructions give the same count, QEMU to QEMU
    assert first[1] == first[2]
    # Under -icount shift=3 a count is one instruction: the loop's cost is exactly linear in
    # its iterations, also over 40 million iterations, which span several 24-bit SysTick periods
    # (their wraps counted, and their handler's instructions taken out).
    per_1000 = first[1] - first[0]
    assert first[3] - first[0] == 40_000 * per_1000
    assert first[3] > 3 * SYSTICK_PERIOD


@pytest.mark.parametrize(
    ("shift", "command", "wrap"),
    [
        # sparse reads, exact instruction counts: 5 instructions per SysTick tick
        (3, "mono 30000 1000", 5 * SYSTICK_PERIOD),
        # back-to-back reads on the host-paced clock (so some fall next to a wrap), on until
        # they span 2.4 wraps
        (None, "mono 1 0 40000000", SYSTICK_PERIOD),
    ],
)
def test_counter_never_goes_back_across_wraps(
    smoke_elf: Path, shift: int | None, command: str, wrap: int
) -> None:
    with QemuMachine(smoke_elf, icount_shift=shift) as machine:
        line = Line(machine.url)
        try:
            line.read()
            result = line.fields(command)
        finally:
            line.close()
    assert result["back"] == "0"
    assert int(result["span"]) > 2 * wrap  # the reads spanned more than two wraps


def test_without_icount_source_is_plain_systick(smoke_elf: Path) -> None:
    with QemuMachine(smoke_elf, icount_shift=None) as machine:
        line = Line(machine.url)
        try:
            line.read()
            info = line.fields("info")
            assert info["source"] == "systick"
            assert info["hz"] == "25000000"
            assert int(line.fields("spin 100000")["cycles"]) > 0
        finally:
            line.close()


def test_reset_gives_a_new_boot_id(smoke: tuple[QemuMachine, Line]) -> None:
    _, line = smoke
    ids = [boot_id(line.read())]
    for _ in range(3):
        line.port.write(b"reset\n")
        ids.append(boot_id(line.read()))
        assert line.fields("info")["boot"] == ids[-1]
    assert len(set(ids)) == len(ids)


def test_harness_boot_id_differs_between_qemu_processes(smoke_elf: Path) -> None:
    ids = []
    for harness_id in (1, 2):
        with QemuMachine(smoke_elf, boot_id=harness_id) as machine:
            line = Line(machine.url)
            try:
                ids.append(boot_id(line.read()))
            finally:
                line.close()
    assert ids[0] != ids[1]


def test_exit_status_through_semihosting(smoke: tuple[QemuMachine, Line]) -> None:
    machine, line = smoke
    line.read()
    line.port.write(b"exit 7\n")
    assert machine.wait(30) == 7


def test_fault_ends_qemu_with_a_status(smoke: tuple[QemuMachine, Line]) -> None:
    machine, line = smoke
    line.read()
    # A fact behind docs/firmware-ports.md: below RAM, where a stack overflow goes, QEMU's
    # mps2-an386 ignores writes and reads zero, so an overflow is not caught there.
    assert line.ask("below") == "below=00000000"
    assert line.ask("fault") == "faulting"
    assert machine.wait(30) == 0xF3  # HardFault: 0xF0 + its exception number, not a hang


def test_boots_without_semihosting(smoke_elf: Path) -> None:
    # Someone running QEMU by hand may leave semihosting off: its BKPT calls then fault, and the
    # HardFault handler turns them into "no answer" instead of a hang; exit becomes a reset.
    off = ("-semihosting-config", "enable=off")
    with QemuMachine(smoke_elf, extra_args=off) as machine:
        line = Line(machine.url)
        try:
            first = boot_id(line.read())
            # It cannot learn of -icount (that came through semihosting): plain SysTick.
            assert line.fields("info")["source"] == "systick"
            line.port.write(b"exit 3\n")
            assert boot_id(line.read()) != first
            assert machine.poll() is None
        finally:
            line.close()


def pid_gone(pid: int, timeout_s: float = 30.0) -> bool:
    """True once no process has ``pid`` (a bounded wait, not a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie still answers kill(0): it is gone once its parent reaps it
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def test_qemu_killed_when_the_test_body_fails(smoke_elf: Path) -> None:
    pids: list[int | None] = []

    def failing_body() -> None:
        with QemuMachine(smoke_elf) as machine:
            pids.append(machine.pid)
            raise RuntimeError("a failing test")

    with pytest.raises(RuntimeError):
        failing_body()
    assert pids[0] is not None
    assert pid_gone(pids[0])


def test_qemu_killed_when_python_is_killed(smoke_elf: Path) -> None:
    code = (
        "import sys, time\n"
        "from edgeprof.bridge.qemu import QemuMachine\n"
        "m = QemuMachine(sys.argv[1]); m.start()\n"
        "print(m.pid, m.workdir, flush=True)\n"
        "time.sleep(600)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(smoke_elf)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        pid_text, workdir = child.stdout.readline().split()
        pid = int(pid_text)
        child.send_signal(signal.SIGKILL)  # no atexit, no finally: only pdeathsig is left
        child.wait(30)
        assert pid_gone(pid), f"QEMU {pid} outlived its killed parent"
        shutil.rmtree(workdir, ignore_errors=True)  # what a killed process cannot clean up
    finally:
        child.kill()
        child.wait(30)


def test_firmware_file_is_checked(tmp_path: Path) -> None:
    junk = tmp_path / "fw.elf"
    junk.write_bytes(b"not an elf at all, just bytes")
    with pytest.raises(InputError, match="not an ELF"):
        check_firmware(junk)
    with pytest.raises(InputError, match=r"not a 32-bit|not an Arm ELF"):
        check_firmware(Path(sys.executable).resolve())
    with pytest.raises(InputError, match="No such file"):
        check_firmware(tmp_path / "missing.elf")


# ---- the reference firmware through the protocol ------------------------------------------


@pytest.fixture
def fw_elf(build: firmware_build.BuildResult) -> Path:
    return build.image("edgeprof-fw").path


@pytest.fixture
def device(fw_elf: Path) -> Iterator[Device]:
    with QemuMachine(fw_elf) as machine, Device(open_transport(machine.url), timeout=5.0) as dev:
        yield dev


def demo_model(name: str) -> bytes:
    return (files("edgeprof.models") / f"{name}.tflite").read_bytes()


def test_hello_info_and_ping(device: Device) -> None:
    info = device.hello()
    assert info.board == "qemu-mps2-an386"
    assert info.cycle_source == "systick-icount"
    assert info.cycle_hz == 125_000_000  # one count per instruction under -icount shift=3
    assert info.cpu_hz == 25_000_000
    assert info.ram_bytes == info.flash_bytes == 4 << 20
    assert info.max_payload == 4096
    assert info.stack_bytes == 32 * 1024
    assert "model" in info.workloads
    assert device.ping(b"cortex-m4") > 0


def litert_reference(model: bytes, x: np.ndarray) -> bytes:
    """LiteRT's builtin int8 kernels on one input: what the "litert" blob must reproduce."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(
        model_content=model,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return bytes(interp.get_tensor(interp.get_output_details()[0]["index"]).tobytes())


def run_ds_cnn(elf: Path, x: np.ndarray) -> list[tuple[int, bytes, tuple[int, ...]]]:
    model = demo_model("ds_cnn_int8")
    with QemuMachine(elf) as machine, Device(open_transport(machine.url), timeout=5.0) as dev:
        dev.hello()
        dev.load("model", compile_tflite(model, "litert"))
        dev.load("input", x.tobytes())
        started, results = dev.run_all("model", 2, loaded_input=True, outputs=True, layers=True)
        assert started.ops[0] == "CONV_2D"
        out = []
        for r in results:
            assert r.output is not None
            assert r.layer_cycles is not None
            assert len(r.layer_cycles) == len(started.ops)
            assert 0 < sum(r.layer_cycles) <= r.cycles
            out.append((r.cycles, r.output, r.layer_cycles))
        return out


def test_model_counts_identical_across_runs_and_outputs_bit_exact(fw_elf: Path) -> None:
    model = demo_model("ds_cnn_int8")
    x = np.random.default_rng(7).integers(-128, 128, size=(1, 49, 10, 1), dtype=np.int8)
    first = run_ds_cnn(fw_elf, x)
    second = run_ds_cnn(fw_elf, x)
    # The same inference, instruction for instruction, in every RUN and every QEMU process:
    # total and per-layer counts alike.
    assert first[0] == first[1] == second[0] == second[1]
    # Cross-compiled for the Cortex-M4 (hard-float ABI), the kernels still equal LiteRT's.
    assert first[0][1] == litert_reference(model, x)


def test_protocol_reset_gives_a_new_boot_id(device: Device) -> None:
    before = device.hello().boot_id
    after = device.reset(boot_timeout=30.0).boot_id
    assert after != before
    assert device.ping() > 0


def test_reset_mid_run_is_detected_and_nothing_after_it_accepted(fw_elf: Path) -> None:
    blob = compile_tflite(demo_model("ds_cnn_int8"), "litert")
    with QemuMachine(fw_elf) as machine, Device(open_transport(machine.url), timeout=5.0) as dev:
        before = dev.hello().boot_id
        dev.load("model", blob)
        counts: list[int] = []

        def run_until_reset() -> None:
            for result in dev.run("model", 20, seed=1):
                counts.append(result.cycles)
                if len(counts) == 2:
                    machine.system_reset()  # the reset button, from outside the firmware

        with pytest.raises(DeviceResetError, match="restarted"):
            run_until_reset()
        assert len(counts) == 2  # no RESULT from across the reset was taken
        assert counts[0] == counts[1]
        assert dev.hello().boot_id != before
        with pytest.raises(EdgeprofError):  # the upload did not survive the reset
            dev.run_all("model", 1)


# ---- fault injection between the host and the emulated board --------------------------------


@dataclass
class QemuOnPty(HostFirmware):
    """The QEMU board on its pty, for edgeprof.testing.fault_proxy.FaultProxy; its reset
    button is QEMU's."""

    machine: QemuMachine | None = None

    def reset_button(self) -> None:
        assert self.machine is not None
        self.machine.system_reset()


@pytest.fixture
def board_on_pty(fw_elf: Path) -> Iterator[QemuOnPty]:
    with QemuMachine(fw_elf, uart="pty") as machine:
        yield QemuOnPty(machine.process, machine.url, machine)


MILD = Faults(corrupt=0.03, drop=0.03, duplicate=0.03, delay_max_s=0.002, garbage=0.03)


ROWS = np.random.default_rng(11).bytes(256 * 24)  # the "dot" workload's matrix, as uploaded


def dot_results(dev: Device) -> list[tuple[int, bytes | None]]:
    """Upload the rows, run "dot" 8 times on seeded inputs: (count, output) of each."""
    dev.hello()
    dev.load("model", ROWS, chunk=512)
    _, results = dev.run_all("dot", 8, seed=77, outputs=True)
    return [(r.cycles, r.output) for r in results]


@pytest.mark.parametrize("seed", [1, 2])
def test_damaged_link_gives_the_exact_counts_of_a_clean_one(
    fw_elf: Path, board_on_pty: QemuOnPty, seed: int
) -> None:
    with QemuMachine(fw_elf) as machine, Device(open_transport(machine.url), timeout=5.0) as dev:
        want = dot_results(dev)
    with (
        FaultProxy(board_on_pty, to_device=MILD, to_host=MILD, seed=seed) as proxy,
        Device(open_transport(proxy.path), timeout=0.5, tries=16, result_timeout=30.0) as dev,
    ):
        got = dot_results(dev)
    # -icount makes every count exact: through the damage, the numbers are the clean run's
    assert got == want
    st = proxy.stats
    assert st.corrupted + st.dropped + st.duplicated + st.garbage > 0  # it really damaged


def test_reset_button_through_the_proxy_is_reported(board_on_pty: QemuOnPty) -> None:
    with (
        FaultProxy(board_on_pty, reset_after_bytes=2000) as proxy,
        Device(open_transport(proxy.path), timeout=1.0, result_timeout=10.0) as dev,
    ):
        first = dev.hello().boot_id
        with pytest.raises(DeviceResetError):
            list(dev.run("dot", 100_000))
        assert dev.hello().boot_id != first


# ---- end to end: edgeprof run and edgeprof firmware build -----------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ds_cnn_int8", "kws_mlp_int8"])
def test_edgeprof_run_on_qemu(fw_elf: Path, name: str) -> None:
    model = files("edgeprof.models") / f"{name}.tflite"
    with QemuMachine(fw_elf) as machine:
        proc = subprocess.run(
            [
                *EDGEPROF,
                "run",
                "--runner",
                "mcu",
                "--board",
                "qemu-mps2-an386",
                "--port",
                machine.url,
                str(model),
                "--count",
                "3",
                "--warmup",
                "1",
                "--min-seconds",
                "0",
                "--json",
                "--no-report",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["runner"]["runner"] == "mcu"
    assert report["runner"]["device"]["cycle_source"] == "systick-icount"
    assert report["runner"]["device"]["cycle_hz"] == 125_000_000
    latency = report["summary"]["latency"]
    assert latency["count"] >= 3
    assert latency["min_s"] > 0


def test_firmware_build_cli_prints_sizes(build: firmware_build.BuildResult) -> None:
    proc = subprocess.run(
        [
            *EDGEPROF,
            "firmware",
            "build",
            "--port-name",
            "qemu-mps2-an386",
            "--build-dir",
            str(build.build_dir),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    images = {Path(i["path"]).name: i for i in json.loads(proc.stdout)["images"]}
    fw = images["edgeprof-fw.elf"]
    assert fw["text"] == build.image("edgeprof-fw").text
    assert fw["stack"] == 32 * 1024
    assert fw["bss"] > 1 << 20  # the 1 MiB model buffer and 1 MiB heap of this port


@pytest.mark.slow
def test_stm32_port_builds(tmp_path: Path) -> None:
    _need_tools()
    result = firmware_build.build_port("stm32f446", tmp_path / "build-fw-stm32", jobs=2)
    fw = result.image("edgeprof-fw")
    assert fw.flash < 512 * 1024
    assert fw.data + fw.bss + fw.stack + fw.heap <= 128 * 1024 - 64
    image = (fw.path.parent / "edgeprof-fw.bin").stat().st_size  # what is flashed
    assert fw.flash <= image <= fw.flash + 256  # plus the alignment padding between sections


def test_esp32_is_not_built_by_cmake_here() -> None:
    proc = subprocess.run(
        [*EDGEPROF, "firmware", "build", "--port-name", "esp32"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "ESP-IDF" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_firmware_qemu_cli_serves_and_cleans_up(build: firmware_build.BuildResult) -> None:
    proc = subprocess.Popen(
        [*EDGEPROF, "firmware", "qemu", "--build-dir", str(build.build_dir), "--smoke"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("socket://127.0.0.1:"), url
        line = Line(url)
        try:
            assert boot_id(line.read())
            assert line.ask("echo via the CLI") == "via the CLI"
        finally:
            line.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.wait(30)
    assert proc.stderr is not None
    pid = int(proc.stderr.read().split("qemu pid ")[1].split(";")[0])
    assert pid_gone(pid)
