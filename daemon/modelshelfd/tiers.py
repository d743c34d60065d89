"""Tiers as objects: each tier accounts for its own copies, bytes, leases and evictions.

    Tier            budget, reserve/unreserve, add/adopt, hold/unhold, lease/release, evict,
                    describe
    ├── SharedMemory    L1: sealed memfd segments (resident; handed out read-only)
    └── PageCache       L2: verified image files in cache_dir/images, handed out read-only
                        when shared memory cannot take an image (the kernel's page cache)

A tier's ``used`` bytes are its resident copies, its retired copies (evicted while leased:
their memory or disk blocks live until the last lease ends) and its reservations (copies being
filled), each counted by what it really occupies: whole pages (``cost``), as shared memory and
the page cache do. ``used`` changes in exactly three places: ``reserve``/``unreserve``, ``adopt``
and ``_free``. The policy only orders victims; the tier evicts them. Nothing here blocks except
closing descriptors and unlinking names; filling copies happens in the shelf's threads.

A copy is a victim only if nothing needs it: not leased, pinned, busy (being read or verified)
or held. A hold is by digest, taken by a request for the whole of its wait, from before its
fetch starts to its lease (or its giving up): the copy a fetch inserts is kept for the requests
that waited for it even when other requests' loads run on the loop before they resume.
"""

from __future__ import annotations

import enum
import mmap
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, ValuesView
from dataclasses import dataclass
from typing import Any

from .policy import Candidate, Policy
from .storage import Disk, Reaper, Segment


class TierName(enum.StrEnum):
    """The tiers, by the names the protocol and the counters use."""

    L1 = "l1"  # shared memory
    L2 = "l2"  # local disk, served from the page cache
    L3 = "l3"  # the object store


class TierFull(Exception):
    """A tier cannot take ``size`` more bytes: the image is larger than its budget, or what it
    holds is leased, pinned, being read or held for a waiting request (``leased`` True:
    clients could free room)."""

    def __init__(self, tier: Tier, size: int, *, leased: bool, why: str = "") -> None:
        # cheap on purpose: raised on every reservation that fails, and caught by the fetcher,
        # which words the refusal a client sees (with the leased bytes) only when it refuses
        self.tier, self.size, self.leased = tier.name, size, leased
        if not why:
            full = "full of leased, pinned, busy or held copies"
            why = full if leased else "smaller than the image"
        super().__init__(f"{tier.name.upper()} is {why}: cannot place {size} bytes")


@dataclass(eq=False)
class Copy:
    """One image's bytes in one tier. ``fd`` is an L1 segment's read-only descriptor, handed
    to clients (-1 once closed; an L2 copy has none: each lease opens the file, ``Lease``);
    ``linked`` is False once evicted (the name or file is gone, the bytes live until the last
    lease ends)."""

    tier: TierName
    digest: str
    size: int
    name: str = ""  # the segment's name (L1)
    fd: int = -1
    leases: int = 0
    linked: bool = True
    pinned: bool = False
    busy: bool = False  # being read (promoted to L1) or verified: not a victim
    verified: bool = True  # L2 files a previous run left are verified before first use


Usage = Callable[[str], tuple[float, int]]  # digest -> (last use, hits)


class _Evictable(Mapping[str, Candidate]):
    """The tier's copies that may go (not leased, pinned, busy or held), by digest, as
    candidates built on access: membership and lookup are O(1); iterating or ``len`` walk
    every copy."""

    def __init__(
        self, copies: dict[str, Copy], usage: Usage, holds: Mapping[str, int] | None = None
    ) -> None:
        self._copies, self._usage = copies, usage
        self._holds: Mapping[str, int] = holds if holds is not None else {}

    def _ok(self, c: Copy) -> bool:
        return c.leases == 0 and not c.pinned and not c.busy and c.digest not in self._holds

    def __getitem__(self, digest: str) -> Candidate:
        c = self._copies[digest]
        if not self._ok(c):
            raise KeyError(digest)
        last_use, hits = self._usage(digest)
        return Candidate(digest, cost(c.size), last_use, hits)

    def __contains__(self, digest: object) -> bool:
        c = self._copies.get(digest) if isinstance(digest, str) else None
        return c is not None and self._ok(c)

    def __iter__(self) -> Iterator[str]:
        return (d for d, c in self._copies.items() if self._ok(c))

    def __len__(self) -> int:
        return sum(1 for c in self._copies.values() if self._ok(c))

    def values(self) -> ValuesView[Candidate]:
        return _Candidates(self)

    def candidates(self) -> Iterator[Candidate]:
        """All of them in one pass (what a policy that ranks them all, LRU, walks): no
        lookup per copy, as fast as the list the tier built before."""
        usage, holds = self._usage, self._holds
        for d, c in self._copies.items():
            if c.leases == 0 and not c.pinned and not c.busy and d not in holds:
                last_use, hits = usage(d)
                yield Candidate(d, cost(c.size), last_use, hits)


