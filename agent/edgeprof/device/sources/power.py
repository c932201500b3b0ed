"""Discovery of Linux power rails that are plain files: hwmon, Jetson iio ina3221x, powercap RAPL.

Each source turns what it finds under :class:`~edgeprof.device.roots.SystemRoots` into
:class:`~edgeprof.device.channels.ChannelSpec` values for the C sampler. Discovery runs once, so it
validates every file it will later sample (one probe read) and everything it reads to name a
channel; a malformed or unreadable item is skipped with a human-readable note (for
``edgeprof doctor``) instead of crashing discovery or failing later inside the sampler.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from edgeprof.device.channels import ChannelSpec, ReadKind
from edgeprof.device.roots import SystemRoots
from edgeprof.device.sources.base import FileSource
from edgeprof.device.sources.sysfs_read import probe_int, read_sysfs_int, read_sysfs_text
from edgeprof.errors import InputError

__all__ = [
    "HwmonSource",
    "IioIna3221Source",
    "PowerSource",
    "RaplSource",
    "discover_power",
    "discover_power_with_notes",
    "discovery_notes",
    "is_not_connected",
    "missing_rails",
    "read_sysfs_int",
    "read_sysfs_text",
    "safe_component",
    "unique_stem",
]

_UNSAFE_RE = re.compile(r"[^a-z0-9_-]+")
_TRAILING_NUM_RE = re.compile(r"(\d+)$")

# ina3221 (mainline hwmon): in1..3 are bus voltages and curr1..3 their currents; in4..6 are the
# shunt voltages, in7/curr4 the sums. Only 1..3 are rails, so the sums never pair with a shunt.
_INA3221_RAIL_INDICES = frozenset({1, 2, 3})


def safe_component(text: str) -> str:
    """One dotted channel-name component: lowercase, only ``[a-z0-9_-]``, never empty."""
    safe = _UNSAFE_RE.sub("_", text.strip().lower()).strip("_")
    return safe or "unnamed"


def unique_stem(stem: str, used: set[str]) -> str:
    """``stem``, or ``stem_2``, ``stem_3``... whichever is not yet in ``used`` (then records it).

    Suffixing the stem rather than the full name keeps one rail's power/voltage/current names
    together and the quantity as the last component.
    """
    candidate, n = stem, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}_{n}"
    used.add(candidate)
    return candidate


def is_not_connected(label: str) -> bool:
    """Board designers label unpopulated monitor inputs "NC"; those read noise, not a rail."""
    return label.strip().upper() == "NC"


def _numeric_suffix(path: Path) -> int:
    """The N in hwmonN / iio:deviceN / thermal_zoneN, for numeric rather than lexical order."""
    m = _TRAILING_NUM_RE.search(path.name)
    return int(m.group(1)) if m else -1


def _device_key(dev_dir: Path) -> str:
    """The resolved ``device`` link: stable across boots, unlike the hwmonN number."""
    link = dev_dir / "device"
    try:
        return os.path.realpath(link) if link.exists() else ""
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------------
# The source interface
# ---------------------------------------------------------------------------------------------


PowerSource = FileSource  # one family of power-rail files


# ---------------------------------------------------------------------------------------------
# hwmon
# ---------------------------------------------------------------------------------------------


def _hwmon_attr_dir(hwmon: Path) -> Path:
    """Old kernels put the attributes in ``hwmonN/device/``; newer ones in ``hwmonN/``."""
    if not (hwmon / "name").exists() and (hwmon / "device" / "name").exists():
        return hwmon / "device"
    return hwmon


def _hwmon_indices(attrs: Path, driver: str) -> list[int]:
    """The rail indices: those with a power or current input.

    Voltage-only indices are not rails: shunt voltages (ina2xx in0, ina3221 in4..7) and the
    many supply voltages of board monitors such as nct6775 would otherwise flood the report.
    """
    found: set[int] = set()
    for pattern in ("power*_input", "power*_average", "curr*_input"):
        for p in attrs.glob(pattern):
            m = re.fullmatch(r"(?:power|curr)(\d+)_(?:input|average)", p.name)
            if m:
                found.add(int(m.group(1)))
    if driver == "ina3221":
        found &= _INA3221_RAIL_INDICES
    return sorted(found)


class HwmonSource:
    """``/sys/class/hwmon/hwmon*`` power monitors (ina219, ina226, ina3221, ina238, ...)."""

    name = "hwmon"

    def discover(self, roots: SystemRoots, notes: list[str] | None = None) -> list[ChannelSpec]:
        """Every readable, connected, enabled rail of every hwmon device, in a stable order."""
        notes = notes if notes is not None else []
        devices = []
        for hwmon in roots.sys("class", "hwmon").glob("hwmon*"):
            if not _TRAILING_NUM_RE.search(hwmon.name) or not hwmon.is_dir():
                continue
            attrs = _hwmon_attr_dir(hwmon)
            driver = self._driver(hwmon, attrs, notes)
            devices.append(((driver, _device_key(hwmon), _numeric_suffix(hwmon)), hwmon, attrs))
        devices.sort(key=lambda d: d[0])
        used: set[str] = set()
        channels: list[ChannelSpec] = []
        for (driver, _, _), hwmon, attrs in devices:
            for i in _hwmon_indices(attrs, driver):
                channels.extend(self._rail(hwmon, attrs, driver, i, used, notes))
        return channels

    @staticmethod
    def _driver(hwmon: Path, attrs: Path, notes: list[str]) -> str:
        """The driver name from ``name``; a missing or garbled one still names the channels."""
        try:
            return read_sysfs_text(attrs / "name") or "unknown"
        except InputError as e:
            notes.append(f"{hwmon}: driver name unknown ({e})")
            return "unknown"

    @staticmethod
    def _label(attrs: Path, i: int) -> str:
        """The first label of power<i>, in<i>, curr<i> (Jetson: VDD_IN, VDD_SOC, ...), or ""."""
        for prefix in ("power", "in", "curr"):
            path = attrs / f"{prefix}{i}_label"
            if path.exists():
                return read_sysfs_text(path)
        return ""

    def _rail(
        self, hwmon: Path, attrs: Path, driver: str, i: int, used: set[str], notes: list[str]
    ) -> list[ChannelSpec]:
        """The power, voltage and current channels of one monitor input, or none if skipped."""
        what = f"hwmon {hwmon.name} ({driver}) input {i}"
        try:
            label = self._label(attrs, i)
        except InputError as e:
            notes.append(f"{what}: skipped, bad label ({e})")
            return []
        if label:
            what = f"{what} {label!r}"
        if is_not_connected(label):
            notes.append(f"{what}: skipped, labelled NC (not connected)")
            return []
        enable = attrs / f"in{i}_enable"
        if enable.exists():
            try:
                if read_sysfs_int(enable) == 0:
                    notes.append(f"{what}: skipped, disabled ({enable} is 0)")
                    return []
            except InputError as e:
                notes.append(f"{what}: skipped, {e}")
                return []

        stem = unique_stem(
            f"hwmon.{safe_component(driver)}.{safe_component(label or str(i))}", used
        )
        mk = _HwmonChannelMaker(stem, driver, label, hwmon.name, i)
        volt = str(attrs / f"in{i}_input")
        curr = str(attrs / f"curr{i}_input")
        has_volt = os.path.exists(volt) and "shunt" not in label.lower()
        has_curr = os.path.exists(curr)
        volt_ok = has_volt and probe_int(volt, notes, f"{what} voltage")
        curr_ok = has_curr and probe_int(curr, notes, f"{what} current")

        out: list[ChannelSpec] = []
        power = self._power_file(attrs, i)
        if power is not None and probe_int(power, notes, f"{what} power"):
            out.append(mk.make("power", "W", ReadKind.VALUE, (power,), 1e-6))
        elif volt_ok and curr_ok:
            out.append(mk.make("power", "W", ReadKind.PRODUCT, (volt, curr), 1e-6))
        if volt_ok:
            out.append(mk.make("voltage", "V", ReadKind.VALUE, (volt,), 1e-3))
        if curr_ok:
            out.append(mk.make("current", "A", ReadKind.VALUE, (curr,), 1e-3))
        return out

    @staticmethod
    def _power_file(attrs: Path, i: int) -> str | None:
        """``power<i>_input`` (instantaneous, uW), else ``power<i>_average`` (e.g. amdgpu)."""
        for name in (f"power{i}_input", f"power{i}_average"):
            path = attrs / name
            if path.exists():
                return str(path)
        return None


class _HwmonChannelMaker:
    """Fills in the fields one hwmon rail's channels share."""

    def __init__(self, stem: str, driver: str, label: str, hwmon: str, index: int) -> None:
        self.stem, self.driver, self.label = stem, driver, label
        self.extra = {"hwmon": hwmon, "index": str(index)}

    def make(
        self, quantity: str, unit: str, kind: ReadKind, paths: tuple[str, ...], scale: float
    ) -> ChannelSpec:
        """One channel named ``<stem>.<quantity>``."""
        return ChannelSpec(
            name=f"{self.stem}.{quantity}",
            quantity=quantity,
            unit=unit,
            kind=kind,
            paths=paths,
            scale=scale,
            source=f"hwmon:{self.driver}",
            label=self.label,
            extra=dict(self.extra),
        )


