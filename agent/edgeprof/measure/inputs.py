"""What a model takes in: tensor descriptions, random inputs, and real inputs from files.

Random inputs for a quantized model are drawn as floats and quantized, as a real pipeline
would feed it, rather than uniform over the integer range (which saturates activations and can
take different kernel paths). Files are loaded without pickle and checked against the model
before anything runs, with errors that name the file, the input and the problem.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from edgeprof.errors import InputError
from edgeprof.runners.tensors import TensorInfo

Array = npt.NDArray[Any]

RANDOM_DTYPES = frozenset(
    {"int8", "uint8", "int16", "int32", "float16", "float32", "float64", "bool"}
)
LABEL_KEYS = ("y", "labels")
SINGLE_INPUT_KEYS = ("x", "inputs")
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


# How float inputs are rounded to integers, as the runtime's own QUANTIZE op does it: both divide
# in float32 (x / scale, scale a float32); LiteRT (its XNNPACK and vectorized builtin kernels)
# rounds half to even, TFLite Micro (and LiteRT's reference kernel) half away from zero
# (std::round). Checked against the op itself in tests/test_inputs.py.
HALF_EVEN, HALF_AWAY = "half-even", "half-away"
ROUNDING_OF_RUNNER = {"tflite": HALF_EVEN}  # any other runner: TFLite Micro's HALF_AWAY


def _quantize(x: Array, info: TensorInfo, rounding: str = HALF_AWAY) -> tuple[Array, int]:
    """Floats to ``info``'s integer dtype; also how many values fell outside its range."""
    ii = np.iinfo(info.np_dtype)
    v = (np.asarray(x, dtype=np.float32) / np.float32(info.scale)).astype(np.float64)
    r = np.rint(v) if rounding == HALF_EVEN else np.sign(v) * np.floor(np.abs(v) + 0.5)
    q = r + info.zero_point
    clipped = int(np.count_nonzero((q < ii.min) | (q > ii.max)))
    return np.clip(q, ii.min, ii.max).astype(info.np_dtype), clipped


def _random_batch(info: TensorInfo, count: int, rng: np.random.Generator) -> Array:
    if info.dtype not in RANDOM_DTYPES:
        raise InputError(
            f"cannot make random data for input '{info.name}' of type {info.dtype}; pass real "
            "inputs (.npy or .npz) instead"
        )
    dt = info.np_dtype
    size = (count, *info.shape)
    if dt.kind == "b":
        return rng.random(size) < 0.5
    if dt.kind == "f":
        return rng.standard_normal(size).astype(dt)
    ii = np.iinfo(dt)
    if not info.quantized:
        return rng.integers(ii.min, ii.max, size=size, dtype=dt, endpoint=True)
    # Real values the quantization can represent, then quantized as a pipeline would.
    low = (ii.min - info.zero_point) * info.scale
    high = (ii.max - info.zero_point) * info.scale
    return _quantize(np.clip(rng.standard_normal(size), low, high), info)[0]


def random_inputs(infos: Sequence[TensorInfo], count: int, seed: int = 0) -> list[dict[str, Array]]:
    """``count`` random examples respecting each input's dtype, shape and quantization.

    Quantized integer inputs: standard normal floats, clipped to what the quantization can
    represent, quantized. Plain integers: uniform over the dtype's range. Floats: standard
    normal. Bool: fair coin. Deterministic for a given seed.
    """
    if count < 1:
        raise InputError(f"need at least one random example, not {count}")
    rng = np.random.default_rng(seed)
    batches = {info.name: _random_batch(info, count, rng) for info in infos}
    return [{name: batch[i] for name, batch in batches.items()} for i in range(count)]


def _read_npy(f: IO[bytes], size: int, where: str) -> Array:
    """One .npy stream of ``size`` bytes, header checked before the data is read."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    except (ValueError, EOFError, OSError, SyntaxError) as exc:
        raise InputError(f"{where}: not a valid .npy array ({exc})") from None
    if dtype.hasobject:
        raise InputError(
            f"{where}: holds Python objects (pickled data), which edgeprof never loads; save "
            "a plain numeric array"
        )
    if dtype.kind not in "biuf":
        raise InputError(f"{where}: holds {dtype} data, not numbers")
    expected = math.prod(shape) * dtype.itemsize
    available = size - f.tell()
    if available < expected:
        raise InputError(
            f"{where}: truncated: shape {list(shape)} of {dtype} needs {expected} bytes of "
            f"data, the file has {max(available, 0)}"
        )
    try:
        f.seek(0)
        return np.asarray(np.lib.format.read_array(f, allow_pickle=False))
    except (ValueError, EOFError, OSError, zipfile.BadZipFile) as exc:
        raise InputError(f"{where}: not a valid .npy array ({exc})") from None


def _sniff(path: Path) -> str:
    """``"npy"`` or ``"npz"`` by content (not by name), or an InputError saying what it is."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a .npy or .npz file")
    with path.open("rb") as f:
        head = f.read(6)
    if not head:
        raise InputError(f"{path}: empty file")
    if head == _NPY_MAGIC:
        return "npy"
    if head[:4] in _ZIP_MAGIC:
        return "npz"
    raise InputError(f"{path}: not a .npy or .npz file (it starts with {head!r})")


