"""Where the gate's reports come from: files, or a collector; and where its decisions go.

A file is read, validated and its signatures checked with this machine's keys (tampered:
refused; unsigned: refused unless allowed). A report pulled from a collector was verified on
upload against the collector's enrolled keys (the listing's ``signed_by``), its bytes are
checked against the listed sha256, and any Ed25519 signature is checked again here; a pipeline
machine usually holds no device HMAC key, so the collector's word stands for HMAC.

From a collector the gate also finds its comparison runs: the last *approved* run of the same
model on the same board (the regression baseline) and the runs before the candidate (the drift
window); and it posts each decision back, so the collector shows it with the reports.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeprof.errors import CollectorError, InputError
from edgeprof.gate.audit import json_safe
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


def load_file(path: Path, allow_unsigned: bool) -> GateInput:
    """Read, validate and verify a report file; refuse tampered ones, unsigned by default."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    origin = os.fspath(path)
    wire = decode_wire(data, origin)
    report = from_wire(wire, origin)
    check_summary(report, origin)  # the gate judges the summary: it must match the arrays
    check = verify_wire(wire, load_keys())
    if check.failed:
        raise InputError(f"{path}: refused: signature mismatch: {check.message()}")
    if not check.verified and not allow_unsigned:
        why = "unsigned report" if not check.present else f"signature {check.message()}"
        raise InputError(f"{path}: refused: {why} (pass --allow-unsigned to gate it anyway)")
    return GateInput(report, origin, hashlib.sha256(data).hexdigest(), check.message())


@dataclass(frozen=True)
class CollectorSource:
    """A collector the gate reads reports from and posts decisions to."""

    client: CollectorApi

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

    def last_approved(self, report: dict[str, Any]) -> GateInput:
        """The newest passed run of this model on this board before ``report``."""
        found = self._before(report, 1, gate_status="pass")
        if not found:
            raise InputError(
                f"gate: no approved run of {report['model']['name']} on "
                f"{report['device']['board_id']} before this one to compare with"
            )
        return self._load(found[0])

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
        outcome: str,
        severity: str | None,
        inputs: list[dict[str, Any]],
        record: dict[str, Any],
    ) -> str:
        """Record the decision upstream; its id there."""
        roles = {"report": "candidate", "baseline": "baseline", "window": "window"}
        body = {
            "decision": outcome,
            "severity": severity,
            "inputs": [
                {"report_id": i["report_id"], "sha256": i["sha256"], "role": roles[i["role"]]}
                for i in inputs
            ],
            "justification": record.get("justification"),
            "record": json_safe(record),  # the audit-log body, rules and values included
        }
        try:
            answer = self.client.json("POST", "/v1/decisions", body)
        except CollectorError as exc:
            raise InputError(f"the decision was not recorded by the collector: {exc}") from None
        return str(answer.get("id"))
