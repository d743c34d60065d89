"""The compiled image reader (``_kernels.image_arrays``, image.c) against the Python one.

It reads only images the Python reader accepts, and then exactly what that reader gives: the
same header fields and the same read-only views (dtype, shape, strides, address, flags, the
memory they keep alive). Everything else is None, and the Python reader says what is wrong
(the mutation tests in tests/adversarial open every mutant with both and compare).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelshelf import _kernels
from modelshelf.image import Image, ImageBuilder
from modelshelf.image import _format as f
from tests.adversarial import _raw
from tests.adversarial._fuzz import BUILT_KERNELS, layout, opened
from tests.kernels import require, using

MANIFEST = {"model": {"kind": "tensors"}, "metadata": {}}
DTYPES = [dt.str for dt in f.DTYPES.values()]


def _compiled() -> _kernels.ImageArrays:
    require("compiled")
    read = _kernels._image_arrays
    assert read is not None, "the extension is built but its image reader is not used"
    return read


def test_the_extension_reads_the_format_of_this_reader() -> None:
    _compiled()
    assert _kernels.BUILT is not None
    for name, value in _kernels.BUILT.IMAGE_FORMAT.items():
        assert getattr(f, name) == value, name
    with using("compiled"):
        assert _kernels.image_arrays() is not None
    with using("numpy"):
        assert _kernels.image_arrays() is None  # MODELSHELF_KERNELS=numpy: Python reads


def test_an_extension_built_for_another_layout_is_not_used() -> None:
    """The facade compares the extension's layout and limits with _format.py's: one value
    off (or one name this reader does not define) and the Python reader serves."""
    _compiled()
    built = _kernels.BUILT
    assert built is not None and _kernels._image_reader(built) is built.image_arrays
    for changed in ({"MAX_ARRAYS": f.MAX_ARRAYS + 1}, {"NO_SUCH_LIMIT": 1}):
        other = SimpleNamespace(
            image_arrays=built.image_arrays, IMAGE_FORMAT={**built.IMAGE_FORMAT, **changed}
        )
        assert _kernels._image_reader(other) is None, changed  # type: ignore[arg-type]
    assert _kernels._image_reader(None) is None


arrays = st.lists(
    st.tuples(
        st.text(min_size=1, max_size=12),
        st.sampled_from(DTYPES),
        st.lists(st.integers(0, 3), max_size=f.MAX_NDIM),
    ),
    max_size=6,
    unique_by=lambda t: t[0],
)


@settings(max_examples=200, deadline=None)
@given(arrays)
def test_valid_images_are_read_by_both_alike(specs: list[tuple[str, str, list[int]]]) -> None:
    read = _compiled()
    builder = ImageBuilder()
    rng = np.random.default_rng(len(specs))
    for name, dtype, shape in specs:
        values = rng.integers(0, 2, size=shape) if dtype == "|b1" else rng.random(shape) * 100
        builder.add(name, np.asarray(values).astype(dtype))
    data = builder.build(MANIFEST)
    assert read(memoryview(data)) is not None  # the compiled reader serves valid images
    image = opened(data)  # both readers, compared
    assert image is not None and list(image.arrays) == [s[0] for s in specs]
    for (_, dtype, shape), arr in zip(specs, image.arrays.values(), strict=True):
        assert arr.dtype.str == dtype and arr.shape == tuple(shape) and not arr.flags.writeable


def test_every_refusal_is_the_python_readers() -> None:
    """One broken rule at a time: the compiled reader gives None, the error is Python's."""
    read = _compiled()
    base = _raw.tensors_image()
    assert read(memoryview(base)) is not None
    rewrites = [
        ("header", "major", 2), ("header", "flags", 1), ("header", "array_count", 1 << 21),
        ("header", "image_size", len(base) + 64), ("header", "table_offset", 128),
        ("header", "strings_length", 1 << 31), ("header", "manifest_length", 1 << 27),
        ("entry", "reserved", 1), ("entry", "name_length", 0), ("entry", "name_length", 4000),
        ("entry", "dtype", 13), ("entry", "dtype", 0), ("entry", "ndim", 9),
        ("entry", "shape7", 1), ("entry", "shape0", 1 << 41), ("entry", "data_offset", 65),
        ("entry", "data_length", 8), ("entry", "data_offset", 0), ("entry", "shape0", 1 << 40),
    ]  # fmt: skip
    for where, field, value in rewrites:
        if where == "header":
            data = _raw.set_header(base, **{field: value})
        else:
            data = _raw.set_entry(base, 0, **{field: value})
        assert read(memoryview(data)) is None, (field, value)
        assert opened(data) is None, (field, value)  # refused, by both with one error


def test_a_name_that_is_not_utf8_is_refused_by_python() -> None:
    read = _compiled()
    data = bytearray(_raw.tensors_image())
    start = _raw.header(bytes(data))["strings_offset"]
    data[start] = 0xFF  # the first name's first byte
    sealed = _raw.seal(data)
    assert read(memoryview(sealed)) is None
    assert opened(sealed) is None


def test_the_views_keep_the_image_memory_mapped(tmp_path: Path) -> None:
    """As numpy.frombuffer's views do: the mapping cannot be closed under them, and they read
    the image after its memoryview is released."""
    _compiled()
    builder = ImageBuilder()
    builder.add("w", np.arange(10.0))
    path = tmp_path / "w.msi"
    path.write_bytes(builder.build(MANIFEST))
    for kernel in BUILT_KERNELS:
        with using(kernel):
            image = Image.open(path)
        w = image.arrays["w"]
        image.buffer.release()
        with pytest.raises(BufferError):
            image._owner.close()
        assert w.sum() == 45.0, kernel


def test_opening_the_same_bytes_gives_the_same_layout_with_either() -> None:
    """The layout compared in every mutation test, here on a real model image."""
    base = _raw.base_image()
    with using("numpy"):
        expected = layout(Image.open(base))
    with using("compiled"):
        assert layout(Image.open(base)) == expected
