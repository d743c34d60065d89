"""bench/scale_trace.py's two-tier model: exclusive tiers keep each image in one tier at a
time and within both budgets, for the daemon's policies and the offline heuristic."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.scale_trace import Tier, catalog_of, cost_of, daemon_requests, two_tiers

from modelshelfd import scenario
from modelshelfd.scenario.catalog import Catalog, CatalogSpec
from modelshelfd.shelf import L1_BANDWIDTH


def _setup(tmp_path: Path) -> tuple[list[tuple[float, int]], Catalog, int, int]:
    spec = CatalogSpec(models=300, total_bytes=300_000_000, max_bytes=20_000_000, tenants=10)
    catalog = catalog_of(spec, tmp_path)  # no built catalog there: sizes from the spec
    traffic = scenario.Traffic(rate=150.0, duration=30.0, seed=3)
    total = catalog.total_bytes
    l1, l2 = int(0.2 * total), int(0.5 * total)
    rows = list(daemon_requests(catalog, traffic, workers=6, held_bytes=l1 // 8, everything=False))
    return rows, catalog, l1, l2


@pytest.mark.parametrize("policy", ["lru", "cost", "offline"])
@pytest.mark.parametrize("exclusive", [False, True])
def test_tiers_stay_within_budgets_and_exclusive_never_holds_both(
    tmp_path: Path, policy: str, exclusive: bool
) -> None:
    rows, catalog, l1, l2 = _setup(tmp_path)
    checked = [0]
    both_ever = [0]

    def audit(t1: Tier, t2: Tier) -> None:
        checked[0] += 1
        for tier, name in ((t1, "L1"), (t2, "L2")):
            held = sum(c.size for c in tier.copies.values())
            assert tier.used == held, f"{name}: counted {tier.used} bytes, holds {held}"
            assert tier.used <= tier.budget, (
                f"{name}: expected at most its budget {tier.budget} bytes, holds {tier.used} "
                f"after request {checked[0]}"
            )
        both = t1.copies.keys() & t2.copies.keys()
        both_ever[0] += bool(both)
        if exclusive:
            assert not both, (
                f"exclusive tiers: expected no image in both L1 and L2, found {sorted(both)[:5]} "
                f"after request {checked[0]}"
            )

    got = two_tiers(
        rows,
        catalog,
        l1,
        l2,
        policy,
        cost_of("local", 0.0, L1_BANDWIDTH),
        cost_of("local", 0.002, 1e9),
        exclusive=exclusive,
        audit=audit,
    )
    assert checked[0] == len(rows) == got["requests"] > 1000
    assert got["l1_hits"] + got["l2_hits"] + got["fetches"] == got["requests"]
    if exclusive:
        # the demotion path ran (else the check above proves nothing about it)
        assert got["demotions"] > 0 and got["demoted_bytes"] > 0
    else:
        assert got["demotions"] == 0
        if policy != "offline":
            assert both_ever[0] > 0, "inclusive tiers: expected L1 inside L2, never saw it"


def test_exclusive_lru_reads_fewer_store_bytes_than_inclusive(tmp_path: Path) -> None:
    """More room in all (L1 + L2 instead of L2): fewer store bytes on this stream."""
    rows, catalog, l1, l2 = _setup(tmp_path)
    costs = (cost_of("local", 0.0, L1_BANDWIDTH), cost_of("local", 0.002, 1e9))
    inclusive = two_tiers(rows, catalog, l1, l2, "lru", *costs)
    exclusive = two_tiers(rows, catalog, l1, l2, "lru", *costs, exclusive=True)
    assert exclusive["fetched_bytes"] < inclusive["fetched_bytes"], (inclusive, exclusive)
