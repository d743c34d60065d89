"""The daemon's own errors, answered to clients with their wire codes (docs/protocol.md).

    ShelfError (modelshelf.errors)
    ├── Busy            a bounded resource is exhausted             -> "busy" (ShelfBusy)
    └── BadRequest      an unknown op, a missing or ill-typed field -> "bad_request"

Errors raised by the client library's modules (ModelNotFound, AccessDenied, StoreError, ...)
reach the handlers as they are; ``handlers.CODES`` maps every class to its code.
"""

from __future__ import annotations

from modelshelf.errors import ShelfError


class Busy(ShelfError):
    """A bounded resource is exhausted (answered as ``busy``)."""


class BadRequest(ShelfError):
    """An unknown op, or a missing or ill-typed field (answered as ``bad_request``)."""
