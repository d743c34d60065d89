"""The manifest's JSON rules: what the reader refuses and the writer will not write."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modelshelf.errors import ManifestError
from modelshelf.image import MAX_MANIFEST_DEPTH, Image, ImageBuilder
from tests.adversarial import _raw

BASE = {"model": {"kind": "tensors"}, "metadata": {"name": "m"}}


def _open(text: bytes) -> Image:
    return Image.open(_raw.assemble([("a", np.zeros(2))], text))


def _nested(depth: int) -> Any:
    """A value whose innermost list sits ``depth`` levels below it (1: a flat list)."""
    node: Any = []
    for _ in range(depth - 1):
        node = [node]
    return node


def test_canonical_manifest_round_trips() -> None:
    manifest = {
        "model": {"kind": "tensors", "params": {"a": [1, 2.5, True, None, "é"]}},
        "input": {"type": "none"},
        "metadata": {"name": "ünïcode ☃", "extra": {"k": "v"}},
    }
    image = _open(_raw.manifest_bytes(manifest))
    assert image.manifest == manifest


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (b"", "not valid JSON"),
        (b"\xff{}", "UTF-8"),
        (b"[]", "JSON object"),
        (b"null", "JSON object"),
        (b'{"model":{"kind":"t"},"metadata":{}', "not valid JSON"),
        (b'{"model":{"kind":"t"},"metadata":{}} x', "not valid JSON"),
        (b'{"model":{"kind":"t"},"metadata":{},"x":NaN}', "NaN"),
        (b'{"model":{"kind":"t"},"metadata":{},"x":Infinity}', "Infinity"),
        (b'{"model":{"kind":"t"},"metadata":{},"x":-1e400}', "overflows"),
        (b'{"model":{"kind":"t"},"metadata":{},"x":' + b"1" * 5000 + b"}", "not valid JSON"),
        (b'{"model":{"kind":"t"},"metadata":{},"x":"\\udc80"}', "not valid Unicode"),
        (b'{"model":{"kind":"t"},"metadata":{"\\ud800":1}}', "not valid Unicode"),
        (b'{"model":{"kind":"t"},"metadata":{},"model":{"kind":"u"}}', "twice"),
        (b'{"model":{"kind":"t","kind":"t"},"metadata":{}}', "twice"),
        (b'{"metadata":{}}', "'model'"),
        (b'{"model":[],"metadata":{}}', "'model'"),
        (b'{"model":{},"metadata":{}}', "'kind'"),
        (b'{"model":{"kind":null},"metadata":{}}', "'kind'"),
        (b'{"model":{"kind":"t"}}', "'metadata'"),
        (b'{"model":{"kind":"t"},"metadata":"m"}', "'metadata'"),
        (b'{"model":{"kind":"t"},"metadata":{},"input":[]}', "'input'"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (
            b'{"model":{"kind":"t"},"metadata":{"x":' + b"[" * 500 + b"]" * 500 + b"}}",
            "deeper",
        ),
    ],
)
def test_reader_rejects(text: bytes, match: str) -> None:
    with pytest.raises(ManifestError, match=match):
        _open(text)


def test_depth_limit_is_exact() -> None:
    # the top-level object is depth 1, metadata 2, its list value 3...
    ok = {**BASE, "metadata": {"x": _nested(MAX_MANIFEST_DEPTH - 2)}}
    too_deep = {**BASE, "metadata": {"x": _nested(MAX_MANIFEST_DEPTH - 1)}}
    assert _open(_raw.manifest_bytes(ok)).manifest == ok
    with pytest.raises(ManifestError, match="deeper than 64"):
        _open(_raw.manifest_bytes(too_deep))
    builder = ImageBuilder()
    builder.build(ok)
    with pytest.raises(ManifestError, match="deeper"):
        builder.build(too_deep)


@pytest.mark.parametrize(
    "manifest",
    [
        {**BASE, "x": float("inf")},
        {**BASE, "x": float("nan")},
        {**BASE, "x": "\ud800"},
        {**BASE, "x": {1: "non-string key"}},
        {**BASE, "x": object()},
        {"model": {"kind": 3}, "metadata": {}},
        [],
    ],
)
def test_writer_refuses_what_readers_reject(manifest: Any) -> None:
    with pytest.raises(ManifestError):
        ImageBuilder().build(manifest)


def test_manifest_size_limit_is_enforced_by_the_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelshelf.image import _format

    monkeypatch.setattr(_format, "MAX_MANIFEST_SIZE", 100)
    with pytest.raises(ManifestError, match="limit is 100"):
        ImageBuilder().build({**BASE, "metadata": {"name": "x" * 100}})


def test_objects_are_dicts_or_any_mapping() -> None:
    """Decoded manifests hold dicts (checked without the Mapping ABC); the writer's check also
    takes any mapping for the top level and its objects, and nothing else."""
    from types import MappingProxyType

    from modelshelf.image._manifest import check_manifest, decode_manifest

    proxy = MappingProxyType
    given = proxy({"model": proxy({"kind": "tensors"}), "metadata": proxy({}), "input": {}})
    check_manifest(given)
    assert decode_manifest(b'{"model":{"kind":"t"},"metadata":{}}')["model"] == {"kind": "t"}
    for bad, match in (
        ([], "must be a JSON object"),
        ({"model": ["tensors"], "metadata": {}}, "'model' must be"),
        ({"model": {"kind": "tensors"}, "metadata": "m"}, "'metadata' must be"),
        ({"model": {"kind": "tensors"}, "metadata": {}, "input": 3}, "'input' must be"),
    ):
        with pytest.raises(ManifestError, match=match):
            check_manifest(bad)
