"""The fetcher: brings an image onto the node, into the tier the policy and the budgets allow.

    from L2     make sure the file is verified and let the page cache serve this request;
                promote the file into a new L1 segment in the background (if admitted and L1
                can make room), for the requests that follow
    from L3     read the store into a new L1 segment (if admitted), the request is answered from
                it and the segment is written to an L2 file in the background; else straight
                into an L2 file; else into L1 after all; else refuse (``Busy``)

Every copy is filled in reserved room (``Reservation``: given back unless the copy is added)
and verified by ``storage`` before it is added to a tier; a store copy that fails validation is
read once more. Blocking work runs in threads. Single flight: one fetch per image at a time,
a task of its own that every requester awaits, at most ``max_inflight_fetches`` at once.
Background work (promotions into L1, L2 writes of new segments) is single per image and bounded
the same way; whatever needs its result waits for it (``settle``, ``load``, ``copy_down``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import mmap
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from modelshelf.errors import ImageError, ImageMissing, ModelNotFound
from modelshelf.store import Store

from . import machine, storage
from .config import Config
from .entry import Entry
from .errors import OUT_OF_DESCRIPTORS, Busy, out_of_descriptors
from .policy import Candidate, Policy
from .ratelog import RateLimited
from .storage import Disk
from .tiers import Copy, PageCache, SharedMemory, Tier, TierFull, TierName, cost

log = logging.getLogger("modelshelfd.shelf")
# a full disk or shared memory fails every image alike: one line per kind per 10 s, counted
_limited = RateLimited(log, interval=10.0)

PRESSURE_INTERVAL = 0.1  # seconds between two pressure signals to the clients
STORE_ATTEMPTS = 2  # reads of an image whose store copy fails validation, before refusing it
# seconds a fetch that found both tiers full may wait, in all, for the room held only for a
# moment (fills, requests between their fetch and their lease) before it is refused; it tries
# again whenever room may have come free, at most every ROOM_RETRY seconds
ROOM_WAIT = 2.0
ROOM_RETRY = 0.01

Fill = Callable[[memoryview], None]
T = TypeVar("T")


@dataclass
class Reservation:
    """Room reserved in a tier for one copy being filled (``granted``); ``used`` once the
    copy is added, else the room is given back."""

    granted: bool
    used: bool = False

    def __bool__(self) -> bool:
        return self.granted


class Fetcher:
    """Brings an image onto the node, into the tier the policy and the budgets allow."""

    def __init__(
        self,
        config: Config,
        store: Store,
        disk: Disk,
        tiers: tuple[SharedMemory, PageCache],
        policy: Policy,
        clock: Callable[[], float],
        stats: Counter[str],
        on_pressure: Callable[[], object],
    ) -> None:
        self.config, self.store, self.disk = config, store, disk
        self.l1, self.l2 = tiers
        self.policy, self.clock, self.stats = policy, clock, stats
        self.on_pressure = on_pressure
        self.on_copy: Callable[[Entry], object] = lambda entry: None  # a copy was added late
        # an image was brought from a tier ("l2": its file copied into L1, "l3": the store)
        # in so many seconds: the metrics' fetch histogram
        self.on_fetched: Callable[[str, float], object] = lambda tier, seconds: None
        self.promotions: dict[str, asyncio.Task[None]] = {}  # in the background, by digest
        # L2 files being written from new segments after their fetch replied, by digest
        self.l2_writes: dict[str, asyncio.Task[None]] = {}
        self._aborts: dict[str, threading.Event] = {}  # theirs, by digest (cancel_write)
        self._unwanted: set[str] = set()  # of those, evicted (admin) before they were added
        self.fetch_seconds: dict[str, float] = {}  # the last store read, until L2 has the copy
        # seconds spent bringing images into each tier: L1 from L2 files, L2 (or L1) from the store
        self.reload_seconds = {"l1": 0.0, "l2": 0.0}
        # bytes the daemon may still map (None: no RLIMIT_AS), and what store reads hold of it
        self.address_space_left: Callable[[], int | None] = machine.address_space_left
        self._mapping = 0
        self.inflight: dict[str, asyncio.Task[TierName]] = {}  # fetches, by digest
        self._slots = asyncio.Semaphore(config.max_inflight_fetches)
        self.filling = 0  # rooms reserved for copies being filled (_room)
        # set when room may have come free: a fill ended, a request let go of its hold, a
        # lease ended (``room_changed``); fetches that found the tiers full wait for it
        self._room_changed = asyncio.Event()
        self._waiting: dict[str, int] = {}  # fetches waiting for room, by digest
        self._last_pressure = float("-inf")

    async def ensure(
        self, digest: str, begin: Callable[[], Entry], end: Callable[[Entry], object]
    ) -> TierName:
        """Bring the image onto the node once however many ask: the first request starts a
        task of its own (a requester that goes away never cancels it for the others), the
        others wait for it. ``begin`` gives the image's entry when its turn comes, ``end``
        is called with it when the fetch is over."""
        task = self.inflight.get(digest)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch(digest, begin, end))
            task.add_done_callback(functools.partial(self._forget, digest))
            self.inflight[digest] = task
        else:
            self.stats["fetch_waits"] += 1
        return await asyncio.shield(task)

    async def _fetch(
        self, digest: str, begin: Callable[[], Entry], end: Callable[[Entry], object]
    ) -> TierName:
        async with self._slots:
            if digest in self.l1.copies:  # promoted while this fetch waited for a slot
                return TierName.L1
            entry = begin()
            try:
                return await self.load(entry)
            finally:
                end(entry)

    def _forget(self, digest: str, task: asyncio.Task[TierName]) -> None:
        if self.inflight.get(digest) is task:
            del self.inflight[digest]
        # a fetch whose requesters all went away still ends: its error is logged, not
        # "never retrieved"
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.debug("fetch ended with %s: %s", type(exc).__name__, exc)

    async def drain(self, timeout: float) -> None:
        """Let fetches, promotions and L2 writes in flight finish (their threads cannot be
        interrupted) up to ``timeout`` seconds, then cancel what is left (an L2 write stops at
        its next chunk and removes its temp file before its task ends). A fetch that ends
        meanwhile may start an L2 write: drained too, within the same deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        while tasks := [
            *self.inflight.values(), *self.promotions.values(), *self.l2_writes.values()
        ]:  # fmt: skip
            _, pending = await asyncio.wait(tasks, timeout=max(deadline - loop.time(), 0.0))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def load(self, entry: Entry) -> TierName:
        """Bring the image onto the node; the tier it was found in (L2 or L3)."""
        digest = entry.digest
        # an L2 file still being written (its L1 copy evicted meanwhile): the file, once there,
        # serves this request; no second write of it races the first
        await self._written(digest)
        l2 = self.l2.copies.get(digest)
        if l2 is not None and l2.size != entry.size:
            # an adopted L2 file of another length cannot hold this image: the ref's size is
            # checked against the bytes (sha256), the file's is not; never count by it
            log.warning("L2 copy of %s has the wrong size, discarded", digest[:12])
            self.stats["validation_failures"] += 1
            self.l2.evict(digest)
            l2 = None
        if l2 is not None and await self._from_l2(entry, l2):
            return TierName.L2
        await self._from_store(entry)
        return TierName.L3

    async def _from_l2(self, entry: Entry, l2: Copy) -> bool:
        """Make the L2 copy servable (verified) and, if the policy admits the image and L1
        can make room, promote it in the background: this request is answered from the page
        cache at once, later ones from L1. False if the copy turned out bad (it is dropped and
        the image must come from the store)."""
        if not l2.verified:  # a file a previous run left: checked before anyone maps it
            l2.busy = True
            try:
                await asyncio.to_thread(self.disk.verify, entry.digest, entry.size)
            except (ImageError, FileNotFoundError) as exc:
                self._discard_l2(entry, exc)
                return False
            finally:
                l2.busy = False
            l2.verified = True
        self._promote_later(entry, l2)
        return True

    def _discard_l2(self, entry: Entry, exc: Exception) -> None:
        self.stats["validation_failures"] += isinstance(exc, ImageError)
        log.warning("L2 copy of %s discarded: %s", entry.digest[:12], exc)
        self.l2.evict(entry.digest)

    def _promote_later(
        self, entry: Entry, l2: Copy, *, admit: bool = True
    ) -> asyncio.Task[None] | None:
        """Start copying the L2 file into a new segment (reserved now) if the policy admits
        the image (or ``admit`` is False: a pin asks for L1) and L1 can make room; at most one
        promotion per image at a time. The promotion's task, if one runs."""
        digest = entry.digest
        if digest in self.promotions:
            return self.promotions[digest]
        if digest in self.l1.copies:
            return None
        if admit and len(self.promotions) >= self.config.max_inflight_fetches:
            return None  # bounded like fetches; a later request promotes it
        if admit and not self._admit(entry):
            return None
        if not self._try_reserve(self.l1, entry.size):
            return None
        l2.busy = True  # read by the copy: not a victim meanwhile
        task = asyncio.get_running_loop().create_task(self._promote(entry, l2))
        self.promotions[digest] = task

        def done(task: asyncio.Task[None]) -> None:
            del self.promotions[digest]
            l2.busy = False
            if not task.cancelled() and (exc := task.exception()) is not None:
                log.error("promotion of %s failed: %s", digest[:12], exc)

        task.add_done_callback(done)
        return task

    async def to_l1(self, entry: Entry) -> None:
        """Copy the image's verified L2 file into L1 whatever the admission policy says, if
        L1 can make room (a pin: the operator asked for it), and wait for it."""
        l2 = self.l2.copies.get(entry.digest)
        if l2 is not None and l2.verified:
            task = self._promote_later(entry, l2, admit=False)
            if task is not None:
                await asyncio.wait([task])

    async def _promote(self, entry: Entry, l2: Copy) -> None:
        """The background copy of ``_promote_later``, in the L1 room it reserved."""
        with self._room(self.l1, entry.size, granted=True) as room:
            fill = storage.copy_from(self.disk.path(entry.digest))
            try:
                if await self._new_segment(entry, fill, room, from_l2=True) is None:
                    return
            except (ImageError, FileNotFoundError) as exc:
                self._discard_l2(entry, exc)
                return
        l2.verified = True  # create_segment verified the bytes it read from the file
        self.stats["promotions"] += 1
        self.on_copy(entry)

    async def settle(self, digest: str) -> None:
        """Wait for the image's promotion and L2 write in flight, if any (``pin`` needs the L1
        copy; ``prefetch`` reports the tiers the image ends up in)."""
        task = self.promotions.get(digest)
        if task is not None:
            await asyncio.wait([task])
        await self._written(digest)

    async def _written(self, digest: str) -> None:
        """Wait for the image's L2 write in flight, if any (it ends however it ends)."""
        task = self.l2_writes.get(digest)
        if task is not None:
            await asyncio.wait([task])

    async def _new_segment(
        self, entry: Entry, fill: Fill, room: Reservation, *, from_l2: bool = False
    ) -> storage.Segment | None:
        """Create the image's segment through ``fill`` (verified) in reserved room and add it
        to L1; None if shared memory itself fails (the caller serves the image from L2). A copy
        from the L2 file (``from_l2``) is what reloading it into L1 costs: the L1 policy learns
        its time."""
        name = self._segment_name(entry.digest)
        started = time.monotonic()
        try:
            segment: storage.Segment = await asyncio.to_thread(
                storage.create_segment, name, entry.digest, entry.size, fill
            )
        except FileNotFoundError:  # the L2 file vanished: not a shared-memory failure
            raise
        except OSError as exc:  # out of memory (ENOSPC, ENOMEM) or of descriptors (EMFILE)
            self.stats["shm_errors"] += 1
            _limited.log(
                logging.ERROR, f"shm/{exc.errno}",
                "cannot place image %s in shared memory (%s); serving it from local disk",
                entry.digest[:12], exc,
            )  # fmt: skip
            return None
        if from_l2:
            seconds = time.monotonic() - started
            self._loaded(self.l1, entry, seconds)
            self.stats["l1_bytes_loaded"] += entry.size
            self._fetched("l2", seconds)
        self.l1.add(SharedMemory.copy_of(segment))
        room.used = True
        return segment

    def _fetched(self, source: str, seconds: float) -> None:
        """An image came from ``source`` ("l2": its file into L1; "l3": the store) in
        ``seconds``: the reload seconds of the tier it came into, and the metrics' histogram."""
        self.reload_seconds["l1" if source == "l2" else "l2"] += seconds
        self.on_fetched(source, seconds)

    def _loaded(self, tier: Tier, entry: Entry, seconds: float | None) -> None:
        """Tell ``tier``'s policy how long bringing the image from the tier below took."""
        if seconds is not None:
            tier.policy.on_load(entry.digest, cost(entry.size), seconds, self.clock())

    # -- L3 -> L1 (and L2), or L3 -> L2 ---------------------------------------------------------

    async def _from_store(self, entry: Entry) -> None:
        """Into L1 (and L2) if the policy admits it; else, or if shared memory cannot take
        it, straight into an L2 file served from the page cache; if L2 cannot take it
        either, into L1 after all. Refused only when neither tier can make room, even after
        the promotions in flight (which hold room in L1 and their files in L2) are done."""
        if cost(entry.size) > max(self.l1.budget, self.l2.budget):
            raise self._refuse(entry)  # no tier is tried, nor waited for: none can ever take it
        admitted = self._admit(entry)
        if admitted and await self._store_to_l1(entry):
            return
        disk_error: OSError | None = None
        last, deadline = False, None
        loop = asyncio.get_running_loop()
        while True:
            try:
                if await self._store_to_l2(entry):
                    return
            except OSError as exc:  # the cache disk (full, read-only, failing): L1 may still
                if exc.errno in OUT_OF_DESCRIPTORS:
                    raise out_of_descriptors(exc) from exc
                if exc.errno == errno.ENOMEM:  # the bytes are read into memory first: not disk
                    raise Busy(
                        f"the daemon is out of memory fetching image {entry.digest[:12]} of "
                        f"{entry.size} bytes ({exc.strerror}); retry later; operators: raise "
                        "its memory limit (MemoryMax, the container's limit, ulimit -v)"
                    ) from exc
                disk_error = exc
                self._write_failed(entry.digest, exc, "")
            # L1 after all if the policy kept the image out; after the promotions in flight
            # (which held room in L1) are done, whatever the policy said
            if (not admitted or last) and await self._store_to_l1(entry):
                return
            # the L2 writes in flight hold room in L2 and their segments busy in L1
            background = [*self.promotions.values(), *self.l2_writes.values()]
            if background and not last:
                last = True
                await asyncio.wait(background)
            elif (
                disk_error is None
                and self._passing(entry)
                and (deadline is None or loop.time() < deadline)
            ):
                # other fetches, or requests about to lease what they fetched, hold the room
                # (nothing leased may be why the tiers are full): once they are done, their
                # copies, if unleased, may go for this one. Bounded in time, not in wake-ups:
                # every lease that ends anywhere wakes this
                last = True
                deadline = loop.time() + ROOM_WAIT if deadline is None else deadline
                self._room_changed.clear()
                self._waiting[entry.digest] = self._waiting.get(entry.digest, 0) + 1
                try:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            self._room_changed.wait(), max(0.0, deadline - loop.time())
                        )
                    await asyncio.sleep(ROOM_RETRY)  # a burst of releases: one try for them
                finally:
                    self._waiting[entry.digest] -= 1
                    if not self._waiting[entry.digest]:
                        del self._waiting[entry.digest]
            else:
                break
        if disk_error is not None:
            raise Busy(
                f"image {entry.digest[:12]} of {entry.size} bytes cannot be written to the cache "
                f"disk ({disk_error.strerror or disk_error}) and shared memory cannot take it "
                f"(L1 {self.l1.used} of {self.l1.budget} bytes, {self.l1.leased_bytes()} "
                "leased); retry later; operators: free space under cache_dir or lower l2_bytes"
            )
        raise self._refuse(entry)

    async def _store_to_l2(self, entry: Entry) -> bool:
        with self._reserved(self.l2, entry.size) as room:
            if not room:
                return False
            await self._twice(entry, lambda fill: self._to_disk(entry, fill))
            self._loaded(self.l2, entry, self.fetch_seconds.pop(entry.digest, None))
            self.l2.add(Copy(TierName.L2, entry.digest, entry.size))
            room.used = True
            self.stats["l3_to_l2"] += 1
            return True

    async def _store_to_l1(self, entry: Entry) -> bool:
        """Into a new L1 segment; the request is answered from it as soon as it is added, its
        L2 file is written in the background (``_write_l2_later``)."""
        with self._reserved(self.l1, entry.size) as room:
            if not room:
                return False
            segment = await self._twice(entry, lambda fill: self._new_segment(entry, fill, room))
            if segment is None:
                return False
        await self._write_l2_later(entry)
        return True

    async def _write_l2_later(self, entry: Entry) -> None:
        """Start writing the new segment to an L2 file in the background, L2 room reserved
        now (as when the fetch waited for the write). At most ``max_inflight_fetches`` writes
        at once: beyond, this fetch waits for one to end before it replies."""
        digest = entry.digest
        seconds = self.fetch_seconds.pop(digest, None)  # what reloading it into L2 costs
        copy = self.l1.copies.get(digest)
        while copy is not None and len(self.l2_writes) >= self.config.max_inflight_fetches:
            await asyncio.wait(list(self.l2_writes.values()), return_when=asyncio.FIRST_COMPLETED)
        if copy is None or self.l1.copies.get(digest) is not copy:
            return  # evicted while this fetch waited for a write slot
        self._spawn_write(entry, copy, seconds)

    def _spawn_write(
        self, entry: Entry, copy: Copy, seconds: float | None
    ) -> asyncio.Task[None] | None:
        """The L2 write of the L1 ``copy`` as a task of its own, if L2 can make room (no
        pressure signal if not: the image is served from L1 all the same); one per image at
        a time (the one in flight, if any, is returned). The copy is busy (not a victim) while
        the write reads it, through a mapping made now (an admin eviction meanwhile, which
        closes the copy's descriptor, cannot pull the bytes away); both are given back when the
        task ends, however it ends."""
        digest = entry.digest
        if digest in self.l2_writes:
            return self.l2_writes[digest]
        if digest in self.l2.copies:
            return None
        try:
            mapped = storage.Segment(copy.name, digest, copy.fd, copy.size).map()
        except OSError as exc:  # out of memory: as a failed write, L2 misses this one
            self._write_failed(digest, exc)
            return None
        if not self._try_reserve(self.l2, entry.size, signal=False):
            self.stats["l2_skipped"] += 1
            mapped.close()
            return None
        copy.busy = True
        abort = threading.Event()  # set: the thread stops at its next chunk (cancel_write)
        started = False

        async def write() -> None:
            nonlocal started
            started = True  # the room reserved above is _write_l2's to give back from here
            await self._write_l2(entry, mapped, seconds, abort)

        task = asyncio.get_running_loop().create_task(write())
        self.l2_writes[digest] = task
        self._aborts[digest] = abort

        def done(task: asyncio.Task[None]) -> None:
            del self.l2_writes[digest]
            del self._aborts[digest]
            self._unwanted.discard(digest)
            copy.busy = False
            if not started:  # cancelled before it ran (drain at shutdown): room never used
                self.l2.unreserve(entry.size)
            if not mapped.closed:  # cancelled before its thread ran (which unmaps it)
                mapped.close()
            if not task.cancelled() and (exc := task.exception()) is not None:
                _limited.log(
                    logging.ERROR, "l2-write", "L2 write of %s failed: %s", digest[:12], exc
                )

        task.add_done_callback(done)
        return task

    async def _to_disk(self, entry: Entry, fill: Fill) -> bool:
        await asyncio.to_thread(self.disk.create, entry.digest, entry.size, fill)
        return True

    def _write_failed(
        self, digest: str, exc: OSError, served: str = ", serving from L1 only"
    ) -> None:
        """An L2 write that failed (a full or failing disk, no memory to map the segment):
        counted, and logged once per kind of error every 10 s."""
        self.stats["l2_write_errors"] += 1
        _limited.log(
            logging.ERROR, f"l2-write/{exc.errno}", "L2 write of %s failed%s: %s",
            digest[:12], served, exc,
        )  # fmt: skip

    def _admit(self, entry: Entry) -> bool:
        """Does the policy let the image into L1 now? (Else the page cache serves it.)"""
        if cost(entry.size) > self.l1.budget:  # no policy's choice: it can never fit
            self.stats["l1_full"] += 1
            return False
        candidate = Candidate(entry.digest, cost(entry.size), entry.last_use, entry.hits)
        if self.policy.admit(candidate, self.l1.budget - self.l1.used, self.clock()):
            return True
        self.stats["l1_not_admitted"] += 1
        return False

    def _try_reserve(self, tier: Tier, size: int, *, signal: bool = True) -> bool:
        """Reserve room for ``size`` bytes in ``tier``; False if it cannot make room (counted,
        and the pressure signal raised if leases are why, unless ``signal`` is False)."""
        try:
            tier.reserve(size)
        except TierFull as full:
            self.stats[f"{tier.name}_full"] += 1
            if full.leased and signal and tier.leased_bytes():  # clients could let go
                self.signal_pressure()
            return False
        return True

    def _reserved(
        self, tier: Tier, size: int, *, signal: bool = True
    ) -> contextlib.AbstractContextManager[Reservation]:
        """Room for ``size`` bytes in ``tier`` for the ``with`` block: falsy if the tier
        cannot make room. The room is given back at the end unless marked ``used``."""
        return self._room(tier, size, granted=self._try_reserve(tier, size, signal=signal))

    @contextlib.contextmanager
    def _room(self, tier: Tier, size: int, *, granted: bool) -> Iterator[Reservation]:
        room = Reservation(granted=granted)
        if granted:
            self.filling += 1
        try:
            yield room
        finally:
            if granted:
                if not room.used:
                    tier.unreserve(size)
                self.filling -= 1
                self.room_changed()

    def room_changed(self) -> None:
        """Room may have come free (a fill ended, a hold or a lease was given back): the
        fetches waiting for it try again."""
        self._room_changed.set()

    def _passing(self, entry: Entry) -> bool:
        """Is room held for a moment only: copies being filled, or held by other requests
        between their fetch and their lease?"""
        # the holds of the requests that wait for a fetch which itself waits are not
        # passing: two such fetches would wait for each other
        return bool(self.filling) or any(
            d != entry.digest and d not in self._waiting
            for tier in (self.l1, self.l2)
            for d in tier.holds
        )

    def signal_pressure(self) -> None:
        """Ask clients to trim idle held models (at most every PRESSURE_INTERVAL seconds)."""
        now = self.clock()
        if now - self._last_pressure >= PRESSURE_INTERVAL:
            self._last_pressure = now
            self.stats["pressure_signals"] += 1
            self.on_pressure()

    def _refuse(self, entry: Entry) -> Busy:
        l1, l2 = self.l1, self.l2
        if cost(entry.size) > max(l1.budget, l2.budget):  # not full: never big enough
            self.stats["refused_too_large"] += 1
            pages = (
                ""
                if cost(entry.size) == entry.size
                else f" ({cost(entry.size)} in the whole pages a tier counts)"
            )
            return Busy(
                f"image {entry.digest[:12]} of {entry.size} bytes{pages} is larger than both "
                f"tiers of this node (L1 {l1.budget} bytes, L2 {l2.budget} bytes): it can never be "
                "placed here, however idle the shelf; raise l1_bytes or l2_bytes above its size "
                "(from L2 it is served through the page cache)"
            )
        fits = [tier for tier in (l1, l2) if cost(entry.size) <= tier.budget]
        leased = sum(tier.leased_bytes() for tier in fits)  # where it could have gone
        pinned = sum(_pinned(tier) for tier in fits)
        why = []
        if leased:
            why.append("clients hold the leases: lower their MODELSHELF_MAX_HELD_BYTES")
        if pinned:
            why.append("models are pinned: unpin some")
        if not why:
            why.append("images being fetched or written hold the room: retry in a moment")
        return Busy(
            f"every tier is full: cannot place image {entry.digest[:12]} of {entry.size} bytes "
            f"(L1 {l1.used} of {l1.budget} bytes, {l1.leased_bytes()} leased, {_pinned(l1)} "
            f"pinned; L2 {l2.used} of {l2.budget} bytes, {l2.leased_bytes()} leased, "
            f"{_pinned(l2)} pinned); {'; '.join(why)}; or raise l1_bytes/l2_bytes"
        )

    def _segment_name(self, digest: str) -> str:
        return storage.segment_name(self.config.shm_prefix, digest)

    async def _twice(self, entry: Entry, make: Callable[[Fill], Awaitable[T]]) -> T:
        """Fetch from the store through ``make(fill)``; a copy that fails validation is
        fetched once more, then the image is refused."""
        cfg, digest = self.config, entry.digest

        def fill(view: memoryview) -> None:
            try:
                self.store.read_image(
                    digest, view, parallelism=cfg.fetch_parallelism, range_bytes=cfg.range_bytes
                )
            except ModelNotFound as exc:  # the model is there (its ref named this image)
                raise ImageMissing(
                    f"image {digest[:12]} is named by the model's ref, but the store does not "
                    "hold it (deleted or lost there): publish the model again, or remove that "
                    "version (modelshelf rm); retrying will not help"
                ) from exc

        for attempt in range(1, STORE_ATTEMPTS + 1):
            self.stats["l3_fetches"] += 1
            started = time.monotonic()
            try:
                with self._address_space(entry):
                    made = await make(fill)
            except ImageError as exc:
                self.stats["validation_failures"] += 1
                log.warning(
                    "store copy of %s invalid (%d/%d): %s",
                    digest[:12], attempt, STORE_ATTEMPTS, exc,
                )  # fmt: skip
                if attempt == STORE_ATTEMPTS:
                    raise ImageError(
                        f"image {digest[:12]}: every copy failed validation: {exc}"
                    ) from exc
                continue
            if made is not None:
                self.stats["bytes_fetched"] += entry.size
                # what reloading it into L2 costs: the store read (and its verification)
                self.fetch_seconds[digest] = time.monotonic() - started
                self._fetched("l3", self.fetch_seconds[digest])
            return made
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def _address_space(self, entry: Entry) -> Iterator[None]:
        """Room in the daemon's address space for a store read of ``entry``, held while it
        runs: under an address-space limit (``RLIMIT_AS``) the store's client aborts the whole
        daemon when an allocation fails, so a read that could come near the limit, with the
        reads in flight counted, is refused ``Busy`` first."""
        cfg = self.config
        need = machine.fetch_address_space(entry.size, cfg.fetch_parallelism, cfg.range_bytes)
        left = self.address_space_left()
        if left is not None and need > left - self._mapping:
            self.stats["address_space_refusals"] += 1
            _limited.log(
                logging.ERROR, "address-space",
                "refused fetching image %s of %d bytes: it maps up to %d bytes and the "
                "address-space limit (ulimit -v, LimitAS=) leaves %d (%d held by fetches in "
                "flight); raise or remove that limit, or lower fetch_parallelism or range_bytes",
                entry.digest[:12], entry.size, need, left, self._mapping,
            )  # fmt: skip
            raise Busy(
                f"the daemon is out of memory: fetching image {entry.digest[:12]} of "
                f"{entry.size} bytes needs about {need} bytes of address space and its limit "
                f"leaves {max(0, left - self._mapping)}; retry later; operators: raise or remove "
                "the daemon's address-space limit (ulimit -v, LimitAS=) and bound its memory "
                "with a cgroup limit (MemoryMax=) instead"
            )
        self._mapping += need
        try:
            yield
        finally:
            self._mapping -= need

    async def copy_down(self, digest: str) -> None:
        """Give an image resident in L1 an L2 file too (written from its segment), if L2 can
        take it: a namespace at its L1 share is served from the page cache. The write in
        flight (the fetch's), if any, is waited for, never raced."""
        resident = self.l1.copies.get(digest)
        task = self.l2_writes.get(digest)
        if task is None and resident is not None:
            task = self._spawn_write(Entry(digest, resident.size), resident, None)
        if task is not None:
            await asyncio.wait([task])

    async def _write_l2(
        self, entry: Entry, mapped: mmap.mmap, seconds: float | None, abort: threading.Event
    ) -> None:
        """Write the sealed segment (``mapped``, unmapped by the thread when done) to an L2 file
        in the room ``_spawn_write`` reserved (given back unless the file is added). Cancelled
        (the daemon stops), the thread stops at its next chunk and removes its temp file before
        this returns: nothing half-written is left (and a daemon killed meanwhile leaves only a
        temp file, deleted at the next start)."""
        digest = entry.digest
        with self._room(self.l2, entry.size, granted=True) as held:

            def write() -> None:
                view = memoryview(mapped)
                try:
                    self.disk.write(digest, view, abort=abort)
                finally:
                    view.release()
                    mapped.close()  # off the loop: unmapping a large segment takes a while

            work = asyncio.ensure_future(asyncio.to_thread(write))
            try:
                await asyncio.shield(work)
            except asyncio.CancelledError:
                abort.set()
                await asyncio.wait([work])  # the temp file is gone once the thread returns
                if work.exception() is None and digest not in self._unwanted:
                    self._add_l2(entry, seconds, held)  # it ended before it saw the abort
                elif work.exception() is None:
                    await asyncio.to_thread(self.disk.remove, digest)  # whole, but evicted
                else:
                    log.info("L2 write of %s stopped: the daemon stops", digest[:12])
                raise
            except storage.WriteAborted:  # evicted (admin) while written: its temp file gone
                log.info("L2 write of %s stopped: evicted from L2", digest[:12])
                return
            except OSError as exc:
                # the image is verified and in L1: serve it anyway, L2 just misses this one
                self._write_failed(digest, exc)
                return
            if digest in self._unwanted:  # evicted (admin) after the write's last chunk
                await asyncio.to_thread(self.disk.remove, digest)
                log.info("L2 write of %s ended after its eviction: file removed", digest[:12])
                return
            self._add_l2(entry, seconds, held)
        self.on_copy(entry)  # the entry stays known if its L1 copy went meanwhile

    def cancel_write(self, digest: str) -> bool:
        """Stop the image's L2 write in flight (an admin eviction from L2): its file is never
        added, and removed if the write ended before it saw the stop. False if none."""
        if digest not in self.l2_writes:
            return False
        self._unwanted.add(digest)
        self._aborts[digest].set()  # the task runs to its end: its L2 room is given back there
        return True

    def _add_l2(self, entry: Entry, seconds: float | None, room: Reservation) -> None:
        """The L2 file of a sealed segment is in place: add it in its reserved ``room``."""
        self._loaded(self.l2, entry, seconds)
        self.l2.add(Copy(TierName.L2, entry.digest, entry.size))
        room.used = True


def _pinned(tier: Tier) -> int:
    """Bytes of the tier's pinned copies that no lease holds (those count as leased)."""
    return sum(cost(c.size) for c in tier.copies.values() if c.pinned and not c.leases)
