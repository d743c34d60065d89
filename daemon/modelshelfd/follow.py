"""Following the store's change feed (modelshelf.feed): where this daemon is in it, which
events it has seen, and when to read the whole catalog again.

``step`` is synchronous (the catalog runs it in a thread) and returns an Update: either every
model's versions (``full``: at start, after a compaction passed this daemon by, and every
``full_list_seconds``) or the events that followed the last step. A step lists the events
whose keys follow ``position(last step's start - skew)``: one request when nothing changed,
whatever the size of the catalog. The skew window re-reads what a publisher whose clock is
behind wrote "in the past"; events are deduplicated by key, and remembered only while they
are in the window (memory bounded by the events of ``skew`` seconds). What even that misses
(a publisher of an older version, which writes no events; a clock further behind) the full
listing finds. Malformed or oversized objects are logged, counted (``feed_malformed``) and
skipped, once each.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from modelshelf import feed as _feed
from modelshelf.errors import ModelNotFound
from modelshelf.feed import Event, FeedError
from modelshelf.store import Store

from .ratelog import RateLimited

log = logging.getLogger("modelshelfd.feed")

READ_PARALLELISM = 16  # event objects read at once after a burst of publishes
MAX_WINDOW = 200_000  # events remembered for deduplication; past it, the oldest are forgotten
MAX_BAD_KEYS = 4096  # foreign or malformed keys remembered so as to count and log them once
LOAD_ATTEMPTS = 3  # a compaction racing the load makes it start over, this many times

_malformed = RateLimited(log, interval=60.0)


@dataclass
class Update:
    """What one step learnt: every model's versions, or the events to apply in order."""

    full: dict[str, list[int]] | None = None
    events: list[Event] = field(default_factory=list)
    removed: dict[str, set[int]] = field(default_factory=dict)  # removals in the window
    how: str = "poll"  # poll, snapshot, listing


