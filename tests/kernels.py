"""Running tests through either kernel: the numpy runtime (the reference) and the compiled
extension (modelshelf/_kernels). ``using(kernel)`` switches the kernels of the models loaded
inside it; the ``kernel`` fixture (tests/conftest.py) runs a test under each.

Where the extension is not built the compiled runs skip, unless MODELSHELF_REQUIRE_KERNELS=1
(scripts/test.sh sets it): then they fail, so that a broken build cannot pass CI unnoticed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from modelshelf import _kernels

KERNELS = ("numpy", "compiled")
REQUIRE_ENV = "MODELSHELF_REQUIRE_KERNELS"


def require(kernel: str) -> None:
    """Skip (or fail, where the build is required) a compiled run without the extension."""
    if kernel != "compiled" or _kernels.BUILT is not None:
        return
    message = "the compiled kernels are not built (pip install -e . builds them)"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message}, and {REQUIRE_ENV}=1 requires them")
    pytest.skip(message)


@contextmanager
def using(kernel: str) -> Iterator[None]:
    """Models loaded inside use ``kernel``; the previous choice comes back after."""
    require(kernel)
    previous = _kernels.mode()
    _kernels.use(kernel)
    try:
        yield
    finally:
        _kernels.use(previous)


def same_bits(actual: object, expected: object) -> bool:
    """Equal to the last bit: same type, dtype, shape and bytes (floats: -0.0 is not 0.0);
    sparse matrices (text vectorizers' CSR): same type, shape and data, indices and indptr."""
    if hasattr(expected, "indptr"):
        return (
            type(actual) is type(expected)
            and getattr(actual, "shape", None) == getattr(expected, "shape", None)
            and all(
                same_bits(getattr(actual, part), getattr(expected, part))
                for part in ("data", "indices", "indptr")
            )
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(same_bits(a, e) for a, e in zip(actual, expected, strict=True))
        )
    a, e = np.asarray(actual), np.asarray(expected)
    if a.dtype != e.dtype or a.shape != e.shape:
        return False
    if a.dtype.kind in "fc":
        return a.tobytes() == e.tobytes()
    return bool(np.array_equal(a, e))
