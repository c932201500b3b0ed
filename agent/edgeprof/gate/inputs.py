"""Where the gate's reports come from: files, or a collector; and where its decisions go.

A file is read, validated and its signatures checked: HMAC with this machine's key, Ed25519
against the trusted public keys (``--trust``, the trust store, this device's own key:
:mod:`edgeprof.report.trust`). Tampered: refused; unsigned or unverified (signed by a key
outside the trust store, which proves nothing): refused unless allowed. A report pulled from a
collector was verified on upload against the key enrolled for its device (the listing's
``signed_by``), its bytes are
checked against the listed sha256, and any Ed25519 signature is checked again here; a pipeline
machine usually holds no device HMAC key, so the collector's word stands for HMAC.

From a collector the gate also finds its comparison runs: the last *approved* run of the same
model on the same board (the regression baseline) and the runs before the candidate (the drift
window); and it posts each decision back, signed by the gate key, so the collector shows it with
the reports. "Approved" means more than ``gate_status=pass``: the run's newest decision must be a
pass the collector verified against an enrolled, unrevoked gate key, naming this run's sha256,
and when that key is this gate's own, its signature is checked here too.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeprof.collector.signed_decision import (
    decision_message,
    ed25519_verify,
    key_id,
    record_sha256,
)
from edgeprof.errors import CollectorError, InputError
from edgeprof.gate.audit import json_safe
from edgeprof.gate.evaluate import Decision
from edgeprof.gate.keys import GateKey
from edgeprof.report.codec import decode_wire, from_wire
from edgeprof.report.consistency import check_summary
from edgeprof.report.signing import load_keys, verify_wire
from edgeprof.uplink.pull import CollectorApi


@dataclass
class GateInput:
    """A report read for gating: the report, where it came from, its sha256, its signature."""

    report: dict[str, Any]
    origin: str
    sha256: str
    signature: str

    def describe(self, role: str) -> dict[str, Any]:
        """This input as the audit log and the collector record it."""
        r = self.report
        return {
            "role": role,
            "path": self.origin,
            "report_id": r["report_id"],
            "sha256": self.sha256,
            "signature": self.signature,
            "board_id": r["device"]["board_id"],
            "model": {"name": r["model"]["name"], "sha256": r["model"]["sha256"]},
        }


def load_file(path: Path, allow_unsigned: bool, trusted: Mapping[bytes, str]) -> GateInput:
    """Read, validate and verify a report file against this machine's HMAC key and the
    ``trusted`` public keys; refuse tampered ones, unsigned or unverified ones by default."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    origin = os.fspath(path)
    wire = decode_wire(data, origin)
    report = from_wire(wire, origin)
    check_summary(report, origin)  # the gate judges the summary: it must match the arrays
    check = verify_wire(wire, load_keys(), trusted_public_keys=trusted)
    if check.failed:
        raise InputError(f"{path}: refused: signature mismatch: {check.message()}")
    if not check.verified and not allow_unsigned:
        if not check.present:
            raise InputError(
                f"{path}: refused: unsigned report (pass --allow-unsigned to gate it anyway)"
            )
        raise InputError(
            f"{path}: refused: unverified report: {check.message()} (trust its signer's "
            "public key with --trust FILE|DIR or the trust store, or pass --allow-unsigned)"
        )
    return GateInput(report, origin, hashlib.sha256(data).hexdigest(), check.message())


