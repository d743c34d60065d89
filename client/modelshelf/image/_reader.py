"""Image reader and validator: read-only numpy views over any buffer, never a copy.

Opening validates the header, the array table and the manifest (work proportional to the number
of arrays, never to the image's size). ``verify()`` adds the checksum, which reads every byte.
The manifest's JSON rules live in ``_manifest``; docs/format.md lists every rule and its error.
The compiled extension, where built, reads the header and array table of an image it finds
valid (``_kernels.image_arrays``, image.c: the same views, a fresh process's first load ~70 us
sooner); any other image is read here, which says what is wrong.
"""

from __future__ import annotations

import errno
import mmap
import os
import stat
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from .. import _kernels
from ..errors import (
    ArrayBoundsError,
    ArrayTableError,
    BadMagicError,
    ChecksumError,
    HeaderError,
    ImageError,
    TruncatedImageError,
    UnsupportedVersionError,
)
from . import _format as f
from ._manifest import decode_manifest

Source = bytes | bytearray | memoryview | mmap.mmap | str | os.PathLike[str]


class Image:
    """A validated image: its manifest and its arrays as read-only views over one buffer.

    The image keeps the object that owns its memory (bytes, mmap, ...) alive as long as any view
    is reachable through it. A writable buffer is not copied either: the views cannot write
    into it, but whoever owns it can, and the arrays change with it.
    """

    __slots__ = (
        "_manifest",
        "_manifest_span",
        "_owner",
        "arrays",
        "buffer",
        "checksum",
        "size",
        "version",
    )

    def __reduce__(self) -> Any:
        raise TypeError(
            "a modelshelf Image is a view of mapped memory: it cannot be pickled or copied; "
            "send its model reference ('ns/name@version') or file path and map it again there"
        )

    def __init__(self, buffer: Any, *, owner: Any = None) -> None:
        try:
            view = memoryview(buffer)
        except TypeError:
            raise TypeError(
                "Image() expects the bytes of an image (bytes, a read-only mmap, a memoryview "
                f"or a numpy array of them), got {type(buffer).__name__}; "
                "Image.open(path) reads a file"
            ) from None
        if _writable(view) or not view.c_contiguous:
            # The kernels check an image's indices once (at open, or at a model's first calls)
            # and trust them after; memory the caller can still write could change under them.
            # A writable buffer (bytearray, a writable memoryview or mmap) is copied once;
            # bytes, read-only mappings and the daemon's sealed segments are used in place.
            # So is a strided view (its bytes in order: the arrays' views need one run).
            buffer = owner = view.tobytes()
            view = memoryview(buffer)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        view = view.toreadonly()
        self._owner = owner if owner is not None else buffer
        self.buffer = view
        compiled = _kernels.image_arrays()
        read = None if compiled is None else compiled(view)
        if read is None:  # no extension, or an image it does not take: this reader says why
            header = _parse_header(view)
            arrays = _parse_arrays(view, header)
            read = (
                header["image_size"], header["major"], header["minor"], header["checksum"],
                header["manifest_offset"], header["manifest_length"], arrays,
            )  # fmt: skip
        self.size, major, minor, self.checksum, start, length, arrays = read
        self.version: tuple[int, int] = (major, minor)
        self.arrays: Mapping[str, np.ndarray] = MappingProxyType(arrays)
        self._manifest_span = (start, length)
        self._manifest: dict[str, Any] | None = decode_manifest(bytes(view[start : start + length]))

    @property
    def manifest(self) -> dict[str, Any]:
        """The parsed manifest (validated at open; re-read from the image after ``compact``)."""
        if self._manifest is None:
            start, length = self._manifest_span
            self._manifest = decode_manifest(bytes(self.buffer[start : start + length]))
        return self._manifest

    def compact(self) -> None:
        """Drop the parsed manifest (a few KB of Python objects per model); it is read again
        from the image's own bytes if asked for. A process holding thousands of models keeps
        little more than the shared image bytes."""
        self._manifest = None

    @classmethod
    def open(cls, source: Source, *, verify: bool = False) -> Image:
        """Open ``source``: a bytes-like object, an mmap, or a path (mapped read-only, not
        copied: while the image is in use the file must not be truncated, which would kill the
        process with SIGBUS at its next read, nor rewritten in place, which would change the
        model under it; replace a file by writing a new one and renaming it over the old)."""
        if isinstance(source, str | os.PathLike):
            image = cls._open_path(os.fspath(source))
        else:
            image = cls(source)
        if verify:
            image.verify()
        return image

    @classmethod
    def _open_path(cls, path: str) -> Image:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(
                    errno.EISDIR, "an image is a file; this is a directory", path
                )
            if not stat.S_ISREG(st.st_mode):
                raise ImageError(
                    f"{path}: not a regular file (a FIFO, socket or device); an image is a file"
                )
            size = st.st_size
            if size < f.HEADER_SIZE:
                raise TruncatedImageError(
                    f"{path}: {size} bytes is shorter than the {f.HEADER_SIZE}-byte image header"
                )
            mapped = map_readonly(fd, size)
        finally:
            os.close(fd)
        return cls(mapped, owner=mapped)

    def verify(self) -> None:
        """Check the CRC-32 over every byte; raise ChecksumError on a mismatch."""
        actual = f.image_crc32(self.buffer)
        if actual != self.checksum:
            raise ChecksumError(
                f"image checksum mismatch: header records {self.checksum:#010x}, "
                f"the bytes hash to {actual:#010x}; the image is corrupted"
            )

    def __iter__(self) -> Iterator[str]:
        return iter(self.arrays)


