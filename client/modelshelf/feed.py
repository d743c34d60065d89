"""The change feed: what was published and removed, as small immutable objects whose keys sort
by time, and the snapshots that compact them (docs/protocol.md, "Object store layout").

    events/<epoch ms, 16 digits>-<id, 16 hex>                    one publish or removal
    events/snapshot-<cutoff epoch ms, 16 digits>-<8 hex>.json     every model's versions

A daemon reads the newest snapshot once, then lists only the keys that follow its position
(``Store.keys(after=...)``: one request whatever the size of the catalog). Snapshot keys sort
after every event key ('s' > '9'), so that same listing also shows every snapshot: a daemon
learns at no cost that a compaction removed events it had not read yet. Events are written
after the ref (a reader that sees an event finds its ref) and never rewritten; an event that
cannot be written is logged, not raised: the ref is published, and the daemons' periodic full
listing finds it. Readers bound every object before reading it and skip (never trust) one that
is too large or malformed. ``compact`` (``modelshelf gc``) writes a snapshot of every ref, then
deletes the events older than its cutoff: never before the snapshot exists.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import ShelfError, StoreError
from .names import check_part

if TYPE_CHECKING:
    from .store import RefInfo, Store

log = logging.getLogger("modelshelf.feed")

PREFIX = "events/"
SNAPSHOT_PREFIX = "events/snapshot-"
MAX_EVENT_BYTES = 8192  # an event names one model and at most MAX_EVENT_VERSIONS versions
MAX_EVENT_VERSIONS = 256  # a removal of more versions is written as several events
MAX_SNAPSHOT_BYTES = 256 << 20  # about ten million versions; a larger object is not ours
MAX_VERSION = 10**20 - 1  # a ref key has 20 digits
KEEP_SNAPSHOTS = 2  # the newest and the one before: a daemon may be reading it
# events younger than a snapshot's cutoff by less than this are kept: a daemon reading the
# snapshot re-reads them (its clock-skew window, at most this long, starts before the cutoff)
OVERLAP_MS = 300_000
_EVENT = re.compile(r"events/(\d{16})-([0-9a-f]{16})")
_SNAPSHOT = re.compile(r"events/snapshot-(\d{16})-[0-9a-f]{8}\.json")
_DIGEST = re.compile(r"[0-9a-f]{64}")


class FeedError(StoreError):
    """An object under ``events/`` that is not a valid event or snapshot."""


@dataclass(frozen=True)
class Event:
    """One publish or removal of versions of one model."""

    key: str  # its object key: events/<ms>-<id>
    op: str  # "publish" or "remove"
    model: str  # ns/name
    versions: tuple[int, ...]

    @property
    def ms(self) -> int:
        return event_ms(self.key)


@dataclass(frozen=True)
class Snapshot:
    """Every model's versions as of ``cutoff_ms``: events older than it may be deleted."""

    key: str
    cutoff_ms: int
    models: dict[str, list[int]]


def event_key(ms: int, event_id: str) -> str:
    return f"{PREFIX}{ms:016d}-{event_id}"


def position(ms: int) -> str:
    """The listing offset whose followers are the events of ``ms`` and later."""
    return f"{PREFIX}{max(0, ms):016d}"


def event_ms(key: str) -> int:
    match = _EVENT.fullmatch(key)
    if match is None:
        raise FeedError(f"{key!r:.120}: not an event key (events/<16 digits>-<16 hex>)")
    return int(match.group(1))


def snapshot_cutoff(key: str) -> int | None:
    """The cutoff (epoch ms) of a snapshot key; None for any other key."""
    match = _SNAPSHOT.fullmatch(key)
    return int(match.group(1)) if match else None


def is_event(key: str) -> bool:
    return _EVENT.fullmatch(key) is not None


# -- writing ----------------------------------------------------------------------------------


def _write(
    store: Store, op: str, namespace: str, name: str, versions: list[int], **extra: Any
) -> None:
    now = store.clock()
    event_id = secrets.token_hex(8)
    body = {
        "id": event_id,
        "op": op,
        "namespace": namespace,
        "name": name,
        "versions": versions,
        "time_ms": int(now * 1000),
        "writer": f"modelshelf {__version__}",
        "host": socket.gethostname()[:255],
        **extra,
    }
    store.create(event_key(int(now * 1000), event_id), json.dumps(body, sort_keys=True).encode())


