"""The shelf in process (real segments, real files, a real file:// store): byte accounting stays
exact through any sequence of acquires, releases, evictions and L2 churn; shared memory full of
leases serves from the page cache; only both tiers full of leases refuse."""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import mmap
import os
import random
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

import modelshelf
from modelshelf.store import RefInfo, Store
from modelshelfd import storage
from modelshelfd.config import load_config
from modelshelfd.entry import State
from modelshelfd.errors import Busy
from modelshelfd.policy import Candidate, LRUPolicy
from modelshelfd.shelf import Lease, Shelf
from modelshelfd.storage import SHM_DIR
from modelshelfd.tiers import Copy, Tier, TierFull, TierName, cost


class AdmitAll(LRUPolicy):
    """LRU that lets every image try L1 first: the tests of the tiers' mechanics."""

    def admit(self, candidate: Candidate, free: int, now: float) -> bool:
        return True


def _accounted(tier: Tier) -> int:
    return sum(cost(c.size) for c in tier.copies.values()) + sum(cost(c.size) for c in tier.retired)


def _exact(shelf: Shelf) -> None:
    """Every tier's count equals what it holds, and never exceeds its budget while nothing is
    being filled; no copy is reserved for a request (none is waiting when this is called)."""
    busy = shelf.describe()
    for tier in (shelf.l1, shelf.l2):
        if not busy["inflight_fetches"] and not busy["promotions"] and not busy["l2_writes"]:
            assert tier.used == _accounted(tier), tier.name
        assert tier.used <= tier.budget, tier.name
        assert not tier.holds, f"{tier.name}: reservations left with no request waiting"
    # a write in flight may have renamed its file into place before its task adds the copy
    files = {p.name for p in shelf.disk.images.iterdir()}
    assert set(shelf.l2.copies) <= files <= set(shelf.l2.copies) | set(shelf.fetcher.l2_writes)


def _map(lease: Lease) -> mmap.mmap:
    return mmap.mmap(lease.fd, lease.copy.size, prot=mmap.PROT_READ)


def _shelf(tmp_path: Path, store: Store, prefix: str, l1: int, l2: int, **kw) -> Shelf:
    config = load_config(
        [
            "--cache-dir", str(tmp_path / "cache"),
            "--shm-prefix", prefix,
            "--l1-bytes", str(l1),
            "--l2-bytes", str(l2),
            "--socket", str(tmp_path / "s.sock"),
        ],
        {},
    )  # fmt: skip
    return Shelf(config, store, **kw)


async def _settled(shelf: Shelf) -> None:
    """Let the promotions and L2 writes running in the background finish."""
    await asyncio.gather(*shelf.fetcher.promotions.values(), *shelf.fetcher.l2_writes.values())


async def _closed(shelf: Shelf) -> None:
    await shelf.drain(10)
    shelf.close()


