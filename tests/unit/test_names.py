"""The model name grammar (modelshelf/names.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelshelf.errors import InvalidModelName
from modelshelf.names import ModelRef, check_part, parse_ref


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("ns/name", ModelRef("ns", "name", None)),
        ("ns/name@latest", ModelRef("ns", "name", None)),
        ("ns/name@7", ModelRef("ns", "name", 7)),
        ("a-b.c_d/x9", ModelRef("a-b.c_d", "x9", None)),
        ("0/1@123456789012345678", ModelRef("0", "1", 123456789012345678)),
        ("a" * 64 + "/" + "b" * 64, ModelRef("a" * 64, "b" * 64, None)),
    ],
)
def test_valid(text: str, ref: ModelRef) -> None:
    assert parse_ref(text) == ref
    assert str(parse_ref(text)) == (text.removesuffix("@latest"))


@pytest.mark.parametrize(
    "text",
    [
        "", "ns", "ns/", "/n", "NS/n", "ns/N", "ns/n@0", "ns/n@01", "ns/n@-1", "ns/n@1.5",
        "ns/n@", "ns/n@LATEST", "ns/a..b", "../x", "ns/../x", "ns/x/y", "ns/-x", "ns/x-",
        "ns/.x", "n s/x", "ns/x\n", "ns/x\x00", "ns/é", "a" * 65 + "/x", "ns/n@1234567890123456789",
        "ns\\x/y", None, 3, b"ns/x", ["ns/x"],
    ],
)  # fmt: skip
def test_invalid(text: object) -> None:
    with pytest.raises(InvalidModelName):
        parse_ref(text)


@given(st.text(max_size=80))
def test_anything_parsed_is_safe_in_a_path(text: str) -> None:
    try:
        ref = parse_ref(text)
    except InvalidModelName:
        return
    for part in (ref.namespace, ref.name):
        assert "/" not in part and ".." not in part and part == part.lower()
        assert part[0].isalnum() and part[-1].isalnum()
        assert check_part(part) == part
