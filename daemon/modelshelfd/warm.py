"""Warm start: the images of the ``warm`` list are placed on the node as the daemon starts.

``warm`` holds names (``ns/name``, ``ns/name@7``) and shell-style patterns over the catalog
(``acme/*``). Once the first listing of the store has answered, each is prefetched like the
admin ``prefetch`` (into L1 if the policy and the budget allow, else L2), at most
``max_inflight_fetches`` at a time. The daemon is **ready** once every one is placed or has
failed (a failure is logged and counted, never retried here: the next acquire fetches it).

The versions pinned before the restart (``saved.Pins``) are placed in L1 and pinned again the
same way, after the warm list and before the daemon is ready.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from typing import Any

from modelshelf.errors import ModelNotFound, ModelshelfError
from modelshelf.names import parse_ref

from .catalog import Catalog
from .saved import Pins
from .shelf import Shelf

log = logging.getLogger("modelshelfd.warm")

_GLOB = frozenset("*?[")


SHOWN_UNMATCHED = 10  # patterns named in the log when nothing matches them, then a count


def expand(entries: tuple[str, ...], catalog: list[str]) -> list[str]:
    """``entries`` with their patterns matched against the ``catalog``'s names, in order, each
    name once. A pattern whose namespace is literal (``acme/*``) is matched against that
    namespace's names only."""
    by_namespace: dict[str, list[str]] = {}
    for name in sorted(catalog):
        by_namespace.setdefault(name.partition("/")[0], []).append(name)
    out: dict[str, None] = {}
    unmatched: list[str] = []
    for entry in entries:
        if not _GLOB & set(entry):
            out[entry] = None
            continue
        namespace, slash, _ = entry.partition("/")
        pool = by_namespace.get(namespace, []) if slash and not _GLOB & set(namespace) else catalog
        matches = [name for name in pool if fnmatch.fnmatchcase(name, entry)]
        if not matches:
            unmatched.append(entry)
        out.update(dict.fromkeys(sorted(matches)))
    if unmatched:
        shown = ", ".join(repr(p) for p in unmatched[:SHOWN_UNMATCHED])
        more = (
            f" and {len(unmatched) - SHOWN_UNMATCHED} more"
            if len(unmatched) > SHOWN_UNMATCHED
            else ""
        )
        log.warning(
            "warm: no model in the catalog matches %s%s (%d patterns)", shown, more, len(unmatched)
        )
    return list(out)


class Warmer:
    """Places the warm list and says how far it got."""

    def __init__(
        self,
        entries: tuple[str, ...],
        catalog: Catalog,
        shelf: Shelf,
        parallel: int,
        pins: Pins | None = None,
        pinned: list[str] | None = None,
    ):
        """``pins``: the node's pins, and ``pinned`` those the daemon before saved."""
        self.entries, self.catalog, self.shelf = entries, catalog, shelf
        self.parallel = max(1, parallel)
        self.total = self.placed = self.failed = 0
        self.resident = 0  # of those placed, how many were still on the node at the end
        self._digests: set[str] = set()
        self.pins, self.pinned = pins, pinned or []
        self.repinned = 0
        self.ready = not entries and not self.pinned
        self.seconds = 0.0

    async def run(self) -> None:
        if self.ready:
            return
        started = time.monotonic()
        await self.catalog.listed.wait()
        # patterns x names: seconds for thousands of each, never on the event loop
        names = await asyncio.to_thread(expand, self.entries, list(self.catalog.versions))
        self.total = len(names)
        gate = asyncio.Semaphore(self.parallel)
        await asyncio.gather(*(self._place(name, gate) for name in names))
        await self._pin_again()
        self.seconds = time.monotonic() - started
        self.resident = sum(
            1 for d in self._digests if d in self.shelf.l1.copies or d in self.shelf.l2.copies
        )
        self.ready = True
        log.info(
            "warm: %d of %d models placed (%d failed) in %.1f s; ready",
            self.placed, self.total, self.failed, self.seconds,
        )  # fmt: skip
        if self.resident < len(self._digests):
            log.warning(
                "warm: only %d of the %d images placed are still on the node: the warm list is "
                "larger than L1 and L2 (%d and %d bytes), and later ones evicted earlier ones; "
                "shorten it, or raise l1_bytes/l2_bytes",
                self.resident, len(self._digests), self.shelf.l1.budget,
                self.shelf.l2.budget,
            )  # fmt: skip

    async def _place(self, name: str, gate: asyncio.Semaphore) -> None:
        async with gate:
            try:
                info = await self.catalog.resolve(parse_ref(name))
                await self.shelf.ensure(info, request=False)
                await self.shelf.settle(info.digest)
                self.placed += 1
                self._digests.add(info.digest)
            except ModelshelfError as exc:
                self.failed += 1
                self.shelf.stats["warm_failures"] += 1
                log.warning("warm: %s not placed: %s", name, exc)

    async def _pin_again(self) -> None:
        """Pin again what was pinned before the restart: a version the store no longer has
        is dropped, one that cannot be placed now is kept for the next start (both said)."""
        if self.pins is None or not self.pinned:
            return
        kept = []
        for ref in self.pinned:
            try:
                info = await self.catalog.resolve(parse_ref(ref))
                await self.shelf.ensure(info, request=False)
                await self.shelf.settle(info.digest)
                await self.shelf.to_l1(info.digest)
                self.shelf.pin(info.digest, True)
                self.pins.refs[ref] = info.digest
                self.repinned += 1
            except ModelNotFound as exc:
                log.warning("pin of %s dropped, the store no longer has it: %s", ref, exc)
            except ModelshelfError as exc:
                kept.append(ref)
                log.warning("%s not pinned again (kept for the next start): %s", ref, exc)
        try:
            await asyncio.to_thread(self.pins.write, self.pins.keep(kept))
        except OSError as exc:
            log.warning("saving the pins failed: %s", exc)
        log.info("pinned again %d of the %d versions pinned before", self.repinned,
                 len(self.pinned))  # fmt: skip

    def describe(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "models": self.total,
            "placed": self.placed,
            "resident": self.resident,
            "failed": self.failed,
            "pinned_again": self.repinned,
            "seconds": round(self.seconds, 3),
        }