@pytest.fixture
async def setup(tmp_path: Path):
    prefix = f"mst-unit-{uuid.uuid4().hex[:8]}"
    store = Store((tmp_path / "store").as_uri())
    refs: list[RefInfo] = []
    for i in range(8):
        image = modelshelf.compile_tensors({"w": np.full(500 * (i + 1), i, dtype=np.float64)})
        refs.append(store.publish("ns", f"m{i}", image))
    total = sum(r.size for r in refs)
    shelf = _shelf(tmp_path, store, prefix, total // 3, total // 2)
    yield shelf, refs
    await _closed(shelf)
    assert not [p for p in SHM_DIR.iterdir() if p.name.startswith(prefix)]


async def test_accounting_through_random_operations(setup) -> None:
    shelf, refs = setup
    rng = random.Random(0)
    held: list[Copy] = []
    refused = 0
    for _ in range(400):
        action = rng.random()
        if action < 0.5:
            ref = rng.choice(refs)
            try:
                lease = await shelf.acquire(ref)
            except Busy:
                # refused only when neither tier can make room: both hold leases
                leased = shelf.l1.leased_bytes(), shelf.l2.leased_bytes()
                assert leased[0] + cost(ref.size) > shelf.l1.budget
                assert leased[1] + cost(ref.size) > shelf.l2.budget
                refused += 1
                continue
            assert lease.copy.leases >= 1 and lease.fd >= 0
            held.append(lease)
        elif action < 0.8 and held:
            shelf.release(held.pop(rng.randrange(len(held))))
        elif action < 0.9:
            shelf.evict(rng.choice(refs).digest)
        else:
            shelf.l2.evict(rng.choice(refs).digest)
        _exact(shelf)
    for lease in held:
        shelf.release(lease)
    assert not shelf.l1.retired and not shelf.l2.retired
    _exact(shelf)
    counters = shelf.counters()
    assert counters["l1_evictions"] > 0 and counters["l2_evictions"] > 0
    assert counters["served_page_cache"] > 0 and counters["served_l1"] > 0
    assert counters["l3_fetches"] >= 8
    assert refused == 0 or counters["l2_full"] > 0


async def test_a_leased_segment_outlives_its_eviction(setup) -> None:
    shelf, refs = setup
    lease = await shelf.acquire(refs[0])
    segment = lease.copy
    assert lease.found is TierName.L3 and segment.tier is TierName.L1 and segment.linked
    shelf.evict(refs[0].digest)
    assert not segment.linked and segment in shelf.l1.retired and segment.fd >= 0
    assert shelf.l1.used == cost(refs[0].size)  # still counted while leased
    mapped = _map(lease)
    assert modelshelf.load(mapped).tensors["w"][0] == 0.0
    shelf.release(lease)
    assert segment.fd == -1 and shelf.l1.used == 0
    assert modelshelf.load(mapped).tensors["w"].shape == (500,)  # our mapping stays valid
    mapped.close()


async def test_shared_memory_full_of_leases_serves_the_page_cache(setup) -> None:
    """L1 cannot evict leased images: the next acquire gets the verified L2 file's read-only
    descriptor (fetched from the store into L2 if needed), and the clients hear pressure."""
    base, refs = setup
    signals: list[int] = []
    small, big = refs[0], refs[5]
    config = dataclasses.replace(base.config, l1_bytes=cost(refs[1].size) + 100)
    shelf = Shelf(config, base.store, policy=AdmitAll(), on_pressure=lambda: signals.append(1))
    try:
        resident = await shelf.acquire(small)
        assert resident.copy.tier is TierName.L1
        lease = await shelf.acquire(big)  # larger than L1: straight into L2
        assert (lease.found, lease.copy.tier) == (TierName.L3, TierName.L2)
        assert not signals  # nothing a client could free would make room for it
        other = await shelf.acquire(refs[1])  # would fit L1, were it not leased
        assert (other.found, other.copy.tier) == (TierName.L3, TierName.L2)
        assert signals == [1] and shelf.stats["pressure_signals"] == 1
        flags = os.fstat(other.fd)
        assert flags.st_size == refs[1].size and flags.st_mode & 0o077 == 0
        assert fcntl.fcntl(other.fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
        with pytest.raises(OSError):
            os.write(other.fd, b"x")
        mapped = _map(other)
        assert modelshelf.load(mapped).tensors["w"][0] == 1.0
        mapped.close()
        assert shelf.stats["served_page_cache"] == 2 and shelf.stats["l3_to_l2"] == 2
        _exact(shelf)
        # the L1 lease ends: the next acquire of refs[1] is answered from the page cache at
        # once, while the file is promoted into shared memory for the requests that follow
        shelf.release(resident)
        served = await shelf.acquire(refs[1])
        assert (served.found, served.copy.tier) == (TierName.L2, TierName.L2)
        assert refs[1].digest in shelf.fetcher.promotions
        await _settled(shelf)
        promoted = await shelf.acquire(refs[1])
        assert (promoted.found, promoted.copy.tier) == (TierName.L1, TierName.L1)
        assert shelf.stats["promotions"] == 1
        for held in (lease, other, served, promoted):
            shelf.release(held)
        _exact(shelf)
        assert shelf.l2.describe()["leases"] == 0
        assert all(c.fd == -1 for c in shelf.l2.copies.values())  # no descriptor when idle
    finally:
        await _closed(shelf)


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_page_cache_lease_holds_no_descriptor_once_handed_out(setup) -> None:
    """Each L2 lease opens the file for its hand-off and closes it once handed out: leases on
    many files cost the daemon no descriptor each (they used to: one per leased file, which a
    node of thousands of page-cache models ran out of). The lease stays counted, the file
    stays on disk, and the mapping a client made stays valid."""
    base, refs = setup
    refs = refs[:3]  # all three fit in L2 together
    config = dataclasses.replace(base.config, l1_bytes=1)  # everything is served from L2
    shelf = Shelf(config, base.store)
    try:
        for ref in refs:  # fetched once, so that the baseline below has no fetch in flight
            shelf.release(await shelf.acquire(ref))
        await _settled(shelf)
        before = _open_descriptors()
        leases, maps = [], []
        for ref in refs * 3:  # three leases on each file
            lease = await shelf.acquire(ref)
            assert lease.copy.tier is TierName.L2 and lease.fd >= 0
            maps.append(_map(lease))  # what the client does with its copy of the descriptor
            shelf.handed(lease)
            assert lease.fd == -1
            leases.append(lease)
        assert _open_descriptors() == before + len(maps)  # Python's mmap keeps a dup of its own
        assert shelf.l2.describe()["leases"] == 3 * len(refs)
        assert all(shelf.l2.copies[r.digest].leases == 3 for r in refs)
        shelf.handed(leases[0])  # again: nothing to close, and no other descriptor is hit
        shelf.l2.evict(refs[0].digest)  # evicted while leased: counted until the last release
        assert shelf.l2.describe()["retired"] == 1
        for i, mapped in enumerate(maps):  # image i holds w[0] == i
            assert modelshelf.load(mapped).tensors["w"][0] == i % len(refs)
        for lease in leases:
            shelf.release(lease)
        await _settled(shelf)
        assert shelf.l2.describe()["leases"] == 0 and not shelf.l2.retired
        for mapped in maps:
            mapped.close()
        assert _open_descriptors() == before
        _exact(shelf)
    finally:
        await _closed(shelf)


async def test_a_lease_released_before_its_hand_off_closes_its_descriptor(setup) -> None:
    """A reply never sent (the client went away): the release closes the lease's descriptor."""
    base, refs = setup
    config = dataclasses.replace(base.config, l1_bytes=1)
    shelf = Shelf(config, base.store)
    try:
        shelf.release(await shelf.acquire(refs[1]))
        await _settled(shelf)
        before = _open_descriptors()
        lease = await shelf.acquire(refs[1])
        assert lease.fd >= 0 and _open_descriptors() == before + 1
        shelf.release(lease)
        assert lease.fd == -1 and _open_descriptors() == before
        shelf.handed(lease)  # the server's hand-off after a failed send: nothing left to close
        assert _open_descriptors() == before
    finally:
        await _closed(shelf)


async def test_an_l2_file_removed_while_mapped_stays_counted(setup) -> None:
    base, refs = setup
    config = dataclasses.replace(base.config, l1_bytes=1)  # everything is served from L2
    shelf = Shelf(config, base.store)
    try:
        lease = await shelf.acquire(refs[2])
        copy = lease.copy
        assert copy.tier is TierName.L2
        mapped = _map(lease)
        assert shelf.l2.evict(refs[2].digest)  # the file is gone from the directory ...
        assert not shelf.disk.path(refs[2].digest).exists()
        assert copy in shelf.l2.retired and shelf.l2.used == cost(refs[2].size)  # still counted
        assert modelshelf.load(mapped).tensors["w"][0] == 2.0
        again = await shelf.acquire(refs[2])  # a new copy is fetched beside the retired one
        assert again.copy is not copy and shelf.l2.used == 2 * cost(refs[2].size)
        shelf.release(lease)
        assert shelf.l2.used == cost(refs[2].size) and lease.fd == -1 and not shelf.l2.retired
        assert modelshelf.load(mapped).tensors["w"].shape == (1500,)
        mapped.close()
        shelf.release(again)
        _exact(shelf)
    finally:
        await _closed(shelf)


async def test_both_tiers_full_of_leases_is_busy_and_says_why(setup) -> None:
    base, refs = setup
    config = dataclasses.replace(
        base.config,
        l1_bytes=cost(refs[0].size) + 10,
        l2_bytes=cost(refs[0].size) + cost(refs[1].size) + 10,
    )
    shelf = Shelf(config, base.store)
    try:
        held = [await shelf.acquire(refs[0]), await shelf.acquire(refs[1])]
        assert [h.copy.tier for h in held] == [TierName.L1, TierName.L2]
        # refs[0]'s L2 write settles first: one still in flight makes the refusal wait for it
        # and try L2 once more (two l2_full where this test counts one)
        await _settled(shelf)
        with pytest.raises(Busy, match=r"every tier is full.*L1 .* leased.*MAX_HELD_BYTES"):
            await shelf.acquire(refs[2])
        assert shelf.stats["l2_full"] == 1
        _exact(shelf)
        shelf.release(held[1])  # L2 may now evict the released file
        third = await shelf.acquire(refs[2])
        assert third.copy.tier is TierName.L2
        shelf.release(third)
        shelf.release(held[0])
        _exact(shelf)
    finally:
        await _closed(shelf)


async def test_an_l2_write_cancelled_before_it_ran_gives_its_room_back(setup) -> None:
    """Shutdown's drain cancels the L2 writes still pending; one cancelled before its task
    ever ran had its room reserved (at spawn) and must give it back, not leave it counted."""
    base, refs = setup
    shelf = Shelf(base.config, base.store)
    try:
        lease = await shelf.acquire(refs[0])
        assert lease.copy.tier is TierName.L1
        await _settled(shelf)
        assert shelf.l2.evict(refs[0].digest)  # the L1 copy may now be written again
        before = (shelf.l2.used, shelf.l2.pending)
        task = shelf.fetcher._spawn_write(shelf.entries[refs[0].digest], lease.copy, None)
        assert task is not None and shelf.l2.pending == before[1] + 1  # its room reserved
        task.cancel()  # before the loop ever ran it
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled() and not shelf.fetcher.l2_writes
        assert (shelf.l2.used, shelf.l2.pending) == before
        assert not lease.copy.busy and not shelf.disk.path(refs[0].digest).exists()
        shelf.release(lease)
        _exact(shelf)
    finally:
        await _closed(shelf)


async def test_pressure_is_signalled_at_a_bounded_rate(setup) -> None:
    base, refs = setup
    now = [100.0]
    signals: list[float] = []
    config = dataclasses.replace(base.config, l1_bytes=cost(refs[3].size) + 10)
    shelf = Shelf(
        config,
        base.store,
        policy=AdmitAll(),
        clock=lambda: now[0],
        on_pressure=lambda: signals.append(1),
    )
    try:
        held = await shelf.acquire(refs[2])
        leases = [await shelf.acquire(r) for r in (refs[1], refs[3], refs[0])]
        assert [lease.copy.tier for lease in leases] == [TierName.L2] * 3
        assert len(signals) == 1  # three refusals by L1 within the same instant
        now[0] += 1.0
        leases.append(await shelf.acquire(refs[1]))  # still no room to promote it
        assert len(signals) == 2 == shelf.stats["pressure_signals"]
        for lease in [held, *leases]:
            shelf.release(lease)
    finally:
        await _closed(shelf)


async def _until(predicate, what: str, timeout: float = 10.0) -> None:
    """Yield to the loop until ``predicate()`` holds, or fail at the deadline, saying what for."""
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"waited {timeout:g} s for {what}") from None


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
    lease = await second
    assert lease.found is TierName.L3 and lease.copy.leases == 1 and lease.copy.linked
    assert shelf.entries[ref.digest].state is State.READY
    assert shelf.l1.copies[ref.digest] is lease.copy
    assert shelf.stats["l3_fetches"] == 1 and shelf.describe()["inflight_fetches"] == 0
    _exact(shelf)
    shelf.release(lease)


async def test_l2_budget_holds_while_its_only_victim_is_being_promoted(setup, monkeypatch) -> None:
    base, refs = setup
    big, other = refs[-1], refs[0]
    config = dataclasses.replace(base.config, l2_bytes=cost(big.size) + cost(other.size) - 1)
    shelf = Shelf(config, base.store, policy=AdmitAll())  # the two cannot both be in L2
    try:
        first = await shelf.acquire(big)
        shelf.release(first)
        shelf.evict(big.digest)  # now only in L2
        gate = threading.Event()
        real_copy = storage.copy_from

        def slow_copy(path):
            fill = real_copy(path)

            def blocked(view: memoryview) -> None:
                assert gate.wait(10)
                fill(view)

            return blocked

        monkeypatch.setattr(storage, "copy_from", slow_copy)
        served = await shelf.acquire(big)  # the page cache answers; the promotion blocks
        assert (served.found, served.copy.tier) == (TierName.L2, TierName.L2)
        shelf.release(served)  # unleased, but being read by the promotion
        assert big.digest in shelf.fetcher.promotions
        second = await shelf.acquire(other)  # L3: wants L2 room, the only victim is busy
        assert second.found is TierName.L3 and second.copy.tier is TierName.L1
        assert shelf.l2.used <= shelf.l2.budget
        assert shelf.stats["l2_skipped"] == 1 and other.digest not in shelf.l2.copies
        gate.set()
        await _settled(shelf)
        promoted = await shelf.acquire(big)
        assert promoted.found is TierName.L1 and promoted.copy.tier is TierName.L1
        _exact(shelf)
        shelf.release(promoted)
        shelf.release(second)
    finally:
        gate.set()
        await _closed(shelf)


async def test_adoption_respects_budgets_that_shrank(setup) -> None:
    """A restart with a smaller L2 budget adopts the files it finds, then evicts down to the
    budget; L1 starts empty (segments end with their daemon) and fills again from L2."""
    first, refs = setup
    for ref in refs[:3]:
        lease = await first.acquire(ref)
        first.release(lease)
    held = sum(cost(r.size) for r in refs[:3])
    assert first.l1.used == held and first.l2.used == held
    await _settled(first)  # the page-cache files are written after the replies (a stop drains)
    config = dataclasses.replace(first.config, l2_bytes=held // 2)
    second = Shelf(config, first.store)  # the "restarted" daemon: same cache
    try:
        await second.adopt()
        assert second.l1.used == 0 and 0 < second.l2.used <= config.l2_bytes
        # "found and kept" (operations.md): it counted the 3 files found, evicted ones too
        assert 0 < second.stats["adopted_l2"] == len(second.l2.copies) < 3
        kept = next(r for r in refs[:3] if r.digest in second.l2.copies)
        lease = await second.acquire(kept)
        assert lease.found is TierName.L2 and second.stats["l3_fetches"] == 0
        second.release(lease)
        _exact(second)
    finally:
        await _closed(second)


async def test_an_adopted_l2_file_of_the_wrong_size_is_refetched(setup) -> None:
    first, refs = setup
    ref = refs[2]
    lease = await first.acquire(ref)
    first.release(lease)
    await _settled(first)  # its L2 file is written after the reply
    first.evict(ref.digest)
    path = first.disk.path(ref.digest)
    with open(path, "ab") as fh:
        fh.write(b"\0" * 8)  # the image's bytes are intact, the file is longer
    second = Shelf(first.config, first.store)  # a restart: adopts the L2 file as it is
    try:
        await second.adopt()
        lease = await second.acquire(ref)
        await _settled(second)
        assert lease.found is TierName.L3 and second.stats["validation_failures"] == 1
        assert path.stat().st_size == ref.size == second.entries[ref.digest].size
        assert second.l2.used == sum(cost(p.stat().st_size) for p in second.disk.images.iterdir())
        _exact(second)
        second.release(lease)
    finally:
        await _closed(second)


async def test_an_adopted_l2_file_is_verified_before_the_page_cache_serves_it(setup) -> None:
    """A file a previous run left is checked (length, structure, sha256) before its
    descriptor reaches any client; a damaged one is discarded and refetched."""
    first, refs = setup
    ref = refs[3]
    lease = await first.acquire(ref)
    first.release(lease)
    await _settled(first)  # its L2 file is written after the reply
    first.evict(ref.digest)
    path = first.disk.path(ref.digest)
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF  # same length, one array byte flipped
    path.write_bytes(bytes(data))
    config = dataclasses.replace(first.config, l1_bytes=1)  # L1 takes nothing: serve the file
    second = Shelf(config, first.store)
    try:
        await second.adopt()
        assert not second.l2.copies[ref.digest].verified
        assert second.l2.lease(ref.digest) is None  # never handed out unverified
        lease = await second.acquire(ref)
        assert lease.copy.tier is TierName.L2 and lease.found is TierName.L3
        assert second.stats["validation_failures"] == 1
        mapped = _map(lease)
        assert modelshelf.load(mapped, verify=True).tensors["w"][0] == 3.0
        mapped.close()
        second.release(lease)
        _exact(second)
    finally:
        await _closed(second)


async def test_an_image_used_once_never_pushes_out_the_working_set(setup) -> None:
    """Admission (LRUPolicy): while L1 has room everything enters it; once L1 is full, an
    image's first use is served from the page cache and only its second use enters L1."""
    base, refs = setup
    config = dataclasses.replace(base.config, l1_bytes=cost(refs[0].size) + cost(refs[1].size))
    shelf = Shelf(config, base.store)
    try:
        for ref in refs[:2]:  # room: both enter L1
            lease = await shelf.acquire(ref)
            assert lease.copy.tier is TierName.L1
            shelf.release(lease)
        # their L2 writes done: a copy still read by one is busy, no victim, and the promotion
        # below would find no room (refused, a later request promotes it; failed under load)
        await _settled(shelf)
        once = await shelf.acquire(refs[2])  # L1 full (of unleased images): not admitted
        assert (once.found, once.copy.tier) == (TierName.L3, TierName.L2)
        assert set(shelf.l1.copies) == {refs[0].digest, refs[1].digest}
        assert shelf.stats["l1_not_admitted"] == 1 and shelf.counters()["l1_evictions"] == 0
        shelf.release(once)
        again = await shelf.acquire(refs[2])  # second use: promoted, the LRU image goes
        assert (again.found, again.copy.tier) == (TierName.L2, TierName.L2)
        await _settled(shelf)
        assert refs[2].digest in shelf.l1.copies and refs[0].digest not in shelf.l1.copies
        shelf.release(again)
        _exact(shelf)
    finally:
        await _closed(shelf)


async def test_a_reservation_that_cannot_be_made_evicts_nothing(setup) -> None:
    """The CI flake under load: a promotion needing more room than the copies that may go
    hold (the other one busy, its L2 write still reading it) evicted the first all the same,
    then was refused: a reload paid for nothing placed."""
    base, refs = setup
    budget = cost(refs[0].size) + cost(refs[1].size)
    shelf = Shelf(dataclasses.replace(base.config, l1_bytes=budget), base.store)
    try:
        for ref in refs[:2]:
            shelf.release(await shelf.acquire(ref))
        await _settled(shelf)
        l1 = shelf.l1
        l1.copies[refs[1].digest].busy = True  # as while its L2 write reads it
        before = (set(l1.copies), l1.used, l1.pending, l1.evictions)
        residents = len(l1.policy)  # type: ignore[arg-type]
        with pytest.raises(TierFull):
            l1.reserve(budget)  # needs both copies gone: one may not go
        assert (set(l1.copies), l1.used, l1.pending, l1.evictions) == before
        assert len(l1.policy) == residents  # type: ignore[arg-type]  # still ranked as residents
        assert l1.policy.priority(refs[0].digest, shelf.clock()) is not None  # type: ignore[attr-defined]
        l1.copies[refs[1].digest].busy = False
        l1.reserve(budget)  # now it can: both go, and only then
        assert not l1.copies and l1.evictions == 2 and l1.pending == 1
        l1.unreserve(budget)
        _exact(shelf)
    finally:
        await _closed(shelf)


async def test_not_admitted_and_l2_full_of_leases_takes_l1_after_all(setup) -> None:
    """Admission never causes a refusal: when L2 cannot take an image the policy kept out of
    L1, L1 takes it (by evicting unleased images)."""
    base, refs = setup
    config = dataclasses.replace(
        base.config, l1_bytes=cost(refs[2].size), l2_bytes=cost(refs[2].size)
    )
    shelf = Shelf(config, base.store)
    try:
        first = await shelf.acquire(refs[0])  # fits the free room of L1 (and L2)
        shelf.release(first)
        held = await shelf.acquire(refs[2])  # does not fit L1's free room: not admitted
        assert held.copy.tier is TierName.L2  # L2 is now full of a lease
        lease = await shelf.acquire(refs[1])  # not admitted, L2 full of leases: L1 after all
        assert lease.copy.tier is TierName.L1 and lease.found is TierName.L3
        assert shelf.stats["l1_not_admitted"] == 2 and refs[0].digest not in shelf.l1.copies
        for done in (lease, held):
            shelf.release(done)
        _exact(shelf)
    finally:
        await _closed(shelf)


class _Recording(LRUPolicy):
    """LRU that records which tier asked it for victims."""

    def __init__(self) -> None:
        self.asked = 0

    def victims(self, candidates, need: int, now: float) -> list[str]:
        self.asked += 1
        return super().victims(candidates, need, now)


async def test_each_tier_has_its_own_policy_and_the_clock_is_injected(setup) -> None:
    """L1 and L2 evict through the policy each was given, ordered by the injected clock."""
    base, refs = setup
    now = [1000.0]
    l1_policy, l2_policy = _Recording(), _Recording()
    small = refs[:3]
    config = dataclasses.replace(
        base.config,
        l1_bytes=cost(small[0].size) + cost(small[1].size),
        l2_bytes=sum(cost(r.size) for r in small) - 1,  # one file must go for the third
    )
    shelf = Shelf(config, base.store, policy=l1_policy, l2_policy=l2_policy, clock=lambda: now[0])
    try:
        for ref in small[:2]:
            lease = await shelf.acquire(ref)
            shelf.release(lease)
            await _settled(shelf)  # its L2 file is written after the reply
            now[0] += 10.0
        hit = await shelf.acquire(small[0])  # small[0] is now the most recently used
        shelf.release(hit)
        now[0] += 10.0
        third = await shelf.acquire(small[2])  # not admitted to L1; L2 must evict
        shelf.release(third)
        assert l2_policy.asked >= 1 and l1_policy.asked == 0
        assert small[1].digest not in shelf.l2.copies  # the least recently used file went
        assert small[0].digest in shelf.l2.copies
        _exact(shelf)
    finally:
        await _closed(shelf)


async def test_a_namespace_share_keeps_one_tenant_from_filling_the_shelf(tmp_path: Path) -> None:
    """Tenant "a" may pin half of L1 and half of L2: past its L1 share it is served from the
    page cache, past both it is refused (naming itself), and tenant "b" still gets L1."""
    store = Store((tmp_path / "store").as_uri())
    refs = {
        f"{ns}{i}": store.publish(
            ns, f"m{i}", modelshelf.compile_tensors({"w": np.full(4000, i, dtype=np.float64)})
        )
        for ns in ("a", "b")
        for i in range(5)
    }
    one = cost(refs["a0"].size)
    assert all(cost(r.size) == one for r in refs.values())
    config = load_config(
        [
            "--cache-dir", str(tmp_path / "cache"),
            "--shm-prefix", f"mst-unit-{uuid.uuid4().hex[:8]}",
            "--l1-bytes", str(4 * one),
            "--l2-bytes", str(4 * one),
            "--socket", str(tmp_path / "s.sock"),
            "--namespaces", '{"a": {"uids": [0], "l1_share": 0.5, "l2_share": 0.5}, "b": {}}',
        ],
        {},
    )  # fmt: skip
    shelf = Shelf(config, store, policy=AdmitAll())
    try:
        a = [await shelf.acquire(refs[f"a{i}"]) for i in range(4)]
        assert [lease.copy.tier for lease in a] == [TierName.L1] * 2 + [TierName.L2] * 2
        assert shelf.stats["share_fallbacks"] == 2
        with pytest.raises(Busy, match=r"namespace 'a' holds its share of the shelf \(L1 "):
            await shelf.acquire(refs["a4"])
        b = [await shelf.acquire(refs[f"b{i}"]) for i in range(2)]
        assert [lease.copy.tier for lease in b] == [TierName.L1] * 2
        rows = shelf.describe()["namespaces"]["a"]
        assert rows["l1"]["leased_bytes"] == rows["l2"]["leased_bytes"] == 2 * one
        assert "b" not in shelf.describe()["namespaces"]
        again = await shelf.acquire(refs["a0"])  # a copy it pins already costs nothing more
        assert again.copy is a[0].copy
        shelf.release(again)
        shelf.release(a[0])  # now "a" has room in L1 again
        assert (await shelf.acquire(refs["a4"])).copy.tier is TierName.L1
        _exact(shelf)
    finally:
        await _closed(shelf)


async def test_the_cost_policy_learns_reload_costs_and_ls_shows_them(setup) -> None:
    """The default policy is told of every load: ls shows each image's priority and reload
    cost, and L1's oldest idle image."""
    shelf, refs = setup
    assert type(shelf.l1.policy).__name__ == "CostAwarePolicy"
    lease = await shelf.acquire(refs[0])
    shelf.release(lease)
    await _settled(shelf)  # the L2 copy written after the reply
    row = next(r for r in shelf.listing(4) if r["digest"] == refs[0].digest)
    assert row["l1_priority"] is not None and row["l1_priority"] > 0
    assert row["l2_reload_seconds"] > 0 and row["l1_reload_seconds"] > 0
    # fetched from the store into L1: the store read is measured, a load from L2 not yet
    assert row["l2_reload_measured"] is True and row["l1_reload_measured"] is False
    assert shelf.evict(refs[0].digest)
    shelf.release(await shelf.acquire(refs[0]))  # from L2 this time: measured
    await _settled(shelf)  # promoted into L1 after the reply
    row = next(r for r in shelf.listing(4) if r["digest"] == refs[0].digest)
    assert row["l1_reload_measured"] is True and row["l1_priority"] > 0
    assert shelf.describe()["l1_oldest_seconds"] >= 0
    lru = Shelf(dataclasses.replace(shelf.config, policy="lru"), shelf.store)
    try:
        lease = await lru.acquire(refs[1])
        lru.release(lease)
        (row,) = lru.listing(4)
        assert isinstance(lru.l1.policy, LRUPolicy) and "l1_priority" not in row
    finally:
        await _closed(lru)


class _Counting(AdmitAll):
    """Admits every image and counts the requests it is told of."""

    def __init__(self) -> None:
        self.requests = 0

    def on_request(self, key: str, size: int, now: float) -> None:
        self.requests += 1


async def test_a_resident_lease_counts_its_hit_as_the_ordinary_path_does(setup) -> None:
    """The daemon's fast path takes the lease (``lease_if_resident``), replies, then counts the
    hit (``count_resident_hit``): the lease alone changes no count, and the two together count
    what an L1 hit through ``acquire`` counts."""
    base, refs = setup
    l1_policy, l2_policy = _Counting(), _Counting()
    shelf = Shelf(base.config, base.store, policy=l1_policy, l2_policy=l2_policy)
    ref = refs[0]
    try:
        shelf.release(await shelf.acquire(ref))  # fetched into L1
        entry = shelf.entries[ref.digest]

        def counts() -> tuple[int, ...]:
            return (shelf.stats["l1_hits"], entry.hits, l1_policy.requests, l2_policy.requests)

        before = counts()
        shelf.release(await shelf.acquire(ref))  # an L1 hit through the ordinary path
        ordinary = tuple(b - a for a, b in zip(before, counts(), strict=True))
        assert ordinary == (1, 1, 1, 1)

        before = counts()
        lease = shelf.lease_if_resident(ref)
        assert lease is not None and lease.found is TierName.L1 and lease.copy.leases == 1
        assert counts() == before, "the lease alone must leave the counts to count_resident_hit"
        shelf.count_resident_hit(ref)
        fast = tuple(b - a for a, b in zip(before, counts(), strict=True))
        assert fast == ordinary, f"fast path counted {fast}, the ordinary path {ordinary}"
        assert f"{ref.key}@{ref.version}" in entry.labels
        shelf.release(lease)
        assert shelf.l1.copies[ref.digest].leases == 0
        _exact(shelf)
    finally:
        await _closed(shelf)


def _gate_waiters(shelf: Shelf, digest: str, monkeypatch) -> tuple[asyncio.Event, list[str]]:
    """Keep every requester of ``digest`` between its fetch's end and its next step (the
    lease) until the returned event is set: the interleaving in which other requests' loads
    run on the loop first. The list gets one item per requester held there."""
    gate, held = asyncio.Event(), []
    real = shelf.fetcher.ensure

    async def ensure(wanted: str, begin, end) -> TierName:
        found = await real(wanted, begin, end)
        if wanted == digest:
            held.append(wanted)
            await gate.wait()
        return found

    monkeypatch.setattr(shelf.fetcher, "ensure", ensure)
    return gate, held


def _one_at_a_time(base: Shelf, refs: list[RefInfo]) -> Shelf:
    """L1 holds refs[1] or refs[2], never both; L2 holds both."""
    config = dataclasses.replace(base.config, l1_bytes=cost(refs[2].size) + 100)
    return Shelf(config, base.store, policy=AdmitAll())


async def test_a_fresh_copy_is_not_a_victim_before_its_waiter_leases_it(setup, monkeypatch) -> None:
    """The CI flake (ShelfBusy "keeps being evicted"): a fetch puts the image into L1, and
    before its requester resumes another request's load needs the room. The fresh copy is
    reserved for its requester, so the other load goes to the page cache; the requester then
    leases the very copy its fetch made, with no second fetch."""
    base, refs = setup
    fresh, other = refs[1], refs[2]
    shelf = _one_at_a_time(base, refs)
    gate, held = _gate_waiters(shelf, fresh.digest, monkeypatch)
    try:
        waiter = asyncio.create_task(shelf.acquire(fresh))
        await _until(lambda: held == [fresh.digest], "the fetch ended, its requester held")
        made = shelf.l1.copies[fresh.digest]
        racer = await shelf.acquire(other)  # wants L1 room; the only other copy is reserved
        assert made.linked and shelf.l1.copies.get(fresh.digest) is made, (
            "the fresh copy was evicted before its requester could lease it"
        )
        assert (racer.found, racer.copy.tier) == (TierName.L3, TierName.L2)
        assert shelf.l1.used <= shelf.l1.budget and shelf.stats["l1_full"] == 1
        gate.set()
        lease = await waiter
        assert lease.copy is made and lease.found is TierName.L3
        assert shelf.stats["l3_fetches"] == 2 and shelf.stats["served_page_cache"] == 1
        assert not shelf.l1.holds and not shelf.l2.holds
        _exact(shelf)
        # leased, then released: an ordinary copy again, which the next load may evict
        shelf.release(lease)
        shelf.release(racer)
        served = await shelf.acquire(other)  # from L2; promoted into L1 in the background
        await _settled(shelf)
        assert fresh.digest not in shelf.l1.copies and not made.linked
        assert other.digest in shelf.l1.copies
        shelf.release(served)
        _exact(shelf)
    finally:
        gate.set()
        await _closed(shelf)


async def test_a_cancelled_waiter_gives_its_reservation_back(setup, monkeypatch) -> None:
    """Two requests wait on one fetch: the first going away (a disconnect) leaves the copy
    reserved for the second; the second going away too leaves nothing reserved, and the next
    load evicts the copy as any other. A leaked reservation would keep it forever."""
    base, refs = setup
    fresh, other = refs[1], refs[2]
    shelf = _one_at_a_time(base, refs)
    gate, held = _gate_waiters(shelf, fresh.digest, monkeypatch)
    try:
        first = asyncio.create_task(shelf.acquire(fresh))
        second = asyncio.create_task(shelf.acquire(fresh))
        await _until(lambda: len(held) == 2, "both requesters held after the fetch")
        assert shelf.stats["fetch_waits"] == 1
        made = shelf.l1.copies[fresh.digest]
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        racer = await shelf.acquire(other)
        assert made.linked and (racer.found, racer.copy.tier) == (TierName.L3, TierName.L2)
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)
        assert first.cancelled() and second.cancelled()
        assert not shelf.l1.holds and not shelf.l2.holds
        assert made.leases == 0
        shelf.release(racer)
        served = await shelf.acquire(other)  # from L2; its promotion may evict the copy now
        await _settled(shelf)
        assert fresh.digest not in shelf.l1.copies and not made.linked
        assert other.digest in shelf.l1.copies
        shelf.release(served)
        _exact(shelf)
    finally:
        gate.set()
        await _closed(shelf)


async def test_cold_fetches_that_overlap_wait_for_each_other_rather_than_refuse(setup) -> None:
    """A slow store and three cold images where L2 holds two and L1 none: the third fetch
    found L2's room reserved by the other two and was refused busy ("clients hold the leases",
    with nothing leased) and every client told to trim. It waits for a fill to end now, and
    evicts that unleased copy; bounded in time, not in wake-ups (on a node with lease traffic
    the first bound, 8 wake-ups, ran out in milliseconds: a second probe)."""
    base, refs = setup
    images = refs[5:8]
    l2 = cost(images[1].size) + cost(images[2].size) + 4096
    config = dataclasses.replace(base.config, l1_bytes=1, l2_bytes=l2)
    signals: list[int] = []
    shelf = Shelf(config, base.store, on_pressure=lambda: signals.append(1))
    read = shelf.fetcher.store.read_image

    def slow(*args, **kwargs):  # a distant bucket: each read takes a while
        time.sleep(0.3)
        return read(*args, **kwargs)

    shelf.fetcher.store.read_image = slow  # type: ignore[method-assign]

    async def use(ref: RefInfo) -> None:  # a client that maps the model, predicts, lets go
        lease = await shelf.acquire(ref)
        assert lease.copy.tier is TierName.L2 and lease.copy.digest == ref.digest
        shelf.release(lease)

    async def churn() -> None:  # leases ending elsewhere on a busy node: each wakes the wait
        while True:
            shelf.fetcher.room_changed()
            await asyncio.sleep(0.001)

    try:
        other = asyncio.get_running_loop().create_task(churn())
        try:
            await asyncio.gather(*(use(r) for r in images))
        finally:
            other.cancel()
        assert shelf.stats["l2_full"] >= 1  # the third did meet a full L2
        assert not signals
        _exact(shelf)
    finally:
        await _closed(shelf)


async def test_an_image_larger_than_l1_counts_as_l1_full_not_as_kept_out(setup) -> None:
    """The policy never had a choice: 'l1_not_admitted' (kept out on its first use while L1
    was full) counted it at every use, with L1 empty, and 'l1_full' never (a probe)."""
    base, refs = setup
    config = dataclasses.replace(base.config, l1_bytes=cost(refs[0].size))
    shelf = Shelf(config, base.store)
    try:
        for _ in range(2):
            shelf.release(await shelf.acquire(refs[7]))
        assert shelf.stats["l1_full"] == 2 and shelf.stats["l1_not_admitted"] == 0
        assert shelf.stats["served_page_cache"] == 2
    finally:
        await _closed(shelf)
