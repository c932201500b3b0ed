"""The board registry: every shipped file loads, and every malformed file is refused by name."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from edgeprof.device.board_registry import (
    SCHEMA_VERSION,
    Arch,
    BoardKind,
    get_board,
    load_board_file,
    load_boards,
)
from edgeprof.errors import InputError

VALID = """\
schema_version = 1
id = "test-mcu"
name = "Test MCU board"
family = "stm32"
kind = "mcu"
cpu = "Cortex-M4"
arch = "armv7e-m"
cpu_hz = 80_000_000
sram_bytes = 65_536
flash_bytes = 262_144

[[usb]]
vid = 0x1234
pid = 0xABCD

[detect]
device_tree_model = ["Test"]

[power]
rails = ["VDD"]
"""


def write(tmp_path: Path, text: str, name: str = "board.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refused(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_board_file(path)
    message = str(info.value)
    assert str(path) in message, "every refusal must name the file"
    return message


def test_every_shipped_file_loads() -> None:
    shipped = sorted(
        e.name.removesuffix(".toml")
        for e in resources.files("edgeprof.device.boards").iterdir()
        if e.name.endswith(".toml")
    )
    boards = load_boards()
    assert sorted(boards) == shipped
    assert len(shipped) >= 10
    for board_id, board in boards.items():
        assert board.id == board_id
        if board.kind is BoardKind.MCU:
            assert board.sram_bytes
            assert board.flash_bytes
            assert board.cpu_hz
        if not board.detect.fallback:
            assert board.cpu
            assert board.cpu_hz


def test_shipped_values() -> None:
    nucleo = get_board("stm32f446-nucleo")
    assert (nucleo.cpu_hz, nucleo.sram_bytes, nucleo.flash_bytes) == (180_000_000, 131_072, 524_288)
    assert [str(u) for u in nucleo.usb] == ["0483:374b"]
    assert [str(u) for u in get_board("esp32-s3-devkitc-1").usb] == ["303a:1001"]
    assert [str(u) for u in get_board("esp32-devkitc").usb] == ["10c4:ea60"]
    orin = get_board("jetson-orin-nano")
    assert orin.power is not None
    assert orin.power.rails == ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC")
    fallbacks = {b.arch for b in load_boards().values() if b.detect.fallback}
    assert fallbacks == {Arch.X86_64, Arch.AARCH64}


def test_load_boards_returns_a_fresh_dict() -> None:
    first = load_boards()
    first.clear()
    assert load_boards()


def test_user_file_loads(tmp_path: Path) -> None:
    board = load_board_file(write(tmp_path, VALID))
    assert board.id == "test-mcu"
    assert board.arch is Arch.ARMV7E_M
    assert board.usb[0].vid == 0x1234
    assert board.detect.device_tree_model == ("Test",)


def test_newer_schema_version_refused(tmp_path: Path) -> None:
    text = VALID.replace("schema_version = 1", f"schema_version = {SCHEMA_VERSION + 1}")
    text += "\nfield_from_the_future = 1\n"
    message = refused(tmp_path, text)
    assert "newer" in message
    assert "field_from_the_future" not in message  # the version is the reason, not the key


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("schema_version = 1\n", "", "schema_version"),
        ("schema_version = 1", 'schema_version = "1"', "schema_version"),
        ("schema_version = 1", "schema_version = 0", "schema_version"),
        ('name = "Test MCU board"\n', "", "name"),
        ('kind = "mcu"\n', "", "kind"),
        ("sram_bytes = 65_536\n", "", "sram_bytes"),
        ("cpu_hz = 80_000_000", 'cpu_hz = "80 MHz"', "cpu_hz"),
        ("cpu_hz = 80_000_000", "cpu_hz = true", "cpu_hz"),
        ("cpu_hz = 80_000_000", "cpu_hz = 8.0e7", "cpu_hz"),
        ("cpu_hz = 80_000_000", "cpu_hz = -1", "cpu_hz"),
        ('kind = "mcu"', 'kind = "rtos"', "kind"),
        ('arch = "armv7e-m"', 'arch = "arm"', "arch"),
        ('id = "test-mcu"', 'id = "Test MCU"', "id"),
        ("vid = 0x1234", "vid = 0x12345", "usb[0].vid"),
        ('device_tree_model = ["Test"]', 'device_tree_model = "Test"', "detect.device_tree_model"),
        ('device_tree_model = ["Test"]', "device_tree_model = []", "detect.device_tree_model"),
        ('device_tree_model = ["Test"]', "jetson_release = 1", "detect.jetson_release"),
        ('rails = ["VDD"]', "rails = [1]", "power.rails[0]"),
    ],
)
def test_missing_or_mistyped_field_refused(tmp_path: Path, old: str, new: str, field: str) -> None:
    assert old in VALID
    message = refused(tmp_path, VALID.replace(old, new))
    assert repr(field) in message


@pytest.mark.parametrize(
    ("old", "new", "key", "suggestion"),
    [
        ('name = "Test MCU board"', 'nmae = "Test MCU board"', "nmae", "name"),
        (
            'device_tree_model = ["Test"]',
            'devce_tree_model = ["Test"]',
            "detect.devce_tree_model",
            "device_tree_model",
        ),
        ("pid = 0xABCD", "pid = 0xABCD\nproduct = 1", "usb[0].product", None),
    ],
)
def test_unknown_key_refused(
    tmp_path: Path, old: str, new: str, key: str, suggestion: str | None
) -> None:
    message = refused(tmp_path, VALID.replace(old, new))
    assert f"unknown key {key!r}" in message
    if suggestion:
        assert repr(suggestion) in message


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('kind = "mcu"', 'kind = "linux"', "sram_bytes"),  # linux boards carry no MCU memory
        ('cpu = "Cortex-M4"\n', "", "cpu"),  # only fallback boards may omit the CPU
        ('device_tree_model = ["Test"]', "fallback = true", "detect.fallback"),  # mcu fallback
    ],
)
def test_inconsistent_board_refused(tmp_path: Path, old: str, new: str, field: str) -> None:
    assert repr(field) in refused(tmp_path, VALID.replace(old, new))


def test_not_toml_or_not_text_refused(tmp_path: Path) -> None:
    assert "not valid TOML" in refused(tmp_path, "schema_version = = 1\n")
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(InputError, match="not UTF-8"):
        load_board_file(path)


def test_missing_file_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read board file"):
        load_board_file(tmp_path / "absent.toml")


def test_unknown_id_names_close_matches() -> None:
    with pytest.raises(InputError) as info:
        get_board("raspberry-pi-4")
    message = str(info.value)
    assert "'raspberry-pi-4b'" in message
    assert "did you mean" in message
    with pytest.raises(InputError, match=r"known boards: .*jetson-nano"):
        get_board("no-such-thing-at-all")


def test_errors_name_the_line(tmp_path: Path) -> None:
    message = refused(tmp_path, VALID.replace("vid = 0x1234", "vid = 0x12345"))
    assert message.startswith(f"{tmp_path / 'board.toml'}:13: field 'usb[0].vid'"), message
    message = refused(tmp_path, VALID.replace('device_tree_model = ["Test"]', "bogus = 1"))
    assert ":17: unknown key 'detect.bogus'" in message, message


V2 = VALID.replace("schema_version = 1", "schema_version = 2")


def test_firmware_and_link_tables(tmp_path: Path) -> None:
    board = load_board_file(
        write(
            tmp_path,
            V2 + '\n[firmware]\nport = "stm32f446"\n\n[link]\nrequest_timeout_s = 1.5\n',
        )
    )
    assert board.firmware is not None
    assert board.firmware.port == "stm32f446"
    assert (board.link_timeouts.request_timeout_s, board.link_timeouts.tries) == (1.5, 6)
    assert board.link_timeouts.result_timeout_s == 60.0
    assert (
        load_board_file(write(tmp_path, V2)).link_timeouts
        == load_board_file(write(tmp_path, VALID)).link_timeouts
    )


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        (VALID + "\n[link]\ntries = 3\n", "link", "needs schema_version = 2"),
        (VALID + '\n[firmware]\nport = "host"\n', "firmware", "needs schema_version = 2"),
        (V2 + "\n[link]\nrequest_timeout_s = 0\n", "link.request_timeout_s", "> 0"),
        (V2 + "\n[link]\nresult_timeout_s = inf\n", "link.result_timeout_s", "<= 3600"),
        (V2 + "\n[link]\ntries = 0\n", "link.tries", ">= 1"),
        (V2 + "\n[firmware]\n", "firmware.port", "is missing"),
        (
            V2.replace('kind = "mcu"', 'kind = "linux"')
            .replace("sram_bytes = 65_536\n", "")
            .replace("flash_bytes = 262_144\n", "")
            + "\n[link]\ntries = 3\n",
            "link",
            "only for mcu boards",
        ),
    ],
)
def test_bad_firmware_or_link_refused(tmp_path: Path, text: str, field: str, problem: str) -> None:
    message = refused(tmp_path, text)
    assert repr(field) in message
    assert problem in message


def test_shipped_mcu_boards_name_a_firmware_port_that_exists() -> None:
    ports = Path(__file__).resolve().parents[1] / "firmware_bridge" / "firmware" / "ports"
    mcus = [b for b in load_boards().values() if b.kind is BoardKind.MCU]
    assert mcus
    for board in mcus:
        assert board.firmware is not None, board.id
        assert (ports / board.firmware.port).is_dir(), board.id
    assert get_board("qemu-mps2-an386").link_timeouts.request_timeout_s == 2.0
    assert get_board("stm32f446-nucleo").link_timeouts.request_timeout_s == 0.5
