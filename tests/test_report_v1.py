"""Report v1: round trip, every validation rule, versions, damaged files, signatures, keys."""

from __future__ import annotations

import copy
import importlib.util
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

from edgeprof.errors import InputError
from edgeprof.report import signing
from edgeprof.report.codec import decode, encode, read_report, to_wire
from edgeprof.report.schema import FIELDS, MINOR, markdown_table, validate
from edgeprof.report.signing import Keys, canonical_bytes, init_keys, load_keys, sign, verify

ROOT = Path(__file__).resolve().parents[1]
GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
_spec = importlib.util.spec_from_file_location("make_golden", GOLDEN_DIR / "make_golden.py")
assert _spec is not None
assert _spec.loader is not None
make_golden: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_golden)
TEST_KEY = (GOLDEN_DIR / "test_hmac.key").read_bytes()

HAVE_ED25519 = signing._ed25519_available()


def build(**kw: Any) -> dict[str, Any]:
    report: dict[str, Any] = make_golden.build_report(**kw)
    return report


def hmac_keys() -> Keys:
    return Keys(directory=GOLDEN_DIR, hmac_key=TEST_KEY)


# --- round trip and the schema table ----------------------------------------------------------


def test_round_trip_keeps_values_types_and_arrays() -> None:
    r = build()
    back = decode(encode(r))
    assert back["schema_version"] == [1, 0]
    assert back["model"] == r["model"]
    for k, v in r["per_inference"].items():
        np.testing.assert_array_equal(back["per_inference"][k], v)
        assert back["per_inference"][k].dtype == v.dtype
    assert back["traces"]["fast"]["values"].shape == (8, 2)
    assert decode(encode(back)).keys() == back.keys()


def test_encode_stamps_v1_when_the_report_does_not_say() -> None:
    r = build()
    del r["schema"], r["schema_version"]
    assert decode(encode(r))["schema_version"] == [1, MINOR]


def test_docs_embed_the_schema_table() -> None:
    doc = (ROOT / "docs" / "report-format.md").read_text()
    assert markdown_table() in doc, "regenerate with python -m edgeprof.report.schema"


def test_units_are_in_the_key_names() -> None:
    for f in FIELDS:
        if f.unit:
            last = f.path.rsplit(".", 1)[-1]
            assert last == f.unit or last.endswith(f"_{f.unit}"), f.path


