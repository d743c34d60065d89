"""The model name grammar, checked before a name reaches a path, a key or a segment name.

    reference := namespace "/" name [ "@" version ]
    namespace := part          name := part
    part      := [a-z0-9] ( [a-z0-9._-]{0,62} [a-z0-9] )?     (1..64 characters, no "..")
    version   := "latest" | [1-9][0-9]{0,17}

Lowercase only, so that names mean the same on case-insensitive stores; no "/" inside a part and
no "..", so that a name can never escape its prefix in a directory or a bucket.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import InvalidModelName

_PART = r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?"
_REF = re.compile(rf"(?P<ns>{_PART})/(?P<name>{_PART})(?:@(?P<version>latest|[1-9][0-9]{{0,17}}))?")
_PART_RE = re.compile(_PART)
MAX_REFERENCE_LENGTH = 64 + 1 + 64 + 1 + 18


class ModelRef(NamedTuple):
    """A parsed model reference: namespace, name and an optional version."""

    namespace: str
    name: str
    version: int | None  # None means latest

    @property
    def key(self) -> str:
        """``namespace/name`` without a version."""
        return f"{self.namespace}/{self.name}"

    def __str__(self) -> str:
        return self.key if self.version is None else f"{self.key}@{self.version}"


def parse_ref(text: object) -> ModelRef:
    """Parse ``namespace/name[@version]``; raise InvalidModelName with the grammar otherwise."""
    if not isinstance(text, str) or len(text) > MAX_REFERENCE_LENGTH:
        raise InvalidModelName(
            f"model reference must be a string of at most "
            f"{MAX_REFERENCE_LENGTH} characters, got {text!r:.80}"
        )
    match = _REF.fullmatch(text)
    if match is None or ".." in text:
        raise InvalidModelName(
            f"invalid model reference {text!r}: expected namespace/name[@version], each part "
            "1-64 of a-z 0-9 . _ - (starting and ending alphanumeric, no '..'), version a "
            "positive integer or 'latest'"
        )
    version = match["version"]
    return ModelRef(
        match["ns"], match["name"], None if version in (None, "latest") else int(version)
    )


def check_part(text: object, what: str = "namespace") -> str:
    """Validate one part (a namespace or a name) on its own."""
    if not isinstance(text, str) or _PART_RE.fullmatch(text) is None or ".." in text:
        raise InvalidModelName(
            f"invalid {what} {text!r:.80}: 1-64 of a-z 0-9 . _ - (starting and ending "
            "alphanumeric, no '..')"
        )
    return text
