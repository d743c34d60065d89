"""An independent, byte-level rendition of docs/format.md for building and editing images.

Nothing here imports the reader or the writer: offsets and layouts are restated from the spec,
so that a test comparing this assembler with ``ImageBuilder`` checks the code against the
document, and hostile images can break exactly one rule at a time (``assemble`` writes whatever
it is given; ``set_header``/``set_entry`` rewrite one field and, by default, reseal the CRC-32 so
that the structural checks behind the checksum are reached).
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

MAGIC = b"\x89MSHELF\n"
HEADER_SIZE = 64
ENTRY_SIZE = 96
ALIGNMENT = 64

# name -> (offset in the header, struct format)
HEADER_FIELDS: dict[str, tuple[int, str]] = {
    "magic": (0, "<8s"),
    "major": (8, "<H"),
    "minor": (10, "<H"),
    "flags": (12, "<I"),
    "image_size": (16, "<Q"),
    "checksum": (24, "<I"),
    "array_count": (28, "<I"),
    "table_offset": (32, "<Q"),
    "strings_offset": (40, "<Q"),
    "manifest_offset": (48, "<Q"),
    "manifest_length": (56, "<I"),
    "strings_length": (60, "<I"),
}
# name -> (offset in a table entry, struct format)
ENTRY_FIELDS: dict[str, tuple[int, str]] = {
    "data_offset": (0, "<Q"),
    "data_length": (8, "<Q"),
    "name_offset": (16, "<I"),
    "name_length": (20, "<H"),
    "dtype": (22, "<B"),
    "ndim": (23, "<B"),
    **{f"shape{j}": (24 + 8 * j, "<Q") for j in range(8)},
    "reserved": (88, "<Q"),
}
DTYPE_CODES: dict[str, int] = {
    "bool": 1,
    "int8": 2,
    "uint8": 3,
    "int16": 4,
    "uint16": 5,
    "int32": 6,
    "uint32": 7,
    "int64": 8,
    "uint64": 9,
    "float16": 10,
    "float32": 11,
    "float64": 12,
}
CHECKSUM_AT = HEADER_FIELDS["checksum"][0]


def align(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT


def manifest_bytes(manifest: Any) -> bytes:
    """The canonical encoding the spec prescribes: sorted keys, no whitespace, UTF-8."""
    return json.dumps(
        manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def crc(image: bytes | bytearray) -> int:
    """CRC-32 of the image with its checksum field read as zeros."""
    zeroed = bytearray(image)
    zeroed[CHECKSUM_AT : CHECKSUM_AT + 4] = bytes(4)
    return zlib.crc32(zeroed)


def seal(image: bytes | bytearray) -> bytes:
    out = bytearray(image)
    out[CHECKSUM_AT : CHECKSUM_AT + 4] = struct.pack("<I", crc(out))
    return bytes(out)


def assemble(
    arrays: Sequence[tuple[str | bytes, np.ndarray]], manifest: Any, *, reseal: bool = True
) -> bytes:
    """Lay out an image per the spec. ``manifest`` is an object (encoded canonically) or raw
    bytes; names may be raw bytes, so that invalid UTF-8 and duplicates can be written."""
    raw_manifest = manifest if isinstance(manifest, bytes) else manifest_bytes(manifest)
    names = [n if isinstance(n, bytes) else n.encode("utf-8") for n, _ in arrays]
    strings = b"".join(names)
    count = len(arrays)
    strings_offset = HEADER_SIZE + count * ENTRY_SIZE
    manifest_offset = strings_offset + len(strings)
    end = manifest_offset + len(raw_manifest)
    out = bytearray(end)
    out[strings_offset:manifest_offset] = strings
    out[manifest_offset:end] = raw_manifest
    name_at = 0
    for i, ((_, arr), name) in enumerate(zip(arrays, names, strict=True)):
        arr = np.asarray(arr, dtype=arr.dtype.newbyteorder("<"), order="C")
        start = align(len(out))
        out += bytes(start - len(out)) + arr.tobytes()
        shape = list(arr.shape) + [0] * (8 - arr.ndim)
        base = HEADER_SIZE + i * ENTRY_SIZE
        struct.pack_into(
            "<QQIHBB8QQ",
            out,
            base,
            start,
            arr.nbytes,
            name_at,
            len(name),
            DTYPE_CODES[arr.dtype.name],
            arr.ndim,
            *shape,
            0,
        )
        name_at += len(name)
    struct.pack_into(
        "<8sHHIQIIQQQII",
        out,
        0,
        MAGIC,
        1,
        0,
        0,
        len(out),
        0,
        count,
        HEADER_SIZE,
        strings_offset,
        manifest_offset,
        len(raw_manifest),
        len(strings),
    )
    return seal(out) if reseal else bytes(out)


def header(image: bytes | bytearray) -> dict[str, Any]:
    return {k: struct.unpack_from(fmt, image, at)[0] for k, (at, fmt) in HEADER_FIELDS.items()}


def entry(image: bytes | bytearray, i: int) -> dict[str, int]:
    base = HEADER_SIZE + i * ENTRY_SIZE
    return {
        k: struct.unpack_from(fmt, image, base + at)[0] for k, (at, fmt) in ENTRY_FIELDS.items()
    }


def set_header(image: bytes | bytearray, *, reseal: bool = True, **fields: Any) -> bytes:
    out = bytearray(image)
    for key, value in fields.items():
        at, fmt = HEADER_FIELDS[key]
        struct.pack_into(fmt, out, at, value)
    return seal(out) if reseal else bytes(out)


def set_entry(image: bytes | bytearray, i: int, *, reseal: bool = True, **fields: int) -> bytes:
    out = bytearray(image)
    for key, value in fields.items():
        at, fmt = ENTRY_FIELDS[key]
        struct.pack_into(fmt, out, HEADER_SIZE + i * ENTRY_SIZE + at, value)
    return seal(out) if reseal else bytes(out)


def manifest_span(image: bytes | bytearray) -> tuple[int, int]:
    h = header(image)
    return h["manifest_offset"], h["manifest_offset"] + h["manifest_length"]


def replace_manifest_text(image: bytes, old: bytes, new: bytes, *, reseal: bool = True) -> bytes:
    """Replace ``old`` by ``new`` (same length) inside the manifest, leaving the layout alone."""
    assert len(old) == len(new)
    start, end = manifest_span(image)
    at = image.index(old, start, end)
    out = bytearray(image)
    out[at : at + len(old)] = new
    return seal(out) if reseal else bytes(out)


def base_model() -> tuple[list[tuple[str, np.ndarray]], dict[str, Any]]:
    """A small, deterministic model image's parts: StandardScaler then a 3-class logistic
    regression, as compile() would lay them out. test_hostile checks that it loads and
    predicts, so that every hostile ``load`` case breaks exactly one thing in a working model."""
    arrays = [
        ("model/0/center", np.array([5.8, 3.0, 3.7, 1.2])),
        ("model/0/scale", np.array([0.8, 0.4, 1.7, 0.8])),
        ("model/1/coef", np.arange(12, dtype=np.float64).reshape(3, 4) / 10 - 0.5),
        ("model/1/intercept", np.array([0.1, -0.2, 0.1])),
        ("model/1/classes", np.array([0, 1, 2], dtype=np.int64)),
    ]
    manifest = {
        "model": {
            "kind": "pipeline",
            "params": {
                "steps": [
                    {
                        "kind": "scaler",
                        "arrays": {"center": "model/0/center", "scale": "model/0/scale"},
                        "params": {"n_features": 4},
                    },
                    {
                        "kind": "linear_classifier",
                        "arrays": {
                            "coef": "model/1/coef",
                            "intercept": "model/1/intercept",
                            "classes": "model/1/classes",
                        },
                        "params": {"proba": "logistic"},
                    },
                ]
            },
        },
        "input": {"type": "numeric", "n_features": 4, "feature_names": None},
        "metadata": {
            "name": "hostile-base",
            "framework": "scikit-learn",
            "framework_version": "1.9.0",
            "estimator": "sklearn.pipeline.Pipeline",
            "created": "2025-01-01T00:00:00Z",
            "modelshelf_version": "0",
            "extra": {},
        },
    }
    return arrays, manifest


def base_image() -> bytes:
    arrays, manifest = base_model()
    return assemble(arrays, manifest)


def tensors_image() -> bytes:
    """A tensor bundle with every dtype, ndim 0..3 and zero-size arrays."""
    rng = np.random.default_rng(7)
    arrays: list[tuple[str, np.ndarray]] = []
    for i, name in enumerate(DTYPE_CODES):
        shape = [(), (3,), (2, 3), (2, 0, 3)][i % 4]
        arrays.append((f"t/{name}", np.asarray(rng.random(shape) * 100).astype(name)))
    manifest = {"model": {"kind": "tensors"}, "input": {"type": "none"}, "metadata": {"name": "t"}}
    return assemble(arrays, manifest)
