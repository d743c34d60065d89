"""The reader over every kind of buffer: read-only views that share the buffer's memory, and an
open that reads the header, the table and the manifest but no array byte."""

from __future__ import annotations

import mmap
import pathlib
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import modelshelf
from modelshelf.errors import ArrayTableError, HeaderError, ManifestError, TruncatedImageError
from modelshelf.image import Image, ImageBuilder, _format
from tests.adversarial import _raw
from tests.kernels import using

MANIFEST = {"model": {"kind": "tensors"}, "input": {"type": "none"}, "metadata": {"name": "t"}}
ARRAYS = {
    "w": np.arange(12.0).reshape(3, 4),
    "i": np.arange(5, dtype=np.int32),
    "flag": np.array([True, False]),
    "scalar": np.array(2.5, dtype=np.float32),
}


def _image_bytes() -> bytes:
    builder = ImageBuilder()
    for name, arr in ARRAYS.items():
        builder.add(name, arr)
    return builder.build(MANIFEST)


@pytest.fixture
def image_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "model.msimg"
    path.write_bytes(_image_bytes())
    return path


SOURCES: dict[str, Callable[[pathlib.Path], Any]] = {
    "bytes": lambda p: p.read_bytes(),
    "bytearray": lambda p: bytearray(p.read_bytes()),
    "memoryview": lambda p: memoryview(p.read_bytes()),
    "memoryview_of_bytearray": lambda p: memoryview(bytearray(p.read_bytes())),
    "mmap": lambda p: _map(p),
    "writable_mmap": lambda p: _writable_copy(p.read_bytes()),
    "path_str": str,
    "path": lambda p: p,
}


def _map(path: pathlib.Path) -> mmap.mmap:
    with open(path, "rb") as fh:
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)


def _writable_copy(data: bytes) -> mmap.mmap:
    mm = mmap.mmap(-1, len(data))
    mm.write(data)
    return mm


@pytest.mark.parametrize("kind", SOURCES)
def test_every_source_gives_read_only_views_of_its_own_memory(
    kind: str, image_file: pathlib.Path
) -> None:
    source = SOURCES[kind](image_file)
    image = Image.open(source, verify=True)
    assert image.manifest == MANIFEST and list(image.arrays) == list(ARRAYS)
    whole = np.frombuffer(image.buffer, dtype=np.uint8)
    for name, expected in ARRAYS.items():
        arr = image.arrays[name]
        np.testing.assert_array_equal(arr, expected, strict=True)
        assert not arr.flags.writeable
        with pytest.raises(ValueError, match="WRITEABLE"):
            arr.flags.writeable = True
        with pytest.raises(ValueError, match="read-only"):
            arr[...] = 0
        assert np.shares_memory(arr, whole)
    if isinstance(source, str | pathlib.Path):
        assert isinstance(image.buffer.obj, mmap.mmap)  # mapped, not read
        with pytest.raises(TypeError):
            image.buffer.obj[0] = 0  # the mapping itself is read-only
    elif memoryview(source).readonly:
        # the image's buffer is the caller's memory, not a copy of it
        assert np.shares_memory(whole, np.frombuffer(source, dtype=np.uint8))
    else:
        # memory the caller can still write is copied once: the kernels trust indices they
        # checked once, so a later write to the source must not reach the image
        assert not np.shares_memory(whole, np.frombuffer(source, dtype=np.uint8))
        before = {name: arr.copy() for name, arr in image.arrays.items()}
        writable = memoryview(source).cast("B")
        writable[:] = b"\xff" * len(writable)
        for name, arr in image.arrays.items():
            np.testing.assert_array_equal(arr, before[name], strict=True)
    with pytest.raises(TypeError):
        image.arrays["w"] = np.zeros(1)  # type: ignore[index]
    assert image.buffer.readonly


