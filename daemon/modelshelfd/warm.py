"""Warm start: the images of the ``warm`` list are placed on the node as the daemon starts.

``warm`` holds names (``ns/name``, ``ns/name@7``) and shell-style patterns over the catalog
(``acme/*``). Once the first listing of the store has answered, each is prefetched like the
admin ``prefetch`` (into L1 if the policy and the budget allow, else L2), at most
``max_inflight_fetches`` at a time. The daemon is **ready** once every one is placed or has
failed (a failure is logged and counted, never retried here: the next acquire fetches it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from modelshelf.errors import ModelshelfError
from modelshelf.names import parse_ref

from .catalog import Catalog
from .shelf import Shelf

log = logging.getLogger("modelshelfd.warm")

_GLOB = frozenset("*?[")


class Warmer:
    """Places the warm list and says how far it got."""

    def __init__(self, entries: tuple[str, ...], catalog: Catalog, shelf: Shelf, parallel: int):
        self.entries, self.catalog, self.shelf = entries, catalog, shelf
        self.parallel = max(1, parallel)
        self.total = self.placed = self.failed = 0
        self.ready = not entries
        self.seconds = 0.0

    def names(self) -> list[str]:
        """The list with its patterns expanded against the catalog (each name once)."""
        out: dict[str, None] = {}
        for entry in self.entries:
            matches = self.catalog.matching(entry) if _GLOB & set(entry) else [entry]
            if not matches:
                log.warning("warm: %r matches no model in the catalog", entry)
            out.update(dict.fromkeys(matches))
        return list(out)

    async def run(self) -> None:
        if self.ready:
            return
        started = time.monotonic()
        await self.catalog.listed.wait()
        names = self.names()
        self.total = len(names)
        gate = asyncio.Semaphore(self.parallel)
        await asyncio.gather(*(self._place(name, gate) for name in names))
        self.seconds = time.monotonic() - started
        self.ready = True
        log.info(
            "warm: %d of %d models placed (%d failed) in %.1f s; ready",
            self.placed, self.total, self.failed, self.seconds,
        )  # fmt: skip

    async def _place(self, name: str, gate: asyncio.Semaphore) -> None:
        async with gate:
            try:
                info = await self.catalog.resolve(parse_ref(name))
                await self.shelf.ensure(info)
                await self.shelf.settle(info.digest)
                self.placed += 1
            except ModelshelfError as exc:
                self.failed += 1
                self.shelf.stats["warm_failures"] += 1
                log.warning("warm: %s not placed: %s", name, exc)

    def describe(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "models": self.total,
            "placed": self.placed,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
        }
