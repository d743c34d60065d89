"""The writer's output against docs/format.md: layout, header, table, alignment, determinism,
and round trips of every dtype and rank.

Byte offsets here are restated from the spec (``tests/adversarial/_raw.py``), never taken from
``modelshelf.image._format``, so a drift between the code and the document fails these tests.
"""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest

import modelshelf.image as image_pkg
from modelshelf.errors import ChecksumError, ManifestError
from modelshelf.image import Image, ImageBuilder
from tests.adversarial import _raw

MANIFEST = {"model": {"kind": "tensors"}, "input": {"type": "none"}, "metadata": {"name": "t"}}
DTYPES = list(_raw.DTYPE_CODES)


def _build(arrays: dict[str, np.ndarray], manifest: dict | None = None) -> bytes:
    builder = ImageBuilder()
    for name, arr in arrays.items():
        assert builder.add(name, arr) == name
    return builder.build(manifest or MANIFEST)


def _values(dtype: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith("float"):
        return np.asarray(rng.standard_normal(shape) * 1e3).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", range(9))
def test_round_trip_every_dtype_and_rank(dtype: str, ndim: int) -> None:
    shape = (3, 1, 2, 1, 2, 1, 1, 2)[:ndim]
    arr = _values(dtype, shape, seed=ndim)
    image = Image.open(_build({"a": arr}), verify=True)
    out = image.arrays["a"]
    assert out.dtype == np.dtype(dtype) and out.dtype.byteorder in "<|="
    assert out.shape == shape
    np.testing.assert_array_equal(out, arr, strict=True)
    assert _raw.entry(image.buffer, 0)["dtype"] == _raw.DTYPE_CODES[dtype]


@pytest.mark.parametrize("dtype", [d for d in DTYPES if np.dtype(d).itemsize > 1])
def test_big_endian_and_strided_input_is_stored_little_endian(dtype: str) -> None:
    arr = _values(dtype, (4, 6))
    swapped = arr.astype(arr.dtype.newbyteorder(">"))[:, ::2]  # big-endian and not contiguous
    data = _build({"a": swapped})
    out = Image.open(data).arrays["a"]
    np.testing.assert_array_equal(out, arr[:, ::2])
    assert out.dtype == np.dtype(dtype).newbyteorder("<")
    start = _raw.entry(data, 0)["data_offset"]
    assert (
        data[start : start + out.nbytes]
        == np.ascontiguousarray(arr[:, ::2]).astype(np.dtype(dtype).newbyteorder("<")).tobytes()
    )


def test_empty_and_zero_size_arrays() -> None:
    arrays = {
        "first_empty": np.zeros(0),
        "scalar": np.array(7, dtype=np.int16),
        "zero_rows": np.zeros((0, 5), dtype=np.float32),
        "zero_middle": np.ones((2, 0, 3), dtype=np.uint8),
        "after": np.arange(3, dtype=np.int64),
        "last_empty": np.zeros((4, 0), dtype=bool),
    }
    data = _build(arrays)
    image = Image.open(data, verify=True)
    for name, arr in arrays.items():
        assert image.arrays[name].shape == arr.shape
        assert image.arrays[name].dtype == arr.dtype
        np.testing.assert_array_equal(image.arrays[name], arr)
    assert image.arrays["scalar"].ndim == 0 and image.arrays["scalar"][()] == 7
    # a zero-size last array sits at the aligned end: the image ends there
    last = _raw.entry(data, len(arrays) - 1)
    assert last["data_length"] == 0 and last["data_offset"] == len(data)
    assert last["data_offset"] % 64 == 0


def test_image_without_arrays_ends_with_its_manifest() -> None:
    data = _build({})
    h = _raw.header(data)
    assert h["array_count"] == 0 and h["strings_length"] == 0
    assert h["strings_offset"] == h["manifest_offset"] == 64
    assert h["image_size"] == len(data) == 64 + h["manifest_length"]
    image = Image.open(data, verify=True)
    assert dict(image.arrays) == {} and image.manifest == MANIFEST


def test_header_fields_match_the_spec() -> None:
    arrays = {"w": np.arange(6.0).reshape(2, 3), "é/b": np.array([1, 2], dtype=np.uint16)}
    data = _build(arrays)
    h = _raw.header(data)
    assert data[:8] == b"\x89MSHELF\n"
    assert (h["major"], h["minor"], h["flags"]) == (1, 0, 0)
    assert h["image_size"] == len(data)
    assert h["array_count"] == 2
    assert h["table_offset"] == 64
    assert h["strings_offset"] == 64 + 2 * 96
    names = "wé/b".encode()
    assert h["strings_length"] == len(names)
    assert data[h["strings_offset"] : h["strings_offset"] + len(names)] == names
    assert h["manifest_offset"] == h["strings_offset"] + len(names)
    raw_manifest = data[h["manifest_offset"] : h["manifest_offset"] + h["manifest_length"]]
    assert raw_manifest == json.dumps(MANIFEST, sort_keys=True, separators=(",", ":")).encode()
    zeroed = data[:24] + bytes(4) + data[28:]
    assert h["checksum"] == zlib.crc32(zeroed) == struct.unpack_from("<I", data, 24)[0]
    image = Image.open(data)
    assert image.version == (1, 0) and image.size == len(data) and image.checksum == h["checksum"]


def test_array_table_entries_match_the_spec() -> None:
    arrays = {"w": np.arange(6.0).reshape(2, 3), "é/b": np.array([1, 2], dtype=np.uint16)}
    data = _build(arrays)
    h = _raw.header(data)
    w, b = _raw.entry(data, 0), _raw.entry(data, 1)
    assert w["data_offset"] == _raw.align(h["manifest_offset"] + h["manifest_length"])
    assert (w["data_length"], w["name_offset"], w["name_length"]) == (48, 0, 1)
    assert (w["dtype"], w["ndim"], w["shape0"], w["shape1"], w["shape2"]) == (12, 2, 2, 3, 0)
    assert b["data_offset"] == _raw.align(w["data_offset"] + 48)
    assert (b["data_length"], b["name_offset"], b["name_length"]) == (4, 1, 4)
    assert (b["dtype"], b["ndim"], b["shape0"], b["reserved"]) == (5, 1, 2, 0)
    assert b["data_offset"] + 4 == len(data)  # no padding after the last array
    assert data[w["data_offset"] : w["data_offset"] + 48] == arrays["w"].tobytes()


def test_arrays_are_aligned_and_padding_is_zero() -> None:
    arrays = {f"a{i}": np.arange(i * 7 + 1, dtype=np.int8) for i in range(12)}
    data = _build(arrays)
    h = _raw.header(data)
    cursor = h["manifest_offset"] + h["manifest_length"]
    for i in range(len(arrays)):
        e = _raw.entry(data, i)
        assert e["data_offset"] % 64 == 0
        assert e["data_offset"] == _raw.align(cursor)
        assert data[cursor : e["data_offset"]] == bytes(e["data_offset"] - cursor)
        cursor = e["data_offset"] + e["data_length"]
    assert cursor == len(data)


def test_views_are_aligned_in_memory_when_the_buffer_is() -> None:
    data = _build({f"a{i}": np.arange(i + 1, dtype=np.float32) for i in range(5)})
    buf = np.zeros(len(data) + 64, dtype=np.uint8)
    start = -buf.ctypes.data % 64  # a 64-aligned start inside buf
    buf[start : start + len(data)] = np.frombuffer(data, np.uint8)
    buf.flags.writeable = False  # writable memory would be copied (and aligned as bytes are)
    image = Image(memoryview(buf)[start : start + len(data)])
    assert all(a.ctypes.data % 64 == 0 for a in image.arrays.values())


def test_build_is_deterministic() -> None:
    arrays = {"b": np.arange(5.0), "a": np.eye(3, dtype=np.float32), "c": np.zeros(0)}
    reordered = {"metadata": {"name": "t"}, "input": {"type": "none"}, "model": {"kind": "tensors"}}
    assert _build(arrays) == _build(dict(arrays)) == _build(arrays, reordered)
    # array order is table order, as added
    data = _build(arrays)
    assert list(Image.open(data).arrays) == ["b", "a", "c"]


def test_minor_version_is_accepted() -> None:
    data = _raw.set_header(_build({"a": np.arange(3)}), minor=7)
    image = Image.open(data, verify=True)
    assert image.version == (1, 7)


def test_verify_checks_the_crc() -> None:
    data = _build({"a": np.arange(100.0)})
    Image.open(data, verify=True)
    corrupted = bytearray(data)
    corrupted[-1] ^= 0x10
    image = Image.open(bytes(corrupted))  # structure intact: only verify() notices
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        image.verify()
    with pytest.raises(ChecksumError):
        Image.open(bytes(corrupted), verify=True)


def test_independent_assembler_agrees_with_the_writer() -> None:
    arrays, manifest = _raw.base_model()
    assert _build(dict(arrays), manifest) == _raw.assemble(arrays, manifest)
    tensors = Image.open(_raw.tensors_image(), verify=True)
    assert _build(dict(tensors.arrays), tensors.manifest) == _raw.tensors_image()


@pytest.mark.parametrize(
    ("name", "arr", "error"),
    [
        ("", np.zeros(1), ValueError),
        ("x" * 1025, np.zeros(1), ValueError),
        ("c", np.zeros(2, dtype=np.complex128), TypeError),
        ("o", np.array(["a"], dtype=object), TypeError),
        ("s", np.array(["a"]), TypeError),
        ("t", np.array(["2020-01-01"], dtype="datetime64[D]"), TypeError),
        ("r", np.zeros(2, dtype=[("a", "f8")]), TypeError),
        ("nine", np.zeros((1,) * 9), ValueError),
        ("huge_dim", np.zeros((0, 2**41)), ValueError),
    ],
)
def test_builder_rejects_what_images_cannot_hold(
    name: str, arr: np.ndarray, error: type[Exception]
) -> None:
    with pytest.raises(error):
        ImageBuilder().add(name, arr)


def test_builder_rejects_duplicate_names_and_unreadable_manifests() -> None:
    builder = ImageBuilder()
    builder.add("a", np.zeros(1))
    assert "a" in builder
    with pytest.raises(ValueError, match="already used"):
        builder.add("a", np.ones(1))
    for manifest in (
        {"metadata": {}},
        {"model": {"kind": "tensors"}},
        {"model": {}, "metadata": {}},
        {"model": {"kind": "tensors"}, "metadata": {}, "x": float("nan")},
        {"model": {"kind": "tensors"}, "metadata": {}, "x": _nested(70)},
    ):
        with pytest.raises(ManifestError):
            builder.build(manifest)


def _nested(depth: int) -> list:
    node: list = []
    for _ in range(depth - 1):
        node = [node]
    return node


def test_public_names() -> None:
    limits = {n for n in dir(image_pkg) if n.startswith("MAX_")}
    assert set(image_pkg.__all__) == {
        "ALIGNMENT",
        "HEADER_SIZE",
        "MAGIC",
        "VERSION_MAJOR",
        "VERSION_MINOR",
        "Image",
        "ImageBuilder",
        *limits,
    }
    assert all(hasattr(image_pkg, n) for n in image_pkg.__all__)
    assert limits >= {"MAX_IMAGE_SIZE", "MAX_ARRAYS", "MAX_MANIFEST_DEPTH", "MAX_STRINGS_SIZE"}
    assert (image_pkg.ALIGNMENT, image_pkg.HEADER_SIZE, image_pkg.MAGIC) == (64, 64, _raw.MAGIC)