def published(store: Store, info: RefInfo) -> None:
    """Record the publish of ``info`` (its ref exists); a failure is logged, not raised."""
    try:
        _write(
            store, "publish", info.namespace, info.name, [info.version],
            digest=info.digest, size=info.size,
        )  # fmt: skip
    except ShelfError as exc:
        log.warning(
            "%s@%d is published, but its change event could not be written (daemons find it "
            "at their next full listing): %s", info.key, info.version, exc,
        )  # fmt: skip


def removed(store: Store, namespace: str, name: str, versions: list[int]) -> None:
    """Record the removal of ``versions`` (their refs are gone); failures are logged."""
    for start in range(0, len(versions), MAX_EVENT_VERSIONS):
        try:
            _write(store, "remove", namespace, name, versions[start : start + MAX_EVENT_VERSIONS])
        except ShelfError as exc:
            log.warning(
                "%s/%s: removed, but its change event could not be written (daemons find it "
                "at their next full listing): %s", namespace, name, exc,
            )  # fmt: skip


# -- reading ----------------------------------------------------------------------------------


def _versions(value: Any, limit: int) -> list[int]:
    if not isinstance(value, list) or not 0 < len(value) <= limit:
        raise ValueError(f"versions must be a list of 1..{limit} numbers")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= MAX_VERSION:
            raise ValueError(f"a version must be an integer in 1..{MAX_VERSION}, got {v!r:.40}")
    return value


def decode_event(key: str, raw: bytes) -> Event:
    """An event from its key and bytes, or FeedError: nothing in it is trusted."""
    event_ms(key)
    try:
        if len(raw) > MAX_EVENT_BYTES:
            raise ValueError(f"{len(raw)} bytes, at most {MAX_EVENT_BYTES}")
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        op, namespace, name = body.get("op"), body.get("namespace"), body.get("name")
        if op not in ("publish", "remove"):
            raise ValueError(f"op must be publish or remove, got {op!r:.40}")
        if not (isinstance(namespace, str) and isinstance(name, str)):
            raise ValueError("namespace and name must be strings")
        check_part(namespace)
        check_part(name, "name")
        versions = _versions(body.get("versions"), MAX_EVENT_VERSIONS)
        if op == "publish":
            digest = body.get("digest")
            if len(versions) != 1 or not (isinstance(digest, str) and _DIGEST.fullmatch(digest)):
                raise ValueError("a publish names one version and its 64-hex digest")
    except (ValueError, TypeError, RecursionError, ShelfError) as exc:
        raise FeedError(f"{key}: malformed event: {exc}") from exc
    return Event(key, op, f"{namespace}/{name}", tuple(versions))


def read_event(store: Store, key: str) -> Event:
    """ModelNotFound if it is gone (a compaction removed it), FeedError if malformed."""
    raw = store.get_small(key, MAX_EVENT_BYTES)
    if raw is None:
        raise FeedError(f"{key}: malformed event: more than {MAX_EVENT_BYTES} bytes")
    return decode_event(key, raw)


def decode_snapshot(key: str, raw: bytes) -> tuple[Snapshot, int]:
    """A snapshot and the number of its entries skipped as malformed; FeedError if the object
    as a whole is not one."""
    cutoff = snapshot_cutoff(key)
    if cutoff is None:
        raise FeedError(f"{key!r:.120}: not a snapshot key")
    try:
        if len(raw) > MAX_SNAPSHOT_BYTES:
            raise ValueError(f"{len(raw)} bytes, at most {MAX_SNAPSHOT_BYTES}")
        body = json.loads(raw)
        if not isinstance(body, dict) or body.get("format") != 1:
            raise ValueError("not a format-1 snapshot object")
        models = body.get("models")
        if not isinstance(models, dict):
            raise ValueError("models must be an object")
    except (ValueError, TypeError, RecursionError) as exc:
        raise FeedError(f"{key}: malformed snapshot: {exc}") from exc
    out: dict[str, list[int]] = {}
    skipped = 0
    for model, versions in models.items():
        try:
            namespace, _, name = model.partition("/")
            check_part(namespace)
            check_part(name, "name")
            out[model] = sorted(set(_versions(versions, MAX_SNAPSHOT_BYTES)))
        except (ValueError, TypeError, ShelfError):
            skipped += 1
    return Snapshot(key, cutoff, out), skipped


