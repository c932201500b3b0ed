"""Realistic fake sysfs/procfs trees, and a separate process that animates their values.

Used by tests, benchmarks and demos. The layout mirrors real kernels (``class/hwmon/hwmonN`` is a
symlink into ``devices/...`` with a ``device`` link back, powercap zones nest, ...) so discovery
code sees what it would see on a board.

Value files follow one rule: the C sampler keeps each file open and re-reads it with
``pread(fd, buf, n, 0)``, so a value is rewritten *in place* with a single ``pwrite`` of the
same length (never written to a temporary file and renamed, which would leave the reader on the
old inode). Every value is a 20-character right-aligned decimal plus ``"\\n"``.

The waveform writer runs as ``python -m edgeprof.testing.fake_sysfs waveform --spec <json>`` so
the sampler under test races a real, independent writer, exactly as it races a kernel driver.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

from edgeprof.device.roots import SystemRoots
from edgeprof.errors import InputError
from edgeprof.lifecycle import StartStop

__all__ = [
    "DEFAULT_RATE_HZ",
    "VALUE_SIZE",
    "VALUE_WIDTH",
    "ValueFile",
    "WaveformWriter",
    "expected_raw",
    "expected_value",
    "fake_roots",
    "format_value",
    "main",
    "make_cpufreq",
    "make_hwmon",
    "make_hwmon_ina219",
    "make_hwmon_ina226",
    "make_hwmon_ina3221",
    "make_iio_ina3221x",
    "make_jetson_like",
    "make_proc_pid",
    "make_rapl",
    "make_rpi_like",
    "make_thermal",
    "make_x86_like",
    "read_value",
    "run_waveform",
    "validate_wave",
    "write_text",
    "write_value",
]

VALUE_WIDTH = 20
VALUE_SIZE = VALUE_WIDTH + 1  # plus the newline
DEFAULT_RATE_HZ = 2000.0
_CLOCK = time.CLOCK_MONOTONIC_RAW

PathArg = str | os.PathLike[str]


# ---------------------------------------------------------------------------------------------
# Value files
# ---------------------------------------------------------------------------------------------


def format_value(value: int) -> bytes:
    """The fixed-width encoding, so every rewrite covers exactly the previous bytes."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"value files hold integers, not {type(value).__name__}")
    data = f"{value:>{VALUE_WIDTH}d}\n".encode("ascii")
    if len(data) != VALUE_SIZE:
        raise ValueError(f"{value} does not fit in {VALUE_WIDTH} characters")
    return data


class ValueFile:
    """One value file kept open for fast in-place rewrites (the waveform writer's hot loop)."""

    def __init__(self, path: PathArg) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # No O_TRUNC: a reader that already has the file open must never see it empty.
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        if os.fstat(self._fd).st_size > VALUE_SIZE:
            os.ftruncate(self._fd, VALUE_SIZE)

    def write(self, value: int) -> None:
        """Rewrite the value with one pwrite at offset 0, same length as before."""
        if self._fd is None:
            raise ValueError(f"{self.path}: closed")
        data = format_value(value)
        if os.pwrite(self._fd, data, 0) != len(data):
            raise OSError(f"{self.path}: short write")

    def close(self) -> None:
        """Close the descriptor (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ValueFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def write_value(path: PathArg, value: int) -> Path:
    """Create or rewrite one value file in place; returns its path."""
    with ValueFile(path) as f:
        f.write(value)
    return Path(path)


def read_value(path: PathArg) -> int:
    """Read a value file the way the C sampler does: pread at offset 0, whitespace ignored."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return int(os.pread(fd, 64, 0).decode("ascii").strip())
    finally:
        os.close(fd)


def write_text(path: PathArg, text: str) -> Path:
    """A text attribute (name, label, type, governor): one line, ending in a newline."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return p


def _link(link: Path, target: Path) -> None:
    """A relative symlink ``link -> target``, as sysfs has them (class/x/y -> ../../devices)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(os.path.relpath(target, link.parent))


