"""modelshelf: compile trained models once into position-independent images, then load them
anywhere (bytes, files, shared memory) in microseconds and predict with numpy.

    image = modelshelf.compile(fitted_estimator)   # publisher side, needs the "convert" extra
    model = modelshelf.load(image)                  # anywhere: numpy only, zero-copy
    model.predict_proba(X)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ._kernels import get_threads, set_threads
from ._version import __version__
from .aio import AsyncClient
from .client import Client
from .errors import (
    AccessDenied,
    ArrayBoundsError,
    ArrayTableError,
    BadMagicError,
    ChecksumError,
    DaemonUnavailable,
    FeatureCountError,
    FeatureNamesError,
    HeaderError,
    ImageError,
    InputError,
    InputShapeError,
    InputTypeError,
    InvalidModelName,
    ManifestError,
    MissingDependencyError,
    ModelNotFound,
    ModelshelfError,
    NonFiniteInputError,
    ProtocolError,
    ShelfBusy,
    ShelfError,
    StoreError,
    TruncatedImageError,
    UnknownCategoryError,
    UnsupportedModelError,
    UnsupportedVersionError,
    UntrustedDaemon,
)
from .image import Image
from .model import Model, load

__all__ = [
    "AccessDenied",
    "ArrayBoundsError",
    "ArrayTableError",
    "AsyncClient",
    "BadMagicError",
    "ChecksumError",
    "Client",
    "DaemonUnavailable",
    "FeatureCountError",
    "FeatureNamesError",
    "HeaderError",
    "Image",
    "ImageError",
    "InputError",
    "InputShapeError",
    "InputTypeError",
    "InvalidModelName",
    "ManifestError",
    "MissingDependencyError",
    "Model",
    "ModelNotFound",
    "ModelshelfError",
    "NonFiniteInputError",
    "ProtocolError",
    "ShelfBusy",
    "ShelfError",
    "StoreError",
    "TruncatedImageError",
    "UnknownCategoryError",
    "UnsupportedModelError",
    "UnsupportedVersionError",
    "UntrustedDaemon",
    "__version__",
    "compile",
    "compile_tensors",
    "get_threads",
    "load",
    "set_threads",
]


def _convert() -> Any:
    try:
        from . import convert
    except ImportError as exc:
        raise MissingDependencyError(
            f"compiling needs the 'convert' extra (pip install 'modelshelf[convert]'): {exc}"
        ) from exc
    return convert


def compile(estimator: Any, *, metadata: Mapping[str, str] | None = None) -> bytes:
    """Compile a fitted scikit-learn estimator into image bytes (needs the ``convert`` extra).

    ``metadata``: free-form string pairs stored in the image; the key ``name`` names the model.
    """
    return _convert().compile(estimator, metadata=metadata)


def compile_tensors(
    tensors: Mapping[str, Any] | str | os.PathLike[str],
    *,
    metadata: Mapping[str, str] | None = None,
) -> bytes:
    """Compile a mapping of name -> array, or a .safetensors file, into a tensor-bundle image."""
    return _convert().compile_tensors(tensors, metadata=metadata)
