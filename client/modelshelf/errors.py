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
    ├── UnsupportedModelError (TypeError)   compile() met an estimator or option it cannot compile
    └── MissingDependencyError (ImportError) an optional extra is needed and not installed

Messages say what was expected and what was found, so that the user can act on them.
"""

from __future__ import annotations

__all__ = [
    "ArrayBoundsError",
    "ArrayTableError",
    "BadMagicError",
    "ChecksumError",
    "FeatureCountError",
    "FeatureNamesError",
    "HeaderError",
    "ImageError",
    "InputError",
    "InputShapeError",
    "InputTypeError",
    "ManifestError",
    "MissingDependencyError",
    "ModelshelfError",
    "NonFiniteInputError",
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


class UnsupportedModelError(ModelshelfError, TypeError):
    """compile() was given an estimator, or an option of one, that it cannot compile."""


class MissingDependencyError(ModelshelfError, ImportError):
    """An optional dependency (an extra of the modelshelf distribution) is not installed."""
