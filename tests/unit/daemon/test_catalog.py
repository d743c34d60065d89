"""The catalog's caches: names that come from clients are bounded, and a miss is not a
listing of the store per request."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelshelf
from modelshelf.errors import ModelNotFound
from modelshelf.names import parse_ref
from modelshelf.store import Store
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


async def test_a_removed_version_is_not_served_after_the_next_poll(
    board: Board, tmp_path: Path
) -> None:
    """Removing ns/m@2 somewhere makes this daemon answer not_found for ns/m@2 after its next
    poll, even though it had the ref cached (issue 9, point 17)."""
    image = modelshelf.compile_tensors({"w": np.arange(10, dtype=np.float64)})
    store = Store((tmp_path / "s").as_uri())
    store.publish("ns", "m", image)
    store.publish("ns", "m", image)
    catalog = Catalog(store, board, poll_seconds=2.0)
    await catalog.poll_once()
    assert (await catalog.resolve(parse_ref("ns/m@2"))).version == 2
    assert catalog.cached(parse_ref("ns/m@2")) is not None
    generation = catalog.generation
    store.remove("ns", "m", 2)  # by another node: only the poll tells this one
    assert await catalog.poll_once()
    assert catalog.generation > generation  # clients holding ns/m@2 re-check
    assert catalog.cached(parse_ref("ns/m@2")) is None
    with pytest.raises(ModelNotFound):
        await catalog.resolve(parse_ref("ns/m@2"))
    assert (await catalog.resolve(parse_ref("ns/m"))).version == 1
