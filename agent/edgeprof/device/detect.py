"""Which board the agent runs on, and a stable id for this device.

Detection reads the few identity strings the kernel exposes (device-tree model, DMI names,
L4T's release file) through :class:`~edgeprof.device.roots.SystemRoots` and matches them against the
board files' ``[detect]`` rules. Everything it read is kept as evidence so a wrong guess can be
diagnosed from a report alone. Unreadable, missing or garbage files only weaken the evidence:
detection never fails.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import platform
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from edgeprof.device.board_registry import Arch, Board, DetectRules, load_boards
from edgeprof.device.roots import SystemRoots

Confidence = Literal["matched", "fallback", "unknown"]

UNAVAILABLE_DEVICE_ID = "unavailable"  # not an id: never group results by it

_MAX_READ = 4096  # identity files are short; a huge one is garbage, not worth reading whole
_MAX_EVIDENCE = 200
_MACHINE_ARCH = {
    "x86_64": Arch.X86_64,
    "amd64": Arch.X86_64,
    "aarch64": Arch.AARCH64,
    "arm64": Arch.AARCH64,
}
_L4T_RE = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+(?:\.\d+)*)")
_MACHINE_ID_RE = re.compile(r"[0-9a-f]{32}")
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Firmware placeholders shared by many machines; hashing them would give a "stable" id that
# collides across devices.
_PLACEHOLDER_UUIDS = frozenset(
    {
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "03000200-0400-0500-0006-000700080009",
    }
)
_DEVICE_ID_CONTEXT = b"edgeprof/device-id/v1"


@dataclass(frozen=True)
class DetectedBoard:
    """The answer to "which board am I on", with what it was based on.

    ``confidence`` is ``matched`` when a board's detect rules held, ``fallback`` when only the
    CPU architecture picked a generic board, and ``unknown`` when not even that worked.
    """

    board_id: str | None
    board: Board | None
    evidence: dict[str, str] = field(default_factory=dict)
    confidence: Confidence = "unknown"
    l4t_release: str | None = None  # e.g. "35.4.1", from /etc/nv_tegra_release on Jetsons


@dataclass
class _Facts:
    device_tree_model: str | None = None
    dmi_product_name: str | None = None
    dmi_sys_vendor: str | None = None
    jetson_release: bool = False
    evidence: dict[str, str] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)

    def read(self, key: str, *paths: Path) -> str | None:
        """The first of ``paths`` that holds text, recorded as evidence under ``key``."""
        for path in paths:
            text, problem = _read_text(path)
            if problem is not None:
                self.unreadable.append(f"{path} ({problem})")
            if text:
                self.evidence[key] = text
                return text
        return None


def detect_board(
    roots: SystemRoots | None = None,
    *,
    machine: str | None = None,
    boards: Mapping[str, Board] | None = None,
) -> DetectedBoard:
    """Match this system against the board files; ``machine`` overrides platform.machine()."""
    roots = roots or SystemRoots.from_env()
    boards = load_boards() if boards is None else boards
    facts = _gather(roots)
    machine = machine if machine is not None else platform.machine()
    facts.evidence["machine"] = _clean(machine) or "(empty)"
    l4t = _l4t_from_evidence(facts.evidence.get("nv_tegra_release"))

    scored = [(s, b) for b in boards.values() if (s := _score(b.detect, facts)) is not None]
    if scored:
        best = max(s for s, _ in scored)
        winners = sorted((b for s, b in scored if s == best), key=lambda b: b.id)
        if len(winners) == 1:
            facts.evidence["matched_by"] = _describe_rules(winners[0].detect)
            return _result(winners[0], "matched", facts, l4t)
        facts.evidence["ambiguous"] = ", ".join(b.id for b in winners)

    arch = _MACHINE_ARCH.get(machine.strip().lower())
    for b in sorted(boards.values(), key=lambda b: b.id):
        if arch is not None and b.detect.fallback and b.arch is arch:
            return _result(b, "fallback", facts, l4t)
    return _result(None, "unknown", facts, l4t)


def parse_l4t_release(text: str) -> str | None:
    """``# R35 (release), REVISION: 4.1, ...`` → ``"35.4.1"``; None when it does not parse."""
    m = _L4T_RE.search(text)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def stable_device_id(roots: SystemRoots | None = None) -> str:
    """A per-device id that survives reboots, as ``"<source>:<16 hex>"``.

    The raw identifier never leaves this function: it keys an HMAC over a fixed edgeprof
    context (the scheme systemd recommends for app-specific machine ids), so the result cannot
    be joined against other tools' use of the same serial. Sources, in order: /etc/machine-id,
    the device-tree serial number, the DMI product UUID (root-only, so usually skipped).
    Returns :data:`UNAVAILABLE_DEVICE_ID` when none is readable. A container with a machine-id
    baked into its image yields that image's id, not the device's.
    """
    roots = roots or SystemRoots.from_env()
    candidates = (
        ("machine-id", _machine_id(roots)),
        ("dt-serial", _dt_serial(roots)),
        ("dmi-uuid", _dmi_uuid(roots)),
    )
    for source, raw in candidates:
        if raw:
            digest = hmac.new(raw.encode(), _DEVICE_ID_CONTEXT, hashlib.sha256).hexdigest()
            return f"{source}:{digest[:16]}"
    return UNAVAILABLE_DEVICE_ID