def fake_roots(base: PathArg) -> SystemRoots:
    """SystemRoots for ``base/sys``, ``base/proc`` and ``base/etc`` (created if missing)."""
    b = Path(base)
    for name in ("sys", "proc", "etc"):
        (b / name).mkdir(parents=True, exist_ok=True)
    return SystemRoots(sysfs=b / "sys", procfs=b / "proc", etc=b / "etc")


# ---------------------------------------------------------------------------------------------
# hwmon power monitors
# ---------------------------------------------------------------------------------------------


def make_hwmon(
    root: PathArg,
    index: int,
    name: str,
    values: Mapping[str, int],
    texts: Mapping[str, str] | None = None,
    device: str = "1-0040",
) -> Path:
    """A generic hwmon device: ``class/hwmon/hwmon<index>`` -> its i2c device's hwmon dir.

    Returns the ``class/hwmon/hwmon<index>`` path (what discovery globs).
    """
    sysfs = Path(root)
    dev_dir = sysfs / "devices" / "platform" / "i2c-fake" / "i2c-1" / device
    real = dev_dir / "hwmon" / f"hwmon{index}"
    real.mkdir(parents=True, exist_ok=True)
    write_text(real / "name", name)
    _link(real / "device", dev_dir)
    for fname, text in (texts or {}).items():
        write_text(real / fname, text)
    for fname, value in values.items():
        write_value(real / fname, value)
    link = sysfs / "class" / "hwmon" / f"hwmon{index}"
    _link(link, real)
    return link


def _make_ina2xx(
    root: PathArg,
    index: int,
    chip: str,
    millivolts: int,
    milliamps: int,
    microwatts: int | None,
    shunt_uohm: int,
    device: str,
) -> Path:
    """The ina2xx driver: in0 = shunt mV, in1 = bus mV, curr1 mA, power1 uW, no labels."""
    shunt_mv = milliamps * shunt_uohm // 1_000_000
    values = {
        "in0_input": shunt_mv,
        "in1_input": millivolts,
        "curr1_input": milliamps,
        "power1_input": millivolts * milliamps if microwatts is None else microwatts,
        "shunt_resistor": shunt_uohm,
        "update_interval": 1,
    }
    return make_hwmon(root, index, chip, values, device=device)


def make_hwmon_ina219(
    root: PathArg,
    index: int,
    *,
    millivolts: int = 5000,
    milliamps: int = 400,
    microwatts: int | None = None,
    shunt_uohm: int = 100_000,
    device: str = "1-0040",
) -> Path:
    """An ina219 (common on Raspberry Pi HATs); power defaults to V*I in uW."""
    return _make_ina2xx(
        root, index, "ina219", millivolts, milliamps, microwatts, shunt_uohm, device
    )


def make_hwmon_ina226(
    root: PathArg,
    index: int,
    *,
    millivolts: int = 12000,
    milliamps: int = 850,
    microwatts: int | None = None,
    shunt_uohm: int = 10_000,
    device: str = "1-0041",
) -> Path:
    """An ina226 (same driver and layout as ina219, different chip)."""
    return _make_ina2xx(
        root, index, "ina226", millivolts, milliamps, microwatts, shunt_uohm, device
    )