def _load_npz(
    path: Path, infos: Sequence[TensorInfo], notes: list[str]
) -> tuple[dict[str, Array], Array | None]:
    """Arrays for each input (by input name) and the labels, if any."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = {}
            for m in zf.infolist():
                if not m.filename.endswith(".npy"):
                    raise InputError(
                        f"{path}: not a valid .npz file (member {m.filename!r} is not .npy)"
                    )
                members[m.filename.removesuffix(".npy")] = m
            keys, label_key = _pick_keys(path, list(members), infos)
            wanted = [*keys.values(), *([label_key] if label_key else [])]
            ignored = sorted(set(members) - set(wanted))
            if ignored:
                notes.append(f"{path}: ignored arrays {ignored}")
            loaded = {}
            for key in wanted:
                with zf.open(members[key]) as f:
                    loaded[key] = _read_npy(f, members[key].file_size, f"{path}: array '{key}'")
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InputError(f"{path}: not a valid .npz file ({exc})") from None
    per_input = {name: loaded[key] for name, key in keys.items()}
    return per_input, (loaded[label_key] if label_key else None)


def _pick_keys(
    path: Path, available: Sequence[str], infos: Sequence[TensorInfo]
) -> tuple[dict[str, str], str | None]:
    """input name -> npz key, and the labels key."""
    labels = [k for k in LABEL_KEYS if k in available]
    if len(labels) > 1:
        raise InputError(f"{path}: has both 'y' and 'labels'; keep one array of labels")
    names = [i.name for i in infos]
    if all(n in available for n in names):
        return {n: n for n in names}, (labels[0] if labels else None)
    generic = [k for k in SINGLE_INPUT_KEYS if k in available]
    if len(infos) == 1 and len(generic) == 1:
        return {names[0]: generic[0]}, (labels[0] if labels else None)
    if len(infos) == 1 and len(generic) > 1:
        raise InputError(f"{path}: has both 'x' and 'inputs'; keep one array of inputs")
    missing = [n for n in names if n not in available]
    hint = " (or 'x' for a single-input model)" if len(infos) == 1 else ""
    raise InputError(
        f"{path}: no array for input {', '.join(repr(m) for m in missing)}; the file has "
        f"{sorted(available)}, and arrays must be named after the model's inputs{hint}"
    )


def _per_example(arr: Array, info: TensorInfo, where: str) -> Array:
    """``arr`` as ``[n, *info.shape]``: one example, n examples, or n without a batch dim of 1."""
    shape = info.shape
    if arr.size == 0:
        raise InputError(f"{where}: input '{info.name}' is empty (shape {list(arr.shape)})")
    if arr.shape == shape:
        return arr.reshape(1, *shape)
    if arr.ndim == len(shape) + 1 and arr.shape[1:] == shape:
        return arr
    if shape and shape[0] == 1 and arr.ndim == len(shape) and arr.shape[1:] == shape[1:]:
        return arr.reshape(arr.shape[0], *shape)
    raise InputError(
        f"{where}: input '{info.name}': expected {list(shape)} per example, file has "
        f"{list(arr.shape)}"
    )


def _convert(
    arr: Array, info: TensorInfo, where: str, notes: list[str], rounding: str = HALF_AWAY
) -> Array:
    """``arr`` in ``info``'s dtype: as is, float to float, or float quantized; else an error."""
    target = info.np_dtype
    if arr.dtype == target:
        return arr
    if arr.dtype.kind == "f" and target.kind == "f":
        return arr.astype(target)
    if arr.dtype.kind == "f" and target.kind in "iu" and info.quantized:
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        if bad:
            raise InputError(
                f"{where}: input '{info.name}' has {bad} values that are NaN or infinite"
            )
        q, clipped = _quantize(arr, info, rounding)
        note = (
            f"{where}: input '{info.name}': float data quantized to {target} with scale "
            f"{info.scale:g} and zero point {info.zero_point} (float32, rounding {rounding})"
        )
        if clipped:
            note += f"; {clipped} of {arr.size} values were out of range and clipped"
        notes.append(note)
        return q
    kind = f"{target} (quantized)" if info.quantized else str(target)
    raise InputError(
        f"{where}: input '{info.name}' takes {kind}, but the file has {arr.dtype} data"
    )


