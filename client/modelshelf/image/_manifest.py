"""The manifest's JSON rules, shared by the writer (never write what no reader accepts) and the
reader (never hand a caller JSON that a stricter parser elsewhere would read differently).

Beyond RFC 8259, a manifest MUST NOT hold NaN, Infinity, numbers that overflow a double,
duplicate object keys, lone surrogates, or nesting deeper than ``MAX_MANIFEST_DEPTH``; its top
level is an object whose ``model`` is an object with a string ``kind``, whose ``metadata`` is an
object and whose optional ``input`` is an object.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
from collections.abc import Mapping
from typing import Any

from ..errors import ManifestError
from . import _format as f


def encode_manifest(manifest: Mapping[str, Any]) -> bytes:
    """Canonical bytes of ``manifest`` (sorted keys, no spaces), or ManifestError."""
    check_manifest(manifest)
    try:
        text = json.dumps(
            manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"manifest cannot be written as JSON: {exc}") from exc
    return text.encode("utf-8")


def decode_manifest(raw: bytes) -> dict[str, Any]:
    """Parse and check a manifest read from an image; every fault is a ManifestError."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"manifest is not valid UTF-8: {exc}") from exc
    try:
        manifest = _DECODER.decode(text)
    except ManifestError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, int digit limit, nesting
        raise ManifestError(f"manifest is not valid JSON: {exc}") from exc
    _check_top(manifest)
    # The walk over every value is needed only if the text could nest too deep (each level
    # needs a bracket) or hold an escaped surrogate; both are C-speed scans of the text.
    if text.count("{") + text.count("[") > f.MAX_MANIFEST_DEPTH or _SURROGATE.search(text):
        _check_tree(manifest)
    return manifest


_SURROGATE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def check_manifest(manifest: Any) -> None:
    """Check the manifest's top-level shape, its depth and its strings."""
    _check_top(manifest)
    _check_tree(manifest)


def _is_object(value: Any) -> bool:
    # a decoded manifest holds dicts: the Mapping ABC's check (cold in a fresh process) only
    # for what the writer was given
    return isinstance(value, (dict, Mapping))  # dict first: no ABC check for it


def _check_top(manifest: Any) -> None:
    if not _is_object(manifest):
        raise ManifestError(f"manifest must be a JSON object, found {type(manifest).__name__}")
    model = manifest.get("model")
    if not _is_object(model):
        raise ManifestError("manifest field 'model' must be a JSON object")
    if not isinstance(model.get("kind"), str):
        raise ManifestError(f"manifest model 'kind' must be a string, found {model.get('kind')!r}")
    if not _is_object(manifest.get("metadata")):
        raise ManifestError("manifest field 'metadata' must be a JSON object")
    if not _is_object(manifest.get("input", {})):
        raise ManifestError("manifest field 'input' must be a JSON object when present")


def _check_tree(root: Any) -> None:
    # Iterative, so that checking depth cannot itself exhaust the stack.
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Mapping | list | tuple):
            if depth > f.MAX_MANIFEST_DEPTH:
                raise ManifestError(
                    f"manifest nests objects and arrays deeper than {f.MAX_MANIFEST_DEPTH} levels"
                )
            if isinstance(node, Mapping):
                for key, value in node.items():
                    if not isinstance(key, str):
                        raise ManifestError(f"manifest object key {key!r} is not a string")
                    _check_string(key)
                    stack.append((value, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, str):
            _check_string(node)
        elif isinstance(node, float) and not math.isfinite(node):
            raise ManifestError(f"manifest holds the non-finite number {node}")


def _check_string(s: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate escaped as \\udXXX
        raise ManifestError(f"manifest string {s[:40]!r} is not valid Unicode") from exc


def _reject_constant(name: str) -> Any:
    raise ManifestError(f"manifest holds {name}, which is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ManifestError(f"manifest number {text[:40]} overflows a double")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ManifestError(f"manifest object has the key {key!r} twice")
            seen.add(key)
    return out


# Built once: json.loads(text, **hooks) would build a decoder and its scanner on every call.
_DECODER = json.JSONDecoder(
    parse_constant=_reject_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys
)


def source_date_epoch() -> _dt.datetime | None:
    """``$SOURCE_DATE_EPOCH`` as a time, None if unset; ValueError if malformed (the
    convention: an error, never ignored). The command line checks it before unpickling."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is None:
        return None
    if not (epoch.isascii() and epoch.isdigit()):
        raise ValueError(
            f"SOURCE_DATE_EPOCH must be whole seconds since 1970-01-01 (digits), got {epoch!r}"
        )
    try:
        return _dt.datetime.fromtimestamp(int(epoch), _dt.UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ValueError(f"SOURCE_DATE_EPOCH {epoch} is out of range: {exc}") from None
