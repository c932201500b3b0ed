"""Build the reference firmware for one port with CMake, and read the sizes of what it built.

The firmware tree (``firmware_bridge/firmware/``) is one CMake project; ``-DEP_PORT=<port>``
picks ``ports/<port>/port.cmake``. The Arm ports need the arm-none-eabi toolchain file
(``cmake/arm-none-eabi.cmake``), which this module passes so nobody has to remember it.
Sizes come from binutils' ``size``: text and data as it counts them (data also occupies flash),
and bss without the stack and heap reservations, which the Cortex-M linker scripts place in
NOLOAD sections of their own (``.stack``, ``.heap``) and which ``size`` would otherwise add to bss.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgeprof.errors import EdgeprofError, InputError, UnavailableError

REPO_ROOT = Path(__file__).resolve().parents[3]  # agent/edgeprof/bridge/ -> the checkout
FIRMWARE_DIR = REPO_ROOT / "firmware_bridge" / "firmware"
ARM_TOOLCHAIN = REPO_ROOT / "cmake" / "arm-none-eabi.cmake"
ARM_HINT = "apt-get install --no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi"


@dataclass(frozen=True)
class PortSpec:
    """How one port is built: its toolchain file (None: the host compiler) and size tool."""

    name: str
    toolchain: Path | None
    size_tool: str
    compiler: str
    elf_suffix: str


PORTS: dict[str, PortSpec] = {
    "host": PortSpec("host", None, "size", "cc", ""),
    "qemu-mps2-an386": PortSpec(
        "qemu-mps2-an386", ARM_TOOLCHAIN, "arm-none-eabi-size", "arm-none-eabi-gcc", ".elf"
    ),
    "stm32f446": PortSpec(
        "stm32f446", ARM_TOOLCHAIN, "arm-none-eabi-size", "arm-none-eabi-gcc", ".elf"
    ),
}
# Built by ESP-IDF (idf.py), not by this CMake project: see docs/firmware-ports.md.
IDF_PORTS = ("esp32",)


@dataclass(frozen=True)
class ElfSizes:
    """Bytes of one firmware image: text (code + read-only data), data (initialised RAM, also
    stored in flash), bss (zeroed RAM), and the stack and heap reserved by the linker script."""

    path: Path
    text: int
    data: int
    bss: int
    stack: int
    heap: int

    @property
    def flash(self) -> int:
        """What the image occupies in flash."""
        return self.text + self.data

    @property
    def ram_static(self) -> int:
        """RAM taken before the first instruction: data + bss (no stack, no heap)."""
        return self.data + self.bss


@dataclass(frozen=True)
class BuildResult:
    """One port built: its build directory and the sizes of each firmware it produced."""

    port: str
    build_dir: Path
    images: tuple[ElfSizes, ...]

    def image(self, name: str) -> ElfSizes:
        """The image whose file name starts with ``name`` (``edgeprof-fw``, ...)."""
        for img in self.images:
            if img.path.name.split(".")[0] == name:
                return img
        raise EdgeprofError(f"{self.build_dir}: the build produced no {name}")


def port_spec(port: str) -> PortSpec:
    """The spec of a port this CMake project builds, or InputError naming the valid ones."""
    if port in IDF_PORTS:
        raise InputError(
            f"port {port} is an ESP-IDF component: build it with idf.py inside an ESP-IDF "
            "project (firmware_bridge/firmware/ports/esp32/README.md)"
        )
    try:
        return PORTS[port]
    except KeyError:
        raise InputError(f"unknown port {port!r} (known: {', '.join(PORTS)})") from None


def default_build_dir(port: str) -> Path:
    """``build-fw-<port>`` at the repository root (ignored by git)."""
    return REPO_ROOT / f"build-fw-{port}"


def _run(cmd: list[str], what: str, timeout_s: float) -> str:
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, check=False, cwd=REPO_ROOT
        )
    except subprocess.TimeoutExpired:
        raise EdgeprofError(f"{what}: no result within {timeout_s:g} s") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise EdgeprofError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def build_port(
    port: str,
    build_dir: Path | None = None,
    *,
    build_type: str | None = None,
    jobs: int = 2,
    defines: dict[str, str] | None = None,
    timeout_s: float = 900.0,
) -> BuildResult:
    """Configure and build ``port`` into ``build_dir``; the sizes of the firmware it built."""
    spec = port_spec(port)
    if not (FIRMWARE_DIR / "CMakeLists.txt").is_file():
        raise UnavailableError(
            f"no firmware sources at {FIRMWARE_DIR} (build from a checkout of edgeprof)"
        )
    cmake = shutil.which("cmake")
    if cmake is None:
        raise UnavailableError("cmake not found (apt-get install cmake)")
    if shutil.which(spec.compiler) is None:
        hint = ARM_HINT if spec.toolchain else "apt-get install gcc"
        raise UnavailableError(f"{spec.compiler} not found ({hint})")
    build_dir = (build_dir or default_build_dir(port)).resolve()
    cmd = [cmake, "-S", str(FIRMWARE_DIR), "-B", str(build_dir), f"-DEP_PORT={port}"]
    if spec.toolchain is not None:
        cmd.append(f"-DCMAKE_TOOLCHAIN_FILE={spec.toolchain}")
    if build_type:
        cmd.append(f"-DCMAKE_BUILD_TYPE={build_type}")
    for key, value in sorted((defines or {}).items()):
        cmd.append(f"-D{key}={value}")
    _run(cmd, f"cmake configure for {port}", timeout_s)
    _run([cmake, "--build", str(build_dir), "-j", str(max(1, jobs))], f"build of {port}", timeout_s)
    images = tuple(elf_sizes(p, spec.size_tool) for p in firmware_images(spec, build_dir))
    if not images:
        raise EdgeprofError(f"{build_dir}: the build produced no firmware image")
    return BuildResult(port, build_dir, images)


def firmware_images(spec: PortSpec, build_dir: Path) -> list[Path]:
    """The firmware executables a build directory holds: ``edgeprof-*`` at its top."""
    out = []
    for p in sorted(build_dir.glob("edgeprof-*")):
        if not p.is_file() or p.suffix in (".map", ".bin", ".hex"):
            continue
        if spec.elf_suffix and p.suffix != spec.elf_suffix:
            continue
        if not spec.elf_suffix and not os.access(p, os.X_OK):
            continue
        out.append(p)
    return out


_BERKELEY = re.compile(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+[0-9a-fA-F]+\s+(.+)$")
_SECTION = re.compile(r"^(\.\S+)\s+(\d+)\s+\d+\s*$")


def parse_berkeley(text: str) -> tuple[int, int, int]:
    """text, data, bss from ``size`` (Berkeley format) output for one file."""
    for line in text.splitlines():
        m = _BERKELEY.match(line)
        if m:
            return int(m[1]), int(m[2]), int(m[3])
    raise EdgeprofError(f"unexpected output from size: {text.strip()[:200]!r}")


def parse_sysv(text: str) -> dict[str, int]:
    """Section name -> bytes from ``size -A -d`` (System V format) output."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = _SECTION.match(line.strip())
        if m:
            out[m[1]] = int(m[2])
    return out


def elf_sizes(path: Path, size_tool: str) -> ElfSizes:
    """Sizes of one ELF, read with binutils' ``size`` (``arm-none-eabi-size`` for Arm)."""
    tool = shutil.which(size_tool)
    if tool is None:
        raise UnavailableError(f"{size_tool} not found (binutils)")
    text, data, bss = parse_berkeley(_run([tool, str(path)], f"{size_tool} {path}", 60))
    sections = parse_sysv(_run([tool, "-A", "-d", str(path)], f"{size_tool} -A {path}", 60))
    stack, heap = sections.get(".stack", 0), sections.get(".heap", 0)
    return ElfSizes(path, text, data, max(0, bss - stack - heap), stack, heap)