def load_inputs(
    path: str | os.PathLike[str],
    infos: Sequence[TensorInfo],
    *,
    notes: list[str] | None = None,
    rounding: str = HALF_AWAY,
) -> tuple[list[dict[str, Array]], Array | None]:
    """Real examples (and labels, if the file has them) from a .npy or .npz file.

    A .npy holds the one input of a single-input model; a .npz holds one array per input name
    (or ``x``/``inputs`` for a single-input model) and optionally labels as ``y`` or
    ``labels``. Arrays are ``[n, *shape]``, exactly ``shape`` for one example, or ``[n,
    *shape[1:]]`` when the model's batch dimension is 1. Float data for a quantized integer
    input is quantized with the input's parameters and ``rounding`` (the runtime's; see
    :data:`ROUNDING_OF_RUNNER`); what was done, and arrays ignored, are
    appended to ``notes``. Never unpickles.
    """
    p = Path(path)
    notes = notes if notes is not None else []
    labels: Array | None = None
    if _sniff(p) == "npy":
        if len(infos) != 1:
            raise InputError(
                f"{p}: a .npy file holds one array, but the model has {len(infos)} inputs "
                f"({', '.join(repr(i.name) for i in infos)}); use a .npz with one array per "
                "input name"
            )
        with p.open("rb") as f:
            per_input = {infos[0].name: _read_npy(f, p.stat().st_size, str(p))}
    else:
        per_input, labels = _load_npz(p, infos, notes)
    batches = {}
    for info in infos:
        batch = _per_example(per_input[info.name], info, str(p))
        batches[info.name] = _convert(batch, info, str(p), notes, rounding)
    counts = {name: b.shape[0] for name, b in batches.items()}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"'{k}' {v}" for k, v in counts.items())
        raise InputError(f"{p}: inputs have different numbers of examples: {listed}")
    n = next(iter(counts.values()), 0)
    if labels is not None:
        labels = _check_labels(labels, n, p)
    examples = [{name: np.ascontiguousarray(b[i]) for name, b in batches.items()} for i in range(n)]
    return examples, labels


def _check_labels(labels: Array, n: int, path: Path) -> Array:
    if labels.ndim == 0:
        labels = labels.reshape(1)
    if labels.shape[0] != n:
        raise InputError(f"{path}: {labels.shape[0]} labels for {n} examples")
    return labels


def check_label_classes(labels: Array, classes: int, path: str | os.PathLike[str]) -> None:
    """Refuse labels the model's first output cannot score, before anything is measured.

    The forms :func:`edgeprof.measure.quality.accuracy` takes: class indices ``[n]`` or
    ``[n, 1]`` (whole numbers, integer or float) in ``[0, classes)``, or one-hot ``[n,
    classes]``. Found after the measurement, a bad label would cost the whole run.
    """
    lab = np.asarray(labels)
    if lab.ndim == 2 and lab.shape[1] == classes and classes > 1:
        return  # one-hot: accuracy takes the arg-max of each row
    if lab.ndim == 2 and lab.shape[1] == 1:
        lab = lab[:, 0]
    if lab.ndim != 1:
        raise InputError(
            f"{path}: labels must be class indices [n] or one-hot [n, {classes}], "
            f"not shape {list(lab.shape)}"
        )
    if lab.dtype.kind not in "iuf":
        raise InputError(f"{path}: labels must be numbers, not {lab.dtype}")
    if lab.dtype.kind == "f" and not np.all(np.isfinite(lab) & (np.mod(lab, 1.0) == 0)):
        raise InputError(f"{path}: labels must be whole class indices; some are fractional or NaN")
    idx = lab.astype(np.int64)
    wrong = (idx < 0) | (idx >= classes)
    if wrong.any():
        raise InputError(
            f"{path}: {int(wrong.sum())} labels are outside the model's {classes} classes "
            f"[0, {classes - 1}] (e.g. {int(idx[np.argmax(wrong)])})"
        )