# --- validation: each rule, with the field named ------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _del(path: str) -> Mutation:
    def m(r: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        obj = r
        for p in parents:
            obj = obj[p]
        del obj[last]

    return m


def _set(path: str, value: Any) -> Mutation:
    def m(r: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        obj = r
        for p in parents:
            obj = obj[p]
        obj[last] = value

    return m


def _short_energy(r: dict[str, Any]) -> None:
    r["per_inference"]["energy_j.VDD_IN"] = r["per_inference"]["energy_j.VDD_IN"][:-1]


def _count(r: dict[str, Any]) -> None:
    r["summary"]["count"] = 6


def _trace_shape(r: dict[str, Any]) -> None:
    r["traces"]["fast"]["values"] = np.ones((8, 3))


def _trace_len(r: dict[str, Any]) -> None:
    r["traces"]["fast"]["t_ns"] = np.arange(7, dtype=np.int64)


def _backwards(r: dict[str, Any]) -> None:
    r["traces"]["fast"]["t_ns"] = np.arange(8, dtype=np.int64)[::-1].copy()


CASES: list[tuple[str, Mutation, str]] = [
    ("missing required", _del("device.board_id"), r"device\.board_id: missing"),
    ("missing map", _del("summary"), r"summary: missing"),
    ("wrong type", _set("model.size_bytes", "big"), r"model\.size_bytes: expected int, got str"),
    ("bool is not int", _set("summary.count", True), r"summary\.count: expected int"),
    ("null not allowed", _set("device.os", None), r"device\.os: expected str"),
    ("list item", _set("warnings", ["ok", 3]), r"warnings\[1\]: expected str"),
    ("nested list", _set("model.inputs", [{"name": "x"}]), r"model\.inputs\[0\]\.shape: missing"),
    ("wildcard map", _set("tags", {"a": 1}), r"tags\.a: expected str"),
    (
        "rail unit",
        _del("summary.rails.VDD_IN.power_mean_w"),
        r"summary\.rails\.VDD_IN\.power_mean_w: missing",
    ),
    (
        "array expected",
        _set("per_inference.latency_s", [1.0]),
        r"per_inference\.latency_s: expected array",
    ),
    ("bad uuid", _set("report_id", "nope"), r"report_id: 'nope' is not a UUID"),
    (
        "uuid4",
        _set("report_id", "12345678-1234-4234-8234-123456789abc"),
        r"report_id: UUID version 4",
    ),
    ("sha256", _set("model.sha256", "XYZ"), r"model\.sha256: not 64"),
    ("negative", _set("model.size_bytes", -1), r"model\.size_bytes: negative"),
    ("array length", _short_energy, r"per_inference\.energy_j\.VDD_IN: 4 values, latency_s has 5"),
    ("count", _count, r"per_inference\.latency_s: 5 values, summary\.count is 6"),
    (
        "2-D per-inference",
        _set("per_inference.peak_rss_bytes", np.ones((5, 1))),
        r"per_inference\.peak_rss_bytes: shape \[5, 1\]",
    ),
    (
        "begin_ns dtype",
        _set("per_inference.begin_ns", np.ones(5)),
        r"per_inference\.begin_ns: dtype float64",
    ),
    ("trace channels", _trace_shape, r"traces\.fast\.values: shape \[8, 3\], expected \[8, 2\]"),
    ("trace length", _trace_len, r"traces\.fast\.values: shape \[8, 2\], expected \[7, 2\]"),
    ("trace order", _backwards, r"traces\.fast\.t_ns: times go backwards"),
    ("schema name", _set("schema", "other"), r"schema: 'other' is not"),
    ("version shape", _set("schema_version", [1]), r"schema_version: \[1\] is not \[major"),
    ("signature empty", _set("signature", {}), r"signature: holds no known"),
    (
        "hmac length",
        _set("signature", {"hmac_sha256": {"key_id": "0" * 16, "value": b"x"}}),
        r"signature\.hmac_sha256\.value: 1 bytes",
    ),
]


@pytest.mark.parametrize(("what", "mutate", "message"), CASES, ids=[c[0] for c in CASES])
def test_validation_names_the_field(what: str, mutate: Mutation, message: str) -> None:
    r = build()
    mutate(r)
    with pytest.raises(InputError, match=message):
        validate(r)


def test_decode_says_fails_validation_at() -> None:
    r = build()
    _short_energy(r)
    with pytest.raises(InputError, match=r"^x\.msgpack: fails validation at per_inference\.energy"):
        decode(encode(r), "x.msgpack")


def test_unknown_fields_are_allowed() -> None:
    r = build()
    r["device"]["npu"] = "ethos-u55"
    r["something_new"] = {"a": 1}
    validate(r)


# --- versions -----------------------------------------------------------------------------------


def test_unknown_major_is_refused_clearly() -> None:
    for version in ([2, 0], [0, 1]):
        r = build()
        r["schema_version"] = version
        with pytest.raises(
            InputError, match=re.escape(f"unsupported report schema version {version}")
        ):
            decode(encode(r))
        with pytest.raises(InputError, match="this reader knows major 1"):
            validate(r)


def test_newer_minor_with_new_fields_is_accepted() -> None:
    r = build()
    r["schema_version"] = [1, 7]
    r["summary"]["latency"]["p999_s"] = 0.002
    back = decode(encode(r))
    assert back["schema_version"] == [1, 7]
    assert back["summary"]["latency"]["p999_s"] == 0.002


# --- damaged files ------------------------------------------------------------------------------


def _write(tmp_path: Path, data: bytes) -> Path:
    p = tmp_path / "r.msgpack"
    p.write_bytes(data)
    return p


def test_truncated_file(tmp_path: Path) -> None:
    data = encode(sign(build(), hmac_keys()))
    for cut in (1, len(data) // 2, len(data) - 1):
        with pytest.raises(InputError, match="truncated"):
            read_report(_write(tmp_path, data[:cut]), keys=hmac_keys())


def test_corrupted_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a msgpack report"):
        read_report(_write(tmp_path, b"\xc1" + b"\x00" * 40))
    with pytest.raises(InputError, match="not an edgeprof report"):
        read_report(_write(tmp_path, msgpack.packb({"hello": 1})))
    with pytest.raises(InputError, match="trailing bytes"):
        read_report(_write(tmp_path, encode(build()) + b"\x00"))
    with pytest.raises(InputError, match="cannot read"):
        read_report(tmp_path / "absent.msgpack")


def test_tampered_file_is_a_signature_mismatch(tmp_path: Path) -> None:
    data = encode(sign(build(), hmac_keys()))
    # One latency value changes: still valid msgpack and a valid report, but not what was signed.
    original = np.asarray(build()["per_inference"]["latency_s"]).tobytes()
    assert data.count(original) == 1
    doctored = np.asarray(build()["per_inference"]["latency_s"]) * 0.5
    bad = data.replace(original, doctored.tobytes())
    with pytest.raises(InputError, match=r"signature mismatch: hmac_sha256 FAILED .*tampered"):
        read_report(_write(tmp_path, bad), keys=hmac_keys())
    # The same file reads when the caller asks not to verify.
    assert read_report(_write(tmp_path, bad), verify=False)["report_id"]


def test_unsigned_report_reads_locally(tmp_path: Path) -> None:
    assert read_report(_write(tmp_path, encode(build())), keys=hmac_keys())["report_id"]


# --- signing ------------------------------------------------------------------------------------


def test_canonical_bytes_ignore_key_order_and_signature() -> None:
    r = build()
    shuffled = dict(reversed(list(r.items())))
    shuffled["device"] = dict(reversed(list(r["device"].items())))
    assert canonical_bytes(r) == canonical_bytes(shuffled)
    assert canonical_bytes(r) == canonical_bytes({**r, "signature": {"x": 1}})
    assert canonical_bytes(r) != canonical_bytes({**r, "tags": {}})


def test_hmac_sign_verify_and_tamper() -> None:
    signed = sign(build(), hmac_keys())
    assert signed["signature"]["hmac_sha256"]["key_id"] == signing.key_id(TEST_KEY)
    ok = verify(decode(encode(signed)), hmac_key=TEST_KEY)
    assert ok.ok
    assert ok.verified == ["hmac_sha256"]
    tampered = copy.deepcopy(signed)
    tampered["summary"]["latency"]["p99_s"] /= 2
    bad = verify(tampered, hmac_key=TEST_KEY)
    assert not bad.ok
    assert "hmac_sha256 FAILED" in bad.message()
    # Another device's HMAC key: not checkable here (unverified), not a mismatch.
    other = verify(signed, hmac_key=b"\x01" * 32)
    assert not other.ok
    assert "signed with HMAC key" in other.unchecked["hmac_sha256"]
    unchecked = verify(signed)
    assert not unchecked.ok
    assert "hmac_sha256" in unchecked.unchecked


def test_sign_needs_a_key() -> None:
    with pytest.raises(InputError, match="keys init"):
        sign(build(), Keys(directory=GOLDEN_DIR))


@pytest.mark.skipif(not HAVE_ED25519, reason="cryptography is not installed")
def test_ed25519_sign_verify_and_tamper() -> None:
    keys = Keys(directory=GOLDEN_DIR, hmac_key=TEST_KEY, ed25519_seed=b"\x07" * 32)
    signed = decode(encode(sign(build(), keys)))
    pub = signed["signature"]["ed25519"]["public_key"]
    assert verify(signed, trusted_public_keys=[pub]).verified == ["ed25519"]
    tampered = copy.deepcopy(signed)
    tampered["per_inference"]["latency_s"] = tampered["per_inference"]["latency_s"] * 2
    result = verify(tampered, hmac_key=TEST_KEY, trusted_public_keys=[pub])
    assert set(result.failed) == {"hmac_sha256", "ed25519"}
    assert "ed25519 FAILED (signature does not match" in result.message()
    # A matching signature by a key nobody trusts proves nothing: unverified, never verified.
    for trust in ([b"\x00" * 32], None):
        untrusted = verify(signed, trusted_public_keys=trust)
        assert untrusted.verified == []
        assert not untrusted.failed
        assert "not in the trust store" in untrusted.unchecked["ed25519"]
        assert "ed25519 unverified" in untrusted.message()
    named = verify(signed, trusted_public_keys={pub: "rig-7"})
    assert named.verified == ["ed25519"]
    assert "ed25519 verified (rig-7)" in named.message()


# --- keys on disk -------------------------------------------------------------------------------


def test_init_keys_creates_private_files_and_refuses_overwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "cfg" / "keys"
    monkeypatch.setenv(signing.ENV_KEY_DIR, str(d))
    assert not load_keys().any
    keys = init_keys()
    assert keys.hmac_key is not None
    assert len(keys.hmac_key) == 32
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for f in d.iterdir():  # secrets 0600; the public key is for others to read
        assert stat.S_IMODE(f.stat().st_mode) == (0o644 if f.suffix == ".pub" else 0o600), f
    assert (d / "ed25519.key").exists() == HAVE_ED25519
    with pytest.raises(InputError, match=r"exists.*--force"):
        init_keys()
    again = init_keys(force=True)
    assert again.hmac_key != keys.hmac_key
    assert load_keys().hmac_key == again.hmac_key
    # --if-missing keeps what is there and adds only what is not
    assert init_keys(if_missing=True).hmac_key == again.hmac_key
    (d / "hmac.key").unlink()
    added = init_keys(if_missing=True)
    assert added.hmac_key is not None
    assert added.ed25519_seed == again.ed25519_seed
    if HAVE_ED25519:
        pub = (d / "ed25519.pub").read_text()
        assert pub.startswith(f"ed25519 {again.ed25519_public_key.hex()}")  # type: ignore[union-attr]


def test_key_dir_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(signing.ENV_KEY_DIR, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert signing.key_dir() == tmp_path / "edgeprof" / "keys"


def test_a_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    init_keys(directory=tmp_path)
    (tmp_path / "hmac.key").chmod(0o644)
    with pytest.raises(InputError, match="readable by others"):
        load_keys(tmp_path)


# --- the golden file ------------------------------------------------------------------------------


def test_golden_v1_0_report_still_decodes_and_verifies() -> None:
    report = read_report(GOLDEN_DIR / "report_v1_0.msgpack", keys=hmac_keys())
    assert report["report_id"] == make_golden.REPORT_ID
    assert report["schema_version"] == [1, 0]
    assert report["model"]["registry"]["model_id"] == "kws"
    assert verify(report, hmac_key=TEST_KEY).verified == ["hmac_sha256"]
    # And it is exactly what the builder makes, signed: the encoding has not drifted.
    assert to_wire(sign(build(), hmac_keys())) == msgpack.unpackb(
        (GOLDEN_DIR / "report_v1_0.msgpack").read_bytes()
    )


def test_the_golden_maker_remakes_the_file_byte_for_byte() -> None:
    # The maker builds through the report factory and builder: neither may change the bytes.
    assert make_golden.golden_bytes() == (GOLDEN_DIR / "report_v1_0.msgpack").read_bytes()
