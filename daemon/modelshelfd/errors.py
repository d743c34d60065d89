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

import errno

from modelshelf.errors import ShelfBusy, ShelfError

OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})


class Busy(ShelfBusy):
    """A bounded resource is exhausted (answered as ``busy``)."""


def out_of_descriptors(exc: OSError) -> Busy:
    """The refusal of a request that met EMFILE or ENFILE: a busy node, nothing wrong with the
    image, the store or the request."""
    return Busy(
        f"the daemon is out of file descriptors ({exc.strerror}); retry later; operators: "
        "raise its LimitNOFILE (ulimit -n) or lower max_connections"
    )


class BadRequest(ShelfError):
    """An unknown op, or a missing or ill-typed field (answered as ``bad_request``)."""

    code = "bad_request"
