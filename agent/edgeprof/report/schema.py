"""The v1 report schema: one table of fields, and a validator that checks a decoded report.

Why a table and not a JSON Schema: the report holds typed binary arrays and cross-field rules
(every per-inference array as long as ``latency_s``) that JSON Schema cannot say, and the agent
should not carry a schema library. The table (:data:`FIELDS`) is the single source of truth: the
validator walks it, and ``python -m edgeprof.report.schema`` prints the Markdown table that
``docs/report-format.md`` embeds (a test checks that the two agree).

Path syntax: ``a.b`` is key ``b`` of map ``a``; ``a.*`` is every key of map ``a`` (keys may
themselves contain dots, e.g. ``per_inference.energy_j.VDD_IN``); ``a[]`` is every item of list
``a``. Types: ``str``, ``int``, ``number`` (int or float), ``bool``, ``map``, ``list``, ``bytes``,
``array`` (a typed binary array, decoded to numpy); a trailing ``?`` allows null. Unknown keys
are allowed anywhere: a newer minor version may add them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeprof.errors import InputError

SCHEMA = "edgeprof.report"
MAJOR = 1
MINOR = 1  # History: 0 first release; 1 MCU runs (device.mcu, summary.host_round_trip)


@dataclass(frozen=True)
class Field:
    """One row of the schema: where, what type, whether it must be there, its unit."""

    path: str
    type: str
    required: bool
    unit: str = ""
    note: str = ""


_R, _O = True, False

FIELDS: tuple[Field, ...] = (
    Field("schema", "str", _R, note='always "edgeprof.report"'),
    Field("schema_version", "list", _R, note="[major, minor] = [1, 1]"),
    Field("report_id", "str", _R, note="UUIDv7, sorts by creation time"),
    Field("created_ns", "int", _R, "ns", "Unix time the run started"),
    Field("agent", "map", _R),
    Field("agent.name", "str", _R),
    Field("agent.version", "str", _R),
    Field("device", "map", _R),
    Field("device.board_id", "str", _R, note="from boards/*.toml"),
    Field("device.device_id", "str", _R, note="stable across reboots, e.g. machine-id:…"),
    Field("device.os", "str", _R),
    Field("device.kernel", "str", _R),
    Field("device.machine", "str", _R, note="CPU architecture (uname -m)"),
    Field("device.cpu_model", "str?", _O),
    Field("device.cpu_count", "int?", _R),
    Field("device.memory_total_bytes", "int?", _O, "bytes"),
    Field("device.runtimes", "map", _O, note="runtime name -> version"),
    Field("device.runtimes.*", "str?", _O),
    Field("device.host_board_id", "str", _O, note="mcu runs: the machine driving the board"),
    Field("device.mcu", "map", _O, note="mcu runs: the firmware's INFO (protocol, counter)"),
    Field("device.mcu.cycle_source", "str", _O, note="what the counter counts"),
    Field("device.mcu.cycle_hz", "int", _O, "hz"),
    Field("model", "map", _R),
    Field("model.name", "str", _R),
    Field("model.sha256", "str", _R, note="64 lowercase hex digits"),
    Field("model.size_bytes", "int", _R, "bytes"),
    Field("model.format", "str", _R, note='"tflite"'),
    Field("model.quantization", "str", _O, note="dtype of the quantized I/O tensors, or none"),
    Field("model.inputs", "list", _R),
    Field("model.inputs[].name", "str", _R),
    Field("model.inputs[].shape", "list", _R),
    Field("model.inputs[].dtype", "str", _R),
    Field("model.inputs[].scale", "number", _R, note="0 = not quantized"),
    Field("model.inputs[].zero_point", "int", _R),
    Field("model.outputs", "list", _R),
    Field("model.outputs[].name", "str", _R),
    Field("model.outputs[].shape", "list", _R),
    Field("model.outputs[].dtype", "str", _R),
    Field("model.outputs[].scale", "number", _R),
    Field("model.outputs[].zero_point", "int", _R),
    Field("model.registry", "map", _O, note="what the model registry says"),
    Field("model.registry.model_id", "str", _O),
    Field("model.registry.version", "str", _O),
    Field("model.registry.base_model", "str", _O),
    Field("model.registry.quantization", "str", _O),
    Field("model.registry.training_data_version", "str", _O),
    Field("runner", "map", _R),
    Field("runner.runner", "str", _R, note='"tflite", "tflm", …'),
    Field("runner.runtime", "str?", _O),
    Field("runner.runtime_version", "str?", _O),
    Field("run", "map", _R, note="the run configuration"),
    Field("run.warmup_count", "int", _R),
    Field("run.min_count", "int", _R),
    Field("run.min_s", "number", _R, "s"),
    Field("run.max_s", "number", _R, "s"),
    Field("run.delay_s", "number", _R, "s"),
    Field("run.sampler_rate_hz", "number", _R, "hz"),
    Field("run.input_source", "str", _R),
    Field("run.seed", "int", _R),
    Field("clock", "map", _O),
    Field("clock.source", "str", _O),
    Field("clock.hz", "number", _O, "hz"),
    Field("counters", "map", _O),
    Field("counters.available", "bool", _O),
    Field("init", "map", _O),
    Field("init.time_s", "number", _O, "s"),
    Field("environment", "map", _R),
    Field("environment.governors", "map", _R, note="cpu -> governor"),
    Field("environment.governors.*", "str", _O),
    Field("environment.load_average", "list", _R, note="1, 5, 15 min"),
    Field("environment.other_load_cores", "number?", _O),
    Field("environment.cpu_freq_hz", "map", _O, note="channel -> {start, end, min, max}"),
    Field("environment.temperature_c", "map", _O, note="channel -> {start, end, min, max}"),
    Field("summary", "map", _R),
    Field("summary.count", "int", _R, note="measured inferences"),
    Field("summary.latency", "map", _R),
    Field("summary.latency.mean_s", "number", _R, "s"),
    Field("summary.latency.min_s", "number", _R, "s"),
    Field("summary.latency.max_s", "number", _R, "s"),
    Field("summary.latency.p50_s", "number", _R, "s"),
    Field("summary.latency.p90_s", "number", _R, "s"),
    Field("summary.latency.p95_s", "number", _R, "s"),
    Field("summary.latency.p99_s", "number", _R, "s"),
    Field("summary.inferences_per_s", "number?", _R, "per_s"),
    Field("summary.measured_wall_s", "number", _R, "s"),
    Field("summary.init_time_s", "number", _O, "s"),
    Field("summary.model_size_bytes", "int", _O, "bytes"),
    Field("summary.rss_peak_bytes", "number?", _R, "bytes"),
    Field("summary.rss_steady_bytes", "number?", _O, "bytes"),
    Field("summary.latency_source", "str", _O, note='"device" when a device timed itself'),
    Field("summary.host_round_trip", "map", _O, note="mcu runs: like latency, host-timed"),
    Field("summary.host_round_trip.p50_s", "number", _O, "s"),
    Field("summary.device", "map", _O, note="mcu runs: counter, heap and stack peaks, layers"),
    Field("summary.device.heap_peak_bytes", "int?", _O, "bytes"),
    Field("summary.device.stack_peak_bytes", "int?", _O, "bytes"),
    Field("summary.rails", "map", _R, note="rail name -> its figures"),
    Field("summary.rails.*.power_mean_w", "number?", _R, "w"),
    Field("summary.rails.*.power_peak_w", "number?", _O, "w"),
    Field("summary.rails.*.energy_per_inference_j", "number?", _R, "j"),
    Field("summary.primary_rail", "str?", _R),
    Field("summary.energy_per_inference_j", "number?", _O, "j"),
    Field("summary.power_mean_w", "number?", _O, "w"),
    Field("quality", "map?", _O, note="null without --reference/--data"),
    Field("per_inference", "map", _R, note="one value per measured inference"),
    Field("per_inference.begin_ns", "array", _R, "ns", "int64, same clock as traces t_ns"),
    Field("per_inference.latency_s", "array", _R, "s"),
    Field("per_inference.peak_rss_bytes", "array", _R, "bytes"),
    Field(
        "per_inference.*",
        "array",
        _O,
        note=(
            "energy_j.<rail>, cycles, instructions, output_top1, output_top_score, "
            "host_round_trip_s, device_*"
        ),
    ),
    Field("traces", "map", _R, note='"fast", "slow": raw sampler traces'),
    Field("traces.*.rate_hz", "number", _R, "hz"),
    Field("traces.*.channels", "list", _R),
    Field("traces.*.channels[].name", "str", _R),
    Field("traces.*.channels[].unit", "str", _R, note="SI unit of the column"),
    Field("traces.*.t_ns", "array", _R, "ns", "int64, shape (n,)"),
    Field("traces.*.values", "array", _R, note="shape (n, channels)"),
    Field("warnings", "list", _R),
    Field("warnings[]", "str", _R),
    Field("tags", "map", _R),
    Field("tags.*", "str", _R),
    Field("signature", "map", _O, note="absent = unsigned; see Signing"),
    Field("signature.hmac_sha256", "map", _O),
    Field("signature.hmac_sha256.key_id", "str", _R, note="16 hex: sha256(key)[:16]"),
    Field("signature.hmac_sha256.value", "bytes", _R, note="32 bytes"),
    Field("signature.ed25519", "map", _O),
    Field("signature.ed25519.public_key", "bytes", _R, note="32 bytes, raw"),
    Field("signature.ed25519.value", "bytes", _R, note="64 bytes"),
)

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX16 = re.compile(r"[0-9a-f]{16}")


def _type_ok(value: Any, kind: str) -> bool:
    if kind.endswith("?"):
        if value is None:
            return True
        kind = kind[:-1]
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "map":
        return isinstance(value, dict)
    if kind == "list":
        return isinstance(value, list)
    if kind == "bytes":
        return isinstance(value, bytes)
    if kind == "array":
        return isinstance(value, np.ndarray)
    raise AssertionError(f"unknown schema type {kind!r}")


def _resolve(obj: Any, parts: list[str], prefix: str) -> Iterator[tuple[str, Any, bool]]:
    """Every (path, value, present) the pattern names; a missing key yields present=False.

    Only the last part may be missing: an absent parent is reported by the parent's own row.
    """
    if not parts:
        yield prefix, obj, True
        return
    part, rest = parts[0], parts[1:]
    is_list = part.endswith("[]")
    key = part[:-2] if is_list else part
    if not isinstance(obj, dict):
        return
    if key == "*":
        items = list(obj.items())
    elif key in obj:
        items = [(key, obj[key])]
    else:
        if not rest and not is_list:
            yield f"{prefix}{key}", None, False
        return
    for k, v in items:
        path = f"{prefix}{k}"
        if is_list:
            if not isinstance(v, list):
                continue
            for i, item in enumerate(v):
                yield from (
                    _resolve(item, rest, f"{path}[{i}].")
                    if rest
                    else iter([(f"{path}[{i}]", item, True)])
                )
        else:
            yield from _resolve(v, rest, f"{path}.") if rest else iter([(path, v, True)])


def _fail(path: str, problem: str) -> InputError:
    return InputError(f"{path}: {problem}")


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array {value.dtype} {list(value.shape)}"
    return type(value).__name__


def _check_table(report: dict[str, Any]) -> None:
    for f in FIELDS:
        for path, value, present in _resolve(report, f.path.split("."), ""):
            if not present:
                if f.required:
                    raise _fail(path, "missing")
                continue
            if not _type_ok(value, f.type):
                raise _fail(path, f"expected {f.type}, got {_describe(value)}")


def _check_ids(report: dict[str, Any]) -> None:
    if report["schema"] != SCHEMA:
        raise _fail("schema", f"{report['schema']!r} is not {SCHEMA!r}")
    version = report["schema_version"]
    if len(version) != 2 or not all(type(v) is int and v >= 0 for v in version):
        raise _fail("schema_version", f"{version!r} is not [major, minor]")
    if version[0] != MAJOR:
        raise _fail(
            "schema_version",
            f"unsupported report schema version {version!r} (this reader knows major {MAJOR})",
        )
    try:
        u = uuid.UUID(report["report_id"])
    except ValueError:
        raise _fail("report_id", f"{report['report_id']!r} is not a UUID") from None
    if u.version != 7:
        raise _fail("report_id", f"UUID version {u.version}, expected 7")
    if not _HEX64.fullmatch(report["model"]["sha256"]):
        raise _fail("model.sha256", "not 64 lowercase hex digits")
    for name in ("model.size_bytes", "summary.count", "created_ns"):
        obj: Any = report
        for part in name.split("."):
            obj = obj[part]
        if obj < 0:
            raise _fail(name, f"negative ({obj})")


def _check_per_inference(report: dict[str, Any]) -> None:
    per = report["per_inference"]
    latency = per["latency_s"]
    count = report["summary"]["count"]
    if latency.ndim != 1:
        raise _fail("per_inference.latency_s", f"shape {list(latency.shape)}, expected (n,)")
    n = len(latency)
    if n != count:
        raise _fail("per_inference.latency_s", f"{n} values, summary.count is {count}")
    for name, arr in per.items():
        path = f"per_inference.{name}"
        if arr.ndim != 1:
            raise _fail(path, f"shape {list(arr.shape)}, expected ({n},)")
        if len(arr) != n:
            raise _fail(path, f"{len(arr)} values, latency_s has {n}")
    if per["begin_ns"].dtype.kind not in "iu":
        raise _fail("per_inference.begin_ns", f"dtype {per['begin_ns'].dtype}, expected int64")
    if latency.dtype.kind != "f":
        raise _fail("per_inference.latency_s", f"dtype {latency.dtype}, expected float")


def _check_traces(report: dict[str, Any]) -> None:
    for name, trace in report["traces"].items():
        path = f"traces.{name}"
        t_ns, values, channels = trace["t_ns"], trace["values"], trace["channels"]
        if t_ns.ndim != 1 or t_ns.dtype.kind not in "iu":
            raise _fail(f"{path}.t_ns", f"{_describe(t_ns)}, expected 1-D int64")
        expected = (len(t_ns), len(channels))
        if values.shape != expected:
            raise _fail(
                f"{path}.values",
                f"shape {list(values.shape)}, expected [{expected[0]}, {expected[1]}] "
                f"(len(t_ns), len(channels))",
            )
        if len(t_ns) > 1 and bool(np.any(np.diff(t_ns.astype(np.int64)) < 0)):
            raise _fail(f"{path}.t_ns", "times go backwards")


def _check_signature(report: dict[str, Any]) -> None:
    sig = report.get("signature")
    if sig is None:
        return
    known = {"hmac_sha256", "ed25519"}
    if not sig or not known & set(sig):
        raise _fail("signature", "holds no known signature (hmac_sha256, ed25519)")
    hm = sig.get("hmac_sha256")
    if hm is not None:
        if not _HEX16.fullmatch(hm["key_id"]):
            raise _fail("signature.hmac_sha256.key_id", "not 16 lowercase hex digits")
        if len(hm["value"]) != 32:
            raise _fail("signature.hmac_sha256.value", f"{len(hm['value'])} bytes, expected 32")
    ed = sig.get("ed25519")
    if ed is not None:
        if len(ed["public_key"]) != 32:
            raise _fail("signature.ed25519.public_key", "expected 32 bytes")
        if len(ed["value"]) != 64:
            raise _fail("signature.ed25519.value", f"{len(ed['value'])} bytes, expected 64")


def validate(report: dict[str, Any]) -> None:
    """Check a decoded report against v1; raise InputError naming the field and the problem.

    Arrays must already be numpy arrays (as :func:`edgeprof.report.codec.decode` returns them).
    """
    if not isinstance(report, dict):
        raise InputError(f"report: expected a map, got {type(report).__name__}")
    for key in ("schema", "schema_version"):
        if key not in report:
            raise _fail(key, "missing")
    if isinstance(report["schema_version"], list) and report["schema_version"][:1] != [MAJOR]:
        _check_ids(report)  # the version message comes first: other fields may differ
    _check_table(report)
    _check_ids(report)
    _check_per_inference(report)
    _check_traces(report)
    _check_signature(report)


def markdown_table() -> str:
    """The field table as Markdown, for docs/report-format.md."""
    rows = ["| path | type | required | unit | note |", "|---|---|---|---|---|"]
    for f in FIELDS:
        req = "yes" if f.required else "no"
        rows.append(f"| `{f.path}` | {f.type} | {req} | {f.unit} | {f.note} |")
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover
    print(markdown_table())
