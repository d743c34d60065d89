"""The shelf: which images are where, leases, byte budgets, single-flight fetches, eviction.

All state lives on the event loop thread and changes only there; blocking work (filling and
verifying segments, disk writes, store reads) runs in threads through ``asyncio.to_thread``.
Byte accounting is done here and only here. L1 bytes of a segment stay counted until its last
lease ends, even after eviction unlinked its name.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelshelf.errors import ImageError, ModelNotFound, ShelfError
from modelshelf.store import RefInfo, Store

from . import tiers
from .config import Config
from .policy import Candidate, LRUPolicy, Policy
from .tiers import Disk, Segment

log = logging.getLogger("modelshelfd.shelf")


class Busy(ShelfError):
    """A bounded resource is exhausted (answered as ``busy``)."""


class State(enum.Enum):
    FETCHING = "fetching"
    READY = "ready"
    EVICTING = "evicting"


@dataclass(eq=False)
class Entry:
    """One image known to this node, by digest."""

    digest: str
    size: int
    state: State = State.READY
    segment: Segment | None = None  # the linked L1 segment, if in L1
    in_l2: bool = False
    pinned: bool = False
    hits: int = 0
    last_use: float = 0.0
    labels: set[str] = field(default_factory=set)  # "ns/name@version" that resolved here


class Shelf:
    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        policy: Policy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.store = store
        self.policy: Policy = policy or LRUPolicy()
        self.clock = clock
        self.disk = Disk(config.cache_dir)
        self.entries: dict[str, Entry] = {}
        self.retired: set[Segment] = set()  # unlinked, still leased
        self.l1_used = 0
        self.l2_used = 0
        self.stats: Counter[str] = Counter()
        self._inflight: dict[str, asyncio.Task[str]] = {}
        self._fetch_slots = asyncio.Semaphore(config.max_inflight_fetches)

    # -- startup / shutdown -------------------------------------------------------------------

    async def adopt(self, board_name: str) -> None:
        """Adopt what a previous run left: L1 segments (verified now) and L2 files (verified
        when promoted). Temp files and invalid copies are deleted."""
        segments, bad = await asyncio.to_thread(
            tiers.adopt_segments, self.config.shm_prefix, board_name
        )
        files, strays = await asyncio.to_thread(self.disk.scan)
        now = self.clock()
        for seg in segments:
            entry = self.entries.setdefault(seg.digest, Entry(seg.digest, seg.size))
            entry.segment, entry.last_use = seg, now
            self.l1_used += seg.size
        for digest, size in files.items():
            entry = self.entries.setdefault(digest, Entry(digest, size, last_use=now))
            if entry.size != size:  # a truncated file; the segment is the verified copy
                self.disk.remove(digest)
                strays += 1
                continue
            entry.in_l2 = True
            self.l2_used += size
        # the budgets may have shrunk since the previous run: adopted bytes obey them too
        self._free_l1(self.l1_used - self.config.l1_bytes)
        self._free_l2(self.l2_used - self.config.l2_bytes)
        self.stats["adopted_l1"] += len(segments)
        self.stats["adopted_l2"] += len(files)
        self.stats["validation_failures"] += bad
        log.info(
            "adopted %d L1 segments (%d invalid discarded), %d L2 files (%d strays removed)",
            len(segments), bad, len(files), strays,
        )  # fmt: skip

    def close(self) -> None:
        """Unlink every segment this run holds (clients' mappings stay valid)."""
        for entry in self.entries.values():
            if entry.segment is not None:
                entry.segment.unlink()
                entry.segment.close()
                entry.segment = None
        for seg in self.retired:
            seg.close()
        self.retired.clear()

    # -- acquire ------------------------------------------------------------------------------

    async def acquire(self, ref: RefInfo) -> tuple[Segment, str]:
        """Make ``ref``'s image resident in L1 and take one lease on it: (segment, tier it
        came from). The caller must ``release`` the segment exactly once."""
        for _ in range(4):
            tier = await self.ensure(ref)
            entry = self.entries.get(ref.digest)
            if entry is not None and entry.segment is not None and entry.state is State.READY:
                entry.segment.leases += 1
                return entry.segment, tier
            # evicted between the fetch and our turn on the loop: fetch again
        raise Busy(f"{ref.key}: L1 is too contended to keep the image resident; retry")

    def lease_if_resident(self, ref: RefInfo) -> Segment | None:
        """The L1 hit, synchronously: one lease on the resident segment, or None."""
        entry = self.entries.get(ref.digest)
        if entry is None or entry.segment is None or entry.state is not State.READY:
            return None
        self._hit(entry, f"{ref.key}@{ref.version}")
        entry.segment.leases += 1
        return entry.segment

    def _hit(self, entry: Entry, label: str) -> None:
        entry.hits += 1
        entry.last_use = self.clock()
        entry.labels.add(label)
        self.stats["l1_hits"] += 1

    async def ensure(self, ref: RefInfo) -> str:
        """Make the image resident in L1 (fetching it at most once however many ask)."""
        entry = self.entries.get(ref.digest)
        label = f"{ref.key}@{ref.version}"
        if entry is not None and entry.segment is not None and entry.state is State.READY:
            self._hit(entry, label)
            return "l1"
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

    async def _fetch(self, ref: RefInfo, label: str) -> str:
        try:
            tier = await self._load(ref)
            entry = self.entries[ref.digest]
            entry.labels.add(label)
            entry.hits += 1
            entry.last_use = self.clock()
            return tier
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

    async def _load(self, ref: RefInfo) -> str:
        digest, size = ref.digest, ref.size
        async with self._fetch_slots:
            entry = self.entries.setdefault(digest, Entry(digest, size, last_use=self.clock()))
            if entry.size != size and entry.segment is None:
                # an adopted L2 file of another length cannot hold this image: the ref's size
                # is checked against the bytes (sha256), the file's is not; never count by it
                if entry.in_l2:
                    log.warning("L2 copy of %s has the wrong size, discarded", digest[:12])
                    self.stats["validation_failures"] += 1
                    entry.in_l2 = False
                    self.l2_used -= entry.size
                    self.disk.remove(digest)
                entry.size = size
            try:
                self._reserve_l1(size)
            except Busy:
                self._forget_if_empty(entry)
                raise
            entry.state = State.FETCHING
            segment: Segment | None = None
            tier = "l2"
            try:
                name = tiers.segment_name(self.config.shm_prefix, digest)
                if entry.in_l2:
                    try:
                        segment = await asyncio.to_thread(
                            tiers.create_segment,
                            name, digest, size, tiers.copy_from(self.disk.path(digest)),
                        )  # fmt: skip
                        self.stats["l2_hits"] += 1
                    except ImageError as exc:
                        self.stats["validation_failures"] += 1
                        log.warning("L2 copy of %s discarded: %s", digest[:12], exc)
                        self._drop_l2(entry)
                    except FileNotFoundError:
                        log.warning("L2 copy of %s vanished", digest[:12])
                        self._drop_l2(entry)
                if segment is None:
                    tier = "l3"
                    segment = await self._fetch_store(name, digest, size)
                    await self._write_l2(entry, segment)
            except OSError as exc:  # shared memory itself failed (ENOSPC/ENOMEM on /dev/shm)
                self._abandon(entry, segment)
                raise Busy(f"cannot place image {digest[:12]} in shared memory: {exc}") from exc
            except BaseException:
                self._abandon(entry, segment)
                raise
            entry.segment = segment
            entry.state = State.READY
            return tier

    def _abandon(self, entry: Entry, segment: Segment | None) -> None:
        if segment is not None:  # cancelled after the fill: do not leak it
            segment.unlink()
            segment.close()
        self.l1_used -= entry.size
        entry.state = State.READY
        self._forget_if_empty(entry)

    async def _fetch_store(self, name: str, digest: str, size: int) -> Segment:
        cfg = self.config

        def fill(view: memoryview) -> None:
            self.store.read_image(
                digest, view, parallelism=cfg.fetch_parallelism, range_bytes=cfg.range_bytes
            )

        for attempt in (1, 2):
            self.stats["l3_fetches"] += 1
            try:
                segment = await asyncio.to_thread(tiers.create_segment, name, digest, size, fill)
            except ImageError as exc:
                self.stats["validation_failures"] += 1
                log.warning("store copy of %s invalid (%d/2): %s", digest[:12], attempt, exc)
                if attempt == 2:
                    raise ImageError(
                        f"image {digest[:12]}: every copy failed validation: {exc}"
                    ) from exc
                continue
            self.stats["bytes_fetched"] += size
            return segment
        raise AssertionError("unreachable")

    async def _write_l2(self, entry: Entry, segment: Segment) -> None:
        if entry.in_l2:
            return
        if entry.size > self.config.l2_bytes:
            self.stats["l2_skipped"] += 1
            return
        if not self._reserve_l2(entry.size):
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
            self.l2_used -= entry.size
            self.stats["l2_write_errors"] += 1
            # the image is verified and in L1: serve it anyway, L2 just misses this one
            log.error("L2 write of %s failed, serving from L1 only: %s", entry.digest[:12], exc)
            return
        entry.in_l2 = True

    # -- leases and eviction ------------------------------------------------------------------

    def release(self, segment: Segment) -> None:
        segment.leases -= 1
        if segment.leases == 0 and not segment.linked and segment in self.retired:
            self.retired.discard(segment)
            segment.close()
            self.l1_used -= segment.size

    def _reserve_l1(self, size: int) -> None:
        budget = self.config.l1_bytes
        if size > budget:
            raise Busy(f"image of {size} bytes exceeds the L1 budget of {budget} bytes")
        self._free_l1(self.l1_used + size - budget)
        if self.l1_used + size > budget:
            raise Busy(
                f"L1 is full of leased or pinned images ({self.l1_used} of {budget} bytes); "
                f"cannot place {size} more"
            )
        self.l1_used += size

    def _free_l1(self, need: int) -> None:
        if need <= 0:
            return
        candidates = [
            Candidate(e.digest, e.size, e.last_use, e.hits)
            for e in self.entries.values()
            if e.segment is not None
            and e.state is State.READY
            and e.segment.leases == 0
            and not e.pinned
        ]
        for digest in self.policy.victims(candidates, need, self.clock()):
            self.evict_l1(self.entries[digest])
            self.stats["l1_evictions"] += 1

    def _reserve_l2(self, size: int) -> bool:
        """Make room for ``size`` bytes in L2 and count them; False if the budget cannot
        hold them (files being promoted cannot go)."""
        self._free_l2(self.l2_used + size - self.config.l2_bytes)
        if self.l2_used + size > self.config.l2_bytes:
            return False
        self.l2_used += size
        return True

    def _free_l2(self, need: int) -> None:
        if need <= 0:
            return
        candidates = [
            Candidate(e.digest, e.size, e.last_use, e.hits)
            for e in self.entries.values()
            if e.in_l2 and e.state is State.READY  # not a file being promoted right now
        ]
        for digest in self.policy.victims(candidates, need, self.clock()):
            self._drop_l2(self.entries[digest])
            self.stats["l2_evictions"] += 1

    def evict_l1(self, entry: Entry) -> bool:
        """Unlink the entry's segment; its bytes stay counted while leases remain."""
        segment = entry.segment
        if segment is None:
            return False
        entry.state = State.EVICTING
        entry.segment = None
        segment.unlink()
        if segment.leases == 0:
            segment.close()
            self.l1_used -= segment.size
        else:
            self.retired.add(segment)
        entry.state = State.READY
        self._forget_if_empty(entry)
        return True

    def _drop_l2(self, entry: Entry) -> None:
        if entry.in_l2:
            entry.in_l2 = False
            self.l2_used -= entry.size
        self.disk.remove(entry.digest)
        self._forget_if_empty(entry)

    def _forget_if_empty(self, entry: Entry) -> None:
        if entry.segment is None and not entry.in_l2 and entry.state is not State.FETCHING:
            self.entries.pop(entry.digest, None)

    def entry(self, digest: str) -> Entry:
        entry = self.entries.get(digest)
        if entry is None:
            raise ModelNotFound(f"image {digest[:12]} is not on this node's shelf")
        return entry

    def describe(self) -> dict[str, Any]:
        leased = sum(s.leases for e in self.entries.values() if (s := e.segment)) + sum(
            s.leases for s in self.retired
        )
        return {
            "l1": {
                "bytes": self.l1_used,
                "budget": self.config.l1_bytes,
                "count": sum(1 for e in self.entries.values() if e.segment is not None),
                "retired": len(self.retired),
            },
            "l2": {
                "bytes": self.l2_used,
                "budget": self.config.l2_bytes,
                "count": sum(1 for e in self.entries.values() if e.in_l2),
            },
            "leases": leased,
            "inflight_fetches": len(self._inflight),
        }


def _retrieve(task: asyncio.Task[str]) -> None:
    # a fetch whose requesters all went away still ends; its error is logged, not "never
    # retrieved"
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.debug("fetch ended with %s: %s", type(exc).__name__, exc)
