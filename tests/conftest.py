"""Shared fixtures and the test tiers.

Tiers (markers, registered in pyproject.toml): ``unit`` (fast, in-process), ``integration``
(real processes, servers, compilers), ``qemu`` (qemu-system-arm), ``postgres`` (the collector
on the PostgreSQL named by ``$EDGEPROF_TEST_PG_URL``) and ``hardware`` (a real board, only with
``--port`` and ``--board``). A module or test marks its tier; one that does not is marked here
by the fixtures it uses (a started firmware, a collector, a compiled program: integration),
else ``unit``. A test module imports nothing from tests/: what tests share lives here as
fixtures, or in :mod:`edgeprof.testing` (real parts shipped for tests and benchmarks).

What a test needs but this machine lacks (a compiler, LiteRT, PostgreSQL) skips the test with
the line that installs it, and fails it under ``CI=true``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest

from edgeprof.bridge.device import Device
from edgeprof.bridge.transport import open_transport
from edgeprof.testing.attacks import Attack, Ledger
from edgeprof.testing.host_firmware import HostFirmware, host_firmware, host_firmware_binary

ROOT = Path(__file__).resolve().parent.parent
TIERS = ("unit", "integration", "qemu", "postgres", "hardware")
# Using one of these makes a test an integration test (unless it says otherwise).
INTEGRATION_FIXTURES = frozenset(
    {
        "host_firmware_bin",
        "fw",
        "dev",
        "collector",
        "backend",
        "c_compiler",
        "ep_model_run",
        "ep_model_run_plain",
        "unprivileged",
    }
)
HARDWARE_HINT = "pytest --port /dev/ttyACM0 --board stm32f446-nucleo -m hardware"


def missing(what: str) -> NoReturn:
    """Skip locally, fail under CI=true: CI must never pass by skipping."""
    message = f"needs {what}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


# ------------------------------------------------------------------------------------ tiers


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("edgeprof", "edgeprof hardware tier")
    group.addoption("--port", help="serial port of a board running edgeprof firmware")
    group.addoption("--board", help="board id of that board (boards/*.toml), with --port")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    port = config.getoption("--port")
    board = config.getoption("--board")
    if bool(port) != bool(board):
        raise pytest.UsageError("--port and --board go together (the hardware tier)")
    for item in items:
        marks = {m.name for m in item.iter_markers()}
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("backend") == "postgresql":
            item.add_marker(pytest.mark.postgres)
            marks.add("postgres")
        if not marks & set(TIERS):
            fixtures = set(getattr(item, "fixturenames", ()))
            item.add_marker("integration" if fixtures & INTEGRATION_FIXTURES else "unit")
        if "hardware" in marks and not port:
            item.add_marker(pytest.mark.skip(reason=f"hardware tier: run with {HARDWARE_HINT}"))


@dataclass(frozen=True)
class BoardUnderTest:
    """The board given on the command line (hardware tier)."""

    port: str
    board: str


@pytest.fixture(scope="session")
def board_under_test(request: pytest.FixtureRequest) -> BoardUnderTest:
    port = request.config.getoption("--port")
    board = request.config.getoption("--board")
    if not port or not board:
        pytest.skip(f"hardware tier: run with {HARDWARE_HINT}")
    return BoardUnderTest(str(port), str(board))


# -------------------------------------------------------------------- optional packages


@pytest.fixture(scope="session")
def need() -> Callable[[str], Any]:
    """Import an optional package, or skip (fail on CI) with the line that installs it."""
    from edgeprof.testing.tflite_models import INSTALL

    def imported(module: str) -> Any:
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            missing(f"{module} ({exc}); install with: {INSTALL}")

    return imported


@pytest.fixture(scope="session")
def litert_schema(need: Callable[[str], Any]) -> Any:
    """What edgeprof.testing.tflite_models builds models with: the schema and flatbuffers."""
    need("flatbuffers")
    return need("ai_edge_litert.schema_py_generated")


@pytest.fixture(scope="session")
def litert(need: Callable[[str], Any], litert_schema: Any) -> Any:
    """The LiteRT interpreter module (tflite_models.litert_run)."""
    return need("ai_edge_litert.interpreter")


@pytest.fixture(scope="session")
def tflm(need: Callable[[str], Any], litert_schema: Any) -> Any:
    """TFLite Micro's Python package (tflite_models.tflm_run)."""
    return need("tflite_micro")


# ---------------------------------------------------------------- C programs (model blob)

