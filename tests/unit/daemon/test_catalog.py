"""The catalog's caches: names that come from clients are bounded, a miss is not a listing of
the store per request, and a store that does not answer is not an empty one."""

from __future__ import annotations

import collections
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelshelf
from modelshelf.errors import ModelNotFound, StoreError
from modelshelf.names import parse_ref
from modelshelf.store import RefInfo, Store
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

    def keys(self, prefix: str, after: str | None = None) -> list[str]:
        return []  # a store without a change feed


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


async def test_latest_listed_without_a_ref_resolves_to_the_latest_that_has_one(
    board: Board, tmp_path: Path
) -> None:
    """The feed (or a removal whose event was lost) named a version whose ref is not there:
    "latest" answered not_found, and a client holding the model lost it, until the next full
    listing (5 minutes). An event is no proof of a ref (protocol.md): the model is listed
    again and latest resolves to what the listing says."""
    image = modelshelf.compile_tensors({"w": np.arange(10, dtype=np.float64)})
    root = tmp_path / "s"
    store = Store(root.as_uri())
    store.publish("ns", "m", image)
    store.publish("ns", "m", image)
    catalog = Catalog(store, board, poll_seconds=300.0)
    await catalog.poll_once()
    assert catalog.versions["ns/m"] == [1, 2]
    (root / "refs" / "ns" / "m" / f"{2:020d}").unlink()  # behind the feed's back
    info = await catalog.resolve(parse_ref("ns/m"))
    assert info.version == 1 and catalog.versions["ns/m"] == [1]
    with pytest.raises(ModelNotFound):
        await catalog.resolve(parse_ref("ns/m@2"))
    (root / "refs" / "ns" / "m" / f"{1:020d}").unlink()
    catalog._refs.clear()
    with pytest.raises(ModelNotFound):  # nothing left: not found, as before
        await catalog.resolve(parse_ref("ns/m"))


async def test_a_change_moves_only_that_models_counter(board: Board, tmp_path: Path) -> None:
    """A publish or a removal, seen by the poll or made through this daemon, moves the counter
    of that model's slot; the epoch (every model) stands still (issue 14, point 2)."""
    image = modelshelf.compile_tensors({"w": np.arange(10, dtype=np.float64)})
    store = Store((tmp_path / "s").as_uri())
    for name in ("a", "b", "c"):
        store.publish("ns", name, image)
    assert len({board.offset(f"ns/{n}") for n in "abc"}) == 3
    catalog = Catalog(store, board, poll_seconds=2.0)
    await catalog.poll_once()
    notices, epoch = {n: board.notice(f"ns/{n}") for n in "abc"}, board.epoch
    store.publish("ns", "b", image)  # by another node: seen by the poll
    assert await catalog.poll_once()
    assert {n: board.notice(f"ns/{n}") for n in "abc"} == {**notices, "b": notices["b"] + 1}
    store.remove("ns", "c", 1)
    assert await catalog.poll_once()
    assert board.notice("ns/c") == notices["c"] + 1
    catalog.update("ns/a", [1, 2])  # what a publish through this daemon does
    assert board.notice("ns/a") == notices["a"] + 1
    assert board.notice("ns/b") == notices["b"] + 1 and board.epoch == epoch


class _FlakyStore:
    """A store with one model that can stop answering."""

    url = "memory://"

    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    def _answer(self) -> None:
        self.calls += 1
        if self.down:
            raise StoreError("the object store failed: connection refused")

    def versions(self, namespace: str, name: str) -> list[int]:
        self._answer()
        return [1] if (namespace, name) == ("ns", "m") else []

    def list_refs(self) -> dict[str, list[int]]:
        self._answer()
        return {"ns/m": [1]}

    def keys(self, prefix: str, after: str | None = None) -> list[str]:
        self._answer()
        return []

    def ref(self, namespace: str, name: str, version: int) -> RefInfo:
        self._answer()
        if (namespace, name, version) != ("ns", "m", 1):
            raise ModelNotFound(f"{namespace}/{name}@{version}: not found in the store")
        return RefInfo(namespace, name, version, "a" * 64, 4096)


async def test_an_unreachable_store_is_not_an_empty_one(board: Board) -> None:
    now = [0.0]
    store: Any = _FlakyStore()
    stats: collections.Counter[str] = collections.Counter()
    catalog = Catalog(store, board, poll_seconds=2.0, clock=lambda: now[0], stats=stats)
    await catalog.poll_once()
    known = await catalog.resolve(parse_ref("ns/m"))
    generation = catalog.generation
    store.down = True
    with pytest.raises(StoreError):
        await catalog.poll_once()
    assert not catalog.reachable and catalog.health()["store_error"] == "StoreError"
    assert stats["store_errors"] == 1 and catalog.versions == {"ns/m": [1]}
    now[0] += 10.0  # the listing is stale, and the store is down: the last one answers
    calls = store.calls
    assert catalog.cached(parse_ref("ns/m")) == known
    assert await catalog.resolve(parse_ref("ns/m")) == known
    assert await catalog.resolve(parse_ref("ns/m@1")) == known
    for ref in ("ns/other", "ns/other@1"):
        with pytest.raises(StoreError):  # never ModelNotFound: the store did not answer
            await catalog.resolve(parse_ref(ref))
    assert store.calls == calls  # refused at once, not each after the store's retries
    assert catalog.generation == generation
    store.down = False
    await catalog.poll_once()
    assert catalog.reachable and catalog.health()["store_error"] == ""
    with pytest.raises(ModelNotFound):  # the store answers again: "not there" is an answer
        await catalog.resolve(parse_ref("ns/other"))


def test_the_warm_list_is_expanded_by_namespace_once_per_name(caplog) -> None:
    """10,000 patterns over a catalog of thousands were matched on the event loop, every
    pattern against every name (seconds to minutes of a daemon that answered nothing), and
    each one that matched nothing logged a line of its own."""
    import logging

    from modelshelfd.warm import expand

    catalog = [f"ns{i % 30}/model-{i:05d}" for i in range(3000)]
    entries = ("ns1/model-0000*", "ns2/model-00002", "*/model-0299[0-9]", "ns1/model-00001")
    entries += tuple(f"ns{i}/other-*" for i in range(2000))
    with caplog.at_level(logging.WARNING, logger="modelshelfd.warm"):
        names = expand(entries, catalog)
    assert names[:2] == ["ns1/model-00001", "ns2/model-00002"]
    assert names[2:] == sorted(f"ns{i % 30}/model-{i:05d}" for i in range(2990, 3000))
    assert len(caplog.records) == 1 and "(2000 patterns)" in caplog.text
