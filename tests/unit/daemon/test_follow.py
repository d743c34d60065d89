"""The catalog's follower of the change feed, on a real file:// store with injected clocks:
one request per idle poll, a skewed publisher seen once, refs without events found by the full
listing, a compaction that passes a daemon by, and hostile objects skipped."""

from __future__ import annotations

import collections
import json
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelshelf
from modelshelf import feed
from modelshelf.names import parse_ref
from modelshelf.store import Store
from modelshelfd.catalog import Catalog
from modelshelfd.follow import Follower, Update
from modelshelfd.storage import Board


class Counting:
    """A Store that counts the requests made through it (at the module boundary)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: collections.Counter[str] = collections.Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted

    @property
    def total(self) -> int:
        return sum(self.calls.values())


@pytest.fixture(scope="module")
def image() -> bytes:
    return modelshelf.compile_tensors({"w": np.arange(10, dtype=np.float64)})


class Clocks:
    def __init__(self) -> None:
        self.wall = time.time()
        self.mono = 0.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


def _follower(store: Any, clocks: Clocks, **kwargs: Any) -> Follower:
    return Follower(
        store, wall=lambda: clocks.wall, clock=lambda: clocks.mono,
        stats=collections.Counter(), **kwargs,
    )  # fmt: skip


def _run(follower: Follower, models: dict[str, list[int]]) -> Update:
    update = follower.step()
    if update.full is not None:
        models.clear()
        models.update(update.full)
    else:
        feed.apply(models, update.events, update.removed)
    return update


def test_an_idle_poll_is_one_request(tmp_path: Path, image: bytes) -> None:
    store = Store((tmp_path / "s").as_uri())
    for i in range(50):
        store.publish("ns", f"m{i}", image)
    counting = Counting(store)
    clocks = Clocks()
    follower = _follower(counting, clocks)
    models: dict[str, list[int]] = {}
    assert _run(follower, models).how == "listing"  # no snapshot yet
    assert len(models) == 50
    feed.compact(store, retention=0)
    follower.offset_ms = None  # a daemon restarting: from the snapshot
    assert _run(follower, models).how == "snapshot" and len(models) == 50
    for _ in range(5):
        clocks.advance(2)
        counting.calls.clear()
        counted = follower.stats["catalog_requests"]
        update = _run(follower, models)
        assert update.how == "poll" and update.events == []
        assert dict(counting.calls) == {"keys": 1}
        assert follower.stats["catalog_requests"] == counted + 1  # the daemon's own count
    store.publish("ns", "m0", image)
    clocks.advance(2)
    counting.calls.clear()
    update = _run(follower, models)
    assert [e.versions for e in update.events] == [(2,)] and models["ns/m0"] == [1, 2]
    assert dict(counting.calls) == {"keys": 1, "get_small": 1}


def test_a_publisher_30_s_behind_is_seen_once(tmp_path: Path, image: bytes) -> None:
    url = (tmp_path / "s").as_uri()
    clocks = Clocks()
    follower = _follower(Store(url), clocks, skew_seconds=60)
    models: dict[str, list[int]] = {}
    _run(follower, models)
    late = Store(url, clock=lambda: clocks.wall - 30)
    for step in range(40):  # 80 s: the late event stays in the window for a while
        if step == 3:
            late.publish("ns", "late", image)
        clocks.advance(2)
        update = _run(follower, models)
        if step == 3:
            assert [e.model for e in update.events] == ["ns/late"]
        else:
            assert update.events == [], step  # read again within the window: not twice
    assert models == {"ns/late": [1]}
    assert len(follower._window) == 0  # forgotten once out of the window


def test_refs_without_events_are_found_by_the_full_listing(tmp_path: Path, image: bytes) -> None:
    store = Store((tmp_path / "s").as_uri())
    clocks = Clocks()
    follower = _follower(store, clocks, full_list_seconds=300)
    models: dict[str, list[int]] = {}
    _run(follower, models)
    # a publisher from before the feed: claim and ref, no event
    digest = store.put_image(image)
    body = json.dumps({"digest": digest, "size": len(image)}).encode()
    store.create("versions/ns/old/00000000000000000001", body)
    store.create("refs/ns/old/00000000000000000001", body)
    clocks.advance(2)
    assert _run(follower, models).events == [] and models == {}
    clocks.advance(300)
    assert _run(follower, models).how == "listing" and models == {"ns/old": [1]}
    store.delete("refs/ns/old/00000000000000000001")  # an old `rm`: no event either
    clocks.advance(300)
    _run(follower, models)
    assert models == {}


def test_a_daemon_behind_a_compaction_reads_the_catalog_again(tmp_path: Path, image: bytes) -> None:
    clocks = Clocks()
    store = Store((tmp_path / "s").as_uri(), clock=lambda: clocks.wall)
    store.publish("ns", "a", image)
    follower = _follower(store, clocks, full_list_seconds=1e9)  # only the feed can tell
    models: dict[str, list[int]] = {}
    _run(follower, models)
    clocks.advance(2 * 3600)  # stopped for two hours, meanwhile:
    store.publish("ns", "b", image)
    store.remove("ns", "a")
    clocks.advance(3600 + 600)
    feed.compact(store, retention=3600)  # the events of "b" and of the removal are gone
    assert [k for k in store.keys(feed.PREFIX) if feed.is_event(k)] == []
    update = _run(follower, models)
    assert update.how == "snapshot" and models == {"ns/b": [1]}
    assert follower.stats["feed_reloads"] == 1


def test_a_restart_in_the_middle_of_a_compaction_is_consistent(
    tmp_path: Path, image: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    clocks = Clocks()
    url = (tmp_path / "s").as_uri()
    store = Store(url, clock=lambda: clocks.wall)
    store.publish("ns", "a", image)
    store.publish("ns", "gone", image)
    feed.compact(store, retention=0)  # the previous snapshot
    clocks.advance(600)
    store.publish("ns", "b", image)
    store.remove("ns", "gone")
    clocks.advance(600)
    store.publish("ns", "c", image)
    expected = {"ns/a": [1], "ns/b": [1], "ns/c": [1]}
    seen: list[dict[str, list[int]]] = []

    def daemon_starts() -> None:
        models: dict[str, list[int]] = {}
        _run(_follower(Store(url), clocks), models)
        seen.append(models)

    # gc stops after each of its writes and deletions; a daemon starts there
    real_create, real_delete = store.create, store.delete
    monkeypatch.setattr(store, "create", lambda p, d: (real_create(p, d), daemon_starts()))
    monkeypatch.setattr(store, "delete", lambda p: (real_delete(p), daemon_starts()))
    done = feed.compact(store, retention=0)
    assert done.events_removed == 4  # a, gone, b, the removal; c is in the overlap
    assert len(seen) == 5 and all(m == expected for m in seen), seen  # 1 write, 4 deletions

    # a daemon that read the previous snapshot's name when the compaction ran whole
    monkeypatch.undo()
    clocks.advance(600)
    store.publish("ns", "d", image)
    expected["ns/d"] = [1]
    daemon = Store(url)
    real_keys = daemon.keys
    ran: list[feed.Compaction] = []

    def keys(prefix: str, after: str | None = None) -> list[str]:
        out = real_keys(prefix, after)
        if not ran:  # two compactions: the newest snapshot it saw is deleted
            ran.extend(feed.compact(store, retention=0) for _ in range(2))
        return out

    monkeypatch.setattr(daemon, "keys", keys)
    follower = _follower(daemon, clocks)
    models: dict[str, list[int]] = {}
    assert _run(follower, models).how == "snapshot"
    assert models == expected and ran[1].snapshots_removed == 1
    assert follower.stats["full_listings"] == 0  # it read the newer snapshot instead


def test_hostile_objects_are_skipped_and_counted_once(tmp_path: Path, image: bytes) -> None:
    store = Store((tmp_path / "s").as_uri())
    clocks = Clocks()
    follower = _follower(store, clocks)
    models: dict[str, list[int]] = {}
    _run(follower, models)
    now = int(clocks.wall * 1000)
    store.create(f"events/{now:016d}-{'a' * 16}", b"x" * (feed.MAX_EVENT_BYTES + 1))
    store.create(f"events/{now:016d}-{'b' * 16}", b'{"op": "publish"}')
    store.create(f"events/{now:016d}-zzz", b"{}")
    store.publish("ns", "fine", image)
    for _ in range(3):
        clocks.advance(1)
        _run(follower, models)
    assert models == {"ns/fine": [1]} and follower.stats["feed_malformed"] == 3
    snap = f"events/snapshot-{now:016d}-0000abcd.json"
    store.create(snap, b"{" * 1000)
    follower.offset_ms = None
    assert _run(follower, models).how == "listing" and models == {"ns/fine": [1]}


@pytest.mark.parametrize("body", [b"garbage{", None], ids=["malformed", "valid"])
def test_a_snapshot_dated_in_the_future_is_read_once_not_at_every_poll(
    tmp_path: Path, image: bytes, body: bytes | None
) -> None:
    """One snapshot whose key's cutoff is an hour ahead (a foreign object, a gc host's clock):
    every poll found it ahead of the position, read it again and listed every ref, counted it
    malformed again and logged 'a compaction removed events' (a probe: 9 full listings in 10
    polls). Once, now; the next polls are one request each."""
    store = Store((tmp_path / "s").as_uri())
    store.publish("ns", "a", image)
    counting = Counting(store)
    clocks = Clocks()
    follower = _follower(counting, clocks)
    models: dict[str, list[int]] = {}
    _run(follower, models)
    ahead = int(clocks.wall * 1000) + 3_600_000
    key = f"events/snapshot-{ahead:016d}-deadbeef.json"
    if body is None:  # a well-formed one, of the catalog as it is
        feed.compact(store, retention=0)
        written = [k for k in store.keys("events/") if k.startswith("events/snapshot-")][-1]
        store.create(key, store.get_small(written, 1 << 20))
    else:
        store.create(key, body)
    for _ in range(10):
        clocks.advance(2)
        _run(follower, models)
    assert models == {"ns/a": [1]}
    assert follower.stats["feed_reloads"] == 1
    assert follower.stats["feed_malformed"] == (1 if body else 0)
    counting.calls.clear()
    clocks.advance(2)
    assert _run(follower, models).how == "poll" and dict(counting.calls) == {"keys": 1}


async def test_the_catalog_tells_the_board_which_models_changed(
    tmp_path: Path, image: bytes
) -> None:
    store = Store((tmp_path / "s").as_uri())
    store.publish("ns", "a", image)
    board = Board(f"mst-fol-{uuid.uuid4().hex[:8]}")
    try:
        catalog = Catalog(store, board, poll_seconds=2.0)
        told: list[set[str]] = []
        catalog._changed = told.append  # type: ignore[method-assign]
        assert await catalog.poll_once()
        assert told == [{"ns/a"}]
        assert not await catalog.poll_once() and told[-1] == set()
        store.publish("ns", "b", image)
        store.publish("ns", "a", image)
        assert await catalog.poll_once() and told[-1] == {"ns/a", "ns/b"}
        assert (await catalog.resolve(parse_ref("ns/a"))).version == 2
        store.remove("ns", "a", 2)
        assert await catalog.poll_once() and told[-1] == {"ns/a"}
        assert catalog.cached(parse_ref("ns/a@2")) is None
    finally:
        board.close()