def _read_only(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr


@pytest.mark.parametrize(
    "wrap",
    [
        lambda data: data,
        memoryview,
        lambda data: memoryview(data).toreadonly(),  # read-only view, writable memory behind it
        lambda data: _read_only(np.frombuffer(data, dtype=np.uint8)),  # the same, through numpy
    ],
    ids=["bytearray", "memoryview", "read-only memoryview", "read-only numpy view"],
)
def test_writes_to_a_writable_source_never_reach_the_open_image(wrap: Any) -> None:
    """Memory its caller can still write is copied once at open: the compiled kernels check an
    image's indices once and trust them after."""
    data = bytearray(_image_bytes())
    image = Image.open(wrap(data))
    w = image.arrays["w"]
    offset = _raw.entry(data, 0)["data_offset"]
    before = w[0, 0]
    data[offset : offset + 8] = np.float64(-42.0).tobytes()
    assert w[0, 0] == before != -42.0
    assert not w.flags.writeable


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
def test_a_strided_read_only_view_opens_as_its_bytes_in_order(kernel: str) -> None:
    """A strided view is a run of bytes in order too (was numpy's BufferError): it is copied
    into one, as a writable buffer is."""
    data = _image_bytes()
    doubled = np.repeat(np.frombuffer(data, dtype=np.uint8), 2)
    doubled.flags.writeable = False
    strided = memoryview(doubled)[::2]
    assert strided.readonly and not strided.c_contiguous
    with using(kernel):
        image = Image(strided)
    for name, arr in ARRAYS.items():
        np.testing.assert_array_equal(image.arrays[name], arr)
    assert not image.arrays["w"].flags.writeable


@pytest.mark.parametrize("source", ["a path", None, 5])
def test_what_is_not_a_buffer_is_refused_saying_what_was_expected(source: Any) -> None:
    with pytest.raises(TypeError, match=r"expects the bytes of an image .* Image.open\(path\)"):
        Image(source)


def test_views_see_the_callers_bytes_when_they_cannot_change() -> None:
    """Proof of no copy by observation, for immutable memory: the image's arrays are views of
    the caller's bytes object itself."""
    data = _image_bytes()
    image = Image.open(data)
    whole = np.frombuffer(data, dtype=np.uint8)
    assert all(np.shares_memory(a, whole) for a in image.arrays.values())


def test_model_arrays_are_views_too() -> None:
    data = _raw.base_image()
    model = modelshelf.load(data, verify=True)
    whole = np.frombuffer(data, dtype=np.uint8)
    assert all(np.shares_memory(a, whole) for a in model.tensors.values())
    assert all(not a.flags.writeable for a in model.tensors.values())


def test_a_fifo_or_a_directory_is_refused_at_once(tmp_path: pathlib.Path) -> None:
    """Opening a FIFO waited for a writer forever; a directory gave a bare ENODEV."""
    import os

    fifo = tmp_path / "pipe.msi"
    os.mkfifo(fifo)
    with pytest.raises(modelshelf.errors.ImageError, match="not a regular file"):
        modelshelf.load(fifo)
    with pytest.raises(IsADirectoryError, match="an image is a file"):
        modelshelf.load(tmp_path)


def test_short_file_is_truncated(tmp_path: pathlib.Path) -> None:
    for size in (0, 1, 63):
        path = tmp_path / f"short{size}"
        path.write_bytes(_image_bytes()[:size])
        with pytest.raises(TruncatedImageError):
            Image.open(path)


def test_image_keeps_its_mapping_alive(image_file: pathlib.Path) -> None:
    image = Image.open(image_file)
    w = image.arrays["w"]
    del image
    np.testing.assert_array_equal(w, ARRAYS["w"])  # the view holds the mapping


# -- opening is O(number of arrays) ----------------------------------------------------------

BIG = 25_000_000  # float64 elements: a 200 MB coefficient array

_CHILD = textwrap.dedent(
    """
    import ctypes, mmap, resource, sys
    import numpy as np
    import modelshelf
    from modelshelf.image import Image

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    path, start, end, how = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    real_mmap = mmap.mmap

    def protected(*args, **kwargs):
        # Map as the reader does, then make every page inside [start, end) inaccessible:
        # any read of them kills this process with SIGSEGV.
        mm = real_mmap(*args, **kwargs)
        base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
        page = mmap.PAGESIZE
        lo, hi = -(-start // page) * page, end // page * page
        if libc.mprotect(base + lo, hi - lo, 0) != 0:  # PROT_NONE
            raise OSError(ctypes.get_errno(), "mprotect failed")
        return mm

    if how == "path":
        mmap.mmap = protected  # Image.open(path) maps through it
        image = Image.open(path)
    else:
        with open(path, "rb") as fh:
            image = Image.open(protected(fh.fileno(), 0, access=mmap.ACCESS_READ))
    model = modelshelf.load(image)
    coef = image.arrays["model/coef"]
    assert coef.shape == (1, int(sys.argv[5])) and not coef.flags.writeable, coef.shape
    assert list(model.classes_) == [0, 1]
    print("opened", flush=True)
    if how == "verify":
        image.verify()
    print("verified", flush=True)
    """
)


@pytest.fixture(scope="module")
def big_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, int, int]:
    """A 200 MB linear model whose coefficients are zeros, written as a sparse file: the
    header, table and manifest are written, the 200 MB of zeros are a hole."""
    builder = ImageBuilder()
    builder.add("model/intercept", np.zeros(1))
    builder.add("model/classes", np.array([0, 1]))
    builder.add("model/coef", np.zeros((1, BIG)))
    spec = {
        "kind": "linear_classifier",
        "arrays": {r: f"model/{r}" for r in ("coef", "intercept", "classes")},
        "params": {"proba": "logistic"},
    }
    data = builder.build({"model": spec, "input": {"n_features": BIG}, "metadata": {}})
    coef = _raw.entry(data, 2)
    start, end = coef["data_offset"], coef["data_offset"] + coef["data_length"]
    assert end == len(data) > 200_000_000
    assert not np.frombuffer(data, np.uint8, offset=start).any()
    path = tmp_path_factory.mktemp("big") / "big.msimg"
    with open(path, "wb") as fh:
        fh.write(data[:start])
        fh.truncate(len(data))
    return path, start, end


