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
    │   ├── UntrustedDaemon (PermissionError)   the socket's listener is not the expected uid
    │   ├── InvalidModelName (ValueError)   a model reference outside the name grammar
    │   ├── ProtocolError           a malformed, oversized or unexpected message on the socket
    │   ├── ShelfBusy               every tier that could serve is full of leases (or a limit hit)
    │   └── StoreError              the object store failed or is unreachable
    ├── UnsupportedModelError (TypeError)   compile() met an estimator or option it cannot compile
    └── MissingDependencyError (ImportError) an optional extra is needed and not installed

Messages say what was expected and what was found, so that the user can act on them. A
refusal to compile (UnsupportedModelError) names the class or option as the user wrote it and
the way out ("OneHotEncoder: handle_unknown='x' cannot be compiled; use ..."), in a few hundred
characters at most: a list of alternatives is pointed to, never pasted in.

Every class carries ``code``, its error code on the daemon's socket (docs/protocol.md), and
``exit_status``, the ``modelshelf`` command's exit status when it ends with that error:

    code                exit  class
    internal             1    ModelshelfError, ShelfError (and anything not listed)
    image_error          8    ImageError
    not_found            3    ModelNotFound
    access_denied        4    AccessDenied
    busy                 5    ShelfBusy
    unavailable          6    DaemonUnavailable (the client's own: no daemon answered)
    untrusted_daemon     9    UntrustedDaemon (the client's own: an impostor may listen)
    store_unavailable    7    StoreError
    invalid_name         2    InvalidModelName
    bad_request          1    ProtocolError

``for_code(code)`` is the class a client raises for a code it receives.
"""

from __future__ import annotations

from typing import ClassVar

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
    "UntrustedDaemon",
    "for_code",
]


class ModelshelfError(Exception):
    """Root of every exception modelshelf raises on purpose."""

    code: ClassVar[str] = "internal"  # on the daemon's socket (docs/protocol.md)
    exit_status: ClassVar[int] = 1  # of the modelshelf command


class ImageError(ModelshelfError, ValueError):
    """The bytes given as an image are not a valid modelshelf image."""

    code = "image_error"
    exit_status = 8


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

    code = "not_found"
    exit_status = 3


class AccessDenied(ShelfError, PermissionError):
    """The caller's uid/gid is not allowed to use the model's namespace."""

    code = "access_denied"
    exit_status = 4


class DaemonUnavailable(ShelfError, ConnectionError):
    """No daemon answers on the socket (not running, wrong path, or restarting)."""

    code = "unavailable"
    exit_status = 6


class UntrustedDaemon(ShelfError, PermissionError):
    """The process listening on the daemon's socket runs as a uid the client does not trust
    (``modelshelf.trust``): another user may have planted the socket. Nothing was sent to it."""

    code = "untrusted_daemon"
    exit_status = 9


class InvalidModelName(ShelfError, ValueError):
    """A model reference does not follow the grammar ``namespace/name[@version]``."""

    code = "invalid_name"
    exit_status = 2


class ProtocolError(ShelfError):
    """A message on a shelf socket is malformed, oversized, or not what the protocol expects."""

    code = "bad_request"
    exit_status = 1


class ShelfBusy(ShelfError):
    """The daemon cannot serve now: shared memory and local disk are full of images other
    clients lease, or a connection limit is reached. Retry later; the message says what is
    full and how to make room."""

    code = "busy"
    exit_status = 5


class StoreError(ShelfError):
    """The object store failed or could not be reached."""

    code = "store_unavailable"
    exit_status = 7


class InvalidStoreURL(StoreError, ValueError):
    """The store URL cannot name a store (a typo, a relative file path, no bucket), or a file
    store's directory is not there: bad input, never an outage to retry."""

    code = "bad_input"
    exit_status = 2


class MalformedRef(StoreError):
    """The store answered with a ref modelshelf cannot read: its publisher or an operator must
    fix or remove it (retrying does not help)."""


class ImageMissing(StoreError):
    """A ref in the store names an image the store does not hold (deleted or lost there): the
    model must be published again or the version removed (retrying does not help)."""


class UnsupportedModelError(ModelshelfError, TypeError):
    """compile() was given an estimator, or an option of one, that it cannot compile."""

    code = "unsupported_model"  # the command line's --json errors; never on the socket


class MissingDependencyError(ModelshelfError, ImportError):
    """An optional dependency (an extra of the modelshelf distribution) is not installed."""

    code = "missing_dependency"


def for_code(code: str) -> type[ModelshelfError]:
    """The most general class whose ``code`` is ``code`` (ShelfError for a code this version
    does not know)."""
    queue: list[type[ModelshelfError]] = [ModelshelfError]
    while queue:
        cls = queue.pop(0)
        if "code" in vars(cls) and cls.code == code:
            return cls
        queue.extend(cls.__subclasses__())
    return ShelfError
