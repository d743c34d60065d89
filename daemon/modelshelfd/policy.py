"""Eviction and admission policy: a small, pure, clock-injected piece that only decides.

The tiers own storage and byte accounting; they hand the policy the copies that may go (never
leased, never pinned, never busy) and the bytes they need, and evict what the policy returns,
in order, all of it. The shelf asks the policy whether an image should enter shared memory (L1)
or be served from the page cache (L2) for now. One policy object serves one tier: what a miss
costs differs per tier (a copy from disk into L1, a read from disk into the page cache, a fetch
from the store into L2).

``CostAwarePolicy`` (GreedyDual-Size-Frequency, GD*, with measured costs, a ghost list and
a size gate at admission) is the daemon's; ``LRUPolicy`` is the plain baseline. Both implement
``Policy``: the hooks ``on_request``, ``on_load``, ``on_insert`` and ``on_evict`` tell the
policy what happened, ``victims`` and ``admit`` ask it to decide. Nothing here reads a clock,
touches a file or blocks; ``bench/policy.py`` replays traces through this very code.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

MAX_GHOSTS = 1 << 16  # images remembered after they left the tier (or before they entered it)
DEFAULT_BANDWIDTH = 200e6  # bytes per second from the tier below, until one load is measured


@dataclass(frozen=True)
class Candidate:
    """What a policy may know about an evictable image."""

    key: str
    size: int
    last_use: float
    hits: int = 0


Candidates = Iterable[Candidate] | Mapping[str, Candidate]


class Policy(Protocol):
    """Orders eviction victims and decides admission into L1; pure and clock-injected.

    The tier calls the hooks as things happen to one of its images, in this order for a miss:
    ``on_request`` (every use the tier sees, hit or miss), ``admit`` (L1 only), ``victims``
    (when the room must be made), the load, ``on_load`` (its measured seconds), ``on_insert``
    (the copy is in the tier). ``on_evict`` reports a copy that left the tier for any other
    reason than ``victims`` (an admin evict, a failed validation, a removed image)."""

    def on_request(self, key: str, size: int, now: float) -> None: ...

    def on_load(self, key: str, size: int, seconds: float, now: float) -> None: ...

    def on_insert(self, key: str, size: int, now: float) -> None: ...

    def on_evict(self, key: str, now: float) -> None: ...

    def victims(self, candidates: Candidates, need: int, now: float) -> list[str]:
        """Keys to evict, in order, freeing at least ``need`` bytes if the candidates allow.
        The caller evicts every key returned (the policy forgets them as residents)."""
        ...

    def admit(self, candidate: Candidate, free: int, now: float) -> bool:
        """Should this image enter L1 now (evicting others if needed)? ``free``: the bytes L1
        has without evicting anything. False: serve it from the page cache (L2) for now."""
        ...


def _by_key(candidates: Candidates) -> Mapping[str, Candidate]:
    if isinstance(candidates, Mapping):
        return candidates  # the simulator keeps one up to date: no copy per eviction
    return {c.key: c for c in candidates}


def _fewest(chosen: list[tuple[str, int]], need: int) -> list[tuple[str, int]]:
    """Drop, latest chosen first, every victim without which ``need`` is still freed: one load
    never evicts more than it needs (a large victim late in the order may cover small ones)."""
    freed = sum(size for _, size in chosen)
    kept: list[tuple[str, int]] = []
    for key, size in reversed(chosen):
        if freed - size >= need:
            freed -= size
        else:
            kept.append((key, size))
    kept.reverse()
    return kept


class LRUPolicy:
    """Least recently used first; ties broken by key so that the order is deterministic.

    Admission: an image enters L1 if it fits in free room, or on its second use while this
    node knows it; the first use of an image when L1 is full is served from the page cache,
    so that images used once never push out the working set. It keeps no state: the hooks do
    nothing, the tier's ``last_use`` and ``hits`` are all it reads."""

    def on_request(self, key: str, size: int, now: float) -> None:
        pass

    def on_load(self, key: str, size: int, seconds: float, now: float) -> None:
        pass

    def on_insert(self, key: str, size: int, now: float) -> None:
        pass

    def on_evict(self, key: str, now: float) -> None:
        pass

    def admit(self, candidate: Candidate, free: int, now: float) -> bool:
        del now
        return candidate.size <= free or candidate.hits > 0

    def victims(self, candidates: Candidates, need: int, now: float) -> list[str]:
        del now  # LRU needs only the order of last uses
        chosen: list[tuple[str, int]] = []
        freed = 0
        for c in sorted(_by_key(candidates).values(), key=lambda c: (c.last_use, c.key)):
            if freed >= need:
                break
            chosen.append((c.key, c.size))
            freed += c.size
        return [key for key, _ in _fewest(chosen, need)]


@dataclass
class _Resident:
    size: int
    uses: float  # decayed count
    last: float  # of the last use
    cost: float  # seconds to bring it back from the tier below
    measured: bool  # False: ``cost`` is the size over the tier's bandwidth
    priority: float
    seq: int  # the heap entry that is current; older ones are stale


