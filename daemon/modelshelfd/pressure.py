"""Memory pressure: L1 gives memory back before the node or the container runs out.

Every ``INTERVAL`` seconds the daemon reads its memory (``machine.read_memory``: the bytes in
use that cannot be reclaimed against its limit, and the kernel's pressure stall figure). When
memory is pressed (use above ``HIGH`` of the limit, or tasks stalled on memory more than
``STALL`` percent of the last 10 s), L1's target shrinks by what it takes to come back under
``LOW`` of the limit (at least a ``STEP`` of its configured budget, never below ``FLOOR`` of
it): unleased images are evicted at once, and clients are asked (the board's pressure
counter) to let go of the idle models they hold, whose leases keep the rest. When use is back
under ``LOW`` and nothing stalls, the target grows again, a step per reading, up to the budget
the operator configured. The readings are injected (tests drive it with their own).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from .machine import MemoryReading
from .tiers import Tier

log = logging.getLogger("modelshelfd.pressure")

INTERVAL = 1.0  # seconds between readings
HIGH = 0.90  # of the limit in use: pressed
LOW = 0.80  # of the limit in use: pressure has ended (and the target to come back under)
STALL = 10.0  # percent of time some task waited for memory (PSI some avg10): pressed
STEP = 0.10  # of the configured budget, the least a pressed reading takes and what one gives
FLOOR = 0.10  # of the configured budget: L1 never shrinks below it


class MemoryWatch:
    """Moves L1's budget between ``FLOOR`` and ``configured`` with the memory readings."""

    def __init__(
        self,
        l1: Tier,
        read: Callable[[], MemoryReading],
        on_pressure: Callable[[], object],
        stats: Counter[str],
    ) -> None:
        self.l1, self.read, self.on_pressure, self.stats = l1, read, on_pressure, stats
        self.configured = l1.budget
        self.last: MemoryReading | None = None
        self.pressed = False

    def tick(self) -> None:
        """One reading, and what it calls for."""
        reading = self.last = self.read()
        pressed = reading.used > HIGH * reading.limit or reading.stall > STALL
        floor, step = int(FLOOR * self.configured), max(1, int(STEP * self.configured))
        if pressed:
            excess = reading.used - int(LOW * reading.limit)
            # from what L1 holds, not from its budget: a budget it does not fill frees nothing
            target = max(floor, min(self.l1.budget, self.l1.used) - max(step, excess))
            if not self.pressed:
                log.warning(
                    "memory pressed (%d of %d bytes in use, stall %.1f%%): L1 target %d -> %d "
                    "bytes, clients asked to drop idle models",
                    reading.used, reading.limit, reading.stall, self.l1.budget, target,
                )  # fmt: skip
            self.pressed = True
            self.stats["memory_pressure"] += 1
            if target < self.l1.budget:
                self.l1.budget = target
                self.stats["l1_shrinks"] += 1
            self.l1.shrink()
            self.stats["pressure_signals"] += 1  # every raise of the board's counter counts
            self.on_pressure()
        elif reading.used < LOW * reading.limit and reading.stall <= STALL:
            if self.pressed:
                log.info(
                    "memory pressure ended (%d of %d bytes in use)", reading.used, reading.limit
                )
            self.pressed = False
            if self.l1.budget < self.configured:
                self.l1.budget = min(self.configured, self.l1.budget + step)

    def describe(self) -> dict[str, Any]:
        r = self.last
        return {
            "pressed": self.pressed,
            "limit": r.limit if r else None,
            "used": r.used if r else None,
            "stall": r.stall if r else None,
            "l1_configured": self.configured,
            "l1_target": self.l1.budget,
        }
