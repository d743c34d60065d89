"""Image writer: collects named arrays and a manifest, lays them out, seals with a checksum."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ImageError, ManifestError
from . import _format as f
from ._manifest import encode_manifest


class ImageBuilder:
    """Accumulates arrays by name, then writes one image.

    Array names are unique; ``add`` returns the name so converters can store it in the manifest.
    Arrays are copied into the image once, by ``build``, in C order and little-endian; an array
    already in that form is referenced until then, so do not change it between add and build.
    """

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._arrays

    def add(self, name: str, array: Any) -> str:
        if name in self._arrays:
            raise ValueError(f"array name {name!r} is already used in this image")
        encoded = name.encode("utf-8")
        if not encoded or len(encoded) > f.MAX_NAME_LENGTH:
            raise ValueError(f"array name must be 1..{f.MAX_NAME_LENGTH} UTF-8 bytes: {name!r}")
        arr = np.asarray(array)
        if f.dtype_code(arr.dtype) is None:
            raise TypeError(f"array {name!r} has dtype {arr.dtype}, which images cannot hold")
        if arr.ndim > f.MAX_NDIM:
            raise ValueError(f"array {name!r} has {arr.ndim} dimensions; at most {f.MAX_NDIM}")
        # A zero-size array may have any other dimension; the reader bounds each one.
        if any(d > f.MAX_DIM for d in arr.shape):
            raise ValueError(f"array {name!r} has shape {arr.shape}; dimensions are <= {f.MAX_DIM}")
        if len(self._arrays) >= f.MAX_ARRAYS:
            raise ValueError(f"an image holds at most {f.MAX_ARRAYS} arrays")
        # np.asarray, not np.ascontiguousarray: the latter turns a 0-d array into shape (1,).
        self._arrays[name] = np.asarray(arr, dtype=arr.dtype.newbyteorder("<"), order="C")
        return name

    def build(self, manifest: Mapping[str, Any]) -> bytes:
        """Lay out the header, array table, names, manifest and arrays; seal with the CRC-32.

        Raises ManifestError for a manifest no reader would accept.
        """
        manifest_bytes = encode_manifest(manifest)
        if len(manifest_bytes) > f.MAX_MANIFEST_SIZE:
            raise ManifestError(
                f"manifest is {len(manifest_bytes)} bytes; the limit is {f.MAX_MANIFEST_SIZE}"
            )
        names = [n.encode("utf-8") for n in self._arrays]
        strings = b"".join(names)
        count = len(names)
        table_offset = f.HEADER_SIZE
        strings_offset = table_offset + count * f.ENTRY_SIZE
        manifest_offset = strings_offset + len(strings)
        manifest_end = manifest_offset + len(manifest_bytes)
        cursor = f.align(manifest_end)

        table = np.zeros(count, dtype=f.ENTRY_DTYPE)
        name_cursor = 0
        placements = []
        image_size = manifest_end
        for i, (encoded, arr) in enumerate(zip(names, self._arrays.values(), strict=True)):
            entry = table[i]
            entry["data_offset"] = cursor
            entry["data_length"] = arr.nbytes
            entry["name_offset"] = name_cursor
            entry["name_length"] = len(encoded)
            entry["dtype"] = f.dtype_code(arr.dtype)
            entry["ndim"] = arr.ndim
            entry["shape"][: arr.ndim] = arr.shape
            placements.append((cursor, arr))
            name_cursor += len(encoded)
            image_size = cursor + arr.nbytes
            cursor = f.align(image_size)
        if image_size > f.MAX_IMAGE_SIZE:
            raise ImageError(f"image would be {image_size} bytes; the limit is {f.MAX_IMAGE_SIZE}")

        out = bytearray(image_size)
        out[table_offset:strings_offset] = table.tobytes()
        out[strings_offset:manifest_offset] = strings
        out[manifest_offset : manifest_offset + len(manifest_bytes)] = manifest_bytes
        for offset, arr in placements:
            out[offset : offset + arr.nbytes] = arr.reshape(-1).view(np.uint8).data
        f.HEADER.pack_into(
            out,
            0,
            f.MAGIC,
            f.VERSION_MAJOR,
            f.minor_for(manifest),
            0,
            image_size,
            0,
            count,
            table_offset,
            strings_offset,
            manifest_offset,
            len(manifest_bytes),
            len(strings),
        )
        crc = f.image_crc32(memoryview(out))
        out[f.CHECKSUM_OFFSET : f.CHECKSUM_OFFSET + 4] = crc.to_bytes(4, "little")
        return bytes(out)
