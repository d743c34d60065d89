"""The shelf in process (real segments, a real file:// store): byte accounting stays exact
through any sequence of acquires, releases, evictions and L2 churn."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import numpy as np
import pytest

import modelshelf
from modelshelf.store import RefInfo, Store
from modelshelfd.config import load_config
from modelshelfd.shelf import Busy, Shelf
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
