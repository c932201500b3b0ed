"""The human rendering of ``edgeprof doctor``: short sections, aligned, colour only on a TTY."""

from __future__ import annotations

from typing import Any

import click


def _fmt_si(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "B":
        return f"{value / 2**20:.1f} MiB"
    if unit == "Hz":
        return f"{value / 1e6:.0f} MHz"
    if unit == "W":
        return f"{value * 1e3:.1f} mW" if abs(value) < 1 else f"{value:.3f} W"
    if unit == "degC":
        return f"{value:.1f} °C"
    if unit == "V":
        return f"{value:.3f} V"
    if unit == "A":
        return f"{value * 1e3:.1f} mA"
    return f"{value:g} {unit}"


class _Out:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def head(self, title: str) -> None:
        self.lines.append("")
        self.lines.append(click.style(title, bold=True))

    def kv(self, key: str, value: object, *, bad: bool = False, width: int = 22) -> None:
        text = str(value)
        if bad:
            text = click.style(text, fg="yellow")
        self.lines.append(f"  {key:<{width}} {text}")

    def note(self, text: str) -> None:
        self.lines.append(click.style(f"  - {text}", dim=True))


def _error(out: _Out, section: Any) -> bool:
    if isinstance(section, dict) and "error" in section and len(section) == 1:
        out.kv("error", section["error"], bad=True)
        return True
    return False


def _channels(out: _Out, rows: list[dict[str, Any]], empty: str) -> None:
    if not rows:
        out.kv("channels", empty, bad=True)
    width = max([22, *(len(row["name"]) for row in rows)])
    for row in rows:
        label = f" ({row['label']})" if row.get("label") else ""
        if row.get("error"):
            out.kv(row["name"], f"read failed: {row['error']}{label}", bad=True, width=width)
        else:
            unit = row.get("reading_unit", row["unit"])
            reading = _fmt_si(row["reading"], unit)
            out.kv(row["name"], f"{reading}  [{row['source']}]{label}", width=width)


def render(report: dict[str, Any]) -> str:
    """The doctor report as text."""
    out = _Out()
    os_ = report["os"]
    out.lines.append(
        click.style("edgeprof doctor", bold=True)
        + f"  edgeprof {report['edgeprof']}, Python {report['python']}, "
        f"{os_['system']} {os_['release']} {os_['machine']}"
    )

    board = report["board"]
    out.head("Board")
    if not _error(out, board):
        name = board["name"] or "unknown"
        out.kv(
            "board", f"{board['board_id'] or '-'} ({name})", bad=board["confidence"] != "matched"
        )
        out.kv("confidence", board["confidence"])
        if board.get("l4t_release"):
            out.kv("L4T", board["l4t_release"])
        out.kv("device id", board["device_id"])
        for key, value in sorted(board["evidence"].items()):
            out.note(f"{key}: {value}")

    clock = report["clock"]
    out.head("Clock")
    if not _error(out, clock):
        out.kv("tick source", clock["source_label"])
        out.kv("frequency", f"{clock['hz'] / 1e6:.3f} MHz (calibrated vs {clock['reference']})")
        out.kv("resolution", f"{clock['resolution_ns']:.1f} ns")
        out.kv("read cost", f"{clock['read_cost_ns']:.1f} ns")
        out.kv("calibration", f"{clock['calibration_ppm']:.2f} ppm between halves")
        out.kv("kernel clocksource", clock.get("kernel_clocksource") or "-")

    ctr = report["perf_counters"]
    out.head("Hardware counters (cycles, instructions)")
    if not _error(out, ctr):
        if ctr["available"]:
            out.kv("available", "yes")
        else:
            out.kv("available", "no", bad=True)
            out.note(ctr["reason"])

    mem = report["memory"]
    out.head("Memory")
    if not _error(out, mem):
        for key in ("rss", "pss"):
            m = mem.get(key, {})
            if m.get("available"):
                out.kv(key.upper(), f"{m['path']}  (now {_fmt_si(m['reading_bytes'], 'B')})")
            else:
                out.kv(key.upper(), m.get("reason") or m.get("error") or "unavailable", bad=True)

    power = report["power"]
    out.head("Power rails")
    if not _error(out, power):
        _channels(out, power["channels"], "none found (no hwmon, iio or powercap rails)")
        for note in power["notes"]:
            out.note(note)

    system = report["system"]
    out.head("CPU frequency and thermal zones")
    if not _error(out, system):
        _channels(out, system["channels"], "none found")
        govs = sorted(set(system["governors"].values()))
        if govs:
            out.kv("governor", ", ".join(govs), bad=govs != ["performance"])
        for note in system["notes"]:
            out.note(note)

    out.head("Inference runtimes")
    for dist, version in report["runtimes"].items():
        out.kv(dist, version or "not installed", bad=version is None)

    ports = report["ports"]
    out.head("Serial ports and USB devices")
    if not _error(out, ports):
        if not ports["serial"]:
            out.kv("serial", "none")
        for p in ports["serial"]:
            board = p.get("board_id") or ", ".join(p.get("board_candidates") or ()) or "-"
            out.kv(p["device"], f"{p.get('description') or ''}  board: {board}")
        usb = ports["usb"]
        if isinstance(usb, str):
            out.kv("usb", usb, bad=True)
        elif not usb:
            out.kv("usb", "none")
        else:
            for d in usb:
                ident = f"{d['vid']:04x}:{d['pid']:04x}"
                out.kv(
                    f"usb {d['bus']}:{d['address']}", f"{ident}  board: {d.get('board_id') or '-'}"
                )
    return "\n".join(out.lines)