def make_hwmon_ina3221(
    root: PathArg,
    index: int,
    labels: Sequence[str | None] = ("VDD_IN", "VDD_CPU_GPU_CV", "NC"),
    *,
    millivolts: Sequence[int] = (5080, 4984, 4984),
    milliamps: Sequence[int] = (1480, 480, 0),
    enabled: Sequence[bool] = (True, True, True),
    device: str = "1-0040",
) -> Path:
    """The mainline ina3221 hwmon layout (Jetson Orin and many boards).

    in1..3 bus mV with labels and enables, in4..6 shunt voltages, in7 their sum, curr1..3 mA
    and curr4 their sum; no power files. A ``None`` label leaves the label file out, as the
    driver does when the device tree names no rail.
    """
    values: dict[str, int] = {}
    texts: dict[str, str] = {"in7_label": "sum of shunt voltages"}
    for ch in range(3):
        i = ch + 1
        label = labels[ch]
        if label is not None:
            texts[f"in{i}_label"] = label
        values[f"in{i}_input"] = millivolts[ch]
        values[f"in{i}_enable"] = int(bool(enabled[ch]))
        values[f"curr{i}_input"] = milliamps[ch]
        values[f"in{i + 3}_input"] = milliamps[ch] * 5  # uV across a 5 mOhm shunt
        values[f"shunt{i}_resistor"] = 5000
    values["in7_input"] = sum(values[f"in{i}_input"] for i in (4, 5, 6))
    values["curr4_input"] = sum(milliamps)
    values["samples"] = 512
    values["update_interval"] = 1100
    return make_hwmon(root, index, "ina3221", values, texts, device=device)


# ---------------------------------------------------------------------------------------------
# Jetson iio ina3221x (L4T 32.x)
# ---------------------------------------------------------------------------------------------


def make_iio_ina3221x(
    root: PathArg,
    device_index: int = 0,
    rails: Sequence[str] = ("VDD_IN", "VDD_SYS_GPU", "VDD_SYS_CPU"),
    *,
    millivolts: Sequence[int] = (5096, 5088, 5088),
    milliamps: Sequence[int] = (1064, 56, 224),
    milliwatts: Sequence[int] | None = None,
    device: str = "6-0040",
    name: str = "ina3221x",
) -> Path:
    """NVIDIA's downstream iio driver: in_power<i>_input mW, rail_name_<i>, channels 0..2.

    Returns ``bus/iio/devices/iio:device<device_index>``.
    """
    sysfs = Path(root)
    dev_dir = sysfs / "devices" / "platform" / "i2c-fake" / "i2c-6" / device
    real = dev_dir / f"iio:device{device_index}"
    real.mkdir(parents=True, exist_ok=True)
    write_text(real / "name", name)
    write_text(real / "running_mode", "1")
    for i, rail in enumerate(rails):
        mw = milliwatts[i] if milliwatts is not None else millivolts[i] * milliamps[i] // 1000
        write_text(real / f"rail_name_{i}", rail)
        write_value(real / f"in_voltage{i}_input", millivolts[i])
        write_value(real / f"in_current{i}_input", milliamps[i])
        write_value(real / f"in_power{i}_input", mw)
        write_value(real / f"crit_current_limit_{i}", 3000)
        write_value(real / f"warn_current_limit_{i}", 2000)
    link = sysfs / "bus" / "iio" / "devices" / f"iio:device{device_index}"
    _link(link, real)
    return link


# ---------------------------------------------------------------------------------------------
# powercap RAPL
# ---------------------------------------------------------------------------------------------

DEFAULT_RAPL_DOMAINS: Mapping[str, str] = {
    "intel-rapl:0": "package-0",
    "intel-rapl:0:0": "core",
    "intel-rapl:0:1": "uncore",
    "intel-rapl:0:2": "dram",
    "intel-rapl:1": "psys",
}
DEFAULT_MAX_ENERGY_RANGE_UJ = 262_143_328_850


