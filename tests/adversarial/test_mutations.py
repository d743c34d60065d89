"""Mutated valid images never raise anything but ImageError.

Every example goes through ``Image.open``, ``Image.verify`` and ``modelshelf.load``; anything
else escaping (IndexError, KeyError, TypeError, OverflowError, a numpy error, a crash) fails
the test. Most mutations reseal the CRC-32 afterwards, so that the structural checks behind the
checksum are what is exercised, not just the checksum.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from modelshelf.errors import HeaderError, TruncatedImageError
from modelshelf.image import Image

from . import _raw
from ._fuzz import SCALE, SETTINGS, consume, mutated_manifest

BASES = {
    "model": _raw.base_image(),
    "tensors": _raw.tensors_image(),
    "no_arrays": _raw.assemble([], {"model": {"kind": "tensors"}, "metadata": {}}),
}
base_names = st.sampled_from(sorted(BASES))


@SETTINGS
@given(base_names, st.data())
def test_bit_flips(base: str, data: st.DataObject) -> None:
    image = BASES[base]
    bits = data.draw(
        st.lists(st.integers(0, len(image) * 8 - 1), min_size=1, max_size=8, unique=True)
    )
    out = bytearray(image)
    for bit in bits:
        out[bit // 8] ^= 1 << (bit % 8)
    stage = consume(bytes(out))
    checksum_bits = range(_raw.CHECKSUM_AT * 8, (_raw.CHECKSUM_AT + 4) * 8)
    # CRC-32 detects every 1- and 2-bit error in messages this short; two flips that both
    # land in the checksum field and the data could cancel, so only those are exempt.
    if len(bits) == 1 or (len(bits) == 2 and not any(b in checksum_bits for b in bits)):
        assert stage != "ok", f"flipping bits {bits} went unnoticed"


@SETTINGS
@given(base_names, st.data())
def test_byte_overwrites(base: str, data: st.DataObject) -> None:
    image = BASES[base]
    out = bytearray(image)
    edits = data.draw(
        st.lists(
            st.tuples(st.integers(0, len(image) - 1), st.integers(0, 255)), min_size=1, max_size=6
        )
    )
    for at, value in edits:
        out[at] = value
    stage = consume(bytes(out))
    changed = [i for i in range(len(image)) if out[i] != image[i]]
    if len(changed) == 1:  # a burst of at most 8 bits: always detected
        assert stage != "ok"


@SETTINGS
@given(base_names, st.data())
def test_truncation_and_extension(base: str, data: st.DataObject) -> None:
    image = BASES[base]
    cut = data.draw(st.integers(0, len(image) - 1))
    try:
        Image.open(image[:cut])
    except TruncatedImageError:
        pass
    else:
        raise AssertionError(f"a {cut}-byte prefix of a {len(image)}-byte image opened")
    tail = data.draw(st.binary(min_size=1, max_size=128))
    longer = image + tail
    for extended in (longer, _raw.set_header(longer, image_size=len(longer))):
        try:
            Image.open(extended)
        except HeaderError:
            pass
        else:
            raise AssertionError("an image with trailing bytes opened")


_BYTES = {"<B": 1, "<H": 2, "<I": 4, "<Q": 8}
_EDGES = [0, 1, 2, 7, 8, 9, 63, 64, 65, 95, 96, 4096, 2**31, 2**32 - 1, 2**40, 2**63, 2**64 - 1]


def _field_values(fmt: str, original: Any) -> st.SearchStrategy[Any]:
    """Values for a field of struct format ``fmt``: edges, anything, or near the original."""
    if fmt == "<8s":
        return st.binary(min_size=8, max_size=8)
    top = 2 ** (8 * _BYTES[fmt]) - 1
    return st.one_of(
        st.sampled_from([e for e in _EDGES if e <= top]),
        st.integers(0, top),
        st.integers(-130, 130).map(lambda d: min(top, max(0, original + d))),
    )


@st.composite
def header_rewrite(draw: st.DrawFn) -> tuple[str, str, Any]:
    base = draw(base_names)
    field = draw(st.sampled_from([k for k in _raw.HEADER_FIELDS if k != "checksum"]))
    original = _raw.header(BASES[base])[field]
    return base, field, draw(_field_values(_raw.HEADER_FIELDS[field][1], original))


@SETTINGS
@given(header_rewrite())
def test_header_rewrites_with_valid_checksum(rewrite: tuple[str, str, Any]) -> None:
    base, field, value = rewrite
    image = BASES[base]
    stage = consume(_raw.set_header(image, **{field: value}))
    assert stage in ("open", "load", "ok"), stage  # the checksum was resealed
    # Every header field but the minor version is determined by the rest of the image.
    if field != "minor" and value != _raw.header(image)[field]:
        assert stage == "open", f"header {field}={value!r} was accepted"


@SETTINGS
@given(st.sampled_from(["model", "tensors"]), st.data())
def test_table_rewrites_with_valid_checksum(base: str, data: st.DataObject) -> None:
    image = BASES[base]
    count = _raw.header(image)["array_count"]
    edits = data.draw(
        st.lists(
            st.tuples(st.integers(0, count - 1), st.sampled_from(sorted(_raw.ENTRY_FIELDS))),
            min_size=1,
            max_size=3,
        )
    )
    out = image
    for i, field in edits:
        original = _raw.entry(out, i)[field]
        value = data.draw(_field_values(_raw.ENTRY_FIELDS[field][1], original))
        out = _raw.set_entry(out, i, **{field: value})
    assert consume(out) in ("open", "load", "ok")


@SETTINGS
@given(base_names, st.data())
def test_prefix_overwrites_with_valid_checksum(base: str, data: st.DataObject) -> None:
    """Corrupt the header, table, names or manifest, then reseal."""
    image = BASES[base]
    prefix = _raw.manifest_span(image)[1]
    out = bytearray(image)
    for at, value in data.draw(
        st.lists(st.tuples(st.integers(0, prefix - 1), st.integers(0, 255)), min_size=1, max_size=4)
    ):
        out[at] = value
    assert consume(_raw.seal(out)) in ("open", "load", "ok")


# -- structured manifest mutations -----------------------------------------------------------


@settings(SETTINGS, max_examples=400 * SCALE)
@given(st.data())
def test_manifest_mutations(data: st.DataObject) -> None:
    """A valid image whose manifest is nonsense: only ManifestError, from open or load."""
    arrays, manifest = _raw.base_model()
    manifest = data.draw(mutated_manifest(manifest, [n for n, _ in arrays]))
    assert consume(_raw.assemble(arrays, manifest)) in ("open", "load", "ok")


def test_consume_sees_a_valid_image_through() -> None:
    assert {name: consume(image) for name, image in BASES.items()} == dict.fromkeys(BASES, "ok")
    assert np.array_equal(Image.open(BASES["model"]).arrays["model/1/classes"], [0, 1, 2])
