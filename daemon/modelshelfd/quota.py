"""Per-namespace shares of the tiers: one tenant's leases cannot fill L1 or L2 for everyone.

A namespace may be given ``l1_share`` and ``l2_share`` (fractions of the tier's budget) in the
``namespaces`` table. What counts is what its leases pin: the whole pages of every copy that
at least one lease taken through that namespace holds (a copy leased through two namespaces
counts for both; an unleased copy counts for nobody, since any load may evict it). A lease
that would take a namespace over its share of L1 is served from the page cache (L2) instead;
over both shares, the request is refused ``busy``, naming the namespace, while the other
namespaces are served as before.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from .tiers import Copy, Tier, TierName, cost

Shares = Callable[[str, TierName], float | None]


class Quotas:
    """The bytes each namespace's leases pin in each tier, against its shares."""

    def __init__(self, shares: Shares) -> None:
        self.shares = shares
        self.leases: dict[tuple[str, TierName], Counter[Copy]] = {}  # leases per copy
        self.pinned: Counter[tuple[str, TierName]] = Counter()  # bytes

    def allows(self, namespace: str, tier: Tier, copy: Copy) -> bool:
        """May one more lease through ``namespace`` be taken on ``copy`` of ``tier``?"""
        share = self.shares(namespace, tier.name)
        if share is None:
            return True
        key = (namespace, tier.name)
        if self.leases.get(key, Counter())[copy] > 0:
            return True  # already pinned for this namespace: no more bytes
        return self.pinned[key] + cost(copy.size) <= share * tier.budget

    def take(self, namespace: str, copy: Copy) -> None:
        if self.shares(namespace, copy.tier) is None:
            return  # nothing to check against: nothing to count
        key = (namespace, copy.tier)
        held = self.leases.setdefault(key, Counter())
        if held[copy] == 0:
            self.pinned[key] += cost(copy.size)
        held[copy] += 1

    def give_back(self, namespace: str, copy: Copy) -> None:
        key = (namespace, copy.tier)
        held = self.leases.get(key)
        if held is None or held[copy] == 0:
            return
        held[copy] -= 1
        if held[copy] == 0:
            del held[copy]
            self.pinned[key] -= cost(copy.size)
            if not held:
                del self.leases[key]
                del self.pinned[key]

    def describe(
        self, tiers: tuple[Tier, ...], configured: Iterable[str] = ()
    ) -> dict[str, dict[str, dict[str, int | float]]]:
        """{namespace: {tier: {"leased_bytes", "share", "budget"}}} for every namespace with a
        share: those ``configured`` (the namespaces table, "*" aside) whether they lease
        anything or not, and any other that leases through the "*" rule's shares."""
        out: dict[str, dict[str, dict[str, int | float]]] = {}
        leasing = {namespace for namespace, _ in self.pinned}
        for namespace in sorted({*(n for n in configured if n != "*"), *leasing}):
            for tier in tiers:
                share = self.shares(namespace, tier.name)
                if share is None:
                    continue
                pinned = self.pinned.get((namespace, tier.name), 0)
                row = {"leased_bytes": pinned, "share": share, "budget": int(share * tier.budget)}
                out.setdefault(namespace, {})[tier.name.value] = row
        return out
