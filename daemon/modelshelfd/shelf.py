"""The shelf: which images are on this node, where, and how a request is served.

The shelf orchestrates two tiers (``tiers.SharedMemory`` L1, ``tiers.PageCache`` L2) and the
object store (L3); each tier accounts for its own bytes. An acquire is served from L1 when the
image is resident or can be made resident; when shared memory is full of leased or pinned
images, the verified L2 file is handed out instead (an image only in the store is fetched into
L2 for that); only when both tiers are full of leases is the request refused (``Busy``).
Fetches are single-flight per image. All state lives on the event loop thread; blocking work
runs in threads through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from modelshelf.errors import ImageError, ModelNotFound, ShelfError
from modelshelf.store import RefInfo, Store

from . import storage
from .config import Config
from .policy import Candidate, LRUPolicy, Policy
from .storage import Disk, Reaper
from .tiers import Copy, PageCache, SharedMemory, Tier, TierFull, TierName, cost

log = logging.getLogger("modelshelfd.shelf")

PRESSURE_INTERVAL = 0.1  # seconds between two pressure signals to the clients

# counters that exist from the start (0, not absent): docs/operations.md says what each means
EVENTS = (
    "l1_hits", "l2_hits", "l3_hits", "served_l1", "served_page_cache", "promotions",
    "l3_fetches", "l3_to_l2", "fetch_waits", "bytes_fetched", "l1_full", "l2_full",
    "l1_not_admitted",
    "pressure_signals", "l2_skipped", "l2_write_errors", "shm_errors", "validation_failures",
    "release_unknown", "refused_busy", "refused_not_found", "refused_access_denied",
    "refused_store_unavailable", "refused_image_error", "refused_bad_request",
    "refused_invalid_name", "refused_internal",
)  # fmt: skip

Fill = Callable[[memoryview], None]
T = TypeVar("T")


class Busy(ShelfError):
    """A bounded resource is exhausted (answered as ``busy``)."""


class State(enum.Enum):
    FETCHING = "fetching"
    READY = "ready"


@dataclass(eq=False)
class Entry:
    """One image known to this node, by digest: what the policy and ``ls`` know of it."""

    digest: str
    size: int
    state: State = State.READY
    hits: int = 0
    last_use: float = 0.0
    labels: set[str] = field(default_factory=set)  # "ns/name@version" that resolved here


@dataclass
class Reservation:
    """Room reserved in a tier for one copy being filled (``granted``); ``used`` once the
    copy is added, else the room is given back."""

    granted: bool
    used: bool = False

    def __bool__(self) -> bool:
        return self.granted


@dataclass(frozen=True)
class Lease:
    """One lease: the copy whose descriptor the client maps, and the tier the image was
    found in when the request came (L1, L2 or L3)."""

    copy: Copy
    found: TierName


class Shelf:
    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        disk: Disk | None = None,
        policy: Policy | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_pressure: Callable[[], object] = lambda: None,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.disk = disk or Disk(config.cache_dir)
        self.policy = policy = policy or LRUPolicy()
        self.reaper = Reaper()
        self.l1 = SharedMemory(config.l1_bytes, policy, clock, self._usage, self.reaper)
        self.l2 = PageCache(self.disk, config.l2_bytes, policy, clock, self._usage, self.reaper)
        self.l1.on_evict = self.l2.on_evict = self._forget_if_empty
        self.entries: dict[str, Entry] = {}
        self.stats: Counter[str] = Counter(dict.fromkeys(EVENTS, 0))
        self.on_pressure = on_pressure
        self._last_pressure = float("-inf")
        self._inflight: dict[str, asyncio.Task[TierName]] = {}
        self._fetch_slots = asyncio.Semaphore(config.max_inflight_fetches)

    def _usage(self, digest: str) -> tuple[float, int]:
        entry = self.entries.get(digest)
        return (entry.last_use, entry.hits) if entry is not None else (0.0, 0)

    def tier(self, name: TierName) -> Tier:
        return self.l1 if name is TierName.L1 else self.l2

    # -- startup / shutdown -------------------------------------------------------------------

    async def adopt(self, board_name: str) -> None:
        """Adopt what a previous run left: L1 segments (verified now) and L2 files (verified
        before first use). Temp files and invalid copies are deleted."""
        segments, bad = await asyncio.to_thread(
            storage.adopt_segments, self.config.shm_prefix, board_name
        )
        files, strays = await asyncio.to_thread(self.disk.scan)
        now = self.clock()
        for seg in segments:
            self.entries.setdefault(seg.digest, Entry(seg.digest, seg.size, last_use=now))
            self.l1.adopt(SharedMemory.copy_of(seg))
        for digest, size in files.items():
            entry = self.entries.setdefault(digest, Entry(digest, size, last_use=now))
            if entry.size != size:  # a truncated file; the segment is the verified copy
                self.disk.remove(digest)
                strays += 1
                continue
            self.l2.adopt(Copy(TierName.L2, digest, size, verified=False))
        # the budgets may have shrunk since the previous run: adopted bytes obey them too
        self.l1.shrink()
        self.l2.shrink()
        self._forget_empty()
        self.stats["adopted_l1"] += len(segments)
        self.stats["adopted_l2"] += len(files)
        self.stats["validation_failures"] += bad
        log.info(
            "adopted %d L1 segments (%d invalid discarded), %d L2 files (%d strays removed)",
            len(segments), bad, len(files), strays,
        )  # fmt: skip

    def close(self) -> None:
        """Unlink every segment and close every descriptor (clients' mappings stay valid)."""
        self.l1.close()
        self.l2.close()
        self.reaper.drain()

    # -- acquire ------------------------------------------------------------------------------

    async def acquire(self, ref: RefInfo) -> Lease:
        """Take one lease on ``ref``'s image, from L1 if it is or can be made resident, else
        from the L2 file. The caller must ``release`` the lease's copy exactly once."""
        for _ in range(4):
            found = await self.ensure(ref)
            copy = self._lease(ref.digest)
            if copy is not None:
                return Lease(copy, found)
            # evicted between the fetch and our turn on the loop: fetch again
        raise Busy(f"{ref.key}: the image keeps being evicted before it can be served; retry")

    def lease_if_resident(self, ref: RefInfo) -> Copy | None:
        """The L1 hit, synchronously: one lease on the resident segment, or None."""
        entry = self.entries.get(ref.digest)
        if entry is None or entry.state is not State.READY:
            return None
        copy = self.l1.lease(ref.digest)
        if copy is not None:
            self._hit(entry, f"{ref.key}@{ref.version}", TierName.L1)
        return copy

    def _lease(self, digest: str) -> Copy | None:
        copy = self.l1.lease(digest)
        if copy is not None:
            self.stats["served_l1"] += 1
            return copy
        l2 = self.l2.copies.get(digest)
        if l2 is None or l2.busy:
            return None
        try:
            copy = self.l2.lease(digest)
        except OSError as exc:  # removed or unreadable behind our back: fetch it again
            log.warning("L2 copy of %s cannot be opened, discarded: %s", digest[:12], exc)
            self.l2.evict(digest)
            return None
        if copy is not None:
            self.stats["served_page_cache"] += 1
        return copy

    def release(self, copy: Copy) -> None:
        self.tier(copy.tier).release(copy)
        if not copy.linked:
            self._forget_if_empty(copy.digest)

    def _hit(self, entry: Entry, label: str, tier: TierName) -> None:
        entry.hits += 1
        entry.last_use = self.clock()
        entry.labels.add(label)
        self.stats[f"{tier}_hits"] += 1

    async def ensure(self, ref: RefInfo) -> TierName:
        """Make the image available on this node (L1, else L2), fetching it at most once
        however many ask; the tier it was found in."""
        entry = self.entries.get(ref.digest)
        label = f"{ref.key}@{ref.version}"
        if entry is not None and entry.state is State.READY and ref.digest in self.l1.copies:
            self._hit(entry, label, TierName.L1)
            return TierName.L1
        task = self._inflight.get(ref.digest)
        if task is None:
            # the fetch is a task of its own, not part of the first requester's: a requester
            # that goes away (cancelled, disconnected) never cancels it for the others
            task = asyncio.get_running_loop().create_task(self._fetch(ref, label))
            task.add_done_callback(_retrieve)
            task.add_done_callback(functools.partial(self._forget_fetch, ref.digest))
            self._inflight[ref.digest] = task
        else:
            self.stats["fetch_waits"] += 1
        return await asyncio.shield(task)

    async def _fetch(self, ref: RefInfo, label: str) -> TierName:
        try:
            found = await self._load(ref)
            entry = self.entries.get(ref.digest)
            if entry is not None:  # else evicted already: the requesters fetch again
                self._hit(entry, label, found)
            return found
        finally:
            self._forget_fetch(ref.digest, asyncio.current_task())

    def _forget_fetch(self, digest: str, task: object) -> None:
        if self._inflight.get(digest) is task:
            del self._inflight[digest]

    async def drain(self, timeout: float) -> None:
        """Let fetches in flight finish (their threads cannot be interrupted) up to
        ``timeout`` seconds, then cancel what is left."""
        tasks = list(self._inflight.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=max(timeout, 0.0))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _load(self, ref: RefInfo) -> TierName:
        digest, size = ref.digest, ref.size
        async with self._fetch_slots:
            if digest in self.l1.copies:  # promoted while this request waited for a slot
                return TierName.L1
            entry = self.entries.setdefault(digest, Entry(digest, size, last_use=self.clock()))
            entry.state = State.FETCHING  # kept while its copies come and go
            try:
                l2 = self.l2.copies.get(digest)
                if l2 is not None and l2.size != size:
                    # an adopted L2 file of another length cannot hold this image: the ref's
                    # size is checked against the bytes (sha256), the file's is not
                    log.warning("L2 copy of %s has the wrong size, discarded", digest[:12])
                    self.stats["validation_failures"] += 1
                    self.l2.evict(digest)
                    l2 = None
                entry.size = size
                if l2 is not None and await self._from_l2(entry, l2):
                    return TierName.L2
                await self._from_store(entry)
                return TierName.L3
            finally:
                entry.state = State.READY
                self._forget_if_empty(digest)

    # -- L2 -> L1, or serve the L2 file -------------------------------------------------------

    async def _from_l2(self, entry: Entry, l2: Copy) -> bool:
        """Promote the L2 copy to L1, or make it servable as it is; False if the copy turned
        out bad (it is dropped and the image must come from the store)."""
        l2.busy = True
        try:
            if await self._promote(entry, l2):
                return True
            if not l2.verified:  # a file a previous run left: checked before anyone maps it
                await asyncio.to_thread(self.disk.verify, entry.digest, entry.size)
                l2.verified = True
            return True
        except (ImageError, FileNotFoundError) as exc:
            self.stats["validation_failures"] += isinstance(exc, ImageError)
            log.warning("L2 copy of %s discarded: %s", entry.digest[:12], exc)
            l2.busy = False
            self.l2.evict(entry.digest)
            return False
        finally:
            l2.busy = False

    async def _promote(self, entry: Entry, l2: Copy) -> bool:
        """Copy the L2 file into a new segment if the policy admits it and L1 can make room;
        False if not (the file is then served from the page cache)."""
        if not self._admit(entry):
            return False
        with self._reserved(self.l1, entry.size) as room:
            if not room:
                return False
            fill = storage.copy_from(self.disk.path(entry.digest))
            if await self._new_segment(entry, fill, room) is None:
                return False
        l2.verified = True  # create_segment verified the bytes it read from the file
        self.stats["promotions"] += 1
        return True

    async def _new_segment(
        self, entry: Entry, fill: Fill, room: Reservation
    ) -> storage.Segment | None:
        """Create the image's segment through ``fill`` (verified) in reserved room and add it
        to L1; None if /dev/shm itself fails (the caller serves the image from L2)."""
        name = self._segment_name(entry.digest)
        try:
            segment: storage.Segment = await asyncio.to_thread(
                storage.create_segment, name, entry.digest, entry.size, fill
            )
        except FileNotFoundError:  # the L2 file vanished: not a shared-memory failure
            raise
        except OSError as exc:  # /dev/shm itself is full or failing (ENOSPC, ENOMEM)
            self.stats["shm_errors"] += 1
            log.error(
                "cannot place image %s in shared memory (%s); serving it from local disk",
                entry.digest[:12], exc,
            )  # fmt: skip
            return None
        self.l1.add(SharedMemory.copy_of(segment))
        room.used = True
        return segment

    # -- L3 -> L1 (and L2), or L3 -> L2 ---------------------------------------------------------

    async def _from_store(self, entry: Entry) -> None:
        """Into L1 (and L2) if the policy admits it; else, or if shared memory cannot take
        it, straight into an L2 file served from the page cache; if L2 cannot take it
        either, into L1 after all. Refused only when neither tier can make room."""
        admitted = self._admit(entry)
        if admitted and await self._store_to_l1(entry):
            return
        with self._reserved(self.l2, entry.size) as room:
            if room:
                await self._twice(entry, lambda fill: self._to_disk(entry, fill))
                self.l2.add(Copy(TierName.L2, entry.digest, entry.size))
                room.used = True
                self.stats["l3_to_l2"] += 1
                return
        if not admitted and await self._store_to_l1(entry):
            return
        raise self._refuse(entry)

    async def _store_to_l1(self, entry: Entry) -> bool:
        with self._reserved(self.l1, entry.size) as room:
            if not room:
                return False
            segment = await self._twice(entry, lambda fill: self._new_segment(entry, fill, room))
            if segment is None:
                return False
        copy = self.l1.copies[entry.digest]
        copy.busy = True  # read by the L2 write below: not a victim meanwhile
        try:
            await self._write_l2(entry, segment)
        finally:
            copy.busy = False
        return True

    async def _to_disk(self, entry: Entry, fill: Fill) -> bool:
        await asyncio.to_thread(self.disk.create, entry.digest, entry.size, fill)
        return True

    def _admit(self, entry: Entry) -> bool:
        """Does the policy let the image into L1 now? (Else the page cache serves it.)"""
        candidate = Candidate(entry.digest, cost(entry.size), entry.last_use, entry.hits)
        if self.policy.admit(candidate, self.l1.budget - self.l1.used, self.clock()):
            return True
        self.stats["l1_not_admitted"] += 1
        return False

    @contextlib.contextmanager
    def _reserved(self, tier: Tier, size: int, *, signal: bool = True) -> Iterator[Reservation]:
        """Room for ``size`` bytes in ``tier`` for the ``with`` block: falsy if the tier
        cannot make room (the pressure signal is raised if leases are why, unless
        ``signal`` is False). The room is given back at the end unless marked ``used``."""
        try:
            tier.reserve(size)
        except TierFull as full:
            self.stats[f"{tier.name}_full"] += 1
            if full.leased and signal:
                self._pressure()
            yield Reservation(granted=False)
            return
        room = Reservation(granted=True)
        try:
            yield room
        finally:
            if not room.used:
                tier.unreserve(size)

    def _pressure(self) -> None:
        """Ask clients to trim idle held models (at most every PRESSURE_INTERVAL seconds)."""
        now = self.clock()
        if now - self._last_pressure >= PRESSURE_INTERVAL:
            self._last_pressure = now
            self.stats["pressure_signals"] += 1
            self.on_pressure()

    def _refuse(self, entry: Entry) -> Busy:
        l1, l2 = self.l1, self.l2
        return Busy(
            f"every tier is full: cannot place image {entry.digest[:12]} of {entry.size} bytes "
            f"(L1 {l1.used} of {l1.budget} bytes, {l1.leased_bytes()} leased; L2 {l2.used} of "
            f"{l2.budget} bytes, {l2.leased_bytes()} leased); clients hold the leases: lower "
            "their MODELSHELF_MAX_HELD_BYTES, or raise l1_bytes/l2_bytes"
        )

    def _segment_name(self, digest: str) -> str:
        return storage.segment_name(self.config.shm_prefix, digest)

    async def _twice(self, entry: Entry, make: Callable[[Fill], Awaitable[T]]) -> T:
        """Fetch from the store through ``make(fill)``; a copy that fails validation is
        fetched once more, then the image is refused."""
        cfg, digest = self.config, entry.digest

        def fill(view: memoryview) -> None:
            self.store.read_image(
                digest, view, parallelism=cfg.fetch_parallelism, range_bytes=cfg.range_bytes
            )

        for attempt in (1, 2):
            self.stats["l3_fetches"] += 1
            try:
                made = await make(fill)
            except ImageError as exc:
                self.stats["validation_failures"] += 1
                log.warning("store copy of %s invalid (%d/2): %s", digest[:12], attempt, exc)
                if attempt == 2:
                    raise ImageError(
                        f"image {digest[:12]}: every copy failed validation: {exc}"
                    ) from exc
                continue
            if made is not None:
                self.stats["bytes_fetched"] += entry.size
            return made
        raise AssertionError("unreachable")

    async def _write_l2(self, entry: Entry, segment: storage.Segment) -> None:
        if entry.digest in self.l2.copies:
            return
        # no pressure signal if L2 is full: the image is served from L1 all the same
        with self._reserved(self.l2, entry.size, signal=False) as room:
            if not room:
                self.stats["l2_skipped"] += 1
                return

            def write() -> None:
                mapped = segment.map()
                view = memoryview(mapped)
                try:
                    self.disk.write(entry.digest, view)
                finally:
                    view.release()
                    mapped.close()

            try:
                await asyncio.to_thread(write)
            except OSError as exc:
                self.stats["l2_write_errors"] += 1
                # the image is verified and in L1: serve it anyway, L2 just misses this one
                log.error("L2 write of %s failed, serving from L1 only: %s", entry.digest[:12], exc)
                return
            self.l2.add(Copy(TierName.L2, entry.digest, entry.size))
            room.used = True

    # -- admin --------------------------------------------------------------------------------

    def evict(self, digest: str, tier: TierName = TierName.L1) -> bool:
        """Unlink the image's segment (L1) or remove its file (L2); its bytes stay counted
        while leases remain, and mappings stay valid."""
        return self.tier(tier).evict(digest)

    def pin(self, digest: str, pinned: bool) -> None:
        copy = self.l1.copies.get(digest)
        if pinned and copy is None:
            raise Busy(f"image {digest[:12]} is not in L1 (it did not fit); cannot pin it")
        if copy is not None:
            copy.pinned = pinned

    def _forget_if_empty(self, digest: str) -> None:
        entry = self.entries.get(digest)
        if (
            entry is not None
            and entry.state is not State.FETCHING
            and digest not in self.l1.copies
            and digest not in self.l2.copies
        ):
            del self.entries[digest]

    def _forget_empty(self) -> None:
        for digest in list(self.entries):
            self._forget_if_empty(digest)

    def entry(self, digest: str) -> Entry:
        entry = self.entries.get(digest)
        if entry is None:
            raise ModelNotFound(f"image {digest[:12]} is not on this node's shelf")
        return entry

    def where(self, digest: str) -> list[TierName]:
        return [t.name for t in (self.l1, self.l2) if digest in t.copies]

    def leases_of(self, digest: str) -> int:
        return sum(
            c.leases
            for t in (self.l1, self.l2)
            for c in (t.copies.get(digest), *t.retired)
            if c is not None and c.digest == digest
        )

    def counters(self) -> dict[str, int]:
        """Every event counter (docs/operations.md), the tiers' evictions included."""
        return {**self.stats, "l1_evictions": self.l1.evictions, "l2_evictions": self.l2.evictions}

    def describe(self) -> dict[str, Any]:
        return {
            "l1": self.l1.describe(),
            "l2": self.l2.describe(),
            "leases": self.l1.leases() + self.l2.leases(),
            "leased_bytes": self.l1.leased_bytes() + self.l2.leased_bytes(),
            "inflight_fetches": len(self._inflight),
        }


def _retrieve(task: asyncio.Task[TierName]) -> None:
    # a fetch whose requesters all went away still ends; its error is logged, not "never
    # retrieved"
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.debug("fetch ended with %s: %s", type(exc).__name__, exc)
