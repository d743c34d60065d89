"""The fast path's remembered work (handlers.py): a reference parsed once per string, and the
JSON of an L1 reply once per image and catalog generation, give exactly what parsing and
encoding afresh give."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from modelshelf import wire
from modelshelf.errors import InvalidModelName
from modelshelf.names import parse_ref
from modelshelf.store import RefInfo
from modelshelfd import handlers
from modelshelfd.tiers import TierName


def _state(generation: int) -> Any:
    return SimpleNamespace(catalog=SimpleNamespace(generation=generation))


@pytest.mark.parametrize("rid", [None, 0, 1, -7, 2**70])
@pytest.mark.parametrize("generation", [0, 5])
def test_an_l1_reply_is_the_encoded_reply(rid: int | None, generation: int) -> None:
    info = RefInfo("acme", "churn.v2", 12, "ab" * 32, 123_456_789)
    copy = SimpleNamespace(tier=TierName.L1)
    state = _state(generation)
    reply: dict[str, Any] = {"ok": True, **handlers._acquired(state, info, TierName.L1, copy)}
    if rid is not None:
        reply["id"] = rid
    for _ in range(2):  # fresh, then remembered
        assert handlers._l1_reply(state, info, copy, rid) == wire.encode(reply)
    other = RefInfo("acme", "churn.v2", 13, "cd" * 32, 1)  # another version: its own reply
    assert wire.decode_body(handlers._l1_reply(state, other, copy, rid)[4:])["version"] == 13


def test_a_parsed_reference_is_parse_refs_and_bad_ones_stay_refused() -> None:
    for text in ("acme/churn", "acme/churn@3", "acme/churn@latest"):
        assert handlers._parsed(text) == parse_ref(text)
        assert handlers._parsed(text) is handlers._parsed(text)  # remembered
    for bad in ("acme", "acme/../x", "ACME/x", 7, None, ["acme/x"], "a" * 500):
        for _ in range(2):  # never remembered
            with pytest.raises(InvalidModelName):
                handlers._parsed(bad)


def test_what_is_remembered_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers, "_MAX_REMEMBERED", 8)
    monkeypatch.setattr(handlers, "_refs", {})
    monkeypatch.setattr(handlers, "_l1_replies", {})
    state = _state(1)
    for i in range(50):
        handlers._parsed(f"ns/model-{i}")
        info = RefInfo("ns", f"model-{i}", 1, f"{i:064x}", 10)
        handlers._l1_reply(state, info, SimpleNamespace(tier=TierName.L1), i)
        assert len(handlers._refs) <= 8 and len(handlers._l1_replies) <= 8
