"""Byte-level constants of the image format (docs/format.md is the specification).

Every multi-byte integer is little-endian. Offsets are relative to the first byte of the image.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from typing import Any, Final

import numpy as np

MAGIC: Final = b"\x89MSHELF\n"
VERSION_MAJOR: Final = 1
VERSION_MINOR: Final = 5  # the newest minor this reader knows; writers pick minor_for()


def minor_for(manifest: Any) -> int:
    """The lowest minor version whose features ``manifest`` uses: 1.1 added tabular input,
    1.2 a forest's ``base_last``, the ``libm_*`` links, the ``width`` of string labels and a
    column transformer's ``one_column`` parts, 1.3 the ``keeps_float32`` and ``fitted_float32``
    of models fitted on float32 and a column transformer's ``pandas_output``, 1.4 a forest's
    ``float32_range``, 1.5 a forest's ``numpy_float32``."""
    model = manifest.get("model")
    if _has_param(model, "numpy_float32"):
        return 5
    if _has_param(model, "float32_range"):
        return 4
    if any(_has_param(model, key) for key in ("keeps_float32", "fitted_float32", "pandas_output")):
        return 3
    if _uses_1_2(model):
        return 2
    schema = manifest.get("input")
    return 1 if isinstance(schema, Mapping) and schema.get("type") == "tabular" else 0


def _has_param(node: Any, key: str) -> bool:
    """Whether any spec in the model tree has ``params[key]`` true."""
    if isinstance(node, Mapping):
        params = node.get("params")
        if isinstance(params, Mapping) and params.get(key) is True:
            return True
        return any(_has_param(v, key) for v in node.values())
    if isinstance(node, list):
        return any(_has_param(v, key) for v in node)
    return False


def _uses_1_2(node: Any) -> bool:
    if isinstance(node, Mapping):
        if node.get("one_column") is True:  # a column transformer's part
            return True
        params = node.get("params")
        if isinstance(params, Mapping) and (
            params.get("base_last") is True
            or params.get("link") in ("libm_exp", "libm_softmax")
            or any(
                isinstance(v, Mapping) and "width" in v and "strings" in v for v in params.values()
            )
        ):
            return True
        return any(_uses_1_2(v) for v in node.values())
    if isinstance(node, list):
        return any(_uses_1_2(v) for v in node)
    return False


# Header: magic, major, minor, flags, image_size, checksum, array_count, table_offset,
# strings_offset, manifest_offset, manifest_length, strings_length.
HEADER = struct.Struct("<8sHHIQIIQQQII")
HEADER_SIZE: Final = 64
CHECKSUM_OFFSET: Final = 24  # where the CRC-32 sits inside the header
assert HEADER.size == HEADER_SIZE

MAX_NDIM: Final = 8
ENTRY_DTYPE: Final = np.dtype(
    [
        ("data_offset", "<u8"),
        ("data_length", "<u8"),
        ("name_offset", "<u4"),
        ("name_length", "<u2"),
        ("dtype", "u1"),
        ("ndim", "u1"),
        ("shape", "<u8", (MAX_NDIM,)),
        ("reserved", "<u8"),
    ]
)
ENTRY_SIZE: Final = 96
# The same entry for struct: offset, length, name offset, name length, dtype, ndim, shape, reserved.
ENTRY = struct.Struct(f"<QQIHBB{MAX_NDIM}QQ")
assert ENTRY.size == ENTRY_SIZE
assert ENTRY_DTYPE.itemsize == ENTRY_SIZE

ALIGNMENT: Final = 64  # every array starts at a multiple of this offset

# Named limits. A reader MUST reject an image that exceeds any of them.
MAX_IMAGE_SIZE: Final = 1 << 40  # 1 TiB
MAX_ARRAYS: Final = 1 << 20
MAX_NAME_LENGTH: Final = 1024
MAX_MANIFEST_SIZE: Final = 64 << 20
MAX_MANIFEST_DEPTH: Final = 64  # nesting of JSON objects and arrays; bounds recursion downstream
MAX_STRINGS_SIZE: Final = MAX_ARRAYS * MAX_NAME_LENGTH
MAX_DIM: Final = 1 << 40

# dtype codes; the numpy dtypes are little-endian whatever the host.
DTYPES: Final[dict[int, np.dtype]] = {
    1: np.dtype("bool"),
    2: np.dtype("int8"),
    3: np.dtype("uint8"),
    4: np.dtype("<i2"),
    5: np.dtype("<u2"),
    6: np.dtype("<i4"),
    7: np.dtype("<u4"),
    8: np.dtype("<i8"),
    9: np.dtype("<u8"),
    10: np.dtype("<f2"),
    11: np.dtype("<f4"),
    12: np.dtype("<f8"),
}
DTYPE_CODES: Final[dict[np.dtype, int]] = {dt: code for code, dt in DTYPES.items()}


def dtype_code(dtype: np.dtype) -> int | None:
    """Return the format's code for ``dtype`` (any byte order), or None if it has none."""
    return DTYPE_CODES.get(dtype.newbyteorder("<") if dtype.byteorder == ">" else dtype)


def image_crc32(buf: memoryview) -> int:
    """CRC-32 (zlib polynomial) of the image with the header's checksum field read as zeros."""
    crc = zlib.crc32(buf[:CHECKSUM_OFFSET])
    crc = zlib.crc32(b"\0\0\0\0", crc)
    return zlib.crc32(buf[CHECKSUM_OFFSET + 4 :], crc)


def align(n: int) -> int:
    """The first multiple of ALIGNMENT at or after ``n``."""
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
