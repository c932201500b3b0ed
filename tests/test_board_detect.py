"""Board detection and the stable device id, against fake sysfs/procfs/etc trees."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from edgeprof.device.board_registry import Board, parse_board
from edgeprof.device.detect import (
    UNAVAILABLE_DEVICE_ID,
    detect_board,
    parse_l4t_release,
    stable_device_id,
)
from edgeprof.device.roots import SystemRoots

ORIN_RELEASE = (
    "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, "
    "DATE: Tue Aug  1 19:57:35 UTC 2023\n"
    "# KERNEL_VARIANT: oot\n"
    "TARGET_USERSPACE_LIB_DIR=nvidia\n"
)
MACHINE_ID = "4c4c4544004d3510804ab4c04f4d4d32"
DT_SERIAL = "10000000a1b2c3d4"
DMI_UUID = "4c4c4544-004d-3510-804a-b4c04f4d4d32"


@pytest.fixture
def roots(tmp_path: Path) -> SystemRoots:
    r = SystemRoots(sysfs=tmp_path / "sys", procfs=tmp_path / "proc", etc=tmp_path / "etc")
    for p in (r.sysfs, r.procfs, r.etc):
        p.mkdir()
    return r


def put(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def dt_model(roots: SystemRoots, model: bytes) -> Path:
    return put(roots.proc("device-tree", "model"), model)


def test_raspberry_pi_4(roots: SystemRoots) -> None:
    dt_model(roots, b"Raspberry Pi 4 Model B Rev 1.4\0")
    found = detect_board(roots, machine="aarch64")
    assert found.board_id == "raspberry-pi-4b"
    assert found.board is not None
    assert found.board.cpu == "Cortex-A72"
    assert found.confidence == "matched"
    assert found.evidence["device_tree_model"] == "Raspberry Pi 4 Model B Rev 1.4"
    assert "Raspberry Pi 4 Model B" in found.evidence["matched_by"]
    assert found.l4t_release is None


def test_raspberry_pi_4_on_32_bit_userland_via_sysfs(roots: SystemRoots) -> None:
    # No /proc/device-tree link (some containers): the sysfs copy is read instead.
    put(roots.sys("firmware", "devicetree", "base", "model"), b"Raspberry Pi 4 Model B Rev 1.2\0")
    found = detect_board(roots, machine="armv7l")
    assert found.board_id == "raspberry-pi-4b"
    assert found.evidence["machine"] == "armv7l"


def test_jetson_orin_nano(roots: SystemRoots) -> None:
    dt_model(roots, b"NVIDIA Jetson Orin Nano Developer Kit\0")
    put(roots.etc_path("nv_tegra_release"), ORIN_RELEASE)
    found = detect_board(roots, machine="aarch64")
    assert found.board_id == "jetson-orin-nano"
    assert found.confidence == "matched"
    assert found.l4t_release == "35.4.1"
    assert found.evidence["nv_tegra_release"].startswith("# R35 (release)")
    assert found.board is not None
    assert found.board.power is not None
    assert "VDD_IN" in found.board.power.rails


def test_jetson_nano_is_not_orin_nano(roots: SystemRoots) -> None:
    dt_model(roots, b"NVIDIA Jetson Nano Developer Kit\0")
    put(roots.etc_path("nv_tegra_release"), "# R32 (release), REVISION: 7.4, GCID: 33514132\n")
    found = detect_board(roots, machine="aarch64")
    assert (found.board_id, found.l4t_release) == ("jetson-nano", "32.7.4")


def test_x86_dmi_box_falls_back_to_generic(roots: SystemRoots) -> None:
    dmi = roots.sys("class", "dmi", "id")
    put(dmi / "product_name", "OptiPlex 7090\n")
    put(dmi / "sys_vendor", "Dell Inc.\n")
    put(dmi / "board_name", "0K1VGW\n")
    found = detect_board(roots, machine="x86_64")
    assert found.board_id == "generic-linux-x86_64"
    assert found.confidence == "fallback"
    assert found.evidence["dmi_product_name"] == "OptiPlex 7090"
    assert found.evidence["dmi_sys_vendor"] == "Dell Inc."
    assert found.evidence["dmi_board_name"] == "0K1VGW"


def test_unmatched_arm_board_falls_back_and_unknown_arch_is_unknown(roots: SystemRoots) -> None:
    dt_model(roots, b"Pine64 RockPro64 v2.1\0")
    found = detect_board(roots, machine="arm64")
    assert (found.board_id, found.confidence) == ("generic-linux-aarch64", "fallback")
    found = detect_board(roots, machine="riscv64")
    assert (found.board_id, found.board, found.confidence) == (None, None, "unknown")
    assert found.evidence["device_tree_model"] == "Pine64 RockPro64 v2.1"


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\0\0\0",
        b"\xff\xfe\xfa\x00Raspberry",
        b"\x1b[31mRaspberry Pi 4 Model B\x1b[0m\nsecond line",
        b"A" * 100_000,
    ],
)
def test_garbage_files_never_crash(roots: SystemRoots, garbage: bytes) -> None:
    dt_model(roots, garbage)
    put(roots.sys("class", "dmi", "id", "product_name"), garbage)
    put(roots.etc_path("nv_tegra_release"), garbage)
    found = detect_board(roots, machine="x86_64")
    assert found.confidence in {"matched", "fallback"}
    assert found.l4t_release is None
    for value in found.evidence.values():
        assert value.isprintable()
        assert len(value) <= 2000


def test_unreadable_files_never_crash(roots: SystemRoots, tmp_path: Path) -> None:
    model = roots.proc("device-tree", "model")
    model.parent.mkdir(parents=True)
    model.symlink_to(model)  # a loop: ELOOP on open
    product = roots.sys("class", "dmi", "id", "product_name")
    product.mkdir(parents=True)  # a directory where a file should be
    fifo = roots.sys("class", "dmi", "id", "sys_vendor")
    os.mkfifo(fifo)  # would block a naive open().read()
    found = detect_board(roots, machine="aarch64")
    assert found.board_id == "generic-linux-aarch64"
    assert str(model) in found.evidence["unreadable"]
    assert "not a regular file" in found.evidence["unreadable"]


def test_permission_denied_never_crashes(
    world_dir: Path, unprivileged: Callable[[Callable[[], str]], str]
) -> None:
    base = world_dir
    roots = SystemRoots(sysfs=base / "sys", procfs=base / "proc", etc=base / "etc")
    for d in (roots.sysfs, roots.procfs, roots.etc):
        d.mkdir()
    model = dt_model(roots, b"Raspberry Pi 5 Model B Rev 1.0\0")
    model.chmod(0)

    def detect() -> str:
        found = detect_board(roots, machine="aarch64")
        return f"{found.confidence}|{found.evidence.get('unreadable', '')}"

    confidence, unreadable = unprivileged(detect).split("|", 1)
    assert confidence == "fallback"
    assert "permission denied" in unreadable


def custom(board_id: str, detect: str) -> Board:
    text = (
        f'schema_version = 1\nid = "{board_id}"\nname = "x"\nfamily = "test"\nkind = "linux"\n'
        f'arch = "aarch64"\ncpu = "Cortex-A53"\ncpu_hz = 1\n[detect]\n{detect}\n'
    )
    return parse_board(text.encode(), f"{board_id}.toml")


def test_rules_all_must_hold_and_the_most_specific_wins(roots: SystemRoots) -> None:
    dt_model(roots, b"Vendor Board Pro\0")
    boards = {
        b.id: b
        for b in (
            custom("loose", 'device_tree_model = ["Vendor"]'),
            custom("specific", 'device_tree_model = ["Vendor Board"]'),
            custom("needs-l4t", 'device_tree_model = ["Vendor Board Pro"]\njetson_release = true'),
        )
    }
    assert detect_board(roots, machine="aarch64", boards=boards).board_id == "specific"
    put(roots.etc_path("nv_tegra_release"), "not a release line\n")
    found = detect_board(roots, machine="aarch64", boards=boards)
    assert found.board_id == "needs-l4t"
    assert found.l4t_release is None  # present but unparseable


def test_dmi_rules_are_case_insensitive(roots: SystemRoots) -> None:
    dmi = roots.sys("class", "dmi", "id")
    put(dmi / "sys_vendor", "LENOVO\n")
    put(dmi / "product_name", "20XW0026GE\n")
    board = custom("thinkpad", 'dmi_sys_vendor = ["Lenovo"]\ndmi_product_name = ["20XW"]')
    assert detect_board(roots, machine="x86_64", boards={"thinkpad": board}).board_id == "thinkpad"


def test_tie_is_ambiguous_not_a_guess(roots: SystemRoots) -> None:
    dt_model(roots, b"Twin\0")
    twins = (custom(i, 'device_tree_model = ["Twin"]') for i in ("a", "b"))
    boards = {b.id: b for b in twins}
    found = detect_board(roots, machine="aarch64", boards=boards)
    assert (found.board_id, found.confidence) == (None, "unknown")
    assert found.evidence["ambiguous"] == "a, b"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref", "35.4.1"),
        ("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic", "36.4.3"),
        ("# R32 (release), REVISION: 7.1, GCID: 29818004", "32.7.1"),
        ("R35 release 4.1", None),
        ("", None),
    ],
)
def test_parse_l4t_release(text: str, expected: str | None) -> None:
    assert parse_l4t_release(text) == expected


def test_device_id_from_machine_id_is_stable_and_opaque(roots: SystemRoots) -> None:
    put(roots.etc_path("machine-id"), MACHINE_ID + "\n")
    put(roots.proc("device-tree", "serial-number"), DT_SERIAL + "\0")
    first = stable_device_id(roots)
    assert first == stable_device_id(roots)
    source, digest = first.split(":")
    assert source == "machine-id"
    assert len(digest) == 16
    int(digest, 16)
    assert MACHINE_ID not in first
    assert MACHINE_ID[:16] not in first
    put(roots.etc_path("machine-id"), MACHINE_ID[::-1] + "\n")
    assert stable_device_id(roots) != first


@pytest.mark.parametrize("machine_id", ["", "uninitialized\n", "0" * 32 + "\n", "xyz\n"])
def test_device_id_falls_back_to_dt_serial(roots: SystemRoots, machine_id: str) -> None:
    put(roots.etc_path("machine-id"), machine_id)
    put(roots.sys("firmware", "devicetree", "base", "serial-number"), DT_SERIAL + "\0")
    device_id = stable_device_id(roots)
    assert device_id.startswith("dt-serial:")
    assert DT_SERIAL not in device_id


def test_device_id_from_dmi_uuid_and_placeholders_refused(roots: SystemRoots) -> None:
    uuid = put(roots.sys("class", "dmi", "id", "product_uuid"), DMI_UUID.upper() + "\n")
    device_id = stable_device_id(roots)
    assert device_id.startswith("dmi-uuid:")
    assert DMI_UUID not in device_id.lower()
    put(uuid, "03000200-0400-0500-0006-000700080009\n")
    assert stable_device_id(roots) == UNAVAILABLE_DEVICE_ID
    put(roots.proc("device-tree", "serial-number"), b"0000000000000000\0")
    assert stable_device_id(roots) == UNAVAILABLE_DEVICE_ID


def test_device_id_with_nothing_readable(roots: SystemRoots) -> None:
    (roots.etc_path("machine-id")).mkdir()
    assert stable_device_id(roots) == UNAVAILABLE_DEVICE_ID
