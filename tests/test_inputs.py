"""Tensor descriptions, random inputs and loading real inputs, with every refusal's message."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeprof.errors import InputError
from edgeprof.measure.inputs import load_inputs, random_inputs
from edgeprof.runners.tensors import TensorInfo

X = TensorInfo("x", (1, 490), "int8", 0.1, -5)
LITERT_DETAIL: dict[str, Any] = {
    "name": "serving_default_x:0",
    "index": 0,
    "shape": np.array([1, 490], dtype=np.int32),
    "shape_signature": np.array([1, 490], dtype=np.int32),
    "dtype": np.int8,
    "quantization": (0.1, -5),
    "quantization_parameters": {
        "scales": np.array([0.1], dtype=np.float32),
        "zero_points": np.array([-5], dtype=np.int32),
        "quantized_dimension": 0,
    },
    "sparsity_parameters": {},
}


def test_from_litert_detail() -> None:
    info = TensorInfo.from_litert_detail(LITERT_DETAIL)
    assert info.name == "serving_default_x:0"
    assert info.shape == (1, 490)
    assert info.dtype == "int8"
    assert info.np_dtype == np.int8
    assert info.scale == pytest.approx(0.1)
    assert info.zero_point == -5
    assert info.quantized


def test_from_litert_detail_unquantized_and_legacy_tuple() -> None:
    plain = {
        **LITERT_DETAIL,
        "dtype": np.float32,
        "quantization": (0.0, 0),
        "quantization_parameters": {"scales": np.array([]), "zero_points": np.array([])},
    }
    info = TensorInfo.from_litert_detail(plain)
    assert (info.dtype, info.scale, info.zero_point, info.quantized) == ("float32", 0.0, 0, False)
    legacy = {"name": "in", "shape": [1, 4], "dtype": np.uint8, "quantization": (0.5, 128)}
    info = TensorInfo.from_litert_detail(legacy)
    assert (info.dtype, info.scale, info.zero_point) == ("uint8", 0.5, 128)


def test_a_dynamic_batch_dimension_takes_the_allocated_size() -> None:
    """Keras exports all have signature [-1, ...]; the interpreter allocates batch 1."""
    detail = {**LITERT_DETAIL, "shape_signature": np.array([-1, 490], dtype=np.int32)}
    assert TensorInfo.from_litert_detail(detail).shape == (1, 490)


def test_dynamic_shapes_are_refused() -> None:
    detail = {
        **LITERT_DETAIL,
        "name": "x",
        "shape": np.array([1, 1, 40]),
        "shape_signature": np.array([-1, -1, 40]),
    }
    with pytest.raises(InputError) as err:
        TensorInfo.from_litert_detail(detail)
    assert str(err.value) == (
        "dynamic shapes are not supported: input 'x' has shape signature [-1, -1, 40]"
    )
    with pytest.raises(InputError, match="output 'x'"):
        TensorInfo.from_litert_detail(detail, role="output")


def test_per_channel_quantization_is_refused() -> None:
    detail = {
        **LITERT_DETAIL,
        "quantization_parameters": {
            "scales": np.array([0.1, 0.2]),
            "zero_points": np.array([0, 0]),
        },
    }
    with pytest.raises(InputError, match=r"per-channel .* 2 scales"):
        TensorInfo.from_litert_detail(detail)


def test_detail_without_a_name() -> None:
    with pytest.raises(InputError, match="lack 'name'"):
        TensorInfo.from_litert_detail({"shape": [1], "dtype": np.float32})


ALL = [
    TensorInfo("q8", (2, 3), "int8", 0.05, 10),
    TensorInfo("qu8", (4,), "uint8", 0.02, 128),
    TensorInfo("q16", (3,), "int16", 0.001, 0),
    TensorInfo("i8", (50,), "int8"),
    TensorInfo("u8", (50,), "uint8"),
    TensorInfo("i16", (50,), "int16"),
    TensorInfo("i32", (50,), "int32"),
    TensorInfo("f32", (1, 5), "float32"),
    TensorInfo("f16", (5,), "float16"),
    TensorInfo("b", (7,), "bool"),
]


def test_random_inputs_respect_dtype_and_shape() -> None:
    examples = random_inputs(ALL, 40, seed=3)
    assert len(examples) == 40
    for ex in examples:
        assert list(ex) == [i.name for i in ALL]
        for info in ALL:
            assert ex[info.name].dtype == info.np_dtype
            assert ex[info.name].shape == info.shape
            assert ex[info.name].flags.c_contiguous


def test_random_inputs_are_deterministic_by_seed() -> None:
    a, b, c = (random_inputs(ALL, 5, seed=s) for s in (1, 1, 2))
    for info in ALL:
        for i in range(5):
            np.testing.assert_array_equal(a[i][info.name], b[i][info.name])
    assert any(not np.array_equal(a[0][i.name], c[0][i.name]) for i in ALL)


def test_plain_integers_cover_their_range() -> None:
    infos = [TensorInfo("u8", (4096,), "uint8"), TensorInfo("i8", (4096,), "int8")]
    (ex,) = random_inputs(infos, 1)
    assert ex["u8"].min() == 0
    assert ex["u8"].max() == 255
    assert ex["i8"].min() == -128
    assert ex["i8"].max() == 127


def test_quantized_inputs_look_like_quantized_normals() -> None:
    info = TensorInfo("q", (20_000,), "int8", 0.05, 10)
    (ex,) = random_inputs([info], 1)
    real = (ex["q"].astype(np.float64) - 10) * 0.05
    assert abs(real.mean()) < 0.05
    assert real.std() == pytest.approx(1.0, abs=0.05)
    # values that stand for floats beyond what int8 can hold are clipped, not wrapped
    tight = TensorInfo("t", (20_000,), "int8", 0.001, 0)
    (ex,) = random_inputs([tight], 1)
    assert ex["t"].min() == -128
    assert ex["t"].max() == 127
    assert np.mean((ex["t"] == 127) | (ex["t"] == -128)) > 0.8


def test_random_floats_and_bools() -> None:
    info = [TensorInfo("f", (10_000,), "float32"), TensorInfo("b", (10_000,), "bool")]
    (ex,) = random_inputs(info, 1)
    assert ex["f"].std() == pytest.approx(1.0, abs=0.05)
    assert 0.45 < ex["b"].mean() < 0.55


def test_random_inputs_refuse_what_they_cannot_make() -> None:
    with pytest.raises(InputError, match="input 'ids' of type int64"):
        random_inputs([TensorInfo("ids", (4,), "int64")], 2)
    with pytest.raises(InputError, match="at least one"):
        random_inputs([X], 0)


# load_inputs


def npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]  # mypy reads **arrays as allow_pickle
    return path


def test_npy_with_many_examples(tmp_path: Path) -> None:
    data = np.arange(4 * 490).reshape(4, 1, 490).astype(np.int8)
    np.save(tmp_path / "x.npy", data)
    examples, labels = load_inputs(tmp_path / "x.npy", [X])
    assert labels is None
    assert len(examples) == 4
    np.testing.assert_array_equal(examples[2]["x"], data[2])
    assert examples[2]["x"].shape == (1, 490)


def test_npy_without_the_batch_dimension_and_a_single_example(tmp_path: Path) -> None:
    np.save(tmp_path / "n.npy", np.zeros((7, 490), dtype=np.int8))
    assert len(load_inputs(tmp_path / "n.npy", [X])[0]) == 7
    np.save(tmp_path / "one.npy", np.zeros((1, 490), dtype=np.int8))
    (example,), _ = load_inputs(str(tmp_path / "one.npy"), [X])
    assert example["x"].shape == (1, 490)


def test_npz_by_input_name_with_labels(tmp_path: Path) -> None:
    infos = [TensorInfo("a:0", (2,), "float32"), TensorInfo("b", (1, 3), "int32")]
    path = npz(
        tmp_path / "d.npz",
        **{"a:0": np.ones((5, 2), np.float32)},
        b=np.zeros((5, 1, 3), np.int32),
        labels=np.arange(5),
    )
    examples, labels = load_inputs(path, infos)
    assert len(examples) == 5
    assert examples[0]["a:0"].dtype == np.float32
    assert examples[0]["b"].shape == (1, 3)
    assert labels is not None
    np.testing.assert_array_equal(labels, np.arange(5))


@pytest.mark.parametrize("key", ["x", "inputs"])
def test_npz_generic_key_for_a_single_input(tmp_path: Path, key: str) -> None:
    path = npz(tmp_path / "d.npz", **{key: np.zeros((3, 490), np.int8)}, y=np.array([0, 1, 2]))
    info = TensorInfo("serving_default_input:0", (1, 490), "int8", 0.1, 0)
    examples, labels = load_inputs(path, [info])
    assert len(examples) == 3
    assert list(examples[0]) == ["serving_default_input:0"]
    assert labels is not None
    assert labels.tolist() == [0, 1, 2]


def test_float_data_for_a_quantized_input_is_quantized(tmp_path: Path) -> None:
    path = npz(tmp_path / "f.npz", x=np.array([[0.0, 1.0, -0.26, 100.0]], np.float32))
    info = TensorInfo("x", (4,), "int8", 0.1, -5)
    notes: list[str] = []
    (example,), _ = load_inputs(path, [info], notes=notes)
    np.testing.assert_array_equal(example["x"], np.array([-5, 5, -8, 127], np.int8))
    (note,) = notes
    assert "float data quantized to int8 with scale 0.1 and zero point -5" in note
    assert "1 of 4 values were out of range and clipped" in note


def test_float64_data_for_a_float32_input_is_cast(tmp_path: Path) -> None:
    np.save(tmp_path / "f.npy", np.ones((2, 5)))
    (ex, _), _ = load_inputs(tmp_path / "f.npy", [TensorInfo("f", (1, 5), "float32")])
    assert ex["f"].dtype == np.float32


def test_unused_arrays_are_noted(tmp_path: Path) -> None:
    path = npz(tmp_path / "d.npz", x=np.zeros((2, 490), np.int8), extra=np.zeros(3))
    notes: list[str] = []
    load_inputs(path, [X], notes=notes)
    assert notes == [f"{path}: ignored arrays ['extra']"]


def message(path: Path, infos: list[TensorInfo] | None = None) -> str:
    with pytest.raises(InputError) as err:
        load_inputs(path, infos or [X])
    text = str(err.value)
    assert str(path) in text
    return text


def test_missing_file_directory_and_empty_file(tmp_path: Path) -> None:
    assert message(tmp_path / "nope.npy").endswith("no such file")
    assert "is a directory" in message(tmp_path)
    (tmp_path / "e.npy").write_bytes(b"")
    assert message(tmp_path / "e.npy").endswith("empty file")


def test_not_an_array_file(tmp_path: Path) -> None:
    (tmp_path / "t.npy").write_text("1,2,3\n")
    assert "not a .npy or .npz file" in message(tmp_path / "t.npy")


def test_truncated_npy(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((10, 490), np.int8))
    blob = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(blob[: len(blob) - 100])
    text = message(tmp_path / "cut.npy")
    assert "truncated" in text
    assert "4900 bytes" in text
    (tmp_path / "head.npy").write_bytes(blob[:20])
    assert "not a valid .npy array" in message(tmp_path / "head.npy")


def test_pickled_npy_is_never_loaded(tmp_path: Path) -> None:
    np.save(tmp_path / "p.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    assert "pickled data" in message(tmp_path / "p.npy")


def test_non_numeric_npy(tmp_path: Path) -> None:
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    assert "not numbers" in message(tmp_path / "s.npy")


def test_wrong_shape(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((10, 491), np.int8))
    assert message(tmp_path / "x.npy").endswith(
        "input 'x': expected [1, 490] per example, file has [10, 491]"
    )


def test_wrong_dtype(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((2, 490), np.int16))
    assert message(tmp_path / "x.npy").endswith(
        "input 'x' takes int8 (quantized), but the file has int16 data"
    )
    np.save(tmp_path / "f.npy", np.zeros((2, 490), np.float32))
    plain = TensorInfo("x", (1, 490), "int8")
    assert message(tmp_path / "f.npy", [plain]).endswith(
        "input 'x' takes int8, but the file has float32 data"
    )


def test_nan_cannot_be_quantized(tmp_path: Path) -> None:
    np.save(tmp_path / "f.npy", np.full((2, 490), np.nan, np.float32))
    assert "980 values that are NaN or infinite" in message(tmp_path / "f.npy")


def test_empty_array(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((0, 490), np.int8))
    assert message(tmp_path / "x.npy").endswith("input 'x' is empty (shape [0, 490])")


def test_label_count_must_match(tmp_path: Path) -> None:
    path = npz(tmp_path / "d.npz", x=np.zeros((4, 490), np.int8), y=np.arange(3))
    assert message(path).endswith("3 labels for 4 examples")


def test_labels_twice_and_inputs_twice(tmp_path: Path) -> None:
    two = npz(tmp_path / "l.npz", x=np.zeros((1, 490), np.int8), y=np.zeros(1), labels=np.zeros(1))
    assert "both 'y' and 'labels'" in message(two)
    xs = npz(tmp_path / "x.npz", x=np.zeros((1, 490), np.int8), inputs=np.zeros((1, 490)))
    assert "both 'x' and 'inputs'" in message(xs, [TensorInfo("in", (1, 490), "float64")])


def test_npz_without_the_input(tmp_path: Path) -> None:
    path = npz(tmp_path / "d.npz", features=np.zeros((1, 490), np.int8))
    text = message(path)
    assert "no array for input 'x'" in text
    assert "['features']" in text


def test_npy_for_a_model_with_two_inputs(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((1, 490), np.int8))
    infos = [X, TensorInfo("y2", (3,), "float32")]
    assert "the model has 2 inputs ('x', 'y2')" in message(tmp_path / "x.npy", infos)


def test_inputs_with_different_counts(tmp_path: Path) -> None:
    infos = [TensorInfo("a", (2,), "float32"), TensorInfo("b", (2,), "float32")]
    path = npz(tmp_path / "d.npz", a=np.zeros((3, 2), np.float32), b=np.zeros((4, 2), np.float32))
    assert message(path, infos).endswith("different numbers of examples: 'a' 3, 'b' 4")


def test_truncated_npz(tmp_path: Path) -> None:
    path = npz(tmp_path / "d.npz", x=np.zeros((4, 490), np.int8))
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    assert "not a valid .npz file" in message(path)


def test_npz_with_a_pickled_member(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([object()], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(tmp_path / "p.npz", "w") as zf:
        zf.writestr("x.npy", buf.getvalue())
    assert "array 'x': holds Python objects (pickled data)" in message(tmp_path / "p.npz")


def test_npz_with_a_truncated_member(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.save(buf, np.zeros((4, 490), np.int8))
    with zipfile.ZipFile(tmp_path / "t.npz", "w") as zf:
        zf.writestr("x.npy", buf.getvalue()[:-10])
    assert "array 'x': truncated" in message(tmp_path / "t.npz")