def _child(big: tuple[pathlib.Path, int, int], how: str) -> subprocess.CompletedProcess[str]:
    path, start, end = big
    return subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(start), str(end), how, str(BIG)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("how", ["path", "mmap"])
def test_open_and_load_read_no_array_byte(
    big_image: tuple[pathlib.Path, int, int], how: str
) -> None:
    """``Image.open`` and ``modelshelf.load`` of a 200 MB image never read its array.

    Timing would be noisy and belongs in bench/; instead the child process maps the image and
    makes every page of the 200 MB array inaccessible (``mprotect(PROT_NONE)`` through ctypes)
    before the reader sees it. Reading any of those bytes would kill it with SIGSEGV. The
    verify test below shows the trap is live: ``verify()``, which must read every byte, dies.
    """
    done = _child(big_image, how)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["opened", "verified"]


def test_verify_is_the_full_read(big_image: tuple[pathlib.Path, int, int]) -> None:
    done = _child(big_image, "verify")
    assert done.returncode == -signal.SIGSEGV, (done.returncode, done.stderr)
    assert done.stdout.split() == ["opened"]


@pytest.mark.parametrize(
    ("limit", "value", "error", "match"),
    [
        ("MAX_IMAGE_SIZE", 1000, HeaderError, "exceeds the limit 1000"),
        ("MAX_ARRAYS", 4, HeaderError, "array count 5 exceeds the limit 4"),
        ("MAX_STRINGS_SIZE", 10, HeaderError, "exceeds 10"),
        ("MAX_MANIFEST_SIZE", 100, HeaderError, "exceeds the limit 100"),
        ("MAX_NAME_LENGTH", 12, ArrayTableError, "outside 1..12"),
        ("MAX_DIM", 3, ArrayTableError, "dimension 4 exceeds 3"),
        ("MAX_MANIFEST_DEPTH", 3, ManifestError, "deeper than 3"),
    ],
)
def test_each_limit_is_enforced(
    monkeypatch: pytest.MonkeyPatch, limit: str, value: int, error: type[Exception], match: str
) -> None:
    """Each named limit has its own check (shown by lowering it below the base image's size);
    real images over the limits would be too large to keep as hostile files. The Python
    reader's: the compiled one reads its limits from image.c, checked equal to _format's at
    import (test_reader_compiled.py), and refuses whatever the Python reader would."""
    data = _raw.base_image()
    Image.open(data)
    monkeypatch.setattr(_format, limit, value)
    with using("numpy"), pytest.raises(error, match=match):
        Image.open(data)
