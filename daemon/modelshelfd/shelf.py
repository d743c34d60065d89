"""The shelf: which images are on this node, leases on them, and how a request is served.

The shelf orchestrates two tiers (``tiers.SharedMemory`` L1, ``tiers.PageCache`` L2), each
accounting for its own bytes, and a fetcher (``fetch.Fetcher``) that brings images onto the
node. An acquire leases the L1 segment when the image is or can be made resident; when shared
memory is full of leased or pinned images (or the policy keeps the image out of it), the
verified L2 file is leased instead and the client maps it from the page cache; only when both
tiers are full of leases is the request refused (``Busy``). Fetches are single-flight per image
(the fetcher's). All state lives on the event loop thread; blocking work runs in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from modelshelf.errors import ImageError, ModelNotFound
from modelshelf.store import RefInfo, Store

from . import learned, storage
from .config import Config
from .entry import Entry, State
from .errors import OUT_OF_DESCRIPTORS, Busy, out_of_descriptors
from .fetch import Fetcher
from .policy import CostAwarePolicy, LRUPolicy, Policy
from .quota import Quotas
from .storage import Disk, Reaper
from .tiers import Copy, PageCache, SharedMemory, Tier, TierName, cost

log = logging.getLogger("modelshelfd.shelf")

LEASE_ATTEMPTS = 4  # fetches of an image evicted again before it could be leased, then busy

# counters that exist from the start (0, not absent): docs/operations.md says what each means
EVENTS = (
    "l1_hits", "l2_hits", "l3_hits", "l1_misses", "l2_misses", "l1_bytes_loaded", "served_l1",
    "served_page_cache", "promotions",
    "l3_fetches", "l3_to_l2", "fetch_waits", "bytes_fetched", "l1_full", "l2_full",
    "l1_not_admitted", "share_fallbacks", "memory_pressure", "l1_shrinks",
    "warm_failures", "adopted_l1",
    "pressure_signals", "l2_skipped", "l2_write_errors", "shm_errors", "address_space_refusals",
    "validation_failures",
    "release_unknown", "refused_busy", "refused_not_found", "refused_access_denied",
    "refused_store_unavailable", "refused_image_error", "refused_bad_request",
    "refused_invalid_name", "refused_internal", "descriptors_refused", "frames_timed_out",
    "connections_refused_uid", "connections_idle_closed", "sockets_rebound", "http_refused",
    "http_timeouts",
    "http_infer_queue_full", "store_errors", "feed_malformed", "feed_reloads", "full_listings",
    "catalog_requests", "http_bad_requests", "refused_too_large", "protocol_errors",
)  # fmt: skip


# the policies' first guess of a tier's reload speed, until loads are measured: a copy from the
# page cache into shared memory, a fetch from the store
L1_BANDWIDTH = 2e9
L2_BANDWIDTH = 200e6


@dataclass(eq=False)
class Lease:
    """One lease: the copy the client maps, the tier the image was found in when the request
    came (L1, L2 or L3), the namespace it was taken through, and the descriptor to hand out:
    an L1 segment's own (the tier keeps it), or for an L2 file one opened for this lease
    alone and closed once it is handed out (``Shelf.handed``) or the lease ends, so that the
    daemon holds no descriptor per leased file."""

    copy: Copy
    found: TierName
    namespace: str = ""
    own_fd: int = -1

    @property
    def fd(self) -> int:
        return self.own_fd if self.copy.tier is TierName.L2 else self.copy.fd


class Shelf:
    """Entries and leases over the tiers and the fetcher (the module docstring has the path)."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        disk: Disk | None = None,
        policy: Policy | None = None,
        l2_policy: Policy | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_pressure: Callable[[], object] = lambda: None,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.disk = disk or Disk(config.cache_dir)
        # one policy per tier: their costs differ (a miss in L1 costs a copy from disk, a miss
        # in L2 a fetch from the store); the L1 policy also decides admission
        if config.policy == "lru":
            policy, l2_policy = policy or LRUPolicy(), l2_policy or LRUPolicy()
        policy = policy or CostAwarePolicy(config.l1_bytes, bandwidth=L1_BANDWIDTH)
        l2_policy = l2_policy or CostAwarePolicy(config.l2_bytes, bandwidth=L2_BANDWIDTH)
        self.reaper = Reaper()
        self.l1 = SharedMemory(config.l1_bytes, policy, clock, self._usage, self.reaper)
        self.l2 = PageCache(self.disk, config.l2_bytes, l2_policy, clock, self._usage, self.reaper)
        self.l1.on_evict = self.l2.on_evict = self._forget_if_empty
        self.entries: dict[str, Entry] = {}
        self.stats: Counter[str] = Counter(dict.fromkeys(EVENTS, 0))
        self.fetcher = Fetcher(
            config, store, self.disk, (self.l1, self.l2), policy, clock, self.stats, on_pressure
        )
        self.quotas = Quotas(config.share)
        self.fetcher.on_copy = self._known

    def _usage(self, digest: str) -> tuple[float, int]:
        entry = self.entries.get(digest)
        return (entry.last_use, entry.hits) if entry is not None else (0.0, 0)

    def tier(self, name: TierName) -> Tier:
        return self.l1 if name is TierName.L1 else self.l2

    # -- startup / shutdown -------------------------------------------------------------------

    async def adopt(
        self, segments: dict[str, int] | None = None, pinned: set[str] | None = None
    ) -> None:
        """Adopt what a previous run left: the L2 files (verified before first use; temp
        files and strays are deleted) and the L1 segments systemd kept for it (``segments``:
        digest -> descriptor, verified now; the descriptors are closed here). Without them an
        image used again is promoted from its L2 file. What versions before sealed segments
        left in /dev/shm for this instance is removed."""
        legacy = await asyncio.to_thread(storage.remove_legacy_segments, self.config.shm_prefix)
        files, strays = await asyncio.to_thread(self.disk.scan)
        before = await asyncio.to_thread(self._read_learned)
        now = self.clock()
        if before is not None:  # first: the copies adopted below are ranked on it
            for name, policy in self._learning().items():
                if name in before.policies:
                    policy.restore(before.policies[name], now, elapsed=before.elapsed)
        for digest, fd in (segments or {}).items():
            name = storage.segment_name(self.config.shm_prefix, digest)
            try:
                segment = await asyncio.to_thread(storage.adopt_segment, name, digest, fd)
            except (ImageError, OSError) as exc:
                log.warning("a kept segment of %s is not adopted: %s", digest[:12], exc)
                self.stats["validation_failures"] += 1
                self.l1.drop(digest)
                continue
            finally:
                os.close(fd)
            self.entries.setdefault(digest, Entry(digest, segment.size, last_use=now))
            self.l1.adopt(SharedMemory.copy_of(segment))
            self.stats["adopted_l1"] += 1
        for digest, size in files.items():
            self.entries.setdefault(digest, Entry(digest, size, last_use=now))
            self.l2.adopt(Copy(TierName.L2, digest, size, verified=False))
        if before is not None:
            for digest, (hits, age) in before.entries.items():
                entry = self.entries.get(digest)
                if entry is not None:
                    entry.hits, entry.last_use = hits, now - age - before.elapsed
        # the budgets may have shrunk since the previous run; the copies of images pinned
        # before (``pinned``: digests, hints from the pin list) go last: the pins are placed
        # again once the catalog answers, from these copies rather than from the store
        pinned = pinned or set()
        tiers = (self.l1, self.l2)
        spared = [c for t in tiers for d, c in t.copies.items() if d in pinned and not c.busy]
        for copy in spared:
            copy.busy = True
        try:
            self.l1.shrink()
            self.l2.shrink()
        finally:
            for copy in spared:
                copy.busy = False
        self.l1.shrink()  # over budget still (the pinned ones did not fit): they may go too
        self.l2.shrink()
        self._forget_empty()
        kept = sum(digest in self.l2.copies for digest in files)  # the shrinks may evict some
        self.stats["adopted_l2"] += kept
        log.info(
            "adopted %d L1 segments kept by systemd, %d L2 files (of %d found: the rest over "
            "the budget; %d strays removed; %d legacy /dev/shm segments removed)",
            self.stats["adopted_l1"], kept, len(files), strays, legacy,
        )  # fmt: skip

    def _learning(self) -> dict[str, CostAwarePolicy]:
        """The policies that learn (the cost-aware ones; LRU learns nothing), by tier name."""
        tiers = (self.l1, self.l2)
        return {t.name.value: t.policy for t in tiers if isinstance(t.policy, CostAwarePolicy)}

    def _read_learned(self) -> learned.Learned | None:
        try:
            return learned.load(self.disk.root, tuple(self._learning()))
        except learned.LearnedError as exc:
            log.warning("what the daemon learned before its restart (learned.json in %s) is not "
                        "used: %s; its images are ranked on estimates until used again",
                        self.disk.root, exc)  # fmt: skip
            return None

    def learned_now(self) -> Callable[[], None]:
        """What the policies and the hit counts hold now, taken on the event loop; the call
        returned writes it to ``cache_dir`` (blocking: run it in a thread, or at the stop)."""
        now = self.clock()
        policies = {name: policy.learned(now) for name, policy in self._learning().items()}
        used = sorted(self.entries.values(), key=lambda e: e.last_use, reverse=True)
        entries = {
            e.digest: (e.hits, max(now - e.last_use, 0.0))
            for e in used[: learned.MAX_IMAGES]
            if e.hits
        }
        root, taken = self.disk.root, time.monotonic()
        return lambda: learned.save(root, policies, entries, taken)

    def close(self) -> None:
        """Close every descriptor (clients' mappings stay valid)."""
        self.l1.close()
        self.l2.close()
        self.reaper.drain()

    # -- acquire ------------------------------------------------------------------------------

    async def acquire(self, ref: RefInfo) -> Lease:
        """Take one lease on ``ref``'s image, from L1 if it is or can be made resident (and
        the namespace's L1 share allows), else from the L2 file. The caller must ``release``
        the lease exactly once.

        The image is held in both tiers from before its fetch to the lease (``Tier.hold``):
        other requests' loads, which run on the loop between the fetch's end and this
        coroutine's next step, never pick the copy it brought as their victim."""
        for _ in range(LEASE_ATTEMPTS):
            with self._held(ref.digest):
                found = await self.ensure(ref)
                lease = self._lease(ref.digest, ref.namespace, found)
                if lease is None and self._held_back(ref):
                    # over its share of a tier that has the image: the page cache serves it if
                    # the namespace's L2 share allows, from a file made of the segment if need be
                    await self.fetcher.copy_down(ref.digest)
                    lease = self._lease(ref.digest, ref.namespace, found)
                    if lease is None:
                        # the namespace's clients hold the share: ask them to let go of their
                        # idle models, as a tier full of leases does (else it stays full)
                        self.fetcher.signal_pressure()
                        raise self._over_shares(ref)
            if lease is not None:
                self.quotas.take(ref.namespace, lease.copy)
                return lease
            # removed between the fetch and our turn on the loop (not as a victim: an admin
            # eviction, an L2 file found unreadable): fetch again
        raise Busy(f"{ref.key}: the image keeps being evicted before it can be served; retry")

    @contextlib.contextmanager
    def _held(self, digest: str) -> Iterator[None]:
        """Hold the image in both tiers for the block, given back however it ends (a lease,
        an error, a cancelled or disconnected requester)."""
        self.l1.hold(digest)
        try:
            self.l2.hold(digest)
            try:
                yield
            finally:
                self.l2.unhold(digest)
        finally:
            self.l1.unhold(digest)
            self.fetcher.room_changed()

    def lease_if_resident(self, ref: RefInfo) -> Lease | None:
        """The L1 hit, synchronously: one lease on the resident segment, or None. The caller
        then calls ``count_resident_hit(ref)`` in the same callback (after its reply: nothing
        in the reply depends on the policies' and the entry's counts)."""
        entry = self.entries.get(ref.digest)
        resident = self.l1.copies.get(ref.digest)
        if entry is None or entry.state is not State.READY or resident is None:
            return None
        if not self.quotas.allows(ref.namespace, self.l1, resident):
            return None
        copy = self.l1.lease(ref.digest)
        if copy is None:
            return None
        self.quotas.take(ref.namespace, copy)
        return Lease(copy, TierName.L1, ref.namespace)

    def count_resident_hit(self, ref: RefInfo) -> None:
        """The bookkeeping of a lease from ``lease_if_resident``: the request for both
        policies, the entry's hit and the tier's hit counter, as ``ensure`` counts an L1 hit."""
        self._requested(ref)
        self.stats["served_l1"] += 1  # as _lease counts the ordinary path's
        entry = self.entries.get(ref.digest)
        if entry is not None:  # always, in the callback that took the lease
            self._hit(entry, f"{ref.key}@{ref.version}", TierName.L1)

    def _lease(self, digest: str, namespace: str, found: TierName) -> Lease | None:
        resident = self.l1.copies.get(digest)
        if resident is not None and self.quotas.allows(namespace, self.l1, resident):
            copy = self.l1.lease(digest)
            if copy is not None:
                self.stats["served_l1"] += 1
                return Lease(copy, found, namespace)
        cached = self.l2.copies.get(digest)
        if cached is None or not self.quotas.allows(namespace, self.l2, cached):
            return None
        copy = self.l2.lease(digest)
        if copy is None:
            return None
        try:
            fd = self.disk.open(digest)
        except OSError as exc:
            self.l2.release(copy)
            if exc.errno in OUT_OF_DESCRIPTORS:  # the daemon's limit, not the copy's fault
                raise out_of_descriptors(exc) from exc
            # removed or unreadable behind our back: fetch it again
            log.warning("L2 copy of %s cannot be opened, discarded: %s", digest[:12], exc)
            self.l2.evict(digest)
            return None
        self.stats["served_page_cache"] += 1
        if resident is not None:
            self.stats["share_fallbacks"] += 1
        return Lease(copy, found, namespace, fd)

    def _held_back(self, ref: RefInfo) -> bool:
        """Is the image on the node, but the namespace at its share of a tier holding it?"""
        for tier in (self.l1, self.l2):
            copy = tier.copies.get(ref.digest)
            if copy is not None and not self.quotas.allows(ref.namespace, tier, copy):
                return True
        return False

    def _over_shares(self, ref: RefInfo) -> Busy:
        rows = self.quotas.describe((self.l1, self.l2)).get(ref.namespace, {})
        held = "; ".join(
            f"{tier.upper()} {row['leased_bytes']} of its {row['budget']} bytes"
            for tier, row in rows.items()
        )
        return Busy(
            f"namespace {ref.namespace!r} holds its share of the shelf "
            f"({held or 'and L2 cannot take the image'}): cannot place {ref.key} ({ref.size} "
            "bytes); its clients hold the leases: release models, or raise its l1_share/l2_share"
        )

    def handed(self, lease: Lease) -> None:
        """The lease's descriptor went out (the client holds its own now): an L2 file's,
        opened for this lease, is closed; the lease itself lasts until ``release``."""
        fd, lease.own_fd = lease.own_fd, -1
        if fd >= 0:
            if lease.copy.linked:
                os.close(fd)  # a file still in images/: no blocks can be freed by this close
            else:
                self.reaper.close(fd)  # may be the last reference to a deleted file

    def release(self, lease: Lease) -> None:
        self.handed(lease)
        copy = lease.copy
        self.quotas.give_back(lease.namespace, copy)
        self.tier(copy.tier).release(copy)
        self.fetcher.room_changed()
        if not copy.linked:
            self._forget_if_empty(copy.digest)

    def _requested(self, ref: RefInfo) -> None:
        """Every request, hit or miss, before anything is admitted: both policies count it
        (the L2 copy is what makes an L1 reload cheap)."""
        now, size = self.clock(), cost(ref.size)
        self.l1.policy.on_request(ref.digest, size, now)
        self.l2.policy.on_request(ref.digest, size, now)

    def _hit(self, entry: Entry, label: str, tier: TierName, request: bool = True) -> None:
        entry.labels.add(label)
        if request:
            entry.hits += 1
            entry.last_use = self.clock()
            self.stats[f"{tier}_hits"] += 1

    async def ensure(self, ref: RefInfo, *, request: bool = True) -> TierName:
        """Make the image available on this node (L1, else L2), fetching it at most once
        however many ask (``Fetcher.ensure``); the tier it was found in. ``request`` False:
        an operator's prefetch, pin or warm list places it, which is no use of it: no hit or
        miss is counted and the policies learn no use (they rank an image loaded without one
        on their prior: ``CostAwarePolicy.on_load``)."""
        if request:
            self._requested(ref)
        entry = self.entries.get(ref.digest)
        label = f"{ref.key}@{ref.version}"
        if entry is not None and entry.state is State.READY and ref.digest in self.l1.copies:
            self._hit(entry, label, TierName.L1, request)
            return TierName.L1
        found = await self.fetcher.ensure(ref.digest, lambda: self._begin(ref), self._end)
        entry = self.entries.get(ref.digest)
        if entry is not None:  # else evicted already: the caller fetches again
            self._hit(entry, label, found, request)
            if request:
                self.stats["l1_misses"] += found is not TierName.L1
                self.stats["l2_misses"] += found is TierName.L3
        return found

    def _begin(self, ref: RefInfo) -> Entry:
        """The entry of an image being fetched: kept whatever its copies do meanwhile."""
        entry = self.entries.setdefault(ref.digest, Entry(ref.digest, ref.size))
        entry.last_use = entry.last_use or self.clock()
        entry.state = State.FETCHING
        entry.size = ref.size
        return entry

    def _end(self, entry: Entry) -> None:
        entry.state = State.READY
        self._forget_if_empty(entry.digest)

    def _known(self, entry: Entry) -> None:
        """A copy was added after its fetch returned (a background promotion): the entry
        stays known even if its other copies went meanwhile."""
        self.entries.setdefault(entry.digest, entry)

    async def settle(self, digest: str) -> None:
        """Wait for what is still being placed for this image (a background promotion, the
        L2 write of a segment just fetched)."""
        await self.fetcher.settle(digest)

    async def drain(self, timeout: float) -> None:
        """Let fetches, promotions and L2 writes in flight finish, up to ``timeout`` seconds."""
        await self.fetcher.drain(timeout)

    # -- admin --------------------------------------------------------------------------------

    def evict(self, digest: str, tier: TierName = TierName.L1) -> bool:
        """Unlink the image's segment (L1) or remove its file (L2); its bytes stay counted
        while leases remain, and mappings stay valid. An L2 file still being written from a
        new segment is stopped and never added (``Fetcher.cancel_write``)."""
        held = self.tier(tier)
        if held.evict(digest):
            held.evictions += 1  # counted as the budget's evictions are (operations.md)
            return True
        return tier is TierName.L2 and self.fetcher.cancel_write(digest)

    async def to_l1(self, digest: str) -> None:
        """Into L1 from the page cache, past the admission policy (``pin``)."""
        entry = self.entries.get(digest)
        if entry is not None and digest not in self.l1.copies:
            await self.fetcher.to_l1(entry)

    def pin(self, digest: str, pinned: bool) -> None:
        copy = self.l1.copies.get(digest)
        if pinned and copy is None:
            raise Busy(f"image {digest[:12]} is not in L1 (it did not fit); cannot pin it")
        if copy is not None:
            copy.pinned = pinned
            if not pinned and self.l1.used > self.l1.budget:
                self.l1.shrink()  # a budget shrunk under pins is met once they go

    def pinned(self, digest: str) -> bool:
        copy = self.l1.copies.get(digest)
        return copy is not None and copy.pinned

    def listing(self, max_labels: int) -> list[dict[str, Any]]:
        """One row per image on this node (``ls``)."""
        now = self.clock()
        return [
            {
                "models": sorted(entry.labels)[:max_labels],
                "model_count": len(entry.labels),
                "digest": entry.digest,
                "size": entry.size,
                "tiers": [t.value for t in self.where(entry.digest)],
                "state": entry.state.value,
                "hits": entry.hits,
                "idle_seconds": round(now - entry.last_use, 3),
                "leases": self.leases_of(entry.digest),
                "pinned": self.pinned(entry.digest),
                **self._weighed(entry, now),
            }
            for entry in self.entries.values()
        ]

    def _weighed(self, entry: Entry, now: float) -> dict[str, Any]:
        """What the cost-aware policies think of the image: its priority in L1 (None if not
        resident) and the seconds reloading it into each tier costs, measured or estimated."""
        out: dict[str, Any] = {}
        for tier in (self.l1, self.l2):
            policy = tier.policy
            if isinstance(policy, CostAwarePolicy):
                size = cost(entry.size)
                out[f"{tier.name}_reload_seconds"] = round(policy.cost(entry.digest, size), 6)
                out[f"{tier.name}_reload_measured"] = policy.measured(entry.digest)
                out[f"{tier.name}_priority"] = policy.priority(entry.digest, now)
        return out

    def oldest_l1_seconds(self) -> float:
        """How long the least recently used image in L1 has gone unused (0 if L1 is empty)."""
        now = self.clock()
        uses = [self.entries[d].last_use for d in self.l1.copies if d in self.entries]
        return round(now - min(uses), 3) if uses else 0.0

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

    def counters(self) -> dict[str, int | float]:
        """Every event counter (docs/operations.md), the tiers' evictions and reload seconds
        included."""
        reload = {
            f"{t}_reload_seconds": round(s, 6) for t, s in self.fetcher.reload_seconds.items()
        }
        return {
            **self.stats,
            "l1_evictions": self.l1.evictions,
            "l2_evictions": self.l2.evictions,
            **reload,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "l1": self.l1.describe(),
            "l2": self.l2.describe(),
            "leases": self.l1.leases() + self.l2.leases(),
            "leased_bytes": self.l1.leased_bytes() + self.l2.leased_bytes(),
            "inflight_fetches": len(self.fetcher.inflight),
            "promotions": len(self.fetcher.promotions),
            "l2_writes": len(self.fetcher.l2_writes),
            "namespaces": self.quotas.describe((self.l1, self.l2), self.config.namespaces),
            "policy": self.config.policy,
            "l1_oldest_seconds": self.oldest_l1_seconds(),
        }
