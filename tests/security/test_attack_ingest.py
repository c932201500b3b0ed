"""Attacks on what the collector stores (issue 13, items 2 and 4), against the real collector.

Each body is signed by the enrolled device key, so only the new ingest checks can refuse it:
impossible values, a summary that contradicts its own arrays, a repeated map key, a
non-canonical id, a time far from the collector's clock; and bodies built to make the decoder
allocate far more than they weigh.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

from edgeprof.report.signing import sign
from edgeprof.testing.attacks import Attack
from edgeprof.testing.collector_server import Deployment
from edgeprof.testing.sample_reports import minimal_report

pytestmark = pytest.mark.integration

YEAR_NS = 365 * 86_400 * 10**9


def _signed_raw(d: Deployment, report: dict[str, Any]) -> bytes:
    """``report`` signed as it is, values unchecked (an attacker's own encoder)."""
    from edgeprof.report.codec import to_wire

    signed = sign(report, d.keys)
    return bytes(msgpack.packb(to_wire(signed), use_bin_type=True))


def _refused(d: Deployment, body: bytes, status: int, words: str) -> bool:
    before = d.stored()
    got, answer = d.upload(body)
    return got == status and words in answer.get("error", "") and d.stored() == before


def test_impossible_values_are_refused(
    collector: Deployment, attack: Callable[[str], Attack]
) -> None:
    a = attack("signed report with a negative, NaN or infinite physical quantity")
    cases: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
        ("summary.latency.p95_s", lambda r: r["summary"]["latency"].update(p95_s=-1.0)),
        ("summary.latency.p99_s", lambda r: r["summary"]["latency"].update(p99_s=float("nan"))),
        ("summary.rss_peak_bytes", lambda r: r["summary"].update(rss_peak_bytes=-5.0)),
        ("summary.power_mean_w", lambda r: r["summary"].update(power_mean_w=float("inf"))),
        ("summary.measured_wall_s", lambda r: r["summary"].update(measured_wall_s=-0.5)),
        (
            "per_inference.latency_s",
            lambda r: r["per_inference"].update(latency_s=np.array([1e-3, -1e-3, 1e-3])),
        ),
        (
            "per_inference.energy_j.VDD",
            lambda r: r["per_inference"].update({"energy_j.VDD": np.array([-1.0, 0.0, 0.0])}),
        ),
    ]
    for field, mutate in cases:
        r = minimal_report()
        mutate(r)
        assert a.attempt(_refused(collector, _signed_raw(collector, r), 422, field)), field
    assert a.failed == 0


def test_summary_must_match_its_arrays(
    collector: Deployment, attack: Callable[[str], Attack]
) -> None:
    a = attack("signed report whose summary contradicts per_inference.latency_s")
    for name, value in (("p95_s", 1e-5), ("p50_s", 0.25), ("max_s", 0.4), ("mean_s", 0.49)):
        r = minimal_report(latency_s=np.full(200, 0.5))
        r["summary"]["latency"][name] = value
        assert a.attempt(_refused(collector, _signed_raw(collector, r), 422, name))
    honest = minimal_report(latency_s=np.linspace(0.1, 0.5, 200))
    assert collector.upload(collector.signed(honest))[0] == 201  # a consistent one still goes in
    assert a.failed == 0


def _with_duplicate(d: Deployment, key: str, forged: Any, first: bool) -> bytes:
    """A signed report's map with ``key`` given twice: the forged value first or last."""
    wire: dict[str, Any] = msgpack.unpackb(d.signed(minimal_report()), raw=False)
    packer = msgpack.Packer(use_bin_type=True)
    out = bytearray(packer.pack_map_header(len(wire) + 1))
    for k, v in wire.items():
        if k == key and first:
            out += packer.pack(k) + packer.pack(forged)
        out += packer.pack(k) + packer.pack(v)
        if k == key and not first:
            out += packer.pack(k) + packer.pack(forged)
    return bytes(out)


def test_duplicate_keys_are_refused(collector: Deployment, attack: Callable[[str], Attack]) -> None:
    a = attack("a map key given twice (a forged summary before or after the signed one)")
    forged = dict(msgpack.unpackb(collector.signed(minimal_report()), raw=False)["summary"])
    forged["latency"] = {**forged["latency"], "p95_s": 1e-5}
    for key, value in (("summary", forged), ("tags", {"approved": "yes"}), ("created_ns", 1)):
        for first in (True, False):
            body = _with_duplicate(collector, key, value, first)
            assert a.attempt(_refused(collector, body, 400, f"key {key!r} twice")), (key, first)
    assert a.failed == 0