def make_rapl(
    root: PathArg,
    domains: Mapping[str, str] | None = None,
    max_energy_range_uj: int | Mapping[str, int | None] | None = DEFAULT_MAX_ENERGY_RANGE_UJ,
    energy_uj: int | Mapping[str, int] = 123_456_789,
) -> list[Path]:
    """powercap zones ``{zone dir: name}``, nested as the kernel nests them.

    ``max_energy_range_uj`` may be one value for all, a per-zone mapping, and ``None`` (for all
    or one zone) leaves the file out. Returns the ``class/powercap/<zone>`` paths.
    """
    sysfs = Path(root)
    virt = sysfs / "devices" / "virtual" / "powercap"
    out: list[Path] = []
    for zone, name in (domains if domains is not None else DEFAULT_RAPL_DOMAINS).items():
        parts = zone.split(":")
        control = parts[0]
        ctl_dir = virt / control
        write_text(ctl_dir / "enabled", "1")
        _link(sysfs / "class" / "powercap" / control, ctl_dir)
        real = ctl_dir.joinpath(*(":".join(parts[:k]) for k in range(2, len(parts) + 1)))
        real.mkdir(parents=True, exist_ok=True)
        write_text(real / "name", name)
        write_text(real / "enabled", "1")
        write_text(real / "constraint_0_name", "long_term")
        energy = energy_uj[zone] if isinstance(energy_uj, Mapping) else energy_uj
        write_value(real / "energy_uj", energy)
        rng = (
            max_energy_range_uj.get(zone, DEFAULT_MAX_ENERGY_RANGE_UJ)
            if isinstance(max_energy_range_uj, Mapping)
            else max_energy_range_uj
        )
        if rng is not None:
            write_value(real / "max_energy_range_uj", rng)
        link = sysfs / "class" / "powercap" / zone
        _link(link, real)
        out.append(link)
    return out


# ---------------------------------------------------------------------------------------------
# cpufreq, thermal, procfs
# ---------------------------------------------------------------------------------------------


def make_cpufreq(
    root: PathArg,
    ncpus: int,
    khz: int | Sequence[int] = 1_200_000,
    *,
    governor: str = "schedutil",
    min_khz: int = 115_200,
    max_khz: int = 2_035_200,
) -> list[Path]:
    """``devices/system/cpu/cpu<N>/cpufreq`` for N < ncpus; returns the scaling_cur_freq paths."""
    base = Path(root) / "devices" / "system" / "cpu"
    write_text(base / "online", f"0-{ncpus - 1}" if ncpus > 1 else "0")
    out: list[Path] = []
    for n in range(ncpus):
        d = base / f"cpu{n}" / "cpufreq"
        cur = khz if isinstance(khz, int) else khz[n]
        write_value(d / "scaling_cur_freq", cur)
        write_value(d / "cpuinfo_min_freq", min_khz)
        write_value(d / "cpuinfo_max_freq", max_khz)
        write_value(d / "scaling_min_freq", min_khz)
        write_value(d / "scaling_max_freq", max_khz)
        write_text(d / "scaling_governor", governor)
        out.append(d / "scaling_cur_freq")
    return out


def make_thermal(
    root: PathArg, zones: Sequence[tuple[str, int]], *, cooling_devices: int = 0
) -> list[Path]:
    """``class/thermal/thermal_zone<N>`` with ``type`` and ``temp`` (m°C); returns temp paths."""
    sysfs = Path(root)
    virt = sysfs / "devices" / "virtual" / "thermal"
    out: list[Path] = []
    for n, (ztype, millideg) in enumerate(zones):
        real = virt / f"thermal_zone{n}"
        write_text(real / "type", ztype)
        write_text(real / "policy", "step_wise")
        write_text(real / "mode", "enabled")
        write_value(real / "temp", millideg)
        link = sysfs / "class" / "thermal" / f"thermal_zone{n}"
        _link(link, real)
        out.append(link / "temp")
    for n in range(cooling_devices):
        real = virt / f"cooling_device{n}"
        write_text(real / "type", "Processor")
        write_value(real / "cur_state", 0)
        _link(sysfs / "class" / "thermal" / f"cooling_device{n}", real)
    return out


