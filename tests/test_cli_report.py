"""``edgeprof report`` and ``edgeprof keys``, through the main group as the lead wires them."""

from __future__ import annotations

import csv
import io
import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeprof.cli import main
from edgeprof.cli.report import keys_group, report_group
from edgeprof.report.codec import encode
from edgeprof.report.signing import Keys, _ed25519_available, init_keys, sign
from edgeprof.testing.reports import make_report

HAVE_ED25519 = _ed25519_available()

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
GOLDEN = GOLDEN_DIR / "report_v1_0.msgpack"
TEST_KEY = GOLDEN_DIR / "test_hmac.key"

# What cli.py will do (main.add_command); harmless if it already has.
main.add_command(report_group)
main.add_command(keys_group)


@pytest.fixture(autouse=True)
def key_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "keys"
    monkeypatch.setenv("EDGEPROF_KEY_DIR", str(d))
    return d


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_show_summarizes_the_golden_report() -> None:
    code, out, _ = invoke("report", "show", str(GOLDEN))
    assert code == 0
    assert "kws_mlp_int8" in out
    assert "p99" in out
    assert "VDD_IN" in out
    assert "warning    only 5 samples" in out
    assert "hmac_sha256 unverified (no HMAC key" in out


def test_verify_exit_codes(tmp_path: Path) -> None:
    assert invoke("report", "verify", str(GOLDEN), "--hmac-key", str(TEST_KEY))[0] == 0
    code, out, _ = invoke("report", "verify", str(GOLDEN))  # no key here: nothing verified
    assert code == 1
    assert "unverified" in out
    bad = tmp_path / "bad.msgpack"
    bad.write_bytes(GOLDEN.read_bytes().replace(b"golden", b"GOLDEN"))
    code, out, _ = invoke("report", "verify", str(bad), "--hmac-key", str(TEST_KEY))
    assert code == 1
    assert "hmac_sha256 FAILED" in out
    bad.write_bytes(GOLDEN.read_bytes()[:100])
    code, _, err = invoke("report", "verify", str(bad), "--hmac-key", str(TEST_KEY))
    assert code == 2
    assert "truncated" in err


def test_export_json_and_csv(tmp_path: Path) -> None:
    code, out, _ = invoke("report", "export", str(GOLDEN), "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert len(doc["per_inference"]["latency_s"]) == 5
    assert isinstance(doc["signature"]["hmac_sha256"]["value"], str)
    target = tmp_path / "r.csv"
    code, _, _ = invoke("report", "export", str(GOLDEN), "--format", "csv", "-o", str(target))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == 5
    assert list(rows[0]) == ["begin_ns", "latency_s", "energy_j.VDD_IN", "peak_rss_bytes"]
    assert int(rows[1]["begin_ns"]) > int(rows[0]["begin_ns"])


def test_unreadable_file_is_one_line_exit_2(tmp_path: Path) -> None:
    code, _, err = invoke("report", "show", str(tmp_path / "nope.msgpack"))
    assert code == 2
    assert err.startswith("edgeprof: error:")
    assert "cannot read" in err


def test_keys_init_show_and_verify_with_device_keys(key_dir: Path, tmp_path: Path) -> None:
    code, out, _ = invoke("keys", "init")
    assert code == 0
    assert stat.S_IMODE((key_dir / "hmac.key").stat().st_mode) == 0o600
    assert invoke("keys", "init")[0] == 2
    assert invoke("keys", "init", "--force")[0] == 0
    code, out, _ = invoke("keys", "show")
    secret = (key_dir / "hmac.key").read_bytes().hex()
    assert "key id" in out
    assert secret not in out
    keys = init_keys(force=True)
    signed = tmp_path / "s.msgpack"
    import importlib.util

    spec = importlib.util.spec_from_file_location("mg", GOLDEN_DIR / "make_golden.py")
    assert spec is not None
    assert spec.loader is not None
    mg = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mg)
    signed.write_bytes(encode(sign(mg.build_report(), Keys(key_dir, hmac_key=keys.hmac_key))))
    assert invoke("report", "verify", str(signed))[0] == 0


@pytest.mark.skipif(not HAVE_ED25519, reason="cryptography is not installed")
def test_verify_trusts_this_devices_key_and_the_trust_given(key_dir: Path, tmp_path: Path) -> None:
    own = init_keys()
    mine = tmp_path / "mine.msgpack"
    mine.write_bytes(encode(sign(make_report(), Keys(key_dir, ed25519_seed=own.ed25519_seed))))
    code, out, _ = invoke("report", "verify", str(mine))
    assert code == 0, out
    assert "ed25519 verified (this device's key)" in out

    rig = init_keys(directory=tmp_path / "rig-keys")
    theirs = tmp_path / "theirs.msgpack"
    theirs.write_bytes(encode(sign(make_report(), rig)))
    code, out, _ = invoke("report", "verify", str(theirs))
    assert code == 1
    assert "ed25519 unverified" in out
    assert "ed25519 verified" not in out
    assert "FAILED" not in out  # another device's HMAC key is not a mismatch
    trust = tmp_path / "trust"
    trust.mkdir()
    pub = (tmp_path / "rig-keys" / "ed25519.pub").read_text()
    (trust / "rig-7.pub").write_text(pub.split()[0] + " " + pub.split()[1] + " rig-7\n")
    for source in (str(trust), str(trust / "rig-7.pub"), pub.split()[1]):
        code, out, _ = invoke("report", "verify", str(theirs), "--trust", source)
        assert code == 0, (source, out)
        assert "ed25519 verified (trusted:" in out
    # the trust store in the config dir, when no --trust is given
    cfg = tmp_path / "cfg"
    (cfg / "edgeprof" / "trust").mkdir(parents=True)
    (cfg / "edgeprof" / "trust" / "rig-7.pub").write_text(pub)
    result = CliRunner(env={"XDG_CONFIG_HOME": str(cfg)}).invoke(
        main, ["report", "verify", str(theirs)]
    )
    assert result.exit_code == 0, result.output
    code, _, err = invoke("report", "verify", str(theirs), "--trust", str(tmp_path / "nope"))
    assert code == 2
    assert "no such trust file" in err


def test_keys_show_exit_code_and_init_if_missing(key_dir: Path) -> None:
    code, out, _ = invoke("keys", "show")
    assert code == 1
    assert "no keys in" in out
    assert invoke("keys", "init", "--if-missing")[0] == 0
    first = (key_dir / "hmac.key").read_bytes()
    assert invoke("keys", "init", "--if-missing")[0] == 0  # idempotent: nothing replaced
    assert (key_dir / "hmac.key").read_bytes() == first
    code, out, _ = invoke("keys", "show")
    assert code == 0
    if HAVE_ED25519:
        assert "ed25519.pub" in out