class Follower:
    """This daemon's position in the change feed."""

    def __init__(
        self,
        store: Store,
        *,
        skew_seconds: float = 60.0,
        full_list_seconds: float = 300.0,
        stats: MutableMapping[str, int] | None = None,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.skew_ms = int(skew_seconds * 1000)
        self.full_list_seconds = full_list_seconds
        self.stats = stats if stats is not None else collections.Counter()
        self.wall = wall
        self.clock = clock
        self.offset_ms: int | None = None  # None: the catalog must be read whole first
        self._window: dict[str, Event] = {}  # events seen, by key, while in the window
        self._bad: collections.OrderedDict[str, None] = collections.OrderedDict()
        # snapshots the catalog was read whole for, once each (bounded as _bad)
        self._reread: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._full_at = float("-inf")

    def step(self) -> Update:
        """One read; after a failed one, the next is a full listing: what happened while the
        store did not answer (even its directory removed and recreated) is not in the feed."""
        try:
            if self.offset_ms is None:
                return self.load()
            if self.clock() - self._full_at >= self.full_list_seconds:
                return self.full()
            return self.poll()
        except Exception:
            self._full_at = float("-inf")
            raise

    # -- the three ways of reading --------------------------------------------------------

    def poll(self) -> Update:
        """The events after this daemon's position (one listing), unless a compaction removed
        some it could still need: then the catalog is read whole again."""
        assert self.offset_ms is not None
        start = self._now_ms()
        keys = self._keys(self.offset_ms)
        # a snapshot already found malformed, or already read again for (its cutoff is then
        # ahead of any position: a snapshot dated in the future), is no news: reading the
        # catalog whole at every poll for it was a full listing per poll on every node
        snapshots = [k for k in self._snapshots(keys) if k not in self._reread]
        if snapshots:
            cutoff = _feed.snapshot_cutoff(snapshots[-1]) or 0
            if cutoff - _feed.OVERLAP_MS > self.offset_ms:
                self.stats["feed_reloads"] += 1
                self._reread[snapshots[-1]] = None
                while len(self._reread) > MAX_BAD_KEYS:
                    self._reread.popitem(last=False)
                _malformed.log(
                    logging.WARNING, "behind",
                    "this daemon is behind the change feed (%s: a compaction removed events it "
                    "had not read): reading the catalog again", snapshots[-1],
                )  # fmt: skip
                return self.load()
        events, vanished = self._read(keys)
        if vanished:  # removed by a compaction between the listing and the read
            self.stats["feed_reloads"] += 1
            return self.load()
        update = Update(events=events, removed=self._removed())
        self._advance(start)
        return update

    def load(self) -> Update:
        """The newest snapshot and the events that follow it; a full listing if there is no
        snapshot (or no usable one)."""
        for _ in range(LOAD_ATTEMPTS):
            start = self._now_ms()
            snapshots = self._snapshots(self._list(_feed.PREFIX, _feed.SNAPSHOT_PREFIX))
            if not snapshots:
                return self.full()
            newest = snapshots[-1]
            try:
                self.stats["catalog_requests"] += 1
                snapshot, skipped = _feed.read_snapshot(self.store, newest)
            except ModelNotFound:
                continue  # deleted by a compaction meanwhile: a newer one exists
            except FeedError as exc:
                self._bad_object(newest, exc)
                return self.full()
            if skipped:
                self.stats["feed_malformed"] += skipped
                _malformed.log(logging.WARNING, "snapshot", "%s: %d malformed entries skipped",
                               newest, skipped)  # fmt: skip
            self._window.clear()
            keys = self._keys(snapshot.cutoff_ms - self.skew_ms)
            if self._snapshots(keys)[-1:] != [newest]:
                continue  # a newer snapshot was written meanwhile
            events, vanished = self._read(keys)
            if vanished:
                continue
            models = snapshot.models
            _feed.apply(models, events, self._removed())
            self._advance(start)
            self._full_at = self.clock()
            return Update(full=models, how="snapshot")
        return self.full()

    def full(self) -> Update:
        """Every ref (the truth: refs written without events included), then the events that
        followed the listing's start, which it may have missed midway."""
        start = self._now_ms()
        self.stats["catalog_requests"] += 1
        models = self.store.list_refs()
        self.stats["full_listings"] += 1
        events, _ = self._read(self._keys(start - self.skew_ms))
        _feed.apply(models, events, self._removed())
        self._advance(start)
        self._full_at = self.clock()
        return Update(full=models, how="listing")

    # -- helpers --------------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self.wall() * 1000)

    def _list(self, prefix: str, after: str | None) -> list[str]:
        self.stats["catalog_requests"] += 1
        return self.store.keys(prefix, after=after)

    def _keys(self, offset_ms: int) -> list[str]:
        return self._list(_feed.PREFIX, _feed.position(offset_ms))

    def _read(self, keys: list[str]) -> tuple[list[Event], bool]:
        """The events among ``keys`` not seen yet, in key order, remembered in the window, and
        whether one of them vanished before it could be read (a compaction removed it)."""
        new = []
        for key in keys:
            if key in self._window or key in self._bad:
                continue
            if _feed.is_event(key):
                new.append(key)
            elif _feed.snapshot_cutoff(key) is None:
                self._bad_object(key, FeedError(f"{key!r:.120}: not an event or snapshot key"))
        if not new:
            return [], False

        def read(key: str) -> Event | Exception:
            try:
                return _feed.read_event(self.store, key)
            except (FeedError, ModelNotFound) as exc:
                return exc

        self.stats["catalog_requests"] += len(new)
        if len(new) == 1:
            results = [read(new[0])]
        else:
            with ThreadPoolExecutor(max_workers=min(READ_PARALLELISM, len(new))) as pool:
                results = list(pool.map(read, new))
        events, vanished = [], False
        for key, result in zip(new, results, strict=True):
            if isinstance(result, Event):
                self._window[key] = result
                events.append(result)
            elif isinstance(result, ModelNotFound):
                vanished = True
            else:
                self._bad_object(key, result)
        return events, vanished

    def _snapshots(self, keys: list[str]) -> list[str]:
        """The snapshot keys among ``keys``, oldest first, but those found malformed (each is
        read once, counted and logged once)."""
        return [k for k in _feed.snapshots(keys) if k not in self._bad]

    def _bad_object(self, key: str, exc: Exception) -> None:
        self.stats["feed_malformed"] += 1
        _malformed.log(logging.WARNING, "object", "skipped in the change feed: %s", exc)
        self._bad[key] = None
        while len(self._bad) > MAX_BAD_KEYS:
            self._bad.popitem(last=False)

    def _advance(self, start_ms: int) -> None:
        """Move the position to this step's start minus the skew window; forget the events
        that fall out of it (they will not be listed again)."""
        self.offset_ms = start_ms - self.skew_ms
        floor = _feed.position(self.offset_ms)
        for key in [k for k in self._window if k < floor]:
            del self._window[key]
        if len(self._window) > MAX_WINDOW:  # a burst beyond any sane publish rate
            for key in sorted(self._window)[: len(self._window) - MAX_WINDOW]:
                del self._window[key]

    def _removed(self) -> dict[str, set[int]]:
        out: dict[str, set[int]] = {}
        for event in self._window.values():
            if event is not None and event.op == "remove":
                out.setdefault(event.model, set()).update(event.versions)
        return out
