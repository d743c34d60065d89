"""Sizes as people write them, for the client's environment and the daemon's configuration
alike: ``4096``, ``"512M"``, ``"8G"``, ``"1.5GiB"`` (powers of 1024)."""

from __future__ import annotations

import re

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", re.IGNORECASE)
FORM = "a size like 4096, '512M', '8G' or '1.5G'"


def parse_size(value: object) -> int:
    """Bytes; ValueError for anything else, a fraction of a byte ("1.5") included (an error,
    not a rounding), and for a negative number."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and (m := _SIZE.fullmatch(value)):
        exact = float(m[1]) * 1024 ** "_kmgt".index(m[2].lower() or "_")
        if exact != int(exact):
            raise ValueError(f"expected a whole number of bytes, got {value!r}")
        size = int(exact)
    else:
        raise ValueError(f"expected {FORM}, got {value!r}")
    if size < 0:
        raise ValueError(f"size must be non-negative, got {value!r}")
    return size
