"""The pre-v1 report container: typed arrays, strict decoding, atomic files, sortable ids."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import msgpack
import numpy as np
import pytest

from edgeprof.errors import InputError
from edgeprof.report.codec import (
    decode,
    encode,
    pack_array,
    summary_json,
    unpack_array,
    uuid7,
    write_atomic,
)


def test_arrays_round_trip_with_dtype_and_shape() -> None:
    arrays: dict[str, np.ndarray] = {
        "f8": np.linspace(0, 1, 7),
        "i8": np.arange(-3, 3, dtype=np.int64),
        "u8": np.array([2**64 - 1, 0], dtype=np.uint64),
        "f4_2d": np.ones((3, 4), dtype=np.float32),
        "big_endian": np.arange(4, dtype=">i4"),
        "empty": np.empty((0, 6)),
    }
    back = decode(encode({"a": arrays, "nan": float("nan")}), validate=False)
    for k, v in arrays.items():
        np.testing.assert_array_equal(back["a"][k], v)
        assert back["a"][k].shape == v.shape
    assert np.isnan(back["nan"])
    packed = pack_array(np.arange(3, dtype=np.float64))
    assert isinstance(packed["data"], bytes)  # binary, not a list of floats
    assert packed["dtype"] == "<f8"


def test_array_byte_count_must_match_shape() -> None:
    bad = pack_array(np.arange(4, dtype=np.float64))
    bad["shape"] = [5]
    with pytest.raises(InputError, match="has 32 bytes"):
        unpack_array(bad)
    bad = pack_array(np.arange(4, dtype=np.float64))
    bad["dtype"] = "object"
    with pytest.raises(InputError, match="malformed"):
        unpack_array(bad)


def test_decode_refuses_what_is_not_a_report() -> None:
    with pytest.raises(InputError, match="not a msgpack report"):
        decode(b"\xc1garbage")
    with pytest.raises(InputError, match="not an edgeprof report"):
        decode(msgpack.packb({"hello": 1}))
    future = msgpack.packb({"schema": "edgeprof.report", "schema_version": [9, 0]})
    with pytest.raises(InputError, match="unsupported report schema version"):
        decode(future)
    data = encode({"x": np.arange(10)})
    with pytest.raises(InputError):
        decode(data[: len(data) // 2])


def test_uuid7_is_time_sortable_and_valid() -> None:
    ids = []
    for _ in range(5):
        ids.append(uuid7())
        time.sleep(0.002)
    assert ids == sorted(ids)
    u = uuid.UUID(ids[0])
    assert u.version == 7
    assert u.variant == uuid.RFC_4122
    assert len(set(uuid7() for _ in range(1000))) == 1000


def test_write_atomic_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "r.msgpack"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["r.msgpack"]


def test_summary_json_drops_arrays_and_non_finite_numbers() -> None:
    report = {"summary": {"x": float("inf"), "y": np.float64(2.0)}, "per_inference": {"a": 1}}
    out = summary_json(report, "/tmp/r")
    assert out["summary"] == {"x": None, "y": 2.0}
    assert "per_inference" not in out
    assert out["per_inference_arrays"] == ["a"]