# Small images are prefaulted in one call: cheaper than a fault per page on first use, and
# still bounded work. Larger ones are mapped lazily, so that opening stays O(number of arrays).
PREFAULT_LIMIT = 64 << 10


def _writable(view: memoryview) -> bool:
    """Whether the memory behind ``view`` can still be written by its owner: the view itself,
    the object it exports, or what that object is a view of (a read-only view of a bytearray,
    or a read-only numpy view of one, is writable memory all the same)."""
    if not view.readonly:
        return True
    base: Any = view.obj
    while base is not None and base is not view:
        try:
            if not memoryview(base).readonly:
                return True
        except TypeError:  # not a buffer itself
            return False
        base = base.base if isinstance(base, np.ndarray) else None  # numpy collapses chains
    return False


def map_readonly(fd: int, size: int) -> mmap.mmap:
    """Map ``size`` bytes of ``fd`` shared and read-only (PROT_READ): no copy, no write."""
    flags = mmap.MAP_SHARED
    if size <= PREFAULT_LIMIT and hasattr(mmap, "MAP_POPULATE"):
        flags |= mmap.MAP_POPULATE
    return mmap.mmap(fd, size, flags=flags, prot=mmap.PROT_READ)


def _parse_header(view: memoryview) -> dict[str, int]:
    n = len(view)
    if n < f.HEADER_SIZE:
        raise TruncatedImageError(
            f"image is {n} bytes, shorter than the {f.HEADER_SIZE}-byte header"
        )
    (
        magic,
        major,
        minor,
        flags,
        image_size,
        checksum,
        count,
        table_offset,
        strings_offset,
        manifest_offset,
        manifest_length,
        strings_length,
    ) = f.HEADER.unpack_from(view, 0)
    if magic != f.MAGIC:
        raise BadMagicError(f"expected magic {f.MAGIC!r}, found {bytes(magic)!r}: not an image")
    if major != f.VERSION_MAJOR:
        raise UnsupportedVersionError(
            f"image format version {major}.{minor}; this reader reads version "
            f"{f.VERSION_MAJOR}.x (upgrade modelshelf to read newer images)"
        )
    if flags != 0:
        raise UnsupportedVersionError(
            f"image sets flags {flags:#x}, which format version {f.VERSION_MAJOR} does not define"
        )
    if image_size > f.MAX_IMAGE_SIZE:
        raise HeaderError(f"declared image size {image_size} exceeds the limit {f.MAX_IMAGE_SIZE}")
    if image_size > n:
        raise TruncatedImageError(f"header declares {image_size} bytes, only {n} are present")
    if image_size < n:
        raise HeaderError(f"header declares {image_size} bytes, the buffer holds {n}")
    if count > f.MAX_ARRAYS:
        raise HeaderError(f"array count {count} exceeds the limit {f.MAX_ARRAYS}")
    if table_offset != f.HEADER_SIZE:
        raise HeaderError(f"array table must start at {f.HEADER_SIZE}, header says {table_offset}")
    if strings_offset != table_offset + count * f.ENTRY_SIZE:
        raise HeaderError(
            f"strings must follow the {count}-entry table at "
            f"{table_offset + count * f.ENTRY_SIZE}, header says {strings_offset}"
        )
    if strings_length > f.MAX_STRINGS_SIZE:
        raise HeaderError(f"strings length {strings_length} exceeds {f.MAX_STRINGS_SIZE}")
    if manifest_offset != strings_offset + strings_length:
        raise HeaderError(
            f"manifest must follow the strings at {strings_offset + strings_length}, "
            f"header says {manifest_offset}"
        )
    if manifest_length > f.MAX_MANIFEST_SIZE:
        raise HeaderError(
            f"manifest length {manifest_length} exceeds the limit {f.MAX_MANIFEST_SIZE}"
        )
    if manifest_offset + manifest_length > image_size:
        # The buffer holds image_size bytes (checked above): the header contradicts itself.
        raise HeaderError(
            f"array table, names and manifest end at {manifest_offset + manifest_length}, "
            f"past the declared image size {image_size}"
        )
    return {
        "major": major,
        "minor": minor,
        "image_size": image_size,
        "checksum": checksum,
        "count": count,
        "strings_offset": strings_offset,
        "strings_length": strings_length,
        "manifest_offset": manifest_offset,
        "manifest_length": manifest_length,
    }


