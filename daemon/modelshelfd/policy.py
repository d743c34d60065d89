"""Eviction policy: a small, pure, clock-injected piece that only orders victims.

The shelf owns storage and byte accounting; it hands the policy the entries that may go (never
leased, never pinned) and the bytes it needs, and evicts what the policy returns, in order.
Later policies (cost-aware) implement the same ``Policy`` protocol.
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
    def victims(self, candidates: Iterable[Candidate], need: int, now: float) -> list[str]:
        """Keys to evict, in order, freeing at least ``need`` bytes if the candidates allow."""
        ...


class LRUPolicy:
    """Least recently used first; ties broken by key so that the order is deterministic."""

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
