"""The catalog: refs read from the store, cached, and a generation that moves when they change.

A poll task lists every ref each ``ref_poll_seconds`` and bumps the board's generation when
anything changed, so that a version published on another node is served here within about one
period. Resolving ``ns/name`` (latest) also re-lists that model when its cached listing is older
than one period, so a daemon never answers "latest" from a stale view.
"""

from __future__ import annotations

import asyncio
import collections
import fnmatch
import logging
import time
from collections.abc import Callable

from modelshelf.errors import ModelNotFound, StoreError
from modelshelf.names import ModelRef
from modelshelf.store import RefInfo, Store

from .storage import Board

log = logging.getLogger("modelshelfd.catalog")

MAX_MISSING = 4096  # names remembered as absent; client input, so bounded


class Catalog:
    """The refs this daemon knows, cached, and the generation it publishes on the board."""

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
        self.listed = asyncio.Event()  # set by the first listing that answered
        self._listed_at: dict[str, float] = {}
        self._refs: dict[tuple[str, int], RefInfo] = {}  # refs are immutable: cache forever
        self._missing: collections.OrderedDict[str, float] = collections.OrderedDict()
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

    def matching(self, pattern: str) -> list[str]:
        """The names (``ns/name``) of the last listing matching a shell-style pattern."""
        return sorted(name for name in self.versions if fnmatch.fnmatchcase(name, pattern))

    async def resolve(self, ref: ModelRef) -> RefInfo:
        hit = self.cached(ref)
        if hit is not None:
            return hit
        key = ref.key
        version = ref.version
        if version is None:
            listed_at = self._listed_at.get(key, self._missing.get(key, float("-inf")))
            if self.clock() - listed_at > self.poll_seconds:
                try:
                    versions = await asyncio.to_thread(self.store.versions, ref.namespace, ref.name)
                except StoreError:
                    # The store is down: the last listing is the best answer there is, and a
                    # client that holds this model must keep getting it.
                    if not self.versions.get(key):
                        raise
                    log.debug("store unreachable; serving %s from the last listing", key)
                else:
                    self.update(key, versions)
            listed = self.versions.get(key)
            if not listed:
                # no store location in the message: it reaches clients
                raise ModelNotFound(f"no model {key} in this node's store")
            version = listed[-1]
        info = self._refs.get((key, version))
        if info is None:
            info = await asyncio.to_thread(self.store.ref, ref.namespace, ref.name, version)
            self._refs[(key, version)] = info
        return info

    def update(self, key: str, versions: list[int]) -> None:
        """Record one model's listing; bump the generation if it changed."""
        if versions:
            self._listed_at[key] = self.clock()
            self._missing.pop(key, None)
        else:
            # names that do not exist come from clients: remember a bounded number of them
            # (so that a storm of misses is not a storm of listings), oldest forgotten first
            self._listed_at.pop(key, None)
            self._missing[key] = self.clock()
            self._missing.move_to_end(key)
            while len(self._missing) > MAX_MISSING:
                self._missing.popitem(last=False)
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
        self.listed.set()
        # a removed version is no longer served, not even by its explicit ns/name@N
        removed = [k for k in self._refs if k[1] not in listing.get(k[0], ())]
        for k in removed:
            del self._refs[k]
        if listing == self.versions and not removed:
            for key in listing:
                self._listed_at[key] = now
            return False
        self.versions = listing
        self._listed_at = dict.fromkeys(listing, now)
        for key in listing:
            self._missing.pop(key, None)
        self.board.bump()
        return True

    async def poll_forever(self) -> None:
        while True:
            try:
                if await self.poll_once():
                    log.info("catalog changed: generation %d", self.generation)
            except Exception as exc:  # the store being down must not stop the poller
                # Log once per kind of failure: store messages embed timings, so the text of
                # the same outage differs on every poll.
                if not self.last_error.startswith(type(exc).__name__):
                    log.warning("listing refs failed: %s", exc)
                self.last_error = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(self.poll_seconds)
