"""The fetcher's L2 write after the reply (real segments, real files, a real file:// store): a
request whose image comes from the store is answered once its L1 segment is there; the L2 file
is written in the background, once per image, with the segment busy meanwhile; whatever needs
the file waits for it; a failed write is counted and the image served from L1; a stop during
the write leaves nothing behind."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import modelshelf
from modelshelf.store import RefInfo, Store
from modelshelfd import storage
from modelshelfd.shelf import Shelf
from modelshelfd.storage import SHM_DIR
from modelshelfd.tiers import TierName, cost
from tests.unit.daemon.test_shelf import _shelf, _until

HELD = 10.0  # seconds a held write waits for the test at most (a hung test fails, not hangs)


class HeldWrites:
    """The test-only slowdown: every L2 file write (``Disk._atomically``) stops inside its temp
    file until ``go`` is set, then goes on (or raises ``fail``). ``calls`` counts the writes."""

    def __init__(self, disk: storage.Disk, fail: OSError | None = None) -> None:
        self.calls = 0
        self.started = threading.Event()
        self.go = threading.Event()
        atomically = disk._atomically

        def held(digest: str, write: Callable[[int], None]) -> None:
            self.calls += 1

            def slow(fd: int) -> None:
                self.started.set()
                if not self.go.wait(HELD):
                    raise AssertionError(f"the test never let the L2 write go in {HELD} s")
                if fail is not None:
                    raise fail
                write(fd)

            atomically(digest, slow)

        disk._atomically = held  # type: ignore[method-assign]


@pytest.fixture
async def setup(tmp_path: Path):
    prefix = f"mst-fetch-{uuid.uuid4().hex[:8]}"
    store = Store((tmp_path / "store").as_uri())
    refs: list[RefInfo] = []
    for i in range(3):  # 64 KiB and more: many chunks when a test makes them small
        image = modelshelf.compile_tensors({"w": np.full(8192 * (i + 1), i, dtype=np.float64)})
        refs.append(store.publish("ns", f"m{i}", image))
    total = sum(cost(r.size) for r in refs)
    shelf = _shelf(tmp_path, store, prefix, 2 * total, 2 * total)
    yield shelf, refs
    await shelf.drain(10)
    shelf.close()
    assert not [p for p in SHM_DIR.iterdir() if p.name.startswith(prefix)]


def _tmp_files(shelf: Shelf) -> list[Path]:
    return list(shelf.disk.tmp.iterdir())


async def test_the_reply_comes_before_the_l2_write(setup) -> None:
    """A cold image is served from its new segment while its L2 file is still being written;
    the file is there, verified and accounted for once the write ends."""
    shelf, refs = setup
    ref = refs[1]
    writes = HeldWrites(shelf.disk)
    try:
        # on a fetcher that writes L2 before replying, this times out: the write is held
        lease = await asyncio.wait_for(shelf.acquire(ref), timeout=HELD / 2)
        assert lease.found is TierName.L3 and lease.copy.tier is TierName.L1
        assert writes.started.wait(HELD)  # the write runs meanwhile, in its temp file
        assert ref.digest in shelf.fetcher.l2_writes and ref.digest not in shelf.l2.copies
        assert shelf.l1.copies[ref.digest].busy  # read by the write: not a victim
        assert shelf.l2.used == cost(ref.size)  # its room is reserved, as before
        assert len(_tmp_files(shelf)) == 1
        shelf.release(lease)
    finally:
        writes.go.set()
    await shelf.settle(ref.digest)
    assert not shelf.fetcher.l2_writes and not shelf.l1.copies[ref.digest].busy
    assert shelf.l2.copies[ref.digest].verified and shelf.l2.used == cost(ref.size)
    shelf.disk.verify(ref.digest, ref.size)  # the file holds the image
    assert _tmp_files(shelf) == [] and writes.calls == 1
    assert shelf.stats["l3_to_l2"] == 0 and shelf.stats["bytes_fetched"] == ref.size
    assert shelf.where(ref.digest) == [TierName.L1, TierName.L2]


async def test_a_failed_l2_write_is_counted_and_the_image_served_from_l1(
    setup, caplog: pytest.LogCaptureFixture
) -> None:
    shelf, refs = setup
    ref = refs[0]
    writes = HeldWrites(shelf.disk, fail=OSError(errno.ENOSPC, "No space left on device"))
    writes.go.set()
    with caplog.at_level(logging.ERROR, logger="modelshelfd.shelf"):
        lease = await shelf.acquire(ref)
        assert lease.copy.tier is TierName.L1
        await shelf.settle(ref.digest)
    assert shelf.stats["l2_write_errors"] == 1 and writes.calls == 1
    assert "L2 write of" in caplog.text and "No space left on device" in caplog.text
    assert shelf.l2.used == 0 and not shelf.l2.copies and not shelf.l1.copies[ref.digest].busy
    assert _tmp_files(shelf) == [] and list(shelf.disk.images.iterdir()) == []
    shelf.release(lease)
    again = await shelf.acquire(ref)  # still served, from L1
    assert again.found is TierName.L1 and again.copy.tier is TierName.L1
    shelf.release(again)


async def test_one_l2_write_per_image_and_what_needs_the_file_waits(setup) -> None:
    """During the write, a second request is an L1 hit, ``copy_down`` waits for the write in
    flight, and a request after the segment's eviction waits for the file and is served from
    it: one write in all."""
    shelf, refs = setup
    ref = refs[2]
    writes = HeldWrites(shelf.disk)
    try:
        first = await asyncio.wait_for(shelf.acquire(ref), timeout=HELD / 2)
        second = await shelf.acquire(ref)
        assert second.found is TierName.L1
        copied = asyncio.create_task(shelf.fetcher.copy_down(ref.digest))
        shelf.release(first)
        shelf.release(second)
        assert shelf.evict(ref.digest)  # the segment goes; the write reads its own mapping
        third = asyncio.create_task(shelf.acquire(ref))
        await asyncio.sleep(0.05)
        assert not copied.done() and not third.done()  # both wait for the write
        assert ref.digest not in shelf.l1.copies and writes.calls == 1
    finally:
        writes.go.set()
    await copied
    lease = await third
    assert lease.found is TierName.L2  # the file written from the evicted segment serves it
    shelf.release(lease)
    await shelf.settle(ref.digest)
    assert writes.calls == 1 and shelf.stats["l3_fetches"] == 1
    shelf.disk.verify(ref.digest, ref.size)


async def test_a_stop_during_the_l2_write_leaves_no_file(
    setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``drain`` (the daemon's stop) past its deadline cancels the write: the thread stops at
    its next chunk and removes its temp file; nothing half-written is in images/, nothing is
    counted in L2, and a restart adopts nothing."""
    shelf, refs = setup
    ref = refs[2]
    monkeypatch.setattr(storage, "WRITE_CHUNK", 4096)  # many chunks: the abort is checked
    writes = HeldWrites(shelf.disk)
    try:
        lease = await asyncio.wait_for(shelf.acquire(ref), timeout=HELD / 2)
        assert writes.started.wait(HELD) and len(_tmp_files(shelf)) == 1
        shelf.release(lease)
        write = shelf.fetcher.l2_writes[ref.digest]
        drained = asyncio.create_task(shelf.drain(0))
        await _until(lambda: write.cancelling() > 0, "the write to be cancelled")
        assert not drained.done()  # the drain waits for the thread to clean up
    finally:
        writes.go.set()
    await drained
    assert write.cancelled() and not shelf.fetcher.l2_writes
    assert _tmp_files(shelf) == [] and list(shelf.disk.images.iterdir()) == []
    assert shelf.l2.used == 0 and not shelf.l2.copies and not shelf.l1.copies[ref.digest].busy
    assert shelf.stats["l2_write_errors"] == 0  # a stop is no disk error
    files, strays = shelf.disk.scan()  # what the next start would adopt
    assert files == {} and strays == 0