class _Candidates(ValuesView[Candidate]):
    _mapping: _Evictable

    def __iter__(self) -> Iterator[Candidate]:
        return self._mapping.candidates()


PAGE = mmap.PAGESIZE
SYNC_CLOSE_BYTES = 1 << 20  # smaller segments are freed on the loop, larger ones by the reaper


def cost(size: int) -> int:
    """What ``size`` bytes of an image occupy in a tier: whole pages."""
    return -(-size // PAGE) * PAGE


class Tier(ABC):
    """One tier's copies, bytes, leases and evictions (the module docstring has the rules)."""

    name: TierName

    def __init__(
        self,
        budget: int,
        policy: Policy,
        clock: Callable[[], float],
        usage: Usage,
        reaper: Reaper,
    ) -> None:
        self.policy = policy
        self.budget = budget
        self.max_copies = 1 << 62  # L1: each segment is a descriptor (machine.py sets it)
        self.pending = 0  # copies being filled in reserved room
        self.reaper = reaper
        self.clock = clock
        self.usage = usage
        self.used = 0
        self.copies: dict[str, Copy] = {}  # linked copies by digest
        self.retired: set[Copy] = set()  # evicted while leased
        # digest -> requests waiting to lease it (``hold``): one per acquire in flight, so
        # bounded as requests are (max_connections, http_infer_queue); empty when idle
        self.holds: dict[str, int] = {}
        self.evictions = 0
        self.on_evict: Callable[[str], object] = lambda digest: None

    @property
    def budget(self) -> int:
        return self._budget

    @budget.setter
    def budget(self, value: int) -> None:
        """The tier's bytes; its policy weighs sizes against the same figure."""
        self._budget = value
        if hasattr(self.policy, "budget"):
            self.policy.budget = value

    # -- bytes --------------------------------------------------------------------------------

    def reserve(self, size: int) -> None:
        """Count ``size`` bytes for a copy about to be filled, evicting unleased, unpinned
        copies the policy picks if needed; TierFull if the room cannot be made, and then
        nothing is evicted (the copies that may go would not free enough: evicting them would
        cost their reloads and place nothing)."""
        need = cost(size)
        if need > self.budget:
            raise TierFull(self, size, leased=False)
        if not self._make_room(self.used + need - self.budget):
            raise TierFull(self, size, leased=True)
        if self._count() >= self.max_copies:
            self._make_room(1)  # one victim, whatever its size
        if self.used + need > self.budget:
            raise TierFull(self, size, leased=True)
        if self._count() >= self.max_copies:
            raise TierFull(self, size, leased=True, why=f"at its {self.max_copies} descriptors")
        self.used += need
        self.pending += 1

    def unreserve(self, size: int) -> None:
        self.used -= cost(size)
        self.pending -= 1

    def add(self, copy: Copy) -> None:
        """A filled copy whose bytes were reserved."""
        self.copies[copy.digest] = copy
        self.pending -= 1
        self.policy.on_insert(copy.digest, cost(copy.size), self.clock())

    def _count(self) -> int:
        return len(self.copies) + len(self.retired) + self.pending

    def adopt(self, copy: Copy) -> None:
        """A copy a previous run left; call ``shrink`` once all are adopted."""
        self.copies[copy.digest] = copy
        self.used += cost(copy.size)
        self.policy.on_insert(copy.digest, cost(copy.size), self.clock())

    def shrink(self) -> None:
        """Evict down to the budget (which may have shrunk since the copies were adopted), or
        as near as the copies that may go allow."""
        self._make_room(self.used - self.budget, partial=True)

    def _make_room(self, need: int, *, partial: bool = False) -> bool:
        """Evict the policy's victims for ``need`` bytes; if they would not free that much,
        evict none of them (they stay, and the policy is told so) unless ``partial``: False."""
        if need <= 0:
            return True
        # a view, not a list: a policy that samples builds the few candidates it looks at
        # (building all 2,000 took about 1 ms per eviction in the event loop)
        candidates = _Evictable(self.copies, self.usage, self.holds)
        now = self.clock()
        victims = self.policy.victims(candidates, need, now)
        sizes = [cost(self.copies[digest].size) for digest in victims]
        if sum(sizes) < need and not partial:
            for digest, size in zip(victims, sizes, strict=True):
                self.policy.on_insert(digest, size, now)  # still resident: victims forgot it
            return False
        for digest in victims:
            self.evict(digest)
            self.evictions += 1
        return sum(sizes) >= need

    def _free(self, copy: Copy) -> None:
        self._close(copy)
        self.used -= cost(copy.size)

    # -- holds and leases ----------------------------------------------------------------------

    def hold(self, digest: str) -> None:
        """One more request waits to lease the image: its copy here (now, or once a fetch or a
        promotion adds it) is no victim until every hold is given back (``unhold``, in a
        ``finally``: a leaked hold keeps the copy forever). The budget still holds: a tier full
        of held copies refuses (``TierFull``) as one full of leases does."""
        self.holds[digest] = self.holds.get(digest, 0) + 1

    def unhold(self, digest: str) -> None:
        left = self.holds[digest] - 1
        if left:
            self.holds[digest] = left
        else:
            del self.holds[digest]

    def lease(self, digest: str) -> Copy | None:
        """One more lease on the linked copy; None if absent."""
        copy = self.copies.get(digest)
        if copy is None or not copy.verified:
            return None
        copy.leases += 1
        return copy

    def release(self, copy: Copy) -> None:
        copy.leases -= 1
        if copy.leases:
            return
        if not copy.linked:
            self.retired.discard(copy)
            self._free(copy)
        elif self.used > self.budget:  # a smaller budget (SIGHUP, memory pressure) that
            self.shrink()  # leases kept out of reach: this copy may go now

    def evict(self, digest: str) -> bool:
        """Unlink the copy; its bytes stay counted while leases remain."""
        copy = self.copies.pop(digest, None)
        if copy is None:
            return False
        self.policy.on_evict(digest, self.clock())
        copy.linked = False
        self._unlink(copy)
        if copy.leases:
            self.retired.add(copy)
        else:
            self._free(copy)
        self.on_evict(digest)
        return True

    def close(self) -> None:
        """Close every descriptor (the daemon stops); what is linked stays for the next run
        only where the tier persists (L2); segments end with their last mapping."""
        for copy in [*self.copies.values(), *self.retired]:
            self._close(copy)

    # -- reporting ----------------------------------------------------------------------------

    def leased_bytes(self) -> int:
        return sum(cost(c.size) for c in self.copies.values() if c.leases) + sum(
            cost(c.size) for c in self.retired
        )

    def leases(self) -> int:
        return sum(c.leases for c in self.copies.values()) + sum(c.leases for c in self.retired)

    def describe(self) -> dict[str, Any]:
        return {
            "bytes": self.used,
            "budget": self.budget,
            "count": len(self.copies),
            "retired": len(self.retired),
            "leases": self.leases(),
            "leased_bytes": self.leased_bytes(),
            "evictions": self.evictions,
        }

    # -- the tier's own resources ---------------------------------------------------------------

    @abstractmethod
    def _unlink(self, copy: Copy) -> None:
        """Remove the copy's name so nobody new can reach it."""

    @abstractmethod
    def _close(self, copy: Copy) -> None:
        """Let go of the copy's descriptor."""


class SharedMemory(Tier):
    """L1: one sealed segment per image; the tier keeps each segment's read-only descriptor."""

    name = TierName.L1

    # where segments outlive the daemon (systemd's descriptor store, systemd.Keeper): told of
    # each new segment and of each eviction
    keep: Callable[[str, int], object] = staticmethod(lambda digest, fd: None)
    drop: Callable[[str], object] = staticmethod(lambda digest: None)

    @staticmethod
    def copy_of(segment: Segment) -> Copy:
        return Copy(TierName.L1, segment.digest, segment.size, name=segment.name, fd=segment.fd)

    def add(self, copy: Copy) -> None:
        super().add(copy)
        self.keep(copy.digest, copy.fd)

    def _unlink(self, copy: Copy) -> None:
        # a sealed memfd has no name: no one new reaches it once the tier forgets it, and the
        # descriptor store lets go of it too
        self.drop(copy.digest)

    def _close(self, copy: Copy) -> None:
        if copy.fd < 0:
            return
        if copy.size <= SYNC_CLOSE_BYTES:
            os.close(copy.fd)  # freed now, as counted: microseconds for a few pages
        else:
            self.reaper.close(copy.fd)  # the last close frees the pages: not on the loop
        copy.fd = -1


class PageCache(Tier):
    """L2: image files on local disk. The tier keeps no descriptor: a lease opens the file for
    its hand-off and closes it once handed out (``Shelf.handed``); a file removed while leased
    stays counted until its last lease ends (its clients' mappings keep its blocks)."""

    name = TierName.L2

    def __init__(self, disk: Disk, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # budget, policy, clock, usage, reaper
        self.disk = disk

    def _unlink(self, copy: Copy) -> None:
        self.disk.retire(copy.digest, self.reaper)

    def _close(self, copy: Copy) -> None:
        pass  # no descriptor kept (each lease's own is closed by the shelf)
