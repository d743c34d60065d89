"""L1 under memory pressure, driven by injected readings: pressed readings shrink L1's target
and evict what is not leased, ask clients to let go, never go below the floor; calm readings
grow it back a step at a time to the configured budget. A real cgroup drives it in
tests/integration/test_faults.py."""

from __future__ import annotations

from collections import Counter

from modelshelfd import pressure
from modelshelfd.machine import MemoryReading
from modelshelfd.policy import LRUPolicy
from modelshelfd.storage import Reaper
from modelshelfd.tiers import PAGE, Copy, SharedMemory, TierName

LIMIT = 10_000 * PAGE


def _tier(copies: int, budget_pages: int) -> SharedMemory:
    tier = SharedMemory(budget_pages * PAGE, LRUPolicy(), lambda: 0.0, lambda d: (0.0, 0), Reaper())
    for i in range(copies):
        tier.adopt(Copy(TierName.L1, f"{i:064x}", 10 * PAGE))  # 10 pages each, no descriptor
    return tier


def _watch(tier: SharedMemory, readings: list[MemoryReading]) -> tuple[pressure.MemoryWatch, list]:
    signals: list[int] = []
    watch = pressure.MemoryWatch(
        tier, lambda: readings.pop(0), lambda: signals.append(1), Counter()
    )
    return watch, signals


def test_pressed_readings_shrink_l1_and_evict_what_is_not_leased() -> None:
    tier = _tier(copies=10, budget_pages=100)
    tier.copies[f"{0:064x}"].leases = 1  # one copy held by a client
    watch, signals = _watch(tier, [MemoryReading(LIMIT, int(0.95 * LIMIT))])
    watch.tick()
    assert watch.pressed and signals == [1]
    assert tier.budget == int(pressure.FLOOR * 100 * PAGE)  # 1,500 pages over: down to the floor
    assert tier.used == 10 * PAGE and list(tier.copies) == [f"{0:064x}"]  # the leased one stays
    assert watch.stats["memory_pressure"] == 1 and watch.stats["l1_shrinks"] == 1
    # the clients were signalled: counted as every pressure signal is (operations.md)
    assert watch.stats["pressure_signals"] == 1


def test_a_small_excess_takes_one_step_and_a_stall_counts_as_pressure() -> None:
    tier = _tier(copies=10, budget_pages=100)
    readings = [
        MemoryReading(LIMIT, int(0.91 * LIMIT) - 1000 * PAGE),  # calm use ...
        MemoryReading(LIMIT, int(0.50 * LIMIT), stall=25.0),  # ... but tasks stall on memory
    ]
    watch, signals = _watch(tier, readings)
    watch.tick()
    assert not watch.pressed and tier.budget == 100 * PAGE
    watch.tick()
    assert watch.pressed and tier.budget == 90 * PAGE and tier.used <= 90 * PAGE
    assert signals == [1]


def test_calm_readings_grow_l1_back_a_step_at_a_time() -> None:
    tier = _tier(copies=0, budget_pages=100)
    calm = MemoryReading(LIMIT, int(0.5 * LIMIT))
    watch, _ = _watch(tier, [MemoryReading(LIMIT, LIMIT), *[calm] * 12])
    watch.tick()
    assert tier.budget == 10 * PAGE
    budgets = []
    for _ in range(12):
        watch.tick()
        budgets.append(tier.budget // PAGE)
    assert budgets == [20, 30, 40, 50, 60, 70, 80, 90, 100, 100, 100, 100]
    assert not watch.pressed


def test_between_low_and_high_nothing_moves() -> None:
    tier = _tier(copies=0, budget_pages=100)
    watch, _ = _watch(tier, [MemoryReading(LIMIT, LIMIT), MemoryReading(LIMIT, int(0.85 * LIMIT))])
    watch.tick()
    watch.tick()  # no longer pressed, not yet calm: the target holds
    assert tier.budget == 10 * PAGE and watch.pressed
