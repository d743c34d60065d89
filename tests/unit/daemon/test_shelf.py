"""The shelf in process (real segments, a real file:// store): byte accounting stays exact
through any sequence of acquires, releases, evictions and L2 churn."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

import modelshelf
from modelshelf.store import RefInfo, Store
from modelshelfd import tiers
from modelshelfd.config import load_config
from modelshelfd.shelf import Busy, Shelf, State
from modelshelfd.tiers import SHM_DIR, Segment


def _accounted(shelf: Shelf) -> tuple[int, int]:
    linked = [e.segment for e in shelf.entries.values() if e.segment is not None]
    l1 = sum(s.size for s in linked) + sum(s.size for s in shelf.retired)
    l2 = sum(e.size for e in shelf.entries.values() if e.in_l2)
    return l1, l2


@pytest.fixture
def setup(tmp_path: Path):
    prefix = f"mst-unit-{uuid.uuid4().hex[:8]}"
    store = Store((tmp_path / "store").as_uri())
    refs: list[RefInfo] = []
    for i in range(8):
        image = modelshelf.compile_tensors({"w": np.full(500 * (i + 1), i, dtype=np.float64)})
        refs.append(store.publish("ns", f"m{i}", image))
    total = sum(r.size for r in refs)
    config = load_config(
        [
            "--cache-dir", str(tmp_path / "cache"),
            "--shm-prefix", prefix,
            "--l1-bytes", str(total // 3),
            "--l2-bytes", str(total // 2),
            "--socket", str(tmp_path / "s.sock"),
        ],
        {},
    )  # fmt: skip
    shelf = Shelf(config, store)
    yield shelf, refs
    shelf.close()
    assert not [p for p in SHM_DIR.iterdir() if p.name.startswith(prefix)]


async def test_accounting_through_random_operations(setup) -> None:
    shelf, refs = setup
    rng = random.Random(0)
    held: list[Segment] = []
    for _ in range(300):
        action = rng.random()
        if action < 0.5:
            ref = rng.choice(refs)
            try:
                segment, _tier = await shelf.acquire(ref)
            except Busy:
                leased = {id(s): s.size for s in held}  # distinct segments
                assert sum(leased.values()) + ref.size > shelf.config.l1_bytes
                continue
            held.append(segment)
        elif action < 0.8 and held:
            shelf.release(held.pop(rng.randrange(len(held))))
        else:
            entry = shelf.entries.get(rng.choice(refs).digest)
            if entry is not None:
                shelf.evict_l1(entry)
        assert (shelf.l1_used, shelf.l2_used) == _accounted(shelf)
        assert shelf.l2_used <= shelf.config.l2_bytes
        # a reservation that cannot fit fails with Busy; it never overcommits
        assert shelf.l1_used <= shelf.config.l1_bytes
    for segment in held:
        shelf.release(segment)
    assert not shelf.retired
    assert shelf.l1_used == _accounted(shelf)[0]
    stats = shelf.stats
    assert stats["l3_fetches"] + stats["l2_hits"] + stats["l1_hits"] >= 1
    assert stats["l1_evictions"] > 0 and stats["l2_evictions"] > 0


async def test_a_leased_segment_outlives_its_eviction(setup) -> None:
    shelf, refs = setup
    segment, tier = await shelf.acquire(refs[0])
    assert tier == "l3" and segment.linked
    shelf.evict_l1(shelf.entries[refs[0].digest])
    assert not segment.linked and segment in shelf.retired and segment.fd >= 0
    assert shelf.l1_used == refs[0].size  # still counted while leased
    mapped = segment.map()
    assert modelshelf.load(mapped).tensors["w"][0] == 0.0
    shelf.release(segment)
    assert segment.fd == -1 and shelf.l1_used == 0
    assert modelshelf.load(mapped).tensors["w"].shape == (500,)  # our mapping stays valid
    mapped.close()


async def _until(predicate, what: str, timeout: float = 10.0) -> None:
    """Yield to the loop until ``predicate()`` holds, or fail at the deadline."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)
    del what