def make_proc_pid(
    proc_root: PathArg, pid: int, resident_pages: int, pss_kb: int | None = None
) -> Path:
    """``<proc>/<pid>/statm`` and, unless ``pss_kb`` is None, ``smaps_rollup``."""
    d = Path(proc_root) / str(pid)
    d.mkdir(parents=True, exist_ok=True)
    size = resident_pages * 4
    write_text(d / "statm", f"{size} {resident_pages} {resident_pages // 4} 100 0 {size // 2} 0")
    if pss_kb is not None:
        rss_kb = resident_pages * 4
        write_text(
            d / "smaps_rollup",
            "55d0f2a2b000-7ffd1b9f1000 ---p 00000000 00:00 0"
            "                          [rollup]\n"
            f"Rss:            {rss_kb:>8} kB\n"
            f"Pss:            {pss_kb:>8} kB\n"
            f"Pss_Anon:       {pss_kb // 2:>8} kB\n"
            f"Pss_File:       {pss_kb - pss_kb // 2:>8} kB\n"
            "Pss_Shmem:             0 kB\n",
        )
    return d


# ---------------------------------------------------------------------------------------------
# Whole boards
# ---------------------------------------------------------------------------------------------


def make_jetson_like(root: PathArg) -> Path:
    """A Jetson Orin NX: ina3221 at hwmon1 (VDD_IN, VDD_CPU_GPU_CV, VDD_SOC), 8 CPUs, 9 zones."""
    sysfs = Path(root)
    make_hwmon(sysfs, 0, "pwmfan", {"pwm1": 80}, device="pwm-fan")
    make_hwmon_ina3221(
        sysfs,
        1,
        ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"),
        millivolts=(5072, 5064, 5064),
        milliamps=(1392, 312, 648),
    )
    make_cpufreq(sysfs, 8, 729_600, governor="schedutil", min_khz=115_200, max_khz=1_984_000)
    zones = ["cpu", "gpu", "cv0", "cv1", "cv2", "soc0", "soc1", "soc2", "tj"]
    make_thermal(sysfs, [(f"{z}-thermal", 41_000 + 500 * i) for i, z in enumerate(zones)])
    return sysfs


def make_rpi_like(root: PathArg) -> Path:
    """A Raspberry Pi 5 with an ina219 HAT at hwmon3; the other hwmon devices have no rails."""
    sysfs = Path(root)
    make_hwmon(sysfs, 0, "cpu_thermal", {"temp1_input": 48_300}, device="cpu-thermal")
    make_hwmon(sysfs, 1, "rpi_volt", {"in0_lcrit_alarm": 0}, device="rpi-volt")
    make_hwmon(sysfs, 2, "pwmfan", {"pwm1": 0, "fan1_input": 0}, device="pwm-fan")
    make_hwmon_ina219(sysfs, 3, millivolts=5104, milliamps=712)
    make_cpufreq(sysfs, 4, 1_500_000, governor="ondemand", min_khz=1_500_000, max_khz=2_400_000)
    make_thermal(sysfs, [("cpu-thermal", 48_300)], cooling_devices=1)
    return sysfs


def make_x86_like(root: PathArg) -> Path:
    """An Intel laptop: RAPL (plus the mmio twin of package-0), temp/voltage-only hwmon."""
    sysfs = Path(root)
    make_hwmon(sysfs, 0, "acpitz", {"temp1_input": 45_000}, device="LNXTHERM:00")
    make_hwmon(
        sysfs,
        1,
        "coretemp",
        {"temp1_input": 52_000, "temp2_input": 50_000},
        {"temp1_label": "Package id 0", "temp2_label": "Core 0"},
        device="coretemp.0",
    )
    make_hwmon(
        sysfs,
        2,
        "nct6775",
        {f"in{i}_input": 1000 + 100 * i for i in range(7)},
        device="nct6775.656",
    )
    make_rapl(sysfs)
    make_rapl(sysfs, {"intel-rapl-mmio:0": "package-0"}, energy_uj=98_765_432)
    make_cpufreq(sysfs, 8, 2_400_000, governor="powersave", min_khz=400_000, max_khz=4_700_000)
    make_thermal(sysfs, [("acpitz", 45_000), ("x86_pkg_temp", 52_000)], cooling_devices=2)
    return sysfs


# ---------------------------------------------------------------------------------------------
# Waveforms
# ---------------------------------------------------------------------------------------------

