"""Eviction and admission policy: a small, pure, clock-injected piece that only decides.

The tiers own storage and byte accounting; they hand the policy the copies that may go (never
leased, never pinned) and the bytes they need, and evict what the policy returns, in order.
The shelf asks the policy whether an image should enter shared memory (L1) or be served from
the page cache (L2) for now. Later policies (cost-aware) implement the same ``Policy`` protocol.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Candidate:
    """What a policy may know about an evictable image."""

    key: str
    size: int
    last_use: float
    hits: int = 0


class Policy(Protocol):
    """Orders eviction victims and decides admission into L1; pure and clock-injected."""

    def victims(self, candidates: Iterable[Candidate], need: int, now: float) -> list[str]:
        """Keys to evict, in order, freeing at least ``need`` bytes if the candidates allow."""
        ...

    def admit(self, candidate: Candidate, free: int, now: float) -> bool:
        """Should this image enter L1 now (evicting others if needed)? ``free``: the bytes L1
        has without evicting anything. False: serve it from the page cache (L2) for now."""
        ...


class LRUPolicy:
    """Least recently used first; ties broken by key so that the order is deterministic.

    Admission: an image enters L1 if it fits in free room, or on its second use while this
    node knows it; the first use of an image when L1 is full is served from the page cache,
    so that images used once never push out the working set."""

    def admit(self, candidate: Candidate, free: int, now: float) -> bool:
        del now
        return candidate.size <= free or candidate.hits > 0

    def victims(self, candidates: Iterable[Candidate], need: int, now: float) -> list[str]:
        del now  # LRU needs only the order of last uses
        out: list[str] = []
        freed = 0
        for c in sorted(candidates, key=lambda c: (c.last_use, c.key)):
            if freed >= need:
                break
            out.append(c.key)
            freed += c.size
        return out
