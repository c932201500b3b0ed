"""The one place a whole report v1 map is put together, by the session's profile and by tests.

Why a map and not the Struct: a report carries open sections (runner options, clock, quality,
channel descriptions) that the model leaves open, and readers keep unknown keys of newer minor
versions; the model (:mod:`edgeprof.report.model`) checks the map instead. The builder fixes
the top-level key order to the model's field order, so every writer emits the same layout as
the golden file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from msgspec import UNSET, UnsetType

from edgeprof.report.envelope import MAJOR, MINOR, SCHEMA
from edgeprof.report.model import Report
from edgeprof.report.schema import validate as check

Section = Mapping[str, Any]
PERCENTILES = (50, 90, 95, 99)


def latency_summary(latency_s: npt.NDArray[Any]) -> dict[str, float]:
    """``summary.latency`` of a series (zeros for an empty one)."""
    lat = np.asarray(latency_s, dtype=np.float64)
    if not lat.size:
        return {k: 0.0 for k in ("mean_s", "min_s", "max_s", *(f"p{p}_s" for p in PERCENTILES))}
    q = np.percentile(lat, PERCENTILES)
    return {
        "mean_s": float(lat.mean()),
        "min_s": float(lat.min()),
        "max_s": float(lat.max()),
        **{f"p{p}_s": float(v) for p, v in zip(PERCENTILES, q, strict=True)},
    }


def trace(
    rate_hz: float,
    channels: Sequence[Section],
    t_ns: npt.NDArray[Any],
    values: npt.NDArray[Any],
) -> dict[str, Any]:
    """One ``traces.<name>`` entry."""
    return {"rate_hz": rate_hz, "channels": list(channels), "t_ns": t_ns, "values": values}


def assemble(
    *,
    report_id: str,
    created_ns: int,
    agent: Section,
    device: Section,
    model: Section,
    runner: Section,
    run: Section,
    environment: Section,
    summary: Section,
    per_inference: Mapping[str, npt.NDArray[Any]],
    traces: Mapping[str, Section],
    warnings: Sequence[str],
    tags: Mapping[str, str],
    clock: Section | UnsetType = UNSET,
    time_anchors: Mapping[str, Section] | UnsetType = UNSET,
    interrupted: bool | UnsetType = UNSET,
    counters: Section | UnsetType = UNSET,
    init: Section | UnsetType = UNSET,
    quality: Section | UnsetType | None = UNSET,
    schema_version: Sequence[int] | UnsetType = UNSET,
    validate: bool = False,
) -> dict[str, Any]:
    """The report map, sections in the model's order; UNSET sections are left out.

    ``schema_version`` is for writing an older version on purpose (the golden file); without it
    the codec stamps this writer's. ``validate`` checks the result against the model.
    """
    given: dict[str, Any] = {
        "report_id": report_id,
        "created_ns": created_ns,
        "agent": dict(agent),
        "device": dict(device),
        "model": dict(model),
        "runner": dict(runner),
        "run": dict(run),
        "interrupted": interrupted,
        "clock": clock if clock is UNSET else dict(clock),
        "time_anchors": (
            time_anchors if time_anchors is UNSET else {k: dict(v) for k, v in time_anchors.items()}
        ),
        "counters": counters if counters is UNSET else dict(counters),
        "init": init if init is UNSET else dict(init),
        "environment": dict(environment),
        "summary": dict(summary),
        "quality": quality if quality is UNSET or quality is None else dict(quality),
        "per_inference": dict(per_inference),
        "traces": {k: dict(v) for k, v in traces.items()},
        "warnings": list(warnings),
        "tags": dict(tags),
    }
    if schema_version is not UNSET:
        given["schema"] = SCHEMA
        given["schema_version"] = list(schema_version)
    report = {k: given[k] for k in Report.__struct_fields__ if given.get(k, UNSET) is not UNSET}
    if validate:
        check({"schema": SCHEMA, "schema_version": [MAJOR, MINOR], **report})
    return report