async def test_a_cancelled_requester_does_not_cancel_the_fetch(setup, monkeypatch) -> None:
    """Single flight: the first requester going away (a disconnect, a cancelled task) must
    neither fail the others' wait nor leave a FETCHING entry or a stray segment behind."""
    shelf, refs = setup
    gate = threading.Event()
    started = threading.Event()
    real = shelf.store.read_image

    def slow_read(*args, **kwargs) -> None:
        started.set()
        assert gate.wait(10)
        real(*args, **kwargs)

    monkeypatch.setattr(shelf.store, "read_image", slow_read)
    ref = refs[1]
    first = asyncio.create_task(shelf.acquire(ref))
    await _until(started.is_set, "the fetch started")
    second = asyncio.create_task(shelf.acquire(ref))
    await _until(lambda: shelf.stats["fetch_waits"] == 1, "the second joined")
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    gate.set()
    segment, tier = await second
    assert tier == "l3" and segment.leases == 1 and segment.linked
    entry = shelf.entries[ref.digest]
    assert entry.state is State.READY and entry.segment is segment
    assert shelf.stats["l3_fetches"] == 1 and shelf.describe()["inflight_fetches"] == 0
    assert (shelf.l1_used, shelf.l2_used) == _accounted(shelf)
    shelf.release(segment)


async def test_l2_budget_holds_while_its_only_victim_is_being_promoted(setup, monkeypatch) -> None:
    base, refs = setup
    big, other = refs[-1], refs[0]
    config = dataclasses.replace(base.config, l2_bytes=big.size + other.size - 1)
    shelf = Shelf(config, base.store)  # the two images cannot both be in L2
    try:
        await _promote_while_fetching(shelf, big, other, monkeypatch)
    finally:
        shelf.close()


async def _promote_while_fetching(shelf: Shelf, big: RefInfo, other: RefInfo, monkeypatch) -> None:
    segment, _ = await shelf.acquire(big)
    shelf.release(segment)
    shelf.evict_l1(shelf.entries[big.digest])  # now only in L2
    gate = threading.Event()
    real_copy = tiers.copy_from

    def slow_copy(path):
        fill = real_copy(path)

        def blocked(view: memoryview) -> None:
            assert gate.wait(10)
            fill(view)

        return blocked

    monkeypatch.setattr(tiers, "copy_from", slow_copy)
    promoting = asyncio.create_task(shelf.acquire(big))  # L2 -> L1, blocked mid-copy
    await _until(lambda: shelf.entries[big.digest].state is State.FETCHING, "promotion")
    segment2, tier = await shelf.acquire(other)  # L3: wants L2 room, the only victim is busy
    assert tier == "l3"
    assert shelf.l2_used <= shelf.config.l2_bytes
    assert shelf.stats["l2_skipped"] == 1 and not shelf.entries[other.digest].in_l2
    gate.set()
    segment1, _ = await promoting
    assert (shelf.l1_used, shelf.l2_used) == _accounted(shelf)
    shelf.release(segment1)
    shelf.release(segment2)


async def test_adoption_respects_budgets_that_shrank(setup) -> None:
    """A restart with smaller budgets adopts what it finds, then evicts down to the budgets."""
    first, refs = setup
    for ref in refs[:4]:
        segment, _ = await first.acquire(ref)
        first.release(segment)
    held = sum(r.size for r in refs[:4])
    assert first.l1_used == held and first.l2_used == held
    config = dataclasses.replace(first.config, l1_bytes=held // 2, l2_bytes=held // 2)
    second = Shelf(config, first.store)  # the "restarted" daemon: same prefix and cache
    try:
        await second.adopt(f"/{config.shm_prefix}-board")
        assert second.stats["adopted_l1"] == 4 and second.stats["adopted_l2"] == 4
        assert 0 < second.l1_used <= config.l1_bytes
        assert 0 < second.l2_used <= config.l2_bytes
        assert (second.l1_used, second.l2_used) == _accounted(second)
    finally:
        second.close()
        for entry in first.entries.values():  # its segments were adopted (and unlinked)
            if entry.segment is not None:
                entry.segment.close()
                entry.segment = None


async def test_an_adopted_l2_file_of_the_wrong_size_is_refetched(setup) -> None:
    first, refs = setup
    ref = refs[2]
    segment, _ = await first.acquire(ref)
    first.release(segment)
    first.evict_l1(first.entries[ref.digest])
    path = first.disk.path(ref.digest)
    with open(path, "ab") as fh:
        fh.write(b"\0" * 8)  # the image's bytes are intact, the file is longer
    second = Shelf(first.config, first.store)  # a restart: adopts the L2 file as it is
    try:
        await second.adopt(f"/{first.config.shm_prefix}-board")
        segment, tier = await second.acquire(ref)
        assert tier == "l3" and second.stats["validation_failures"] == 1
        assert path.stat().st_size == ref.size == second.entries[ref.digest].size
        assert second.l2_used == sum(p.stat().st_size for p in second.disk.images.iterdir())
        assert (second.l1_used, second.l2_used) == _accounted(second)
        second.release(segment)
    finally:
        second.close()