def read_snapshot(store: Store, key: str) -> tuple[Snapshot, int]:
    raw = store.get_small(key, MAX_SNAPSHOT_BYTES)
    if raw is None:
        raise FeedError(f"{key}: malformed snapshot: more than {MAX_SNAPSHOT_BYTES} bytes")
    return decode_snapshot(key, raw)


def snapshots(keys: Iterable[str]) -> list[str]:
    """The snapshot keys among ``keys``, oldest cutoff first."""
    found = [(cutoff, k) for k in keys if (cutoff := snapshot_cutoff(k)) is not None]
    return [k for _, k in sorted(found)]


# -- compaction -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Compaction:
    snapshot: str  # the key written ("" on a dry run)
    cutoff_ms: int
    models: int
    events_removed: int
    snapshots_removed: int


def compact(store: Store, retention: float, *, dry_run: bool = False) -> Compaction:
    """Write a snapshot of every ref (a full listing: the truth, refs of publishers without
    events included) whose cutoff is ``retention`` seconds ago, then delete the events older
    than the cutoff minus OVERLAP_MS and the snapshots older than the previous one. The
    snapshot is written create-only before anything is deleted: a daemon that starts
    meanwhile finds either the old snapshot and every event after it, or the new one (and
    reads again if what it read vanishes). The cutoff is taken from the earlier of this host's
    clock and the store's: a gc host ahead of the publishers would otherwise write a snapshot
    that claims events they have not written yet."""
    now = store.clock()
    if not dry_run:  # a host whose clock is ahead would cut events publishers have not written
        # the bucket's time is whole seconds (S3's Last-Modified): a host on time keeps its
        # own milliseconds (two compactions in one second must not share a cutoff)
        now = min(now, store.store_time() + 1.0)
    cutoff = int((now - retention) * 1000)
    listing = store.list_refs()  # after the cutoff is fixed: it holds every earlier event
    keys = store.keys(PREFIX)
    old = [k for k in keys if is_event(k) and event_ms(k) < cutoff - OVERLAP_MS]
    olds = snapshots(keys)
    key = ""
    if not dry_run:
        key = f"{SNAPSHOT_PREFIX}{max(0, cutoff):016d}-{secrets.token_hex(4)}.json"
        body = {
            "format": 1,
            "cutoff_ms": cutoff,
            "time_ms": int(store.clock() * 1000),
            "writer": f"modelshelf {__version__}",
            "models": listing,
        }
        store.create(key, json.dumps(body, separators=(",", ":")).encode())
    gone = olds[: max(0, len(olds) + 1 - KEEP_SNAPSHOTS)]
    if not dry_run:
        for k in old + gone:
            store.delete(k)
    return Compaction(key, cutoff, len(listing), len(old), len(gone))


def apply(
    models: dict[str, list[int]], events: Iterable[Event], removed: Mapping[str, set[int]]
) -> set[str]:
    """Apply ``events`` (in key order) to ``models`` in place; return the models that changed
    (and every model a removal names: a daemon may hold a removed version it never listed).
    ``removed``: versions known removed (a removal may sort before its publish when the
    remover's clock is behind); a version number is never assigned twice, so it stays out."""
    changed: set[str] = set()
    for event in events:
        current = models.get(event.model, [])
        gone = removed.get(event.model, set())
        if event.op == "publish":
            new = sorted(set(current).union(v for v in event.versions if v not in gone))
        else:
            drop = set(event.versions)
            new = [v for v in current if v not in drop]
        if new != current or event.op == "remove":  # a removed version may be cached
            changed.add(event.model)
            if new:
                models[event.model] = new
            else:
                models.pop(event.model, None)
    return changed