MODEL_DIR = ROOT / "firmware_bridge" / "firmware" / "model"
FW_INCLUDE = ROOT / "firmware_bridge" / "firmware" / "include"
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
# sanitizer reports must fail the run, never pass as a refused blob
SANITIZER_ENV = {"ASAN_OPTIONS": "detect_leaks=1:exitcode=99", "UBSAN_OPTIONS": "exitcode=99"}


@pytest.fixture(scope="session")
def c_compiler() -> str:
    """$CC, else cc, gcc or clang."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        missing("a C compiler: apt-get install gcc")
    return str(cc)


CBuild = Callable[[list[Path], Path], Path]


@pytest.fixture(scope="session")
def build_c(c_compiler: str) -> CBuild:
    """Compile C99 sources (warnings as errors, ASan/UBSan) into an executable."""

    def build(sources: list[Path], exe: Path) -> Path:
        cmd = [
            c_compiler, "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Wshadow", "-Werror", "-O1",
            "-g", *SANITIZE, f"-I{FW_INCLUDE}", *(str(s) for s in sources), "-o", str(exe),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return exe

    return build


def _model_runner(c_compiler: str, exe: Path, sanitize: bool) -> Path:
    """ep_model_run (model/run_blob.c) with warnings as errors."""
    sources = ["ep_model.c", "ep_kernels.c", "ep_f32.c", "run_blob.c"]
    cmd = [
        c_compiler, "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Wshadow", "-Werror", "-O1", "-g",
        *(SANITIZE if sanitize else []), f"-I{FW_INCLUDE}",
        *(str(MODEL_DIR / s) for s in sources), "-o", str(exe),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return exe


@pytest.fixture(scope="session")
def ep_model_run(c_compiler: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The firmware's model interpreter as a host program, under ASan/UBSan (built once)."""
    return _model_runner(
        c_compiler, tmp_path_factory.mktemp("ep_model") / "ep_model_run_asan", True
    )


@pytest.fixture(scope="session")
def ep_model_run_plain(c_compiler: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same, without sanitizers (for what they would slow down or report differently)."""
    return _model_runner(c_compiler, tmp_path_factory.mktemp("ep_model") / "ep_model_run", False)


@pytest.fixture(scope="session")
def sanitizer_env() -> dict[str, str]:
    """This environment plus sanitizer options that make any report fail the program."""
    return dict(os.environ, **SANITIZER_ENV)


# ---------------------------------------------------------------- the host firmware


@pytest.fixture(scope="session")
def host_firmware_bin() -> Path:
    """The reference firmware's host port, built once per session (incrementally, in
    build/fw-host-tests), or the one ``$EDGEPROF_FW_HOST_BIN`` names (scripts/test points it
    at the ASan/UBSan build)."""
    if not os.environ.get("EDGEPROF_FW_HOST_BIN"):
        absent = [t for t in ("cmake", "cc") if shutil.which(t) is None]
        if absent:
            missing(f"{', '.join(absent)} (apt-get install cmake gcc)")
    return host_firmware_binary(ROOT / "build" / "fw-host-tests")


@pytest.fixture
def fw(host_firmware_bin: Path) -> Iterator[HostFirmware]:
    """A started host firmware on its pty; killed afterwards."""
    with host_firmware(host_firmware_bin) as f:
        yield f


@pytest.fixture
def dev(fw: HostFirmware) -> Iterator[Device]:
    """A session with the host firmware, HELLO done."""
    with Device(open_transport(fw.path)) as d:
        d.hello()
        yield d


# ---------------------------------------------------------------- the collector

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each database backend; PostgreSQL needs ``$EDGEPROF_TEST_PG_URL``."""
    from edgeprof.testing.collector_server import ENV_PG

    value: str = request.param
    if value == "postgresql" and not os.environ.get(ENV_PG):
        missing(
            f"${ENV_PG}: run `export {ENV_PG}=$(scripts/pg-test-server start)` (./scripts/test "
            "does it)"
        )
    return value


@pytest.fixture
def collector(backend: str, tmp_path: Path) -> Iterator[Any]:
    """A started collector (edgeprof.testing.collector_server.Deployment) over a fresh
    database of each backend."""
    from edgeprof.testing.collector_server import deploy, fresh_database

    with fresh_database(backend, tmp_path) as db:
        d = deploy(db, tmp_path, max_body_bytes=4 * 1024 * 1024)
        try:
            with d.server:
                yield d
        finally:
            d.engine.dispose()


# ---------------------------------------------------------------- without root's privileges

NOBODY = 65534


