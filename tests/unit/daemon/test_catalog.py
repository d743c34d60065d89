"""The catalog's caches: names that come from clients are bounded, and a miss is not a
listing of the store per request."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from modelshelf.errors import ModelNotFound
from modelshelf.names import parse_ref
from modelshelfd import catalog as catalog_mod
from modelshelfd.catalog import Catalog
from modelshelfd.storage import Board


class _EmptyStore:
    url = "memory://"

    def __init__(self) -> None:
        self.listings = 0

    def versions(self, namespace: str, name: str) -> list[int]:
        self.listings += 1
        return []

    def list_refs(self) -> dict[str, list[int]]:
        return {}


@pytest.fixture
def board():
    b = Board(f"mst-cat-{uuid.uuid4().hex[:8]}")
    yield b
    b.close()


async def test_missing_names_are_bounded_and_not_relisted(board: Board, monkeypatch) -> None:
    monkeypatch.setattr(catalog_mod, "MAX_MISSING", 50, raising=False)
    now = [0.0]
    store: Any = _EmptyStore()
    catalog = Catalog(store, board, poll_seconds=2.0, clock=lambda: now[0])
    for i in range(500):  # a client making up names
        with pytest.raises(ModelNotFound):
            await catalog.resolve(parse_ref(f"ns/made-up-{i}"))
    remembered = len(catalog._listed_at) + len(getattr(catalog, "_missing", ()))
    assert remembered <= 50, remembered
    assert store.listings == 500
    for _ in range(10):  # the same miss again within one period: no new listing
        with pytest.raises(ModelNotFound):
            await catalog.resolve(parse_ref("ns/made-up-499"))
    assert store.listings == 500
    now[0] += 2.5  # a period later the store is asked again
    with pytest.raises(ModelNotFound):
        await catalog.resolve(parse_ref("ns/made-up-499"))
    assert store.listings == 501
