"""Every exception modelshelf raises.

    ModelshelfError                 root of everything raised on purpose
    ├── ImageError (ValueError)     an image's bytes are not a valid image
    │   ├── TruncatedImageError     shorter than its header or its declared size says
    │   ├── BadMagicError           does not start with the image magic
    │   ├── UnsupportedVersionError format major version (or a required flag) this reader lacks
    │   ├── HeaderError             a header field is out of range or inconsistent
    │   ├── ChecksumError           the CRC-32 over the image does not match the header
    │   ├── ArrayTableError         an array entry is malformed (dtype, shape, name, size)
    │   ├── ArrayBoundsError        an array lies outside the data area, misaligned or overlapping
    │   └── ManifestError           the manifest is not valid JSON of the documented shape
    ├── InputError (ValueError)     the data given to predict/transform is not acceptable
    │   ├── InputShapeError         wrong number of dimensions, or no samples
    │   ├── FeatureCountError       wrong number of features (columns)
    │   ├── FeatureNamesError       the columns' names differ from those the model was fitted with
    │   ├── InputTypeError          not numeric (strings, objects, complex numbers), or not text
    │   ├── UnknownCategoryError    a categorical value the model never saw, or out of range
    │   └── NonFiniteInputError     NaN or infinity where the model rejects them
    ├── ShelfError                  a request to the node's shelf (modelshelfd) failed
    │   ├── ModelNotFound (LookupError)     no such model, version, or image in the store
    │   ├── AccessDenied (PermissionError)  the caller's uid/gid may not use that namespace
    │   ├── DaemonUnavailable (ConnectionError) no daemon answers on the socket
    │   ├── InvalidModelName (ValueError)   a model reference outside the name grammar
    │   ├── ProtocolError           a malformed, oversized or unexpected message on the socket
    │   ├── ShelfBusy               every tier that could serve is full of leases (or a limit hit)
    │   └── StoreError              the object store failed or is unreachable
    ├── UnsupportedModelError (TypeError)   compile() met an estimator or option it cannot compile
    └── MissingDependencyError (ImportError) an optional extra is needed and not installed

Messages say what was expected and what was found, so that the user can act on them.
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "ArrayBoundsError",
    "ArrayTableError",
    "BadMagicError",
    "ChecksumError",
    "DaemonUnavailable",
    "FeatureCountError",
    "FeatureNamesError",
    "HeaderError",
    "ImageError",
    "InputError",
    "InputShapeError",
    "InputTypeError",
    "InvalidModelName",
    "ManifestError",
    "MissingDependencyError",
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
]


class ModelshelfError(Exception):
    """Root of every exception modelshelf raises on purpose."""


class ImageError(ModelshelfError, ValueError):
    """The bytes given as an image are not a valid modelshelf image."""


class TruncatedImageError(ImageError):
    """The image is shorter than its header, or than the size its header declares."""


class BadMagicError(ImageError):
    """The buffer does not start with the modelshelf image magic."""


class UnsupportedVersionError(ImageError):
    """The image's format major version, or a flag it requires, is unknown to this reader."""


class HeaderError(ImageError):
    """A header field is out of range or inconsistent with the others."""


class ChecksumError(ImageError):
    """The CRC-32 computed over the image differs from the one its header records."""


class ArrayTableError(ImageError):
    """An entry of the array table is malformed."""


class ArrayBoundsError(ImageError):
    """An array lies outside the data area, is misaligned, or overlaps another."""


class ManifestError(ImageError):
    """The manifest is not valid UTF-8 JSON of the documented shape."""


class InputError(ModelshelfError, ValueError):
    """The data passed to a model method is not acceptable to that model."""


class InputShapeError(InputError):
    """The input has the wrong number of dimensions, or no samples."""


class FeatureCountError(InputError):
    """The input has a different number of features than the model was fitted with."""


class FeatureNamesError(InputError):
    """The input's column names differ from the names the model was fitted with."""


class InputTypeError(InputError):
    """The input is not numeric."""


class UnknownCategoryError(InputError):
    """A categorical feature holds a value the model never saw (or one out of its range)."""


class NonFiniteInputError(InputError):
    """The input holds NaN or infinity and the model does not accept them."""


class ShelfError(ModelshelfError):
    """A request to the node's shelf (the modelshelfd daemon) failed."""


class ModelNotFound(ShelfError, LookupError):
    """No model, version or image by that name exists in the store."""


class AccessDenied(ShelfError, PermissionError):
    """The caller's uid/gid is not allowed to use the model's namespace."""


class DaemonUnavailable(ShelfError, ConnectionError):
    """No daemon answers on the socket (not running, wrong path, or restarting)."""


class InvalidModelName(ShelfError, ValueError):
    """A model reference does not follow the grammar ``namespace/name[@version]``."""


class ProtocolError(ShelfError):
    """A message on a shelf socket is malformed, oversized, or not what the protocol expects."""


class ShelfBusy(ShelfError):
    """The daemon cannot serve now: shared memory and local disk are full of images other
    clients lease, or a connection limit is reached. Retry later; the message says what is
    full and how to make room."""


class StoreError(ShelfError):
    """The object store failed or could not be reached."""


class UnsupportedModelError(ModelshelfError, TypeError):
    """compile() was given an estimator, or an option of one, that it cannot compile."""


class MissingDependencyError(ModelshelfError, ImportError):
    """An optional dependency (an extra of the modelshelf distribution) is not installed."""