def _in_unprivileged_child(fn: Callable[[], str]) -> str:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.close(r)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            os.write(w, fn().encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the unprivileged child failed"
    return out


@pytest.fixture
def unprivileged() -> Callable[[Callable[[], str]], str]:
    """Run fn in a forked child without root's privileges (uid/gid 65534); return its string.

    The tests run as root (CI does), and root reads any file whatever its mode: this is how
    the permission-denied paths are exercised for real. The parent's imports are already
    loaded, so the child needs no access to the interpreter's files."""
    return _in_unprivileged_child


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A temporary directory the unprivileged child can walk (pytest's tmp_path is 0700)."""
    base = Path(tempfile.mkdtemp(prefix="edgeprof-perm-"))
    try:
        base.chmod(0o755)
        yield base
    finally:
        shutil.rmtree(base)


# ---------------------------------------------------------------- gate reports and policy

GATE_POLICY = b"""schema_version = 1
name = "t"

[[rule]]
id = "p95"
metric = "summary.latency.p95_s"
max = 0.100
source = "framework \xc2\xa75.1"

[[rule]]
id = "mem"
metric = "summary.rss_peak_bytes"
max = 400_000_000
warn_at = 0.85
severity = "medium"

[[rule]]
id = "acc"
metric = "quality.accuracy"
min = 0.85
warn = 0.90
severity = "critical"

[[rule]]
id = "tok"
metric = "summary.tokens_per_mw"
min = 2.0
optional = true
"""

ReportFactory = Callable[..., dict[str, Any]]


def _golden_maker() -> Any:
    spec = importlib.util.spec_from_file_location(
        "make_golden", ROOT / "tests" / "golden" / "make_golden.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def gate_policy() -> bytes:
    """A policy with a max, a warn_at, a min with a warn band and an optional rule."""
    return GATE_POLICY


@pytest.fixture(scope="session")
def make_report() -> ReportFactory:
    """A valid v1 report with given latencies (per_inference.latency_s and the summary's
    percentiles), board, summary and quality."""
    from edgeprof.report.codec import decode, encode

    golden = _golden_maker()

    def make(
        latency: np.ndarray | None = None,
        *,
        board: str = "generic-linux-x86_64",
        summary: dict[str, Any] | None = None,
        quality: dict[str, Any] | None = None,
        report_id: str = "01900000-0000-7000-8000-000000000001",
    ) -> dict[str, Any]:
        lat = np.asarray(latency if latency is not None else np.full(5, 1e-3), np.float64)
        r: dict[str, Any] = golden.build_report(n=len(lat))
        r["report_id"] = report_id
        r["device"]["board_id"] = board
        r["per_inference"]["latency_s"] = lat
        r["per_inference"]["energy_j.VDD_IN"] = lat * 2.5
        s = r["summary"]
        s["latency"] = {
            "mean_s": float(lat.mean()),
            "min_s": float(lat.min()),
            "max_s": float(lat.max()),
            **{f"p{p}_s": float(np.percentile(lat, p)) for p in (50, 90, 95, 99)},
        }
        s["power_mean_w"] = 0.030
        s.update(summary or {})
        r["quality"] = quality if quality is not None else {"accuracy": 0.95}
        out: dict[str, Any] = decode(encode(r))  # round trip: the report is valid v1
        return out

    return make


# ------------------------------------------------------------------------- security suite

_ATTACKS = Ledger()


@pytest.fixture
def attack(request: pytest.FixtureRequest) -> Callable[[str], Attack]:
    """``attack("what is tried")`` -> an :class:`Attack` counted in the session's summary."""
    return lambda name: _ATTACKS.open(request.node.nodeid, name)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _ATTACKS.entries:
        terminalreporter.section("security suite: attacks tried")
        for line in _ATTACKS.lines():
            terminalreporter.write_line(line)


# ------------------------------------------------------------------------- MCU vs Linux


@pytest.fixture
def outputs_match_linux() -> Callable[[Any, Any], None]:
    """``check(model, options)``: the MCU runner and LiteRT give bit-identical first outputs on
    the same six seeded inputs (the firmware's kernels are made to match the runtime's)."""
    from edgeprof.measure.inputs import random_inputs
    from edgeprof.runners import make_runner

    def check(model: Any, options: Any) -> None:
        mcu = make_runner("mcu", model, options)
        linux = make_runner("tflite", model, options)
        try:
            mcu.probe()
            mcu.prepare()
            linux.prepare()
            for ex in random_inputs(mcu.inputs, 6, seed=9):
                mcu.set_inputs(ex)
                mcu.invoke()
                linux.set_inputs(ex)
                linux.invoke()
                np.testing.assert_array_equal(mcu.get_outputs()[0], linux.get_outputs()[0])
        finally:
            mcu.close()
            linux.close()

    return check