_WAVE_KEYS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # kind: (required number keys, optional number keys); "steps" also needs "levels".
    "const": (("value",), ()),
    "steps": (("period_s",), ()),
    "sine": (("offset", "amplitude", "freq_hz"), ("phase_rad",)),
    "ramp": (("start", "rate_per_s"), ("wrap",)),
}


def _is_number(x: object) -> bool:
    """JSON numbers only: bool is an int to Python but never a level or a rate."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def validate_wave(wave: Mapping[str, Any]) -> None:
    """Reject a malformed waveform before a writer process is started for it."""
    kind = wave.get("kind")
    if not isinstance(kind, str) or kind not in _WAVE_KEYS:
        raise InputError(f"waveform kind must be one of {sorted(_WAVE_KEYS)}, got {kind!r}")
    required, optional = _WAVE_KEYS[kind]
    for key in required:
        if not _is_number(wave.get(key)):
            raise InputError(f"{kind} waveform needs a number {key!r}")
    for key in optional:
        if key in wave and wave[key] is not None and not _is_number(wave[key]):
            raise InputError(f"{kind} waveform: {key!r} must be a number")
    if kind == "steps":
        levels = wave.get("levels")
        if not isinstance(levels, list | tuple) or not levels:
            raise InputError("steps waveform needs a non-empty list 'levels'")
        if not all(_is_number(v) for v in levels):
            raise InputError("steps waveform: every level must be a number")
        if float(wave["period_s"]) <= 0:
            raise InputError("steps waveform: period_s must be positive")
    if kind == "ramp" and wave.get("wrap") is not None and float(wave["wrap"]) <= 0:
        raise InputError("ramp waveform: wrap must be positive")


def expected_value(wave: Mapping[str, Any], t_ns: int, t0_ns: int) -> float:
    """The waveform's value at CLOCK_MONOTONIC_RAW time ``t_ns`` for a writer started at t0.

    Pure, so the writer process and the tests that check a sampler agree exactly:

    * ``steps``: ``levels[k % len(levels)]`` with ``k = floor((t - t0) / period_s)``;
    * ``sine``: ``offset + amplitude * sin(2 pi freq_hz (t - t0) + phase_rad)``;
    * ``ramp``: ``start + rate_per_s (t - t0)``, reduced modulo ``wrap`` when given (a RAPL
      energy counter wrapping at ``max_energy_range_uj``);
    * ``const``: ``value``.
    """
    kind = wave["kind"]
    dt_ns = t_ns - t0_ns
    if kind == "steps":
        levels = wave["levels"]
        period_ns = max(1, round(float(wave["period_s"]) * 1e9))
        return float(levels[(dt_ns // period_ns) % len(levels)])
    if kind == "sine":
        phase = 2.0 * math.pi * float(wave["freq_hz"]) * (dt_ns / 1e9)
        phase += float(wave.get("phase_rad") or 0.0)
        return float(wave["offset"]) + float(wave["amplitude"]) * math.sin(phase)
    if kind == "ramp":
        value = float(wave["start"]) + float(wave["rate_per_s"]) * (dt_ns / 1e9)
        wrap = wave.get("wrap")
        if wrap:
            value %= float(wrap)  # Python's % is never negative for a positive divisor
        return value
    if kind == "const":
        return float(wave["value"])
    raise InputError(f"unknown waveform kind {kind!r}")


def expected_raw(wave: Mapping[str, Any], t_ns: int, t0_ns: int) -> int:
    """The integer the writer puts in the file at ``t_ns``: the value rounded (mod wrap)."""
    raw = round(expected_value(wave, t_ns, t0_ns))
    wrap = wave.get("wrap") if wave["kind"] == "ramp" else None
    if wrap:
        raw %= round(float(wrap))  # rounding up to exactly ``wrap`` reads as 0, like a counter
    return raw


def _now_ns() -> int:
    return time.clock_gettime_ns(_CLOCK)


def _write_t0(path: Path, t0_ns: int) -> None:
    """The t0 file appears atomically: the parent polls it and must never see it half-written."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{t0_ns}\n", encoding="ascii")
    os.replace(tmp, path)