def _parse_arrays(view: memoryview, h: dict[str, int]) -> dict[str, np.ndarray]:
    count = h["count"]
    strings_offset = h["strings_offset"]
    strings = bytes(view[strings_offset : strings_offset + h["strings_length"]])
    image_size = h["image_size"]
    data_start = f.align(h["manifest_offset"] + h["manifest_length"])
    arrays: dict[str, np.ndarray] = {}
    previous_end = data_start
    # struct yields Python ints (which cannot wrap around) for a whole entry in one C call.
    columns = f.ENTRY.iter_unpack(view[f.HEADER_SIZE : f.HEADER_SIZE + count * f.ENTRY_SIZE])
    for i, (offset, length, name_offset, name_length, code, ndim, *shape, reserved) in enumerate(
        columns
    ):
        if reserved != 0:
            raise ArrayTableError(f"array entry {i}: reserved field is {reserved}, must be 0")
        if not 1 <= name_length <= f.MAX_NAME_LENGTH:
            raise ArrayTableError(
                f"array entry {i}: name length {name_length} outside 1..{f.MAX_NAME_LENGTH}"
            )
        if name_offset + name_length > len(strings):
            raise ArrayTableError(
                f"array entry {i}: name at {name_offset}+{name_length} is outside the "
                f"{len(strings)}-byte string area"
            )
        try:
            name = strings[name_offset : name_offset + name_length].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ArrayTableError(f"array entry {i}: name is not valid UTF-8") from exc
        if name in arrays:
            raise ArrayTableError(f"array entry {i}: name {name!r} appears twice")
        dtype = f.DTYPES.get(code)
        if dtype is None:
            raise ArrayTableError(f"array {name!r}: unknown dtype code {code}")
        if ndim > f.MAX_NDIM:
            raise ArrayTableError(f"array {name!r}: {ndim} dimensions, at most {f.MAX_NDIM}")
        dims = tuple(shape[:ndim])
        if any(shape[ndim:]):
            raise ArrayTableError(f"array {name!r}: shape entries past ndim={ndim} must be 0")
        items = 1
        for d in dims:
            if d > f.MAX_DIM:
                raise ArrayTableError(f"array {name!r}: dimension {d} exceeds {f.MAX_DIM}")
            items *= d
        if items * dtype.itemsize != length:
            raise ArrayTableError(
                f"array {name!r}: shape {dims} of {dtype} needs {items * dtype.itemsize} bytes, "
                f"entry declares {length}"
            )
        if offset % f.ALIGNMENT:
            raise ArrayBoundsError(f"array {name!r}: offset {offset} is not {f.ALIGNMENT}-aligned")
        if offset < previous_end:
            raise ArrayBoundsError(
                f"array {name!r}: offset {offset} overlaps the manifest or the previous array "
                f"(which ends at {previous_end})"
            )
        if length > image_size or offset > image_size - length:
            raise ArrayBoundsError(
                f"array {name!r}: bytes {offset}..{offset + length} lie past the image end "
                f"{image_size}"
            )
        previous_end = offset + length
        arr = np.frombuffer(view, dtype, items, offset)
        arr.shape = dims  # in place: one array object per array, not a view of a view
        arrays[name] = arr
    expected_end = previous_end if count else h["manifest_offset"] + h["manifest_length"]
    if image_size != expected_end:
        raise HeaderError(
            f"image size {image_size} differs from the end of its last section {expected_end}"
        )
    return arrays
