"""``[power].rails`` of a board file, used: doctor names an expected rail discovery did not find."""

from __future__ import annotations

from pathlib import Path

from edgeprof.device.doctor import probe_power
from edgeprof.device.roots import SystemRoots
from edgeprof.device.sources.power import missing_rails
from edgeprof.device.sources.stream import stream_channel
from edgeprof.testing import fake_sysfs as fs

ORIN = b"NVIDIA Jetson Orin Nano Developer Kit\0"


def orin(tmp_path: Path, labels: tuple[str, ...]) -> SystemRoots:
    roots = fs.fake_roots(tmp_path)
    model = roots.proc("device-tree", "model")
    model.parent.mkdir(parents=True)
    model.write_bytes(ORIN)
    fs.make_hwmon_ina3221(
        roots.sysfs, 1, labels, millivolts=(5000,) * len(labels), milliamps=(100,) * len(labels)
    )
    return roots


def test_all_expected_rails_found(tmp_path: Path) -> None:
    power = probe_power(orin(tmp_path, ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC")))
    assert power["expected_rails"] == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
    assert power["missing_rails"] == []
    assert not [n for n in power["notes"] if "expected rail" in n]


def test_a_missing_rail_is_named(tmp_path: Path) -> None:
    power = probe_power(orin(tmp_path, ("VDD_IN", "VDD_CPU_GPU_CV", "NC")))
    assert power["missing_rails"] == ["VDD_SOC"]
    assert (
        "expected rail VDD_SOC not found (boards/jetson-orin-nano.toml names it)"
        in (power["notes"])
    )


def test_no_board_rails_no_expectations(tmp_path: Path) -> None:
    roots = fs.fake_roots(tmp_path)
    fs.make_rpi_like(roots.sysfs)
    power = probe_power(roots)
    assert power["expected_rails"] == []
    assert power["missing_rails"] == []


def test_missing_rails_compares_labels_case_insensitively() -> None:
    chans = [stream_channel("a", "power", "W", "t", label="vdd_in ")]
    assert missing_rails(["VDD_IN", "VDD_SOC"], chans) == ["VDD_SOC"]