def run_waveform(spec: Mapping[str, Any]) -> int:
    """The writer process's loop: rewrite every file at ``rate_hz`` until SIGTERM.

    Also stops after ``max_seconds`` or when its parent dies, so a crashed test run never leaves
    a writer spinning. Missed ticks are skipped, not replayed: values always track the clock.
    """
    waves = [(ValueFile(f["path"]), f["wave"]) for f in spec["files"]]
    for _, wave in waves:
        validate_wave(wave)
    period_ns = max(1, round(1e9 / float(spec.get("rate_hz", DEFAULT_RATE_HZ))))
    stop = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    old_handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    parent = os.getppid()
    t0 = _now_ns()
    deadline = t0 + round(float(spec.get("max_seconds", 600.0)) * 1e9)
    try:
        for vf, wave in waves:
            vf.write(expected_raw(wave, t0, t0))
        _write_t0(Path(spec["t0_file"]), t0)
        next_tick = t0 + period_ns
        while not stop:
            now = _now_ns()
            if now < next_tick:
                time.sleep((next_tick - now) / 1e9)
                continue
            if now >= deadline or os.getppid() != parent:
                break
            for vf, wave in waves:
                vf.write(expected_raw(wave, now, t0))
            next_tick += period_ns
            if next_tick <= now:
                next_tick = now + period_ns
    finally:
        for vf, _ in waves:
            vf.close()
        for sig, handler in old_handlers.items():  # matters when run in-process (tests)
            signal.signal(sig, handler)
    return 0


def _child_env() -> dict[str, str]:
    """The environment for the writer: ours, plus the directory edgeprof was imported from.

    That keeps ``-m edgeprof...`` working when tests import the package from a source tree that
    is only on ``sys.path`` (a shim directory, pytest's rootdir), not installed.
    """
    env = dict(os.environ)
    pkg_parent = Path(os.path.abspath(__file__)).parents[2]
    if (pkg_parent / "edgeprof").is_dir():
        old = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(pkg_parent) + (os.pathsep + old if old else "")
    return env


