"""What one sampled channel is: where it is read from, how, and what it measures.

Discovery code (:mod:`edgeprof.device.sources`) produces :class:`ChannelSpec` values; the sampler
hands them to the C core, which pre-opens the files and converts units once, except ``stream``
channels, whose values a stream source delivers. The report carries the
spec so every number says what it measures and in what unit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class ReadKind(StrEnum):
    """How the C core turns file contents into a value (mirrors ``enum ep_chan_kind``)."""

    VALUE = "value"  # one file: value * scale
    PRODUCT = "product"  # two files (voltage, current): a * b * scale
    COUNTER = "counter"  # one cumulative file that wraps at ``wrap``: (unwrapped - first) * scale
    STATM_RSS = "statm_rss"  # /proc/<pid>/statm, resident pages * page size
    SMAPS_PSS = "smaps_pss"  # /proc/<pid>/smaps_rollup, the Pss: line in kB * 1024
    STREAM = "stream"  # no file: a stream source delivers the values (never given to the C core)


@dataclass(frozen=True)
class ChannelSpec:
    """One column of the sampler's output.

    ``quantity`` is what is measured (``power``, ``energy``, ``voltage``, ``current``,
    ``frequency``, ``temperature``, ``memory``); ``unit`` is the SI unit of the converted value
    (``W``, ``J``, ``V``, ``A``, ``Hz``, ``degC``, ``B``). ``scale`` converts the raw integer in
    the file(s) into that unit. ``wrap`` is the raw value at which a COUNTER wraps to zero.
    """

    name: str
    quantity: str
    unit: str
    kind: ReadKind
    paths: tuple[str, ...]
    scale: float = 1.0
    wrap: float = 0.0
    source: str = ""  # e.g. "hwmon:ina3221", "iio:ina3221x", "powercap:intel-rapl"
    label: str = ""  # the label the driver gives, e.g. "VDD_IN"
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        want = {ReadKind.PRODUCT: 2, ReadKind.STREAM: 0}.get(self.kind, 1)
        if len(self.paths) != want:
            raise ValueError(f"channel {self.name!r}: {self.kind.value} needs {want} path(s)")
        if self.kind is ReadKind.COUNTER and self.wrap <= 0:
            raise ValueError(f"channel {self.name!r}: a counter needs a positive wrap value")

    def describe(self) -> dict[str, Any]:
        """A plain dict for reports and ``--json`` output."""
        d = asdict(self)
        d["kind"] = self.kind.value
        d["paths"] = list(self.paths)
        return d