@dataclass
class _Ghost:
    uses: float
    last: float
    cost: float | None  # measured, smoothed; None: never loaded into this tier


class CostAwarePolicy:
    """GreedyDual-Size-Frequency (GD*) with measured reload costs; the daemon's policy.

    Priority of a resident image: ``H = L + (uses * cost / size) ** exponent``, set when it
    enters the tier and at each use (GD*, the GreedyDual-Size-Frequency family member of Jin and
    Bestavros: an exponent above 1 weighs what an image is worth against how long ago it was
    used, the inflation; 2 measured best in ``bench/policy.py``, 1 is plain GDSF). ``cost`` is
    the time to bring the image back from the tier below, measured per image at each load and
    smoothed (``on_load``); before its first measurement, its size over the tier's measured
    bandwidth (smoothed over all loads). ``uses`` counts the uses the policy remembers, resident
    or not (the ghost list), each halved every ``half_life`` seconds of the injected clock
    (None: never), so that yesterday's favourites fade. ``L``, the inflation, is raised to the
    priority of each victim, so that images not used for a while age below new ones. Victims:
    lowest ``H`` first, then the fewest of them that free ``need``; copies the policy was never
    told about (adopted after a restart without ``on_insert``) go after the known ones, least
    recently used first.

    Admission (L1): an image that fits in free room enters, and so does any image up to
    ``gate`` of the budget. A larger one must have ``proof`` decayed uses (1.5: a second use
    within a half-life) and a priority, were it to enter now, at least that of the last victim
    it would need (the evictable ones are not known here: all residents count); until then it
    is served from the page cache.

    State, all bounded: the residents (as many as the tier holds), a lazy heap of their
    priorities (compacted at twice their number), the ghosts (``max_ghosts``, least recently
    used forgotten first), ``L`` and the tier's bandwidth."""

    def __init__(
        self,
        budget: int,
        *,
        bandwidth: float = DEFAULT_BANDWIDTH,
        gate: float = 0.05,
        proof: float = 1.5,
        half_life: float | None = 3600.0,
        exponent: float = 2.0,
        smoothing: float = 0.3,
        max_ghosts: int = MAX_GHOSTS,
    ) -> None:
        if budget <= 0 or bandwidth <= 0 or not 0 < smoothing <= 1 or proof < 1:
            raise ValueError(
                f"expected budget > 0, bandwidth > 0, 0 < smoothing <= 1 and proof >= 1, got "
                f"{budget}, {bandwidth}, {smoothing}, {proof}"
            )
        self.budget = budget
        self.gate = gate
        self.proof = proof
        self.half_life = half_life
        self.exponent = exponent
        self.smoothing = smoothing
        self.max_ghosts = max_ghosts
        # bytes and seconds of the loads, smoothed apart: their ratio, the bandwidth, is the
        # large loads' (the small ones' fixed part would drag it down)
        self._loaded = (float(bandwidth), 1.0)
        self.inflation = 0.0  # L
        self._residents: dict[str, _Resident] = {}
        self._ghosts: OrderedDict[str, _Ghost] = OrderedDict()  # oldest use first
        self._heap: list[tuple[float, int, str]] = []  # (priority, seq, key), lazily deleted
        self._seq = 0

    # -- what happened ------------------------------------------------------------------------

    def on_request(self, key: str, size: int, now: float) -> None:
        """One use of the image that reached this tier (a hit or a miss)."""
        resident = self._residents.get(key)
        if resident is not None:
            resident.uses = self._decayed(resident.uses, resident.last, now) + 1
            resident.last = now
            self._prioritize(key, resident)
            return
        ghost = self._ghosts.pop(key, None) or _Ghost(0.0, now, None)
        ghost.uses = self._decayed(ghost.uses, ghost.last, now) + 1
        ghost.last = now
        self._remember(key, ghost)

    def on_load(self, key: str, size: int, seconds: float, now: float) -> None:
        """The image took ``seconds`` to come from the tier below (measured by the tier)."""
        a = self.smoothing
        seconds = max(seconds, 0.0)
        nbytes, secs = self._loaded
        self._loaded = (nbytes + a * (size - nbytes), secs + a * (seconds - secs))
        resident = self._residents.get(key)
        if resident is not None:
            old = resident.cost if resident.measured else seconds
            resident.cost, resident.measured = old + a * (seconds - old), True
            return
        ghost = self._ghosts.get(key)
        if ghost is None:
            self._remember(key, _Ghost(0.0, now, seconds))
        else:
            old = seconds if ghost.cost is None else ghost.cost
            ghost.cost = old + a * (seconds - old)

    def on_insert(self, key: str, size: int, now: float) -> None:
        """The copy is in the tier (filled, verified, or adopted after a restart)."""
        if key in self._residents:
            return
        ghost = self._ghosts.pop(key, None) or _Ghost(1.0, now, None)
        cost = size / self.bandwidth if ghost.cost is None else ghost.cost
        measured = ghost.cost is not None
        uses = max(self._decayed(ghost.uses, ghost.last, now), 1.0)
        resident = _Resident(max(size, 1), uses, now, cost, measured, 0.0, 0)
        self._residents[key] = resident
        self._prioritize(key, resident)

    def on_evict(self, key: str, now: float) -> None:
        """The copy left the tier for another reason than ``victims`` (no inflation)."""
        del now
        self._forget(key)

    # -- decisions ----------------------------------------------------------------------------

    def admit(self, candidate: Candidate, free: int, now: float) -> bool:
        if candidate.size <= free:
            return True
        if candidate.size > self.budget:
            return False
        if candidate.size <= self.gate * self.budget:
            return True
        if self.uses(candidate.key, now) < self.proof - 1e-9:
            return False
        return self._outranks(candidate, candidate.size - free, now)

    def _outranks(self, candidate: Candidate, need: int, now: float) -> bool:
        """Would the newcomer's priority be at least that of the last victim it needs?"""
        key, size = candidate.key, max(candidate.size, 1)
        mine = self._worth(max(self.uses(key, now), 1.0), self.cost(key, size), size)
        popped: list[tuple[float, int, str]] = []
        freed, top = 0, 0.0
        while freed < need and self._heap:
            entry = heapq.heappop(self._heap)
            resident = self._residents.get(entry[2])
            if resident is None or resident.seq != entry[1]:
                continue
            popped.append(entry)
            freed += resident.size
            top = entry[0]
        for entry in popped:
            heapq.heappush(self._heap, entry)
        return mine >= top

    def victims(self, candidates: Candidates, need: int, now: float) -> list[str]:
        del now
        if need <= 0:
            return []
        allowed = _by_key(candidates)
        chosen: list[tuple[str, int]] = []
        popped: list[tuple[float, int, str]] = []  # valid entries taken off the heap
        freed = 0
        while freed < need and self._heap:
            entry = heapq.heappop(self._heap)
            _, seq, key = entry
            resident = self._residents.get(key)
            if resident is None or resident.seq != seq:
                continue  # stale
            popped.append(entry)
            if key in allowed:
                chosen.append((key, allowed[key].size))
                freed += allowed[key].size
        if freed < need:  # copies the policy never saw enter: least recently used first
            unknown = [c for k, c in allowed.items() if k not in self._residents]
            for c in sorted(unknown, key=lambda c: (c.last_use, c.key)):
                if freed >= need:
                    break
                chosen.append((c.key, c.size))
                freed += c.size
        out = [key for key, _ in _fewest(chosen, need)]
        going = set(out)
        for entry in popped:
            if entry[2] in going:
                self.inflation = max(self.inflation, entry[0])
            else:
                heapq.heappush(self._heap, entry)
        for key in out:
            self._forget(key)
        return out

    # -- what it knows ------------------------------------------------------------------------

    def uses(self, key: str, now: float) -> float:
        """The uses of ``key`` the policy remembers, decayed to ``now`` (0: none)."""
        known = self._residents.get(key) or self._ghosts.get(key)
        return self._decayed(known.uses, known.last, now) if known is not None else 0.0

    def priority(self, key: str) -> float | None:
        """The resident's ``H``; None if ``key`` is not resident."""
        resident = self._residents.get(key)
        return resident.priority if resident is not None else None

    def cost(self, key: str, size: int) -> float:
        """The seconds the policy expects a load of ``key`` from the tier below to take."""
        known = self._residents.get(key) or self._ghosts.get(key)
        if known is not None and known.cost is not None:
            return known.cost
        return size / self.bandwidth

    @property
    def bandwidth(self) -> float:
        """Bytes per second of the loads from the tier below, smoothed."""
        nbytes, secs = self._loaded
        return nbytes / secs if secs > 0 else float("inf")

    def __len__(self) -> int:
        return len(self._residents)

    # -- bookkeeping --------------------------------------------------------------------------

    def _decayed(self, uses: float, last: float, now: float) -> float:
        if self.half_life is None or now <= last:
            return uses
        return uses * 0.5 ** ((now - last) / self.half_life)

    def _worth(self, uses: float, cost: float, size: int) -> float:
        return self.inflation + (uses * cost / size) ** self.exponent

    def _prioritize(self, key: str, resident: _Resident) -> None:
        self._seq += 1
        resident.seq = self._seq
        resident.priority = self._worth(resident.uses, resident.cost, resident.size)
        heapq.heappush(self._heap, (resident.priority, resident.seq, key))
        if len(self._heap) > 2 * len(self._residents) + 64:
            self._heap = [(r.priority, r.seq, k) for k, r in self._residents.items()]
            heapq.heapify(self._heap)

    def _forget(self, key: str) -> None:
        resident = self._residents.pop(key, None)
        if resident is not None:
            self._remember(key, _Ghost(resident.uses, resident.last, resident.cost))

    def _remember(self, key: str, ghost: _Ghost) -> None:
        self._ghosts[key] = ghost
        self._ghosts.move_to_end(key)
        while len(self._ghosts) > self.max_ghosts:
            self._ghosts.popitem(last=False)