# ---------------------------------------------------------------------------------------------
# Jetson iio ina3221x (L4T 32.x: TX1, TX2, Nano, Xavier)
# ---------------------------------------------------------------------------------------------


class IioIna3221Source:
    """The downstream NVIDIA ``ina3221x`` iio driver: ``in_power<i>_input`` in mW, named rails."""

    name = "iio-ina3221x"

    def discover(self, roots: SystemRoots, notes: list[str] | None = None) -> list[ChannelSpec]:
        """Every named, connected rail of every ina3221* iio device."""
        notes = notes if notes is not None else []
        devices = []
        for dev in roots.sys("bus", "iio", "devices").glob("iio:device*"):
            try:
                name = read_sysfs_text(dev / "name")
            except InputError:
                continue  # not ours to judge: most iio devices are not power monitors
            if name.lower().startswith("ina3221"):
                devices.append(((_device_key(dev), _numeric_suffix(dev)), dev, name))
        devices.sort(key=lambda d: d[0])
        used: set[str] = set()
        channels: list[ChannelSpec] = []
        for _, dev, name in devices:
            for rail_file in sorted(dev.glob("rail_name_*"), key=_numeric_suffix):
                i = _numeric_suffix(rail_file)
                if i >= 0:
                    channels.extend(self._rail(dev, name, i, used, notes))
        return channels

    @staticmethod
    def _rail(
        dev: Path, driver: str, i: int, used: set[str], notes: list[str]
    ) -> list[ChannelSpec]:
        """Power (mW), voltage (mV) and current (mA) of rail ``i`` of one device."""
        what = f"iio {dev.name} ({driver}) rail {i}"
        try:
            rail = read_sysfs_text(dev / f"rail_name_{i}")
        except InputError as e:
            notes.append(f"{what}: skipped, bad rail name ({e})")
            return []
        what = f"{what} {rail!r}"
        if not rail or is_not_connected(rail):
            notes.append(f"{what}: skipped, rail not connected")
            return []
        stem = unique_stem(f"iio.{safe_component(driver)}.{safe_component(rail)}", used)
        out: list[ChannelSpec] = []
        for quantity, unit, fname in (
            ("power", "W", f"in_power{i}_input"),
            ("voltage", "V", f"in_voltage{i}_input"),
            ("current", "A", f"in_current{i}_input"),
        ):
            path = str(dev / fname)
            if os.path.exists(path) and probe_int(path, notes, f"{what} {quantity}"):
                out.append(
                    ChannelSpec(
                        name=f"{stem}.{quantity}",
                        quantity=quantity,
                        unit=unit,
                        kind=ReadKind.VALUE,
                        paths=(path,),
                        scale=1e-3,
                        source=f"iio:{driver}",
                        label=rail,
                        extra={"iio": dev.name, "index": str(i)},
                    )
                )
        return out