@dataclass(frozen=True)
class CollectorSource:
    """A collector the gate reads reports from and posts decisions to."""

    client: CollectorApi
    own_public: bytes | None = None  # this gate's public key, when it has one

    def _load(self, listing: dict[str, Any]) -> GateInput:
        rid = str(listing.get("id"))
        data = self.client.fetch(rid, listing.get("sha256"))
        origin = self.client.report_url(rid)
        wire = decode_wire(data, origin)
        report = from_wire(wire, origin)
        check_summary(report, origin)
        check = verify_wire(wire)
        if check.failed:
            raise InputError(f"{origin}: refused: signature mismatch: {check.message()}")
        vouched = listing.get("signed_by") or []
        if not vouched:
            raise InputError(f"{origin}: refused: the collector verified no signature on it")
        local = f"; here: {check.message()}" if check.verified else ""
        return GateInput(
            report,
            origin,
            hashlib.sha256(data).hexdigest(),
            f"collector: {','.join(vouched)}{local}",
        )

    def candidates(self, filters: dict[str, str], tags: list[str], latest: int) -> list[GateInput]:
        """The newest ``latest`` reports matching the filters (oldest of them first)."""
        found = list(
            self.client.listings(
                {**filters, "order": "desc"}, tags, page=min(latest, 1000), limit=latest
            )
        )
        if not found:
            raise InputError("gate: the collector has no report matching the filters")
        return [self._load(item) for item in reversed(found)]

    def _before(self, report: dict[str, Any], n: int, **extra: str) -> list[dict[str, Any]]:
        filters = {
            "model": report["model"]["name"],
            "board": report["device"]["board_id"],
            "created_before": str(report["created_ns"]),
            "order": "desc",
            **extra,
        }
        return [
            item
            for item in self.client.listings(filters, [], page=n, limit=n)
            if item["id"] != report["report_id"]
        ]

    def approved(self, listing: dict[str, Any]) -> bool:
        """Whether the run's newest decision as a candidate is a verified, signed pass on
        exactly these bytes (checked here too when this gate signed it)."""
        rid = str(listing.get("id"))
        found = self.client.json("GET", f"/v1/reports/{rid}/decisions").get("decisions") or []
        try:
            mine = [d for d in found if d.get("role") == "candidate" and d.get("verified")]
            if not mine:
                return False
            newest = max(mine, key=lambda d: (d["signed"]["time_ns"], d["received_ns"]))
            signed = newest["signed"]
            named = {
                (i["report_id"], i["sha256"]) for i in signed["inputs"] if i["role"] == "candidate"
            }
            if signed["decision"] != "pass" or (rid, listing.get("sha256")) not in named:
                return False
            if self.own_public is not None and signed["gate_key_id"] == key_id(self.own_public):
                sig = bytes.fromhex(str(newest["signature"]))
                return ed25519_verify(self.own_public, decision_message(signed), sig)
        except (KeyError, TypeError, ValueError):
            return False  # not what a collector answers: not an approval
        return True

    def last_approved(self, report: dict[str, Any], look_back: int = 50) -> GateInput:
        """The newest approved run of this model on this board before ``report``: among the
        ``look_back`` newest marked ``pass``, the first whose signed decision checks out."""
        for listing in self._before(report, look_back, gate_status="pass"):
            if self.approved(listing):
                return self._load(listing)
        raise InputError(
            f"gate: no approved run of {report['model']['name']} on "
            f"{report['device']['board_id']} before this one to compare with (a run is approved "
            "by a signed pass from an enrolled gate key)"
        )

    def window(self, report: dict[str, Any], n: int) -> list[GateInput]:
        """The ``n`` runs of this model on this board before ``report`` (oldest first)."""
        found = self._before(report, n)
        if not found:
            raise InputError(
                f"gate: no earlier run of {report['model']['name']} on "
                f"{report['device']['board_id']} for the drift window"
            )
        return [self._load(item) for item in reversed(found)]

    def post_decision(
        self,
        decision: Decision,
        inputs: list[dict[str, Any]],
        record: dict[str, Any],
        key: GateKey,
    ) -> str:
        """Record the decision upstream, signed by the gate key; its id there."""
        roles = {"report": "candidate", "baseline": "baseline", "window": "window"}
        audit = record.get("audit")
        body = decision_body(
            key,
            decision=decision.outcome,
            severity=decision.severity,
            inputs=[
                {"report_id": i["report_id"], "sha256": i["sha256"], "role": roles[i["role"]]}
                for i in inputs
            ],
            policy_sha256=decision.policy_sha256,
            audit={k: audit[k] for k in ("log_id", "seq", "sha256")} if audit else None,
            record=record,
        )
        try:
            answer = self.client.json("POST", "/v1/decisions", body)
        except CollectorError as exc:
            raise InputError(f"the decision was not recorded by the collector: {exc}") from None
        return str(answer.get("id"))


def decision_body(
    key: GateKey,
    *,
    decision: str,
    severity: str | None,
    inputs: list[dict[str, str]],
    policy_sha256: str,
    audit: dict[str, Any] | None,
    record: dict[str, Any],
    time_ns: int | None = None,
) -> dict[str, Any]:
    """What ``POST /v1/decisions`` takes: the signed part, its signature and the record."""
    clean = json_safe(record)  # the audit-log body, rules and values included
    signed = {
        "v": 1,
        "decision": decision,
        "severity": severity,
        "inputs": inputs,
        "policy_sha256": policy_sha256,
        "audit": audit,
        "time_ns": time.time_ns() if time_ns is None else time_ns,
        "gate_key_id": key.key_id,
        "record_sha256": record_sha256(clean),
    }
    return {
        "signed": signed,
        "signature": key.sign(decision_message(signed)).hex(),
        "record": clean,
    }