def _gather(roots: SystemRoots) -> _Facts:
    f = _Facts()
    f.device_tree_model = f.read(
        "device_tree_model",
        roots.proc("device-tree", "model"),
        roots.sys("firmware", "devicetree", "base", "model"),
    )
    dmi = roots.sys("class", "dmi", "id")
    f.dmi_product_name = f.read("dmi_product_name", dmi / "product_name")
    f.dmi_sys_vendor = f.read("dmi_sys_vendor", dmi / "sys_vendor")
    f.read("dmi_board_name", dmi / "board_name")
    release = roots.etc_path("nv_tegra_release")
    f.jetson_release = os.path.lexists(release)
    if f.jetson_release:
        f.read("nv_tegra_release", release)
    if f.unreadable:
        f.evidence["unreadable"] = "; ".join(f.unreadable)
    return f


def _score(rules: DetectRules, facts: _Facts) -> tuple[int, int] | None:
    """(rules held, characters matched) when every given rule holds, else None.

    More rules, then longer substrings, win: "Jetson Orin Nano" beats a bare "Jetson".
    """
    if not rules.has_rules:
        return None
    held = matched = 0
    for needles, value in (
        (rules.device_tree_model, facts.device_tree_model),
        (rules.dmi_product_name, facts.dmi_product_name),
        (rules.dmi_sys_vendor, facts.dmi_sys_vendor),
    ):
        if not needles:
            continue
        hay = (value or "").casefold()
        hits = [len(n) for n in needles if n.casefold() in hay]
        if not hay or not hits:
            return None
        held += 1
        matched += max(hits)
    if rules.jetson_release is not None:
        if rules.jetson_release != facts.jetson_release:
            return None
        held += 1
    return held, matched


def _describe_rules(rules: DetectRules) -> str:
    parts = [
        f"{name} contains one of {list(needles)}"
        for name, needles in (
            ("device_tree_model", rules.device_tree_model),
            ("dmi_product_name", rules.dmi_product_name),
            ("dmi_sys_vendor", rules.dmi_sys_vendor),
        )
        if needles
    ]
    if rules.jetson_release is not None:
        parts.append(f"nv_tegra_release {'present' if rules.jetson_release else 'absent'}")
    return "; ".join(parts)


def _result(
    board: Board | None, confidence: Confidence, facts: _Facts, l4t: str | None
) -> DetectedBoard:
    return DetectedBoard(
        board_id=board.id if board else None,
        board=board,
        evidence=dict(facts.evidence),
        confidence=confidence,
        l4t_release=l4t,
    )


def _l4t_from_evidence(text: str | None) -> str | None:
    return parse_l4t_release(text) if text else None


def _machine_id(roots: SystemRoots) -> str | None:
    text, _ = _read_text(roots.etc_path("machine-id"))
    if text is None:
        return None
    text = text.lower()
    return text if _MACHINE_ID_RE.fullmatch(text) and text.strip("0") else None


def _dt_serial(roots: SystemRoots) -> str | None:
    for path in (
        roots.proc("device-tree", "serial-number"),
        roots.sys("firmware", "devicetree", "base", "serial-number"),
    ):
        text, _ = _read_text(path)
        if text and text.strip("0") and "?" not in text:
            return text
    return None


def _dmi_uuid(roots: SystemRoots) -> str | None:
    text, _ = _read_text(roots.sys("class", "dmi", "id", "product_uuid"))
    if text is None:
        return None
    text = text.lower()
    return text if _UUID_RE.fullmatch(text) and text not in _PLACEHOLDER_UUIDS else None


def _read_text(path: Path) -> tuple[str | None, str | None]:
    """(text, problem): the first line of the file's first NUL-terminated string; never raises.

    ``problem`` is None when the file is simply absent, since most of these files are optional.
    Only regular files are read: a FIFO or device in a fake or odd tree must not block us.
    """
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            return None, "not a regular file"
        with open(path, "rb") as fh:
            raw = fh.read(_MAX_READ)
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    except PermissionError:
        return None, "permission denied"
    except OSError as e:
        return None, e.strerror or type(e).__name__
    first = raw.split(b"\0", 1)[0].decode("utf-8", errors="replace").strip().split("\n", 1)[0]
    return _clean(first) or None, None


def _clean(text: str) -> str:
    """Printable, one line, bounded: evidence ends up in reports and terminals."""
    text = "".join(c if c.isprintable() else "?" for c in text.strip())
    return text.replace("\ufffd", "?")[:_MAX_EVIDENCE]
