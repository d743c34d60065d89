"""The catalog: refs read from the store, cached, and a generation that moves when they change.

A poll task lists every ref each ``ref_poll_seconds`` and bumps the board's generation when
anything changed, so that a version published on another node is served here within about one
period. Resolving ``ns/name`` (latest) also re-lists that model when its cached listing is older
than one period, so a daemon never answers "latest" from a stale view.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from modelshelf._names import ModelRef
from modelshelf.errors import ModelNotFound
from modelshelf.store import RefInfo, Store

from .tiers import Board

log = logging.getLogger("modelshelfd.catalog")


class Catalog:
    def __init__(
        self,
        store: Store,
        board: Board,
        poll_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.board = board
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.versions: dict[str, list[int]] = {}
        self._listed_at: dict[str, float] = {}
        self._refs: dict[tuple[str, int], RefInfo] = {}  # refs are immutable: cache forever
        self.last_poll: float | None = None
        self.last_error = ""

    @property
    def generation(self) -> int:
        return self.board.generation

    def cached(self, ref: ModelRef) -> RefInfo | None:
        """The ref, if the cache may answer without the store (fresh listing, known ref)."""
        key, version = ref.key, ref.version
        if version is None:
            if self.clock() - self._listed_at.get(key, float("-inf")) > self.poll_seconds:
                return None
            listed = self.versions.get(key)
            if not listed:
                return None
            version = listed[-1]
        return self._refs.get((key, version))

    async def resolve(self, ref: ModelRef) -> RefInfo:
        hit = self.cached(ref)
        if hit is not None:
            return hit
        key = ref.key
        version = ref.version
        if version is None:
            if self.clock() - self._listed_at.get(key, float("-inf")) > self.poll_seconds:
                versions = await asyncio.to_thread(self.store.versions, ref.namespace, ref.name)
                self.update(key, versions)
            listed = self.versions.get(key)
            if not listed:
                raise ModelNotFound(f"no model {key} in the store {self.store.url}")
            version = listed[-1]
        info = self._refs.get((key, version))
        if info is None:
            info = await asyncio.to_thread(self.store.ref, ref.namespace, ref.name, version)
            self._refs[(key, version)] = info
        return info

    def update(self, key: str, versions: list[int]) -> None:
        """Record one model's listing; bump the generation if it changed."""
        self._listed_at[key] = self.clock()
        if self.versions.get(key, []) != versions:
            if versions:
                self.versions[key] = versions
            else:
                self.versions.pop(key, None)
            self._drop_removed(key, versions)
            self.board.bump()

    def _drop_removed(self, key: str, versions: list[int]) -> None:
        keep = set(versions)
        for k, v in [k for k in self._refs if k[0] == key and k[1] not in keep]:
            del self._refs[(k, v)]

    async def poll_once(self) -> bool:
        """List every ref; return True if the catalog changed."""
        listing = await asyncio.to_thread(self.store.list_refs)
        now = self.clock()
        self.last_poll = now
        self.last_error = ""
        if listing == self.versions:
            for key in listing:
                self._listed_at[key] = now
            return False
        for key in set(self.versions) - set(listing):
            self._drop_removed(key, [])
        self.versions = listing
        self._listed_at = dict.fromkeys(listing, now)
        self.board.bump()
        return True

    async def poll_forever(self) -> None:
        while True:
            try:
                if await self.poll_once():
                    log.info("catalog changed: generation %d", self.generation)
            except Exception as exc:  # the store being down must not stop the poller
                if str(exc) != self.last_error:
                    log.warning("listing refs failed: %s", exc)
                self.last_error = str(exc)
            await asyncio.sleep(self.poll_seconds)