class WaveformWriter(StartStop):
    """A separate process rewriting value files with known waveforms (a context manager).

    ``files`` maps each value file to its waveform (see :func:`expected_value`). On entry the
    files hold their t0 values and :attr:`t0_ns` is known; on exit the process is terminated
    (killed if it does not stop) and always reaped.
    """

    def __init__(
        self,
        files: Mapping[str, Mapping[str, Any]] | Mapping[Path, Mapping[str, Any]],
        *,
        t0_file: PathArg | None = None,
        rate_hz: float = DEFAULT_RATE_HZ,
        max_seconds: float = 600.0,
        start_timeout_s: float = 15.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        if not files:
            raise InputError("a waveform writer needs at least one file")
        if not rate_hz > 0:
            raise InputError(f"rate_hz must be positive, got {rate_hz}")
        for wave in files.values():
            validate_wave(wave)
        self.waves: dict[str, dict[str, Any]] = {
            os.path.abspath(p): dict(w) for p, w in files.items()
        }
        self.rate_hz = float(rate_hz)
        self.max_seconds = float(max_seconds)
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        if t0_file is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="edgeprof-wave-")
            t0_file = Path(self._tmpdir.name) / "t0"
        self.t0_file = Path(os.path.abspath(t0_file))
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._t0_ns: int | None = None

    @property
    def update_period_ns(self) -> int:
        """The nominal time between two rewrites."""
        return max(1, round(1e9 / self.rate_hz))

    @property
    def spec(self) -> dict[str, Any]:
        """The JSON spec handed to the writer process."""
        return {
            "files": [{"path": p, "wave": w} for p, w in self.waves.items()],
            "t0_file": str(self.t0_file),
            "rate_hz": self.rate_hz,
            "max_seconds": self.max_seconds,
        }

    @property
    def t0_ns(self) -> int:
        """The writer's start instant on CLOCK_MONOTONIC_RAW."""
        if self._t0_ns is None:
            raise RuntimeError("waveform writer not started")
        return self._t0_ns

    @property
    def pid(self) -> int | None:
        """The writer process id while it runs (None before start)."""
        return self._proc.pid if self._proc is not None else None

    def running(self) -> bool:
        """Whether the writer process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def expected(self, path: PathArg, t_ns: int) -> float:
        """The value ``path`` should hold at CLOCK_MONOTONIC_RAW time ``t_ns``."""
        return expected_value(self.waves[os.path.abspath(path)], t_ns, self.t0_ns)

    def start(self) -> None:
        """Spawn the writer and wait until it has written t0 and the first values."""
        if self._proc is not None:
            raise RuntimeError("waveform writer already started")
        self.t0_file.unlink(missing_ok=True)
        # Lives as long as the child (closed in stop()), so no ``with`` block.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        cmd = [
            sys.executable,
            "-m",
            "edgeprof.testing.fake_sysfs",
            "waveform",
            "--spec",
            json.dumps(self.spec),
        ]
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env=_child_env(),
        )
        try:
            self._t0_ns = self._wait_for_t0()
        except BaseException:
            self.stop()
            raise

    def _wait_for_t0(self) -> int:
        """Poll for the t0 file; fail fast with the child's stderr if it died."""
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError, ValueError):
                return int(self.t0_file.read_text(encoding="ascii").strip())
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"waveform writer exited with {self._proc.returncode}: {self._child_errors()}"
                )
            time.sleep(0.005)
        raise RuntimeError(f"waveform writer did not start in {self.start_timeout_s} s")

    def _child_errors(self) -> str:
        """The tail of the writer's stderr, for error messages."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()[-2000:].decode("utf-8", "replace").strip()

    def stop(self) -> int | None:
        """Terminate, kill if needed, and always reap; returns the exit code (idempotent)."""
        proc, self._proc = self._proc, None
        code: int | None = None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
            try:
                code = proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None
        return code


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

_BOARDS = {"jetson": make_jetson_like, "rpi": make_rpi_like, "x86": make_x86_like}


def _load_spec(text: str) -> dict[str, Any]:
    """``--spec`` is inline JSON, or the path of a JSON file."""
    try:
        if text.lstrip().startswith("{"):
            spec = json.loads(text)
        else:
            spec = json.loads(Path(text).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"bad waveform spec: {e}") from e
    if not isinstance(spec, dict) or "files" not in spec or "t0_file" not in spec:
        raise InputError("waveform spec needs 'files' and 't0_file'")
    return spec


def _parser() -> argparse.ArgumentParser:
    """The command line: ``waveform`` for tests, ``make`` for demos."""
    p = argparse.ArgumentParser(prog="python -m edgeprof.testing.fake_sysfs")
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("waveform", help="rewrite value files with waveforms until SIGTERM")
    w.add_argument("--spec", required=True, help="inline JSON or a JSON file")
    w.add_argument("--rate-hz", type=float, default=None, help="override the spec's rate")
    w.add_argument("--max-seconds", type=float, default=None, help="override the lifetime")
    m = sub.add_parser("make", help="build a fake board sysfs tree in a directory")
    m.add_argument("board", choices=sorted(_BOARDS))
    m.add_argument("dir")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``waveform --spec JSON`` runs a writer; ``make BOARD DIR`` builds a demo tree."""
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "make":
            print(_BOARDS[args.board](args.dir))
            return 0
        spec = _load_spec(args.spec)
        if args.rate_hz is not None:
            spec["rate_hz"] = args.rate_hz
        if args.max_seconds is not None:
            spec["max_seconds"] = args.max_seconds
        return run_waveform(spec)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