# ---------------------------------------------------------------------------------------------
# powercap RAPL
# ---------------------------------------------------------------------------------------------


class RaplSource:
    """powercap energy counters (intel-rapl, intel-rapl-mmio, and AMD through the same API)."""

    name = "powercap"

    def discover(self, roots: SystemRoots, notes: list[str] | None = None) -> list[ChannelSpec]:
        """One COUNTER channel per powercap zone with a readable ``energy_uj``."""
        notes = notes if notes is not None else []
        base = roots.sys("class", "powercap")
        zones = sorted(
            (z for z in base.glob("*") if (z / "energy_uj").exists()), key=_zone_sort_key
        )
        used: set[str] = set()
        channels: list[ChannelSpec] = []
        for zone in zones:
            spec = self._zone(base, zone, used, notes)
            if spec is not None:
                channels.append(spec)
        return channels

    @staticmethod
    def _zone(base: Path, zone: Path, used: set[str], notes: list[str]) -> ChannelSpec | None:
        """The channel of one zone, or None (with a note) if it cannot be sampled."""
        what = f"powercap {zone.name}"
        energy = str(zone / "energy_uj")
        try:
            names = [read_sysfs_text(p / "name") for p in _zone_chain(base, zone)]
            wrap = read_sysfs_int(zone / "max_energy_range_uj")
        except InputError as e:
            notes.append(f"{what}: skipped, {e}")
            return None
        if wrap <= 0:
            notes.append(f"{what}: skipped, max_energy_range_uj is {wrap}")
            return None
        if not probe_int(energy, notes, what):
            return None
        control = zone.name.split(":", 1)[0]
        prefix = "rapl" if control == "intel-rapl" else safe_component(control)
        stem = unique_stem(".".join([prefix, *(safe_component(n) for n in names)]), used)
        extra = {"zone": zone.name}
        if len(names) > 1:
            extra["parent"] = zone.name.rsplit(":", 1)[0]
        return ChannelSpec(
            name=f"{stem}.energy",
            quantity="energy",
            unit="J",
            kind=ReadKind.COUNTER,
            paths=(energy,),
            scale=1e-6,
            wrap=float(wrap),
            source=f"powercap:{zone.name}",
            label=names[-1],
            extra=extra,
        )


