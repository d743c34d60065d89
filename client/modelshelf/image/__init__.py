"""The image format: one contiguous, pointer-free blob of manifest and arrays.

``ImageBuilder`` writes images, ``Image`` opens and validates them; docs/format.md is the
byte-level specification.
"""

from __future__ import annotations

from ._format import (
    ALIGNMENT,
    HEADER_SIZE,
    MAGIC,
    MAX_ARRAYS,
    MAX_DIM,
    MAX_IMAGE_SIZE,
    MAX_MANIFEST_DEPTH,
    MAX_MANIFEST_SIZE,
    MAX_NAME_LENGTH,
    MAX_NDIM,
    MAX_STRINGS_SIZE,
    VERSION_MAJOR,
    VERSION_MINOR,
)
from ._reader import Image
from ._writer import ImageBuilder

__all__ = [
    "ALIGNMENT",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_ARRAYS",
    "MAX_DIM",
    "MAX_IMAGE_SIZE",
    "MAX_MANIFEST_DEPTH",
    "MAX_MANIFEST_SIZE",
    "MAX_NAME_LENGTH",
    "MAX_NDIM",
    "MAX_STRINGS_SIZE",
    "VERSION_MAJOR",
    "VERSION_MINOR",
    "Image",
    "ImageBuilder",
]
