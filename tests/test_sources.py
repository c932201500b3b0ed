"""Discovery of power, frequency, thermal and memory channels on fake sysfs/procfs trees."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from edgeprof.device.channels import ChannelSpec, ReadKind
from edgeprof.device.roots import SystemRoots
from edgeprof.device.sources import power, registry, system
from edgeprof.device.sources.power import (
    HwmonSource,
    IioIna3221Source,
    RaplSource,
    discover_power,
    discover_power_with_notes,
    read_sysfs_int,
)
from edgeprof.errors import InputError, UnavailableError
from edgeprof.testing import fake_sysfs as fs


@pytest.fixture
def roots(tmp_path: Path) -> SystemRoots:
    return fs.fake_roots(tmp_path)


def by_name(channels: list[ChannelSpec]) -> dict[str, ChannelSpec]:
    return {c.name: c for c in channels}


def si_value(ch: ChannelSpec) -> float:
    """What the C core will compute from the files right now (value/product; not counters)."""
    raws = [read_sysfs_int(p) for p in ch.paths]
    product = 1
    for r in raws:
        product *= r
    return product * ch.scale


def assert_well_formed(channels: list[ChannelSpec], roots: SystemRoots) -> None:
    names = [c.name for c in channels]
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    for c in channels:
        for p in c.paths:
            assert os.path.isabs(p)
            assert Path(p).is_relative_to(roots.sysfs)
            assert Path(p).is_file()


# --------------------------------------------------------------------------------------------
# hwmon
# --------------------------------------------------------------------------------------------


def test_ina219_at_hwmon7_units_and_names(roots: SystemRoots) -> None:
    fs.make_hwmon_ina219(roots.sysfs, 7, millivolts=5104, milliamps=712, microwatts=3_634_048)
    channels, notes = discover_power_with_notes(roots)
    assert notes == []
    assert_well_formed(channels, roots)
    ch = by_name(channels)
    assert set(ch) == {"hwmon.ina219.1.power", "hwmon.ina219.1.voltage", "hwmon.ina219.1.current"}
    p = ch["hwmon.ina219.1.power"]
    assert p.kind is ReadKind.VALUE
    assert (p.quantity, p.unit) == ("power", "W")
    assert p.paths == (str(roots.sys("class", "hwmon", "hwmon7", "power1_input")),)
    assert p.source == "hwmon:ina219"
    assert p.extra == {"hwmon": "hwmon7", "index": "1"}
    assert si_value(p) == pytest.approx(3.634048)
    assert si_value(ch["hwmon.ina219.1.voltage"]) == pytest.approx(5.104)
    assert ch["hwmon.ina219.1.voltage"].unit == "V"
    assert si_value(ch["hwmon.ina219.1.current"]) == pytest.approx(0.712)
    assert ch["hwmon.ina219.1.current"].unit == "A"
    # in0 is the shunt voltage: never a channel
    assert not any(path.endswith("in0_input") for c in channels for path in c.paths)


def test_ina226_driver_name_comes_from_name_file(roots: SystemRoots) -> None:
    fs.make_hwmon_ina226(roots.sysfs, 2, millivolts=12000, milliamps=850)
    ch = by_name(discover_power(roots))
    assert set(ch) == {"hwmon.ina226.1.power", "hwmon.ina226.1.voltage", "hwmon.ina226.1.current"}
    assert ch["hwmon.ina226.1.power"].source == "hwmon:ina226"
    assert si_value(ch["hwmon.ina226.1.power"]) == pytest.approx(12.0 * 0.85)


def test_ina3221_jetson_labels_product_power_and_nc_skipped(roots: SystemRoots) -> None:
    fs.make_hwmon_ina3221(
        roots.sysfs,
        1,
        ("VDD_IN", "VDD_CPU_GPU_CV", "NC"),
        millivolts=(5080, 4984, 4984),
        milliamps=(1480, 480, 7),
    )
    channels, notes = discover_power_with_notes(roots)
    assert_well_formed(channels, roots)
    ch = by_name(channels)
    assert set(ch) == {
        f"hwmon.ina3221.{rail}.{q}"
        for rail in ("vdd_in", "vdd_cpu_gpu_cv")
        for q in ("power", "voltage", "current")
    }
    vdd_in = ch["hwmon.ina3221.vdd_in.power"]
    assert vdd_in.kind is ReadKind.PRODUCT
    assert vdd_in.label == "VDD_IN"
    assert vdd_in.paths[0].endswith("in1_input")
    assert vdd_in.paths[1].endswith("curr1_input")
    assert si_value(vdd_in) == pytest.approx(5.080 * 1.480)
    assert si_value(ch["hwmon.ina3221.vdd_cpu_gpu_cv.voltage"]) == pytest.approx(4.984)
    assert si_value(ch["hwmon.ina3221.vdd_cpu_gpu_cv.current"]) == pytest.approx(0.480)
    # shunt voltages (in4..6), their sum (in7) and the current sum (curr4) are not rails
    used = {Path(p).name for c in channels for p in c.paths}
    assert used.isdisjoint({"in4_input", "in5_input", "in6_input", "in7_input", "curr4_input"})
    assert any("NC" in n and "input 3" in n for n in notes)


def test_ina3221_disabled_channel_skipped(roots: SystemRoots) -> None:
    fs.make_hwmon_ina3221(
        roots.sysfs, 4, ("VDD_IN", "VDD_GPU", "VDD_SOC"), enabled=(True, False, True)
    )
    channels, notes = discover_power_with_notes(roots)
    rails = {c.label for c in channels}
    assert rails == {"VDD_IN", "VDD_SOC"}
    assert any("disabled" in n and "VDD_GPU" in n for n in notes)


def test_ina3221_without_labels_is_named_by_index(roots: SystemRoots) -> None:
    fs.make_hwmon_ina3221(roots.sysfs, 0, (None, None, None))
    names = {c.name for c in discover_power(roots)}
    assert "hwmon.ina3221.1.power" in names
    assert "hwmon.ina3221.3.current" in names


def test_duplicate_labels_are_unique_and_stable_across_hwmon_numbering(tmp_path: Path) -> None:
    """Names follow the i2c device, not the hwmonN number that changes between boots."""

    def names_by_device(numbers: tuple[int, int]) -> dict[str, str]:
        r = fs.fake_roots(tmp_path / f"boot{numbers[0]}")
        fs.make_hwmon_ina3221(r.sysfs, numbers[0], ("VDD_IN", "NC", "NC"), device="1-0040")
        fs.make_hwmon_ina3221(r.sysfs, numbers[1], ("VDD_IN", "NC", "NC"), device="1-0041")
        channels = discover_power(r)
        assert len({c.name for c in channels}) == len(channels) == 6
        out = {}
        for c in channels:
            dev = os.path.realpath(Path(c.paths[0]).parent / "device")
            out[c.name] = Path(dev).name
        return out

    first = names_by_device((1, 2))
    assert first == names_by_device((5, 3))
    assert first["hwmon.ina3221.vdd_in.power"] == "1-0040"
    assert first["hwmon.ina3221.vdd_in_2.power"] == "1-0041"


def test_shunt_labelled_voltage_is_not_a_voltage_channel(roots: SystemRoots) -> None:
    fs.make_hwmon(
        roots.sysfs,
        3,
        "custommon",
        {"in1_input": 12, "curr1_input": 100, "power1_input": 500_000},
        {"in1_label": "VBAT shunt"},
    )
    ch = by_name(discover_power(roots))
    assert set(ch) == {"hwmon.custommon.vbat_shunt.power", "hwmon.custommon.vbat_shunt.current"}


def test_temperature_and_voltage_only_hwmon_devices_give_no_rails(tmp_path: Path) -> None:
    r = fs.fake_roots(tmp_path)
    fs.make_x86_like(r.sysfs)
    assert not any(c.source.startswith("hwmon") for c in discover_power(r))


# --------------------------------------------------------------------------------------------
# iio ina3221x
# --------------------------------------------------------------------------------------------


def test_iio_ina3221x_rails_units_and_nc(roots: SystemRoots) -> None:
    fs.make_iio_ina3221x(
        roots.sysfs,
        0,
        ("VDD_IN", "NC", "VDD_SYS_CPU"),
        millivolts=(5096, 0, 5088),
        milliamps=(1064, 0, 224),
        milliwatts=(5422, 0, 1139),
    )
    fs.make_iio_ina3221x(roots.sysfs, 1, ("VDD_SYS_GPU",), device="6-0041")
    other = roots.sys("bus", "iio", "devices", "iio:device2")
    fs.write_text(other / "name", "lsm6dsm")
    fs.write_value(other / "in_accel_x_raw", 12)

    channels, notes = discover_power_with_notes(roots)
    assert_well_formed(channels, roots)
    ch = by_name(channels)
    assert {c.label for c in channels} == {"VDD_IN", "VDD_SYS_CPU", "VDD_SYS_GPU"}
    p = ch["iio.ina3221x.vdd_in.power"]
    assert (p.kind, p.unit, p.source) == (ReadKind.VALUE, "W", "iio:ina3221x")
    assert si_value(p) == pytest.approx(5.422)
    assert si_value(ch["iio.ina3221x.vdd_sys_cpu.voltage"]) == pytest.approx(5.088)
    assert si_value(ch["iio.ina3221x.vdd_sys_cpu.current"]) == pytest.approx(0.224)
    assert "iio.ina3221x.vdd_sys_gpu.power" in ch
    assert any("NC" in n or "not connected" in n for n in notes)


# --------------------------------------------------------------------------------------------
# powercap RAPL
# --------------------------------------------------------------------------------------------


def test_rapl_nested_domains_counter_wrap_and_scale(roots: SystemRoots) -> None:
    fs.make_rapl(roots.sysfs, energy_uj=1_500_000, max_energy_range_uj=262_143_328_850)
    channels, notes = discover_power_with_notes(roots)
    assert notes == []
    assert_well_formed(channels, roots)
    ch = by_name(channels)
    assert set(ch) == {
        "rapl.package-0.energy",
        "rapl.package-0.core.energy",
        "rapl.package-0.uncore.energy",
        "rapl.package-0.dram.energy",
        "rapl.psys.energy",
    }
    pkg = ch["rapl.package-0.energy"]
    assert (pkg.kind, pkg.quantity, pkg.unit) == (ReadKind.COUNTER, "energy", "J")
    assert pkg.wrap == 262_143_328_850
    assert pkg.source == "powercap:intel-rapl:0"
    assert read_sysfs_int(pkg.paths[0]) * pkg.scale == pytest.approx(1.5)
    core = ch["rapl.package-0.core.energy"]
    assert core.label == "core"
    assert core.extra["parent"] == "intel-rapl:0"
    # the control-type directory (no energy_uj) is not a zone
    assert not any(c.source == "powercap:intel-rapl" for c in channels)


def test_rapl_missing_or_bad_max_energy_range_skips_only_that_zone(roots: SystemRoots) -> None:
    fs.make_rapl(roots.sysfs, max_energy_range_uj={"intel-rapl:0:0": None, "intel-rapl:1": 0})
    channels, notes = discover_power_with_notes(roots)
    names = {c.name for c in channels}
    assert "rapl.package-0.core.energy" not in names
    assert "rapl.psys.energy" not in names
    assert "rapl.package-0.energy" in names
    assert any("intel-rapl:0:0" in n and "max_energy_range_uj" in n for n in notes)
    assert any("intel-rapl:1" in n and "max_energy_range_uj is 0" in n for n in notes)


def test_rapl_unreadable_energy_is_a_note(
    world_dir: Path, unprivileged: Callable[[Callable[[], str]], str]
) -> None:
    """Since Linux 5.10 energy_uj is root-only: discovery without root skips it, with a note."""
    roots = fs.fake_roots(world_dir)
    zones = fs.make_rapl(roots.sysfs, {"intel-rapl:0": "package-0", "intel-rapl:1": "psys"})
    (zones[1] / "energy_uj").chmod(0o400)

    def discover() -> str:
        channels, notes = discover_power_with_notes(roots)
        return json.dumps([[c.name for c in channels], notes])

    names, notes = json.loads(unprivileged(discover))
    assert names == ["rapl.package-0.energy"]
    assert any("intel-rapl:1" in n and "not readable" in n for n in notes)


def test_rapl_mmio_twin_gets_its_own_name(tmp_path: Path) -> None:
    r = fs.fake_roots(tmp_path)
    fs.make_x86_like(r.sysfs)
    names = {c.name for c in discover_power(r)}
    assert {"rapl.package-0.energy", "intel-rapl-mmio.package-0.energy"} <= names


# --------------------------------------------------------------------------------------------
# Malformed trees
# --------------------------------------------------------------------------------------------


def test_garbage_power_file_falls_back_to_product(roots: SystemRoots) -> None:
    hw = fs.make_hwmon_ina219(roots.sysfs, 0, millivolts=5000, milliamps=200)
    (hw / "power1_input").write_text("not a number\n")
    channels, notes = discover_power_with_notes(roots)
    p = by_name(channels)["hwmon.ina219.1.power"]
    assert p.kind is ReadKind.PRODUCT
    assert si_value(p) == pytest.approx(1.0)
    assert any("power1_input" in n and "expected an integer" in n for n in notes)


@pytest.mark.parametrize(
    ("fname", "content", "expect"),
    [
        ("in1_label", b"\xff\xfe\x00garbage", "bad label"),
        ("in1_enable", b"yes\n", "expected an integer"),
        ("in1_input", b"12_000\n", "expected an integer"),
    ],
)
def test_malformed_ina3221_files_give_notes(
    roots: SystemRoots, fname: str, content: bytes, expect: str
) -> None:
    hw = fs.make_hwmon_ina3221(roots.sysfs, 1, ("VDD_IN", "VDD_SOC", "NC"))
    (hw / fname).write_bytes(content)
    channels, notes = discover_power_with_notes(roots)
    assert any(expect in n for n in notes), notes
    assert "hwmon.ina3221.vdd_soc.power" in {c.name for c in channels}


def test_missing_name_file_still_discovers(roots: SystemRoots) -> None:
    hw = fs.make_hwmon_ina219(roots.sysfs, 0)
    (hw / "name").unlink()
    channels, notes = discover_power_with_notes(roots)
    assert "hwmon.unknown.1.power" in {c.name for c in channels}
    assert any("driver name unknown" in n for n in notes)


def test_every_file_corrupted_never_crashes(tmp_path: Path) -> None:
    r = fs.fake_roots(tmp_path)
    fs.make_jetson_like(r.sysfs)
    fs.make_x86_like(r.sysfs)
    fs.make_iio_ina3221x(r.sysfs)
    for dirpath, _, files in os.walk(r.sysfs):
        for f in files:
            Path(dirpath, f).write_bytes(b"\x00\x01 garbage \xff\n")
    channels, notes = discover_power_with_notes(r)
    assert channels == []
    assert notes
    sys_channels, sys_notes = system.discover_system_with_notes(r)
    assert sys_channels == []
    assert sys_notes
    assert system.read_governors(r) == {}
    assert system.read_freq_limits(r) == {}


def test_value_file_that_is_a_directory_is_a_note(roots: SystemRoots) -> None:
    fs.make_rapl(roots.sysfs, {"intel-rapl:0": "package-0"})
    energy = roots.sys("class", "powercap", "intel-rapl:0", "energy_uj")
    energy.unlink()
    energy.mkdir()
    channels, notes = discover_power_with_notes(roots)
    assert channels == []
    assert any("cannot read" in n for n in notes)


def test_empty_tree_finds_nothing_quietly(roots: SystemRoots) -> None:
    assert discover_power_with_notes(roots) == ([], [])
    assert system.discover_system_with_notes(roots) == ([], [])


@pytest.mark.parametrize("text", ["1_000", "\u0661\u0662", "", "12 34", "0x10", "1.5"])
def test_read_sysfs_int_rejects_garbage_and_names_the_file(tmp_path: Path, text: str) -> None:
    p = tmp_path / "value"
    p.write_text(text)
    with pytest.raises(InputError, match="value"):
        read_sysfs_int(p)


@pytest.mark.parametrize(("text", "value"), [(" 42\n", 42), ("-5", -5), ("+7\n", 7)])
def test_read_sysfs_int_accepts_what_the_c_parser_accepts(
    tmp_path: Path, text: str, value: int
) -> None:
    p = tmp_path / "value"
    p.write_text(text)
    assert read_sysfs_int(p) == value


def test_sources_implement_the_protocol(roots: SystemRoots) -> None:
    sources: list[power.PowerSource] = [HwmonSource(), IioIna3221Source(), RaplSource()]
    assert [s.name for s in sources] == [s.name for s in registry.POWER_SOURCES]
    for s in sources:
        assert s.discover(roots) == []


def test_whole_boards(tmp_path: Path) -> None:
    expected = {
        "jetson": {"hwmon.ina3221.vdd_in.power", "hwmon.ina3221.vdd_soc.current"},
        "rpi": {"hwmon.ina219.1.power"},
        "x86": {"rapl.package-0.energy", "rapl.psys.energy"},
    }
    makers = {"jetson": fs.make_jetson_like, "rpi": fs.make_rpi_like, "x86": fs.make_x86_like}
    for board, want in expected.items():
        r = fs.fake_roots(tmp_path / board)
        makers[board](r.sysfs)
        channels, notes = discover_power_with_notes(r)
        assert notes == []
        assert_well_formed(channels, r)
        assert want <= {c.name for c in channels}


# --------------------------------------------------------------------------------------------
# cpufreq, thermal
# --------------------------------------------------------------------------------------------


def test_cpufreq_numeric_order_and_hz(roots: SystemRoots) -> None:
    fs.make_cpufreq(roots.sysfs, 12, [1_200_000 + 100_000 * n for n in range(12)])
    cpu = roots.sys("devices", "system", "cpu")
    (cpu / "cpu12").mkdir()  # offline: no cpufreq directory
    (cpu / "cpufreq" / "policy0").mkdir(parents=True)
    (cpu / "cpuidle").mkdir()
    channels = system.cpufreq_channels(roots)
    assert [c.name for c in channels] == [f"cpu{n}.freq" for n in range(12)]
    c10 = channels[10]
    assert (c10.quantity, c10.unit, c10.kind) == ("frequency", "Hz", ReadKind.VALUE)
    assert si_value(c10) == pytest.approx(2.2e9)


def test_thermal_zones_unique_names_and_degc(roots: SystemRoots) -> None:
    temps = fs.make_thermal(
        roots.sysfs,
        [("acpitz", 45_000), ("x86_pkg_temp", 52_500), ("acpitz", -1_000), ("iwlwifi_1", 0)],
        cooling_devices=2,
    )
    temps[3].write_text("\n")  # a zone that cannot report right now
    channels, notes = system.discover_system_with_notes(roots)
    ch = by_name(channels)
    assert list(ch) == ["thermal.acpitz", "thermal.x86_pkg_temp", "thermal.acpitz_2"]
    pkg = ch["thermal.x86_pkg_temp"]
    assert (pkg.quantity, pkg.unit) == ("temperature", "degC")
    assert si_value(pkg) == pytest.approx(52.5)
    assert si_value(ch["thermal.acpitz_2"]) == pytest.approx(-1.0)
    assert any("iwlwifi_1" in n for n in notes)


def test_governors_and_frequency_limits(roots: SystemRoots) -> None:
    fs.make_cpufreq(roots.sysfs, 2, governor="performance", min_khz=400_000, max_khz=4_700_000)
    assert system.read_governors(roots) == {"cpu0": "performance", "cpu1": "performance"}
    limits = system.read_freq_limits(roots)
    assert limits["cpu1"] == {
        "cpuinfo_min_hz": 400_000_000,
        "cpuinfo_max_hz": 4_700_000_000,
        "scaling_min_hz": 400_000_000,
        "scaling_max_hz": 4_700_000_000,
    }


# --------------------------------------------------------------------------------------------
# memory
# --------------------------------------------------------------------------------------------


def test_rss_and_pss_channels_on_fake_procfs(roots: SystemRoots) -> None:
    fs.make_proc_pid(roots.procfs, 4242, resident_pages=1000, pss_kb=3000)
    fs.make_proc_pid(roots.procfs, 4243, resident_pages=1000, pss_kb=None)
    rss = system.rss_channel(roots, 4242)
    assert (rss.name, rss.kind, rss.quantity, rss.unit) == (
        "mem.rss",
        ReadKind.STATM_RSS,
        "memory",
        "B",
    )
    assert rss.paths == (str(roots.proc("4242", "statm")),)
    pss = system.pss_channel(roots, 4242)
    assert pss is not None
    assert (pss.name, pss.kind) == ("mem.pss", ReadKind.SMAPS_PSS)
    assert pss.paths == (str(roots.proc("4242", "smaps_rollup")),)
    assert system.pss_channel(roots, 4243) is None


def test_rss_rejects_bad_and_missing_pids(roots: SystemRoots) -> None:
    with pytest.raises(InputError):
        system.rss_channel(roots, 0)
    with pytest.raises(InputError):
        system.pss_channel(roots, -1)
    with pytest.raises(UnavailableError):
        system.rss_channel(roots, 999_999)


def test_memory_channels_on_real_procfs() -> None:
    real = SystemRoots()
    if not Path("/proc/self/statm").exists():
        pytest.skip("no procfs")
    rss = system.rss_channel(real, os.getpid())
    assert Path(rss.paths[0]).is_file()
    pss = system.pss_channel(real, os.getpid())
    assert pss is None or Path(pss.paths[0]).is_file()