async def test_l2_writes_in_flight_are_bounded(setup) -> None:
    """At most ``max_inflight_fetches`` writes run in the background; beyond, the fetch waits
    for one to end before it replies."""
    base, refs = setup
    shelf = Shelf(dataclasses.replace(base.config, max_inflight_fetches=1), base.store)
    writes = HeldWrites(shelf.disk)
    try:
        first = await asyncio.wait_for(shelf.acquire(refs[0]), timeout=HELD / 2)
        second = asyncio.create_task(shelf.acquire(refs[1]))
        await asyncio.sleep(0.05)
        assert not second.done() and len(shelf.fetcher.l2_writes) == 1
    finally:
        writes.go.set()
    lease = await second
    shelf.release(first)
    shelf.release(lease)
    await shelf.settle(refs[1].digest)
    assert writes.calls == 2 and set(shelf.l2.copies) == {refs[0].digest, refs[1].digest}
    await shelf.drain(10)
    shelf.close()


@pytest.mark.parametrize("when", ["during", "after_last_chunk"])
async def test_an_eviction_from_l2_stops_the_write_in_flight(setup, monkeypatch, when) -> None:
    """An admin eviction from L2 while the image's file is being written: the write stops (or,
    had it written its last chunk, its file is removed), nothing is added, the room is given
    back and no temp file is left; the L1 copy keeps serving."""
    shelf, refs = setup
    ref = refs[2]
    writes = HeldWrites(shelf.disk)
    if when == "during":
        monkeypatch.setattr(storage, "WRITE_CHUNK", 4096)  # many chunks: the abort is seen
    before = shelf.l2.used
    lease = await asyncio.wait_for(shelf.acquire(ref), timeout=HELD / 2)
    try:
        assert writes.started.wait(HELD)
        if when == "after_last_chunk":
            # the abort comes after the thread's last chunk: the file is renamed into place
            # and must be removed, not added
            shelf.fetcher._aborts[ref.digest].set = lambda: None  # type: ignore[method-assign]
        assert shelf.evict(ref.digest, TierName.L2)
    finally:
        writes.go.set()
    await shelf.settle(ref.digest)
    assert ref.digest not in shelf.l2.copies and not shelf.fetcher.l2_writes
    assert not shelf.disk.path(ref.digest).exists() and not _tmp_files(shelf)
    assert shelf.l2.used == before
    assert not shelf.l1.copies[ref.digest].busy and ref.digest in shelf.l1.copies
    assert not shelf.evict(ref.digest, TierName.L2)  # nothing left to evict
    shelf.release(lease)
