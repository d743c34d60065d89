"""compile_tensors: a mapping or a .safetensors file becomes a tensor-bundle image whose arrays
come back bit for bit, as read-only zero-copy views, with their dtypes and shapes."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

import modelshelf
from modelshelf import UnsupportedModelError

DTYPES = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]
DTYPES += ["float16", "float32", "float64"]


def _weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {f"layer.{dtype}": (rng.normal(size=(3, 5)) * 50).astype(dtype) for dtype in DTYPES}
    out["scalar"] = np.array(2.5)
    out["empty"] = np.zeros((0, 4), dtype=np.float32)
    out["deep"] = np.arange(2 * 3 * 4 * 5, dtype=np.int16).reshape(2, 3, 4, 5)
    return out


def _check_same(model: modelshelf.Model, weights: dict[str, np.ndarray]) -> None:
    assert sorted(model.tensors) == sorted(weights)
    for name, expected in weights.items():
        actual = model.tensors[name]
        assert actual.dtype == expected.dtype, name
        assert actual.shape == expected.shape, name
        assert actual.tobytes() == expected.tobytes(), name
        assert not actual.flags.writeable


def test_mapping_round_trips_every_dtype() -> None:
    weights = _weights()
    image = modelshelf.compile_tensors(weights, metadata={"name": "enc", "source": "unit"})
    model = modelshelf.load(image, verify=True)
    _check_same(model, weights)
    assert model.kind == "tensors"
    assert model.metadata["name"] == "enc"
    assert model.metadata["framework"] == "numpy"
    assert model.metadata["framework_version"] == np.__version__
    assert model.metadata["estimator"] == "tensors"
    assert model.metadata["extra"] == {"source": "unit"}


def test_views_are_zero_copy() -> None:
    image = modelshelf.compile_tensors({"w": np.ones((64, 64))})
    model = modelshelf.load(image)
    whole = np.frombuffer(image, dtype=np.uint8)
    assert np.shares_memory(model.tensors["w"], whole)
    offset = model.tensors["w"].ctypes.data - whole.ctypes.data
    assert offset > 0 and offset % 64 == 0  # offsets in the image are 64-byte aligned


def test_non_contiguous_and_big_endian_inputs_are_stored_as_values() -> None:
    base = np.arange(40.0).reshape(5, 8)
    weights = {
        "strided": base[:, ::3],
        "fortran": np.asfortranarray(base),
        "be": base.astype(">f8"),
    }
    model = modelshelf.load(modelshelf.compile_tensors(weights))
    for name, value in weights.items():
        np.testing.assert_array_equal(model.tensors[name], value)
    assert model.tensors["be"].dtype == np.float64  # little-endian in the image


def test_lists_are_accepted_as_arrays() -> None:
    model = modelshelf.load(modelshelf.compile_tensors({"v": [1.0, 2.0, 3.0]}))
    np.testing.assert_array_equal(model.tensors["v"], [1.0, 2.0, 3.0])


def test_safetensors_file(tmp_path: Path) -> None:
    weights = {k: v for k, v in _weights().items() if k != "scalar"}
    path = tmp_path / "w.safetensors"
    save_file(weights, str(path), metadata={"format": "np", "source": "file"})
    model = modelshelf.load(
        modelshelf.compile_tensors(path, metadata={"name": "w", "source": "caller"})
    )
    _check_same(model, weights)
    assert model.metadata["framework"] == "safetensors"
    assert model.metadata["framework_version"]
    # The file's metadata is kept; the caller's wins where both set a key.
    assert model.metadata["extra"] == {"format": "np", "source": "caller"}
    assert modelshelf.load(modelshelf.compile_tensors(str(path))).metadata["name"] == "tensors"


def test_tensor_images_predict_nothing() -> None:
    model = modelshelf.load(modelshelf.compile_tensors({"w": np.ones(3)}))
    for method in ("predict", "predict_proba", "transform", "decision_function"):
        assert not hasattr(model, method)
    assert not hasattr(model, "classes_") and not hasattr(model, "n_features_in_")


@pytest.mark.parametrize(
    ("value", "dtype"),
    [(np.ones(2, dtype=complex), "complex128"), (np.array(["a", "b"]), "<U1")],
)
def test_unsupported_dtypes(value: np.ndarray, dtype: str) -> None:
    with pytest.raises(UnsupportedModelError, match=rf"tensor 'x'.*dtype {dtype}"):
        modelshelf.compile_tensors({"x": value})


def test_object_arrays_are_refused() -> None:
    with pytest.raises(UnsupportedModelError, match="dtype object"):
        modelshelf.compile_tensors({"x": np.array([{"a": 1}], dtype=object)})


def test_bad_names() -> None:
    with pytest.raises(UnsupportedModelError, match="names must be strings"):
        modelshelf.compile_tensors({1: np.ones(2)})
    with pytest.raises(UnsupportedModelError, match=r"1\.\.1024 UTF-8 bytes"):
        modelshelf.compile_tensors({"": np.ones(2)})
    with pytest.raises(UnsupportedModelError, match=r"1\.\.1024 UTF-8 bytes"):
        modelshelf.compile_tensors({"x" * 1025: np.ones(2)})


def test_metadata_values_must_be_strings() -> None:
    with pytest.raises(TypeError, match="must be strings"):
        modelshelf.compile_tensors({"w": np.ones(2)}, metadata={"epochs": 3})


def test_unreadable_safetensors_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(UnsupportedModelError, match="cannot read it as a safetensors file"):
        modelshelf.compile_tensors(garbage)
    # bfloat16 has no numpy dtype, so no image dtype either.
    header = json.dumps({"h": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}).encode()
    bf16 = tmp_path / "bf16.safetensors"
    bf16.write_bytes(struct.pack("<Q", len(header)) + header + bytes(4))
    with pytest.raises(UnsupportedModelError, match="bfloat16"):
        modelshelf.compile_tensors(bf16)
    with pytest.raises(FileNotFoundError):
        modelshelf.compile_tensors(tmp_path / "missing.safetensors")
