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


def store_refusal(exc: BaseException) -> str:
    """What a client is told of a store failure: the store's own message names buckets, paths
    and endpoints (operators read it in the log), so clients get what it means."""
    from modelshelf.errors import ImageMissing, MalformedRef

    if isinstance(exc, MalformedRef):
        return (
            "the store holds a malformed ref for this model: retrying will not help; its "
            "publisher or an operator must publish it again or remove the version (the "
            "daemon's log has which)"
        )
    if isinstance(exc, ImageMissing):
        return (
            "the store's ref for this model names an image the store does not hold: retrying "
            "will not help; its publisher must publish it again, or an operator remove the "
            "version (the daemon's log has which)"
        )
    return "the object store is unavailable and the image is not on this node; retry later"
