"""The daemon's own errors, answered to clients with their wire codes (docs/protocol.md).

    ShelfError (modelshelf.errors)
    ├── ShelfBusy
    │   └── Busy        a bounded resource is exhausted             -> "busy"
    └── BadRequest      an unknown op, a missing or ill-typed field -> "bad_request"

Every error a handler raises answers with its class's ``code`` (``modelshelf.errors``): these
and the client library's own (ModelNotFound, AccessDenied, StoreError, ImageError, ...) alike;
anything else is a bug, answered "internal" and logged with its traceback.
"""

from __future__ import annotations

from modelshelf.errors import ShelfBusy, ShelfError


class Busy(ShelfBusy):
    """A bounded resource is exhausted (answered as ``busy``)."""


class BadRequest(ShelfError):
    """An unknown op, or a missing or ill-typed field (answered as ``bad_request``)."""

    code = "bad_request"
