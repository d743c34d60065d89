"""The catalog: refs read from the store, cached, and a generation that moves when they change.

A poll task follows the store's change feed each ``ref_poll_seconds`` (feed.py: the whole
catalog once, from the newest snapshot or a full listing, then only the events that follow;
a full listing every ``ref_full_list_seconds`` reconciles what the feed cannot show) and
moves the board's counters of the models that changed (``_changed``: the one place), so that
a version published on
another node is served here within about one period. Resolving ``ns/name`` (latest) also
re-lists that model when neither the poll nor its own listing is fresher than one period, so a
daemon never answers "latest" from a stale view.

"The store answered: not there" and "the store did not answer" are different things. A listing
that fails (StoreError) marks the store unreachable and changes nothing the catalog knows: refs
it resolved keep resolving, "latest" resolves through the last listing without asking the store
again, and what it cannot resolve fails with StoreError (``store_unavailable``), never
ModelNotFound. A ref read that fails is counted but decides nothing (the store may have answered
with a malformed ref). The next successful poll marks the store reachable again. Failures are
counted (``store_errors``) and logged at a bounded rate.

What the catalog knows is saved in ``cache_dir`` when it changes (saved.py), and a daemon whose
first listing fails serves from the saved copy, as a running daemon serves from its last
listing, until the store answers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fnmatch
import logging
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any, TypeVar

from modelshelf import feed as _feed
from modelshelf.errors import ModelNotFound, ShelfBusy, StoreError
from modelshelf.names import ModelRef
from modelshelf.store import RefInfo, Store

from . import saved
from .follow import Follower, Update
from .ratelog import RateLimited
from .storage import Board

log = logging.getLogger("modelshelfd.catalog")

MAX_MISSING = 4096  # names remembered as absent; client input, so bounded
SAVE_SECONDS = 5.0  # the catalog is written at most this often (and at a stop)
OUTAGE_LOG_SECONDS = 60.0  # one line per kind of store failure this often, while it lasts

_outages = RateLimited(log, interval=OUTAGE_LOG_SECONDS)
T = TypeVar("T")


class Catalog:
    """The refs this daemon knows, cached, and the generation it publishes on the board."""

    def __init__(
        self,
        store: Store,
        board: Board,
        poll_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        stats: MutableMapping[str, int] | None = None,
        *,
        follower: Follower | None = None,
        saved_in: Path | None = None,
        identity: str = "",
    ) -> None:
        """``saved_in``: the daemon's cache_dir, where the catalog is saved (None: not saved);
        ``identity``: which store it is (``saved.store_identity``; default its URL)."""
        self.store = store
        self.board = board
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.stats = stats if stats is not None else collections.Counter()
        self.follower = follower or Follower(store, stats=self.stats)
        self.versions: dict[str, list[int]] = {}
        self.listed = asyncio.Event()  # set by the first listing that answered
        self._listed_at: dict[str, float] = {}
        self._refs: dict[tuple[str, int], RefInfo] = {}  # refs are immutable: cache forever
        self._missing: collections.OrderedDict[str, float] = collections.OrderedDict()
        self.last_poll: float | None = None  # clock() of the last poll that answered
        self.last_error = ""  # the store's own message: for operators only (it names the store)
        self.error_kind = ""  # the class of the last failure, safe to show anyone
        self.unreachable_since: float | None = None  # wall-clock time of the first failure
        self._saved_in = saved_in
        self._identity = identity or store.url
        self._unsaved = False  # changed since the last save
        self._saved_at = float("-inf")  # clock() of the last save
        self._restore_tried = False
        self.restored_at: float | None = None  # serving a saved catalog written then (Unix time)

    @property
    def reachable(self) -> bool:
        return self.unreachable_since is None

    def health(self) -> dict[str, Any]:
        """The store's state without its location (names, buckets, endpoints stay private)."""
        return {
            "store_reachable": self.reachable,
            "store_unreachable_since": self.unreachable_since,
            "store_error": self.error_kind,
            "catalog_saved_at": self.restored_at,  # set while serving a saved catalog
        }

    @property
    def generation(self) -> int:
        return self.board.generation

    def cached(self, ref: ModelRef) -> RefInfo | None:
        """The ref, if the cache may answer without the store (fresh listing, known ref; while
        the store is unreachable, the last listing is as fresh as any)."""
        key, version = ref.key, ref.version
        if version is None:
            stale = self.clock() - self._fresh(key) > self.poll_seconds
            if stale and self.reachable:
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
            listed_at = self._missing.get(key, self._fresh(key))
            if self.clock() - listed_at > self.poll_seconds:
                try:
                    versions = await self._ask(self.store.versions, ref.namespace, ref.name)
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
            try:
                info = await self._read_ref(ref, version)
            except ModelNotFound:
                # the feed or the last listing named a version whose ref is not there (an
                # event is no proof of a ref: protocol.md; a removal whose event was lost):
                # list the model, and resolve "latest" to what the listing says
                versions = await self._ask(self.store.versions, ref.namespace, ref.name)
                self.update(key, versions)
                if ref.version is not None or not versions or versions[-1] == version:
                    raise
                log.info(
                    "%s@%d is listed but has no ref; latest is @%d", key, version, versions[-1]
                )
                version = versions[-1]
                info = await self._read_ref(ref, version)
            self._refs[(key, version)] = info
            self._unsaved = True
        return info

    async def _read_ref(self, ref: ModelRef, version: int) -> RefInfo:
        # a ref that fails is counted but does not mark the store unreachable: the store may
        # have answered with a malformed ref; listings (and the poller) decide
        return await self._ask(self.store.ref, ref.namespace, ref.name, version, listing=False)

    def _fresh(self, key: str) -> float:
        """When the versions of a known model were last read from the store: by the last poll
        (it follows every change) or by a listing of its own."""
        listed = self._listed_at.get(key, float("-inf"))
        if key in self.versions and self.last_poll is not None:
            return max(listed, self.last_poll)
        return listed

    async def _ask(self, call: Callable[..., T], *args: Any, listing: bool = True) -> T:
        """One store request on behalf of a client: refused at once while the store is known to
        be unreachable (the poller finds out when it is back), so that requests do not each wait
        out the store's retries; a failed listing marks the store unreachable."""
        if not self.reachable:
            raise StoreError(
                f"the object store is unreachable ({self.error_kind}) since "
                f"{time.strftime('%H:%M:%S', time.localtime(self.unreachable_since))}"
            )
        try:
            return await asyncio.to_thread(call, *args)
        except StoreError as exc:
            self._failed(exc, listing=listing)
            raise

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
            self._drop_removed({key})
            self._changed({key})
            self._unsaved = True

    def _changed(self, names: set[str]) -> None:
        """The one place that tells the board which models changed (protocol.md, "The
        board"): their counters move, and clients holding other models ask nothing."""
        if names:
            self.board.bump(names)

    def _drop_removed(self, names: set[str]) -> set[str]:
        """Forget the cached refs of versions of ``names`` no longer listed: a removed version
        is no longer served, not even by its explicit ns/name@N. Returns their models."""
        dropped = set()
        for k in [k for k in self._refs if k[0] in names]:
            if k[1] not in self.versions.get(k[0], ()):
                del self._refs[k]
                dropped.add(k[0])
        return dropped

    async def poll_once(self) -> bool:
        """Follow the change feed one step; return True if the catalog changed. A failure
        raises and leaves the catalog as it was (the store marked unreachable)."""
        try:
            update = await asyncio.to_thread(self.follower.step)
        except Exception as exc:
            self._failed(exc)
            raise
        self.last_poll = self.clock()
        self._answered()
        if self.restored_at is not None:
            log.info("the catalog saved in cache_dir is replaced by the store's")
            self.restored_at = None
        self.listed.set()
        changed = self._apply(update)
        if update.how != "poll":
            log.info("catalog read whole (%s): %d models", update.how, len(self.versions))
        # a full read also drops refs resolved by explicit version and removed since: their
        # models changed for whoever holds them
        changed |= self._drop_removed(
            changed if update.full is None else {k for k, _ in self._refs}
        )
        for key in changed:
            self._missing.pop(key, None)
        self._changed(changed)
        self._unsaved |= bool(changed)
        return bool(changed)

    def _apply(self, update: Update) -> set[str]:
        if update.full is None:
            return _feed.apply(self.versions, update.events, update.removed)
        old, new = self.versions, update.full
        changed = {k for k in new.keys() | old.keys() if old.get(k) != new.get(k)}
        self.versions = new
        return changed

    async def poll_forever(self) -> None:
        while True:
            try:
                if await self.poll_once():
                    log.info("catalog changed: generation %d", self.generation)
            except Exception:  # the store being down must not stop the poller
                if not self.listed.is_set():
                    await self._restore()
            await self._save()
            await asyncio.sleep(self.poll_seconds)

    async def _save(self) -> None:
        """Save what the catalog knows if it changed (a thread writes it; the copies are
        taken here, in the loop). A failure is logged and tried again at the next poll."""
        if self._saved_in is None or not self._unsaved or self.restored_at is not None:
            return
        if self.clock() - self._saved_at < SAVE_SECONDS:  # a busy node resolves refs all day
            return
        versions = {key: list(listed) for key, listed in self.versions.items()}
        self._unsaved = False
        self._saved_at = self.clock()
        try:
            await asyncio.to_thread(self._write, versions, dict(self._refs))
        except OSError as exc:
            self._unsaved = True
            _outages.log(logging.WARNING, "save", "saving the catalog in cache_dir failed: %s", exc)

    def save_now(self) -> None:
        """Save at once if anything changed (the daemon stops)."""
        if self._saved_in is not None and self._unsaved and self.restored_at is None:
            with contextlib.suppress(OSError):
                self._write(self.versions, self._refs)
                self._unsaved = False

    def _write(self, versions: dict[str, list[int]], refs: dict[Any, RefInfo]) -> None:
        assert self._saved_in is not None
        path = self._saved_in / saved.CATALOG_RECORD
        saved.save(path, self._saved_in / "tmp", self._identity, versions, refs)

    async def _restore(self) -> None:
        """The store did not answer the first listing of this daemon: serve the catalog saved
        by the one before (once; never while the store answers)."""
        if self._saved_in is None or self._restore_tried:
            return
        self._restore_tried = True
        path = self._saved_in / saved.CATALOG_RECORD
        try:
            found = await asyncio.to_thread(saved.load, path, self._identity)
        except saved.SavedCatalogError as exc:
            log.warning(
                "store unreachable at start, and the catalog saved in %s cannot be used (%s): "
                "no model resolves until the store answers", path, exc,
            )  # fmt: skip
            return
        if found is None:
            log.warning("store unreachable at start and no catalog saved in %s: no model "
                        "resolves until the store answers", path)  # fmt: skip
            return
        self.versions = found.versions
        self._refs.update(found.refs)
        self.restored_at = found.saved_at
        self.listed.set()
        self._changed(set(found.versions))
        log.warning(
            "store unreachable at start: serving the catalog saved at %s (%d models, %d "
            "versions resolved) until it answers; what was published or removed since is not "
            "known", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(found.saved_at)),
            len(found.versions), len(found.refs),
        )  # fmt: skip

    def _failed(self, exc: Exception, *, listing: bool = True) -> None:
        """The store did not answer: count it, log at a bounded rate and, for a listing,
        remember since when it is unreachable."""
        if isinstance(exc, ShelfBusy):  # the daemon's own limit (descriptors), not the store
            _outages.log(logging.WARNING, "busy", "reading the store failed: %s", exc)
            return
        self.stats["store_errors"] += 1
        cause = exc.__cause__ if isinstance(exc, StoreError) and exc.__cause__ else exc
        kind = type(cause).__name__
        if not listing:
            _outages.log(logging.WARNING, f"ref/{kind}", "reading a ref failed: %s", exc)
            return
        self.error_kind = kind
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.unreachable_since is None:
            self.unreachable_since = time.time()
        # one line per kind of failure and period: store messages embed timings, so the text
        # of one outage differs on every poll
        _outages.log(
            logging.WARNING, kind, "store unreachable; serving what this node knows and "
            "holds: %s", exc,
        )  # fmt: skip

    def _answered(self) -> None:
        if self.unreachable_since is not None:
            log.warning("store reachable again after %.0f s", time.time() - self.unreachable_since)
        self.unreachable_since = None
        self.last_error = self.error_kind = ""
