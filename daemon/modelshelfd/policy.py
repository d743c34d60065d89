"""Eviction and admission policy: a small, pure, clock-injected piece that only decides.

The tiers own storage and byte accounting; they hand the policy the copies that may go (never
leased, never pinned, never busy) and the bytes they need, and evict what the policy returns,
in order, all of it. The shelf asks the policy whether an image should enter shared memory (L1)
or be served from the page cache (L2) for now. One policy object serves one tier: what a miss
costs differs per tier (a copy from disk into L1, a read from disk into the page cache, a fetch
from the store into L2).

``CostAwarePolicy`` (reload cost per byte over the expected time to the next use, from each
image's own inter-arrival times, with measured costs, a ghost list and a size gate at admission)
is the daemon's; ``LRUPolicy`` is the plain baseline. Both implement ``Policy``: the hooks
``on_request``, ``on_load``, ``on_insert`` and ``on_evict`` tell the policy what happened,
``victims`` and ``admit`` ask it to decide. Nothing here reads a clock, touches a file or
blocks; ``bench/policy.py`` replays traces through this very code.
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

MAX_GHOSTS = 1 << 16  # images remembered after they left the tier (or before they entered it)
DEFAULT_BANDWIDTH = 200e6  # bytes per second from the tier below, until one load is measured
SAMPLE = 48  # evictable residents drawn per round of a victim search
POOL = 16  # the lowest-worth ones kept between searches
# The defaults below were chosen on the azure-like traces of ``bench/policy.py`` (5 seeds, cost
# miss ratio at 5% and 20% of the working set; docs/benchmarks.md, "Tried and measured").
GATE = 0.1  # share of the budget up to which an image enters L1 on its first use
IDLE_WEIGHT = 0.3  # seconds of expected wait added per second an image has been idle
MAX_GAP = 1e9  # seconds (31 years): a longer gap is counted as this, its square stays finite
MIN_MEAN_GAP = 1e-3  # seconds: the shortest mean gap a fit uses (a smaller one overflows)


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
class _Seen:
    """What the policy remembers of one image, resident or not (then a ghost)."""

    last: float  # time of the last use
    uses: int = 1  # uses seen (gaps + 1)
    gap: float = 0.0  # smoothed seconds between uses
    gap2: float = 0.0  # smoothed square of them (their spread)
    cost: float | None = None  # measured seconds to load it from the tier below, smoothed
    fit: _Gaps | None = None  # of ``gap`` and ``gap2``; None: to compute at the next need


class CostAwarePolicy:
    """Reload cost per byte over the expected wait for the next use; the daemon's policy.

    Worth of an image (higher stays): ``cost / (size * wait)``, the reload seconds a byte of it
    saves per second it stays. ``cost`` is the time to bring the image back from the tier
    below, measured per image at each load and smoothed (``on_load``); before its first
    measurement, its size over the tier's measured bandwidth (smoothed over all loads).
    ``wait`` is the expected seconds until its next use given the ``age`` since its last one,
    from the image's own inter-arrival times (their mean ``m`` and squared coefficient of
    variation ``c2``, both smoothed over about ``1 / gap_smoothing`` gaps) as the mean residual
    life of a renewal process:

    - bursty (``c2 > 1``): a two-phase hyperexponential with balanced means (short gaps inside
      a burst, long ones between bursts); the longer the image has been idle, the likelier its
      burst is over: ``wait`` grows from the short phase's mean to the long one's;
    - regular (``c2 <= 1``): ``max(m - age, m * c2)`` (a gamma's residual life: due at the
      mean, then soon);

    plus ``idle_weight * age``: an image idle for longer than its history says has likely
    changed its habits (a daily cycle, a retired model). An image seen once has no gaps: the
    mean gap of all images (smoothed) and ``prior_cv2`` stand in. Unlike a frequency count,
    this knows *when*: a model used in bursts is kept through its burst and let go soon after,
    a regular one is kept until it is due. ``bench/policy.py`` measures it against
    GreedyDual-Size-Frequency and the field's policies (docs/benchmarks.md).

    Victims: lowest worth first at ``now``, then the fewest of them that free ``need``; copies
    the policy was never told about (adopted after a restart without ``on_insert``) go after
    the known ones, least recently used first. Worth changes with time, so no heap can keep the
    order; a scan of every evictable image per call cost 1-4 ms in the daemon's event loop with
    2,000 of them. Victims are searched as Redis approximates LRU: ``sample`` residents drawn
    at random (``rng``, seeded: the same choices for the same calls) plus a ``pool`` of the
    lowest found by the searches before, the lowest of those first (``_lowest``); a tier of at
    most ``sample + pool`` residents is ranked exactly.

    Admission (L1): an image that fits in free room enters, and so does any image up to
    ``gate`` of the budget. A larger one must have been used ``proof`` times while the policy
    remembered it (2: its second use; the ghost list) and be worth, now, at least the last
    victim it would need (the evictable ones are not known here: all residents count); until
    then it is served from the page cache.

    State, all bounded: what it remembers of each image (residents, and ``max_ghosts`` others,
    least recently used forgotten first) and the tier's bandwidth."""

    def __init__(
        self,
        budget: int,
        *,
        bandwidth: float = DEFAULT_BANDWIDTH,
        gate: float = GATE,
        proof: int = 2,
        gap_smoothing: float = 0.1,
        idle_weight: float = IDLE_WEIGHT,
        prior_cv2: float = 4.0,
        max_cv2: float = 64.0,
        smoothing: float = 0.3,
        max_ghosts: int = MAX_GHOSTS,
        sample: int = SAMPLE,
        pool: int = POOL,
        rng: random.Random | None = None,
    ) -> None:
        if (
            budget <= 0
            or bandwidth <= 0
            or not 0 < smoothing <= 1
            or not 0 < gap_smoothing <= 1
            or proof < 1
            or idle_weight < 0
            or sample < 1
            or pool < 0
        ):
            raise ValueError(
                "expected budget > 0, bandwidth > 0, 0 < smoothing <= 1, "
                "0 < gap_smoothing <= 1, proof >= 1, idle_weight >= 0, sample >= 1 and pool >= 0, "
                f"got {budget}, {bandwidth}, {smoothing}, {gap_smoothing}, {proof}, "
                f"{idle_weight}, {sample}, {pool}"
            )
        self.budget = budget
        self.gate = gate
        self.proof = proof
        self.gap_smoothing = gap_smoothing
        self.idle_weight = idle_weight
        self.prior_cv2 = prior_cv2
        self.max_cv2 = max_cv2
        self.smoothing = smoothing
        self.max_ghosts = max_ghosts
        self.sample = sample
        self.pool = pool
        self.rng = rng if rng is not None else random.Random(0)  # seeded: the same choices
        self._pool: list[str] = []  # lowest-worth residents found by the last search
        # bytes and seconds of the loads, smoothed apart: their ratio, the bandwidth, is the
        # large loads' (the small ones' fixed part would drag it down)
        self._loaded = (float(bandwidth), 1.0)
        self._mean_gap: float | None = None  # over all images: the prior of one seen once
        self._residents: dict[str, int] = {}  # key -> size
        self._seen: OrderedDict[str, _Seen] = OrderedDict()  # least recently used first

    # -- what happened ------------------------------------------------------------------------

    def on_request(self, key: str, size: int, now: float) -> None:
        """One use of the image that reached this tier (a hit or a miss)."""
        seen = self._seen.pop(key, None)
        if seen is None or seen.uses == 0:  # its first use (perhaps after a prefetch)
            cost = None if seen is None else seen.cost
            seen = _Seen(now, uses=1, cost=cost)
        else:
            gap = min(max(now - seen.last, 0.0), MAX_GAP)
            # the first gaps are averaged evenly, later ones smoothed
            a = max(1.0 / seen.uses, self.gap_smoothing)
            seen.gap += a * (gap - seen.gap)
            seen.gap2 += a * (gap * gap - seen.gap2)
            seen.uses += 1
            seen.last = now
            seen.fit = None
            mean = self._mean_gap
            self._mean_gap = gap if mean is None else mean + 0.01 * (gap - mean)
        self._remember(key, seen)

    def on_load(self, key: str, size: int, seconds: float, now: float) -> None:
        """The image took ``seconds`` to come from the tier below (measured by the tier)."""
        a = self.smoothing
        seconds = max(seconds, 0.0)
        nbytes, secs = self._loaded
        self._loaded = (nbytes + a * (size - nbytes), secs + a * (seconds - secs))
        seen = self._seen.get(key)
        if seen is None:
            seen = _Seen(now, uses=0)  # loaded without a use (a prefetch)
            self._remember(key, seen)
        old = seconds if seen.cost is None else seen.cost
        seen.cost = old + a * (seconds - old)

    def on_insert(self, key: str, size: int, now: float) -> None:
        """The copy is in the tier (filled, verified, or adopted after a restart)."""
        self._residents[key] = max(size, 1)
        if key not in self._seen:
            self._remember(key, _Seen(now, uses=0))

    def on_evict(self, key: str, now: float) -> None:
        """The copy left the tier for another reason than ``victims`` (it stays a ghost)."""
        del now
        self._residents.pop(key, None)

    # -- decisions ----------------------------------------------------------------------------

    def admit(self, candidate: Candidate, free: int, now: float) -> bool:
        if candidate.size <= free:
            return True
        if candidate.size > self.budget:
            return False
        if candidate.size <= self.gate * self.budget:
            return True
        if self.uses(candidate.key, now) < self.proof:
            return False
        return self._outranks(candidate, candidate.size - free, now)

    def _outranks(self, candidate: Candidate, need: int, now: float) -> bool:
        """Is the newcomer worth at least the last victim it would need (from a sample of the
        residents, as ``victims`` would choose them)?"""
        mine = self.worth(candidate.key, candidate.size, now)
        freed, top = 0, 0.0
        for worth, key in self._lowest(self._residents, now, peek=True):
            if freed >= need:
                break
            freed += self._residents[key]
            top = worth
        return mine >= top

    def victims(self, candidates: Candidates, need: int, now: float) -> list[str]:
        if need <= 0:
            return []
        allowed = _by_key(candidates)
        chosen: list[tuple[str, int]] = []
        freed = 0
        for _, key in self._lowest(allowed, now):
            if freed >= need:
                break
            size = allowed[key].size
            chosen.append((key, size))
            freed += size
        if freed < need:  # copies the policy never saw enter: least recently used first
            taken = {key for key, _ in chosen}
            unknown = [c for k, c in allowed.items() if k not in self._residents and k not in taken]
            for c in sorted(unknown, key=lambda c: (c.last_use, c.key)):
                if freed >= need:
                    break
                chosen.append((c.key, c.size))
                freed += c.size
        out = [key for key, _ in _fewest(chosen, need)]
        for key in out:
            self._residents.pop(key, None)
        return out

    def _lowest(
        self, allowed: Mapping[str, object], now: float, *, peek: bool = False
    ) -> Iterator[tuple[float, str]]:
        """Known evictable residents, about lowest worth first, without scanning them all.

        Worth changes with time, so no order can be kept between calls; instead (Redis's
        approximated LRU, with its pool): each round draws ``sample`` residents at random, adds
        the ``pool`` lowest kept from the rounds before, computes their worth at ``now`` and
        yields the lowest one; the next lowest stay in the pool for the next round or call.
        (Yielding the lowest quarter of each round, fewer rounds, cost 10% more reload seconds
        at 20% of the working set in ``bench/policy.py``.) A tier with at most ``sample +
        pool`` residents is ranked whole, exactly. ``peek``: choose without taking (the pool is
        left as it was). Each round costs ``sample + pool`` worths, whatever the number of
        residents: a search costs that per victim."""
        residents = self._residents
        keys = list(residents)
        if len(keys) <= self.sample + self.pool:  # small: rank them all, exactly
            yield from sorted((self.worth(k, residents[k], now), k) for k in keys if k in allowed)
            return
        pool = [k for k in self._pool if k in residents and k in allowed]
        taken: set[str] = set()
        rng = self.rng
        budget = len(keys)  # worths to compute before a full ranking is the cheaper way
        while True:
            drawn = set(pool)
            for k in rng.sample(keys, self.sample):
                if k in allowed and k in residents and k not in taken:
                    drawn.add(k)
            budget -= self.sample + self.pool
            # nothing evictable left in a sample, or so many victims (a shrink under memory
            # pressure) that sampling would cost more than a scan: rank what is left exactly
            if not drawn or budget < 0:
                rest = [k for k in keys if k in allowed and k in residents and k not in taken]
                if not peek:
                    self._pool = []
                yield from sorted((self.worth(k, residents[k], now), k) for k in rest)
                return
            ranked = sorted((self.worth(k, residents[k], now), k) for k in drawn)
            pool = [k for _, k in ranked[1 : 1 + self.pool]]
            if not peek:
                self._pool = pool
            worth, k = ranked[0]
            taken.add(k)
            yield worth, k

    # -- what it knows ------------------------------------------------------------------------

    def wait(self, key: str, now: float) -> float:
        """Expected seconds from ``now`` to the next use of ``key`` (the class docstring)."""
        seen = self._seen.get(key)
        return math.inf if seen is None else self._wait(seen, now)

    def _wait(self, seen: _Seen, now: float) -> float:
        age = max(now - seen.last, 0.0)
        if seen.uses < 2:  # no gap yet: the mean gap of all images, a bursty prior
            gaps = _Gaps(max(self._mean_gap or 3600.0, MIN_MEAN_GAP), self.prior_cv2)
        elif seen.fit is not None:  # fitted once per use, not at every scan
            gaps = seen.fit
        else:
            mean = max(seen.gap, MIN_MEAN_GAP)
            cv2 = self.prior_cv2
            if seen.uses > 2:  # the spread of one gap is no spread
                cv2 = min(max(seen.gap2 / (mean * mean) - 1.0, 0.0), self.max_cv2)
            gaps = seen.fit = _Gaps(mean, cv2)
        return gaps.residual(age) + self.idle_weight * age

    def worth(self, key: str, size: int, now: float) -> float:
        """Reload seconds per byte per second of waiting: what keeping ``key`` saves."""
        seen = self._seen.get(key)
        if seen is None:
            return 0.0
        cost = seen.cost if seen.cost is not None else size / self.bandwidth
        return cost / (max(size, 1) * max(self._wait(seen, now), 1e-6))

    def uses(self, key: str, now: float) -> int:
        """The uses of ``key`` the policy remembers (0: none)."""
        del now
        seen = self._seen.get(key)
        return seen.uses if seen is not None else 0

    def priority(self, key: str, now: float) -> float | None:
        """The resident's worth at ``now``; None if ``key`` is not resident."""
        size = self._residents.get(key)
        return self.worth(key, size, now) if size is not None else None

    def cost(self, key: str, size: int) -> float:
        """The seconds the policy expects a load of ``key`` from the tier below to take."""
        seen = self._seen.get(key)
        if seen is not None and seen.cost is not None:
            return seen.cost
        return size / self.bandwidth

    def measured(self, key: str) -> bool:
        """Whether ``cost(key, ...)`` is measured (a load of ``key`` was timed), not estimated."""
        seen = self._seen.get(key)
        return seen is not None and seen.cost is not None

    @property
    def bandwidth(self) -> float:
        """Bytes per second of the loads from the tier below, smoothed."""
        nbytes, secs = self._loaded
        if secs <= 0:
            return float("inf")
        rate = nbytes / secs
        return rate if rate > 0 else DEFAULT_BANDWIDTH  # 0 from an underflow: no division by it

    def __len__(self) -> int:
        return len(self._residents)

    # -- across a restart ---------------------------------------------------------------------

    def learned(self, now: float, limit: int = MAX_GHOSTS) -> dict[str, Any]:
        """What the policy has learned, as plain data a later run gives ``restore``: the
        tier's load rate, the mean gap of all images and, for the ``limit`` images used last,
        their uses, gaps, measured cost and seconds since their last use (times relative to
        ``now``: another run's clock has another origin). Residents are the tier's to say."""
        images: dict[str, list[Any]] = {}
        for key in reversed(self._seen):  # most recently used first
            if len(images) >= limit:
                break
            seen = self._seen[key]
            images[key] = [seen.uses, seen.gap, seen.gap2, seen.cost, max(now - seen.last, 0.0)]
        return {"loaded": list(self._loaded), "mean_gap": self._mean_gap, "images": images}

    def restore(self, learned: Mapping[str, Any], now: float, *, elapsed: float = 0.0) -> None:
        """Take back what ``learned`` returned in an earlier run (checked by the caller:
        ``learned.py``), ``elapsed`` seconds ago: each image's last use is that much older.
        What this run has learned already is kept; residents are not touched."""
        nbytes, secs = learned["loaded"]
        self._loaded = (float(nbytes), float(secs))
        if self._mean_gap is None and learned["mean_gap"] is not None:
            self._mean_gap = float(learned["mean_gap"])
        seen = dict(self._seen)
        for key, (uses, gap, gap2, cost, age) in learned["images"].items():
            if key not in seen:
                seen[key] = _Seen(now - age - elapsed, int(uses), gap, gap2, cost)
        # least recently used first, as ``_remember`` keeps them; then as many as it keeps
        self._seen = OrderedDict(sorted(seen.items(), key=lambda item: item[1].last))
        self._trim()

    # -- bookkeeping --------------------------------------------------------------------------

    def _remember(self, key: str, seen: _Seen) -> None:
        self._seen[key] = seen
        self._seen.move_to_end(key)
        self._trim()

    def _trim(self) -> None:
        """Forget the least recently used ghosts beyond ``max_ghosts``."""
        while len(self._seen) > self.max_ghosts + len(self._residents):
            oldest = next(iter(self._seen))
            if oldest in self._residents:  # residents are never forgotten
                self._seen.move_to_end(oldest)
                continue
            del self._seen[oldest]