def _zone_sort_key(zone: Path) -> tuple[str, tuple[int, ...]]:
    """intel-rapl:0, intel-rapl:0:0, intel-rapl:0:1, intel-rapl:1 ... numerically."""
    control, _, rest = zone.name.partition(":")
    nums = tuple(int(x) if x.isdigit() else -1 for x in rest.split(":")) if rest else ()
    return control, nums


def _zone_chain(base: Path, zone: Path) -> list[Path]:
    """The zone and its ancestors, outermost first: intel-rapl:0:1 -> [intel-rapl:0, ...:0:1].

    Sub-zones' names (core, uncore, dram) repeat per package, so the name needs the parent's.
    """
    parts = zone.name.split(":")
    chain = [":".join(parts[:k]) for k in range(2, len(parts) + 1)]
    return [base / name for name in chain] if len(parts) > 1 else [zone]


# ---------------------------------------------------------------------------------------------
# All sources together
# ---------------------------------------------------------------------------------------------


def _ensure_unique(channels: Iterable[ChannelSpec]) -> list[ChannelSpec]:
    """Safety net across sources: renames a repeated channel name to ``<name>_<n>``."""
    seen: set[str] = set()
    out: list[ChannelSpec] = []
    for ch in channels:
        name = unique_stem(ch.name, seen)
        out.append(ch if name == ch.name else replace(ch, name=name))
    return out


def discover_power_with_notes(
    roots: SystemRoots, sources: Iterable[PowerSource] | None = None
) -> tuple[list[ChannelSpec], list[str]]:
    """All power channels sorted by name (unique), and why anything was skipped.

    ``sources`` defaults to the registry's power sources. A source that fails unexpectedly on
    a strange tree (a race with hotplug, a permission oddity) contributes a note, not an
    exception: one bad driver must not hide the others.
    """
    if sources is None:
        from edgeprof.device.sources.registry import POWER_SOURCES

        sources = POWER_SOURCES
    notes: list[str] = []
    found: list[ChannelSpec] = []
    for source in sources:
        try:
            found.extend(source.discover(roots, notes))
        except (OSError, InputError, ValueError) as e:
            notes.append(f"{source.name}: discovery failed ({e})")
    channels = sorted(_ensure_unique(found), key=lambda c: c.name)
    return channels, notes


def discover_power(roots: SystemRoots) -> list[ChannelSpec]:
    """All power channels this machine offers, sorted by (unique) name."""
    return discover_power_with_notes(roots)[0]


def discovery_notes(roots: SystemRoots) -> list[str]:
    """Why power-rail candidates were skipped (unreadable, NC, disabled, malformed)."""
    return discover_power_with_notes(roots)[1]


def missing_rails(expected: Iterable[str], channels: Iterable[ChannelSpec]) -> list[str]:
    """The rails a board file names (``[power].rails``) that no discovered channel carries,
    compared by the driver's label, case-insensitively: a board whose monitor is missing, not
    bound or labelled differently shows up here instead of as a quietly shorter report."""
    found = {c.label.strip().upper() for c in channels if c.label}
    return [r for r in expected if r.strip().upper() not in found]