def test_report_ids_must_be_canonical(
    collector: Deployment, attack: Callable[[str], Attack]
) -> None:
    a = attack("a report id in upper case or another UUID spelling")
    canonical = "01900000-0000-7000-8000-0000000000ab"
    for rid in (canonical.upper(), canonical.replace("-", ""), "{" + canonical + "}"):
        r = minimal_report()
        r["report_id"] = rid  # after the factory, which checks its reports
        body = _signed_raw(collector, r)
        assert a.attempt(_refused(collector, body, 422, "report_id")), rid
        status, _, _ = collector.request(
            "GET", f"/v1/reports/{urllib.parse.quote(rid)}", token=collector.pipeline_token
        )
        assert a.attempt(status == 400), status
    assert a.failed == 0


def test_created_ns_within_the_collectors_window(
    collector: Deployment, attack: Callable[[str], Attack]
) -> None:
    a = attack("created_ns far ahead of or behind the collector's clock")
    now = time.time_ns()
    for created, words in ((now + 10 * YEAR_NS, "ahead"), (now + 3_600 * 10**9, "ahead"),
                           (now - 2 * YEAR_NS, "days old"), (0, "days old")):  # fmt: skip
        body = collector.signed(minimal_report(created_ns=created))
        assert a.attempt(_refused(collector, body, 422, words)), created
    assert collector.upload(collector.signed(minimal_report(created_ns=now - 10**9)))[0] == 201
    assert a.failed == 0


def _peak_rss(pid: int) -> int:
    """VmHWM of a process: the most memory it ever held, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")  # pragma: no cover - Linux has it


def _hostile_bodies(size: int) -> dict[str, bytes]:
    """Bodies of about ``size`` bytes whose every byte would become a Python object."""
    n = size - 16
    nested = n // 2
    return {
        "empty maps": b"\xdd" + n.to_bytes(4, "big") + b"\x80" * n,
        "empty maps in a report map": b"\x81\xa7summary\xdd" + n.to_bytes(4, "big") + b"\x80" * n,
        "arrays of 65,536 ints": (
            b"\xdd" + (n // 65_539).to_bytes(4, "big")
            + (b"\xdd\x00\x01\x00\x00" + b"\x01" * 65_536) * (n // 65_539)
        ),
        "deep nesting": b"\x91" * nested + b"\xc0",
        "a huge array header": b"\xdd\xff\xff\xff\xff" + b"\xc0" * 1000,
        "a huge map header": b"\xdf\xff\xff\xff\xff" + b"\xc0" * 1000,
        "a huge string header": b"\xdb\xff\xff\xff\xff" + b"a" * 1000,
    }  # fmt: skip


def test_hostile_bodies_cost_memory_in_proportion(
    collector: Deployment, attack: Callable[[str], Attack]
) -> None:
    a = attack("bodies that decode to millions of objects (empty maps, nesting, big arrays)")
    pid = collector.server.pid
    assert pid is not None
    size = 4 * 1024 * 1024 - 1024  # the fixture's body limit is 4 MiB
    collector.upload(collector.signed(minimal_report()))  # warm: imports, pools, first report
    baseline = _peak_rss(pid)
    for name, body in _hostile_bodies(size).items():
        held = _refused(collector, body, 400, "")
        # Before the bounds, 4 MiB of empty maps took about 0.9 GB (x220).
        grew = _peak_rss(pid) - baseline
        assert a.attempt(held and grew < 8 * size), (name, grew)
    assert collector.request("GET", "/healthz")[0] == 200
    assert a.failed == 0


def test_offline_readers_refuse_the_same(tmp_path: Path, attack: Callable[[str], Attack]) -> None:
    """The gate and the report readers on a pipeline machine use the same decoder and checks."""
    from edgeprof.errors import InputError
    from edgeprof.gate.inputs import load_file
    from edgeprof.report.codec import decode, encode, read_report

    a = attack("offline: duplicate keys, a contradicting summary, a hostile body")
    contradicting = minimal_report(latency_s=np.full(50, 0.5))
    contradicting["summary"]["latency"]["p95_s"] = 1e-5
    wire: dict[str, Any] = msgpack.unpackb(encode(minimal_report()), raw=False)
    packer = msgpack.Packer(use_bin_type=True)
    duplicated = bytearray(packer.pack_map_header(len(wire) + 1))
    for k, v in wire.items():
        duplicated += packer.pack(k) + packer.pack(v)
    duplicated += packer.pack("tags") + packer.pack({"approved": "yes"})
    n = 1 << 20
    files = {
        "contradicting.msgpack": encode(contradicting),
        "duplicated.msgpack": bytes(duplicated),
        "hostile.msgpack": b"\xdd" + n.to_bytes(4, "big") + b"\x80" * n,
    }
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        try:
            load_file(path, allow_unsigned=True, trusted={})
            refused_by_gate = False
        except InputError:
            refused_by_gate = True
        assert a.attempt(refused_by_gate), name
        if name != "contradicting.msgpack":  # readers check structure; the gate also the summary
            with pytest.raises(InputError):
                decode(data)
            with pytest.raises(InputError):
                read_report(path, verify=False)
    assert a.failed == 0