class _Gaps:
    """Inter-arrival times of a given mean and squared coefficient of variation, as a renewal
    process: its mean residual life at any age since the last arrival."""

    __slots__ = ("long", "odds", "short")

    def __init__(self, mean: float, cv2: float) -> None:
        if cv2 <= 1.0:  # regular: due at the mean, then within ``mean * cv2`` (a gamma's tail)
            self.odds = -1.0
            self.short, self.long = mean * cv2, mean
            return
        # bursty: a balanced-means two-phase hyperexponential, probabilities p1, p2 and means
        # mean / (2 p) (short gaps inside a burst, long ones between bursts)
        p1 = 0.5 * (1.0 + math.sqrt((cv2 - 1.0) / (cv2 + 1.0)))
        p2 = 1.0 - p1
        self.odds = p2 / p1  # of the long phase against the short one, at age 0
        self.short, self.long = mean / (2.0 * p1), mean / (2.0 * p2)

    def residual(self, age: float) -> float:
        if self.odds < 0:
            return max(self.long - age, self.short)
        # the phase given no arrival for ``age``: the short one fades as exp(-age / short)
        fade = age / self.short - age / self.long
        if not fade <= 700.0:  # far beyond (inf - inf is NaN for an age near the float limit)
            fade = 700.0
        w_short = 1.0 / (1.0 + self.odds * math.exp(fade))
        return w_short * self.short + (1.0 - w_short) * self.long


def _residual(mean: float, cv2: float, age: float) -> float:
    """Mean residual life at ``age`` of inter-arrival times of this mean and squared CV."""
    return _Gaps(mean, cv2).residual(age)
