"""The catalog saved in ``cache_dir``: what a daemon restarted during a store outage serves.

A running daemon rides out an outage on what it knows (catalog.py): its last listing and the
refs it resolved. A daemon *started* during one knew nothing, and answered every name
``store_unavailable`` although its L2 held the images. So the catalog writes what it knows
(the versions of every model and the refs it resolved) to ``cache_dir/catalog.json`` when it
changes, and a daemon whose first listing fails serves from that file until the store answers.
While the store answers, the file is never read: the store decides.

The file is the daemon's own (in its private ``cache_dir``), written whole to ``tmp/`` and
renamed into place; it is read as untrusted all the same: bounded in size, every name, version,
digest and size checked, anything else refused whole (logged; the daemon then starts as before).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelshelf.errors import InvalidModelName
from modelshelf.image import HEADER_SIZE, MAX_IMAGE_SIZE
from modelshelf.names import check_part, parse_ref
from modelshelf.store import RefInfo

CATALOG_RECORD = "catalog.json"  # in cache_dir
LEARNED_RECORD = "learned.json"  # in cache_dir: what the policies learned (learned.py)
FORMAT = 1
MAX_SAVED_BYTES = 512 << 20  # a million refs take about 200 MB
MAX_VERSION = 2**63 - 1
_DIGEST = re.compile(r"[0-9a-f]{64}")


_LOCATION = re.compile(r"endpoint|region|account|bucket|container|url", re.IGNORECASE)
_SECRET = re.compile(r"secret|key|token|password|sas|credential", re.IGNORECASE)
_LOCATION_VARIABLES = (
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT", "AWS_REGION",
    "AWS_DEFAULT_REGION", "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ENDPOINT",
    "GOOGLE_CLOUD_STORAGE_ENDPOINT",
)  # fmt: skip


def store_identity(url: str, options: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    """Which store a catalog was read from: its URL, and where it points (the endpoint, region
    and account, from the options or the environment; never a secret). The same
    ``s3://bucket/prefix`` on another endpoint is another store: its saved catalog must not
    name this one's models."""
    parts = [url]
    parts += [
        f"{key}={options[key]}"
        for key in sorted(options)
        if _LOCATION.search(key) and not _SECRET.search(key)
    ]
    parts += [f"{name}={environ[name]}" for name in _LOCATION_VARIABLES if environ.get(name)]
    return " ".join(parts)


class SavedCatalogError(ValueError):
    """The saved catalog cannot be used (unreadable, malformed, another store's)."""


@dataclass(frozen=True)
class SavedCatalog:
    saved_at: float  # Unix time of the write
    versions: dict[str, list[int]]
    refs: dict[tuple[str, int], RefInfo]


def save(
    path: Path,
    tmpdir: Path,
    store: str,
    versions: dict[str, list[int]],
    refs: dict[tuple[str, int], RefInfo],
) -> None:
    """Write the catalog atomically: a temp file in ``tmpdir`` (cleared at start if a crash
    leaves it), renamed over ``path``."""
    body = {
        "format": FORMAT,
        "saved_at": time.time(),
        "store": store,
        "versions": versions,
        "refs": [
            [r.namespace, r.name, r.version, r.digest, r.size, r.published, r.publisher]
            for r in refs.values()
        ],
    }
    write_atomically(path, tmpdir, json.dumps(body, separators=(",", ":")).encode())


def write_atomically(path: Path, tmpdir: Path, data: bytes) -> None:
    """``data`` into a new file of ``tmpdir`` (cleared at start if a crash leaves it), synced,
    renamed over ``path``, and the directory synced: a reader finds the old file or the new
    one, never a part, and a power loss after the call keeps the new one (a pin list is
    state, not a cache)."""
    tmp = tmpdir / f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def read_regular(path: Path, limit: int) -> bytes | None:
    """The bytes of the regular file ``path`` (None if there is none), at most ``limit``;
    SavedCatalogError for anything else: a link, a FIFO (opened without blocking: one
    hung the start), a directory, a device, a larger file, one another uid owns or that
    group or others may write."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SavedCatalogError(f"cannot open it: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SavedCatalogError("it is not a regular file (the daemon writes one)")
        if st.st_size > limit:
            raise SavedCatalogError(f"it is {st.st_size} bytes, at most {limit}")
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            # the daemon writes its files 0600 as itself: another's, or one others may
            # rewrite, says what someone else wanted it to
            raise SavedCatalogError(
                f"it is owned by uid {st.st_uid} with mode {stat.S_IMODE(st.st_mode):04o}; the "
                f"daemon (uid {os.geteuid()}) writes its own, writable by it alone: remove it"
            )
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit + 1)
    except OSError as exc:
        raise SavedCatalogError(f"cannot read it: {exc.strerror}") from exc
    finally:
        os.close(fd)


def load(path: Path, store: str) -> SavedCatalog | None:
    """The catalog saved at ``path`` for ``store`` (its identity: ``store_identity``); None
    if there is none. Raises SavedCatalogError if it cannot be used."""
    raw = read_regular(path, MAX_SAVED_BYTES)
    if raw is None:
        return None
    try:
        return _parse(json.loads(raw), store)
    except SavedCatalogError:
        raise  # another store's: said as such, not as malformed
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        raise SavedCatalogError(f"malformed: {exc}") from exc


def _parse(body: Any, store: str) -> SavedCatalog:
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ValueError(f"not a format-{FORMAT} catalog")
    if body.get("store") != store:
        # another store's catalog would serve its names here: never
        raise SavedCatalogError(f"saved for the store {body.get('store')!r:.200}, not this one")
    saved_at = body["saved_at"]
    if isinstance(saved_at, bool) or not isinstance(saved_at, int | float):
        raise ValueError("saved_at must be a number")
    versions: dict[str, list[int]] = {}
    raw_versions = body["versions"]
    if not isinstance(raw_versions, dict):
        raise ValueError("versions must be an object")
    for key, listed in raw_versions.items():
        _check_key(key)
        if not isinstance(listed, list) or not listed:
            raise ValueError(f"{key}: versions must be a non-empty list")
        for v in listed:
            _check_version(v)
        if listed != sorted(set(listed)):
            raise ValueError(f"{key}: versions must be increasing")
        versions[key] = listed
    refs: dict[tuple[str, int], RefInfo] = {}
    raw_refs = body["refs"]
    if not isinstance(raw_refs, list):
        raise ValueError("refs must be a list")
    for row in raw_refs:
        if not isinstance(row, list) or len(row) != 7:
            raise ValueError("each ref must be a list of 7 fields")
        ns, name, version, digest, size, published, publisher = row
        key = _check_key(f"{ns}/{name}" if isinstance(ns, str) and isinstance(name, str) else 0)
        _check_version(version)
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise ValueError(f"{key}@{version}: digest must be 64 lowercase hex characters")
        if isinstance(size, bool) or not isinstance(size, int):
            raise ValueError(f"{key}@{version}: size must be an integer")
        if not HEADER_SIZE <= size <= MAX_IMAGE_SIZE:
            raise ValueError(f"{key}@{version}: size {size} is outside the image sizes")
        if not isinstance(published, str) or not isinstance(publisher, str):
            raise ValueError(f"{key}@{version}: published and publisher must be strings")
        if version not in versions.get(key, ()):
            continue  # a ref of a version the listing no longer has: not served
        refs[(key, version)] = RefInfo(ns, name, version, digest, size, published, publisher)
    return SavedCatalog(float(saved_at), versions, refs)


def _check_key(key: object) -> str:
    if not isinstance(key, str) or key.count("/") != 1:
        raise ValueError(f"{key!r:.80} is not a model name (ns/name)")
    namespace, name = key.split("/")
    try:
        check_part(namespace)
        check_part(name, "name")
    except InvalidModelName as exc:
        raise ValueError(str(exc)) from None
    return key


def _check_version(version: object) -> None:
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"version {version!r:.40} is not an integer")
    if not 1 <= version <= MAX_VERSION:
        raise ValueError(f"version {version} is outside 1..{MAX_VERSION}")


# -- pins -------------------------------------------------------------------------------------

PINS_RECORD = "pins.json"  # in cache_dir: the versions pinned (``modelshelf pin``)
MAX_PINS = 65536


class Pins:
    """The versions pinned on this node (``ns/name@N``), kept in ``cache_dir/pins.json`` so
    that a restarted daemon pins them again: a pin lasts until ``unpin``, not until a restart.
    The file is rewritten whole (temp file, rename) at each pin and unpin."""

    def __init__(self, root: Path) -> None:
        self.path = root / PINS_RECORD
        self.tmpdir = root / "tmp"
        self.refs: dict[str, str] = {}  # "ns/name@N" -> digest (many names may share one)
        self.kept: list[str] = []  # saved pins not placed at this start (``keep``)
        # the digest each saved pin named when it was written: a hint for the start (its
        # copies are not evicted to fit a budget that shrank before the pins are placed again)
        self.hints: dict[str, str] = {}
        self.dropped: list[str] = []  # saved entries not used, and why (``load``)
        self._taken = self._written = 0  # snapshots taken, and the newest written
        self._writing = threading.Lock()

    def load(self) -> list[str]:
        """The references saved by the daemon before; raises SavedCatalogError if the file is
        unusable as a whole. An entry that is not a versioned reference is dropped alone (said
        in ``dropped``): one bad line lost every pin, and the next pin rewrote the file."""
        raw = read_regular(self.path, MAX_PINS * 300)
        if raw is None:
            return []
        try:
            body = json.loads(raw)
            if not isinstance(body, dict) or body.get("format") != FORMAT:
                raise ValueError(f"not a format-{FORMAT} pin list")
            refs = body["pins"]
            if not isinstance(refs, list) or len(refs) > MAX_PINS:
                raise ValueError(f"pins must be a list of at most {MAX_PINS} references")
            digests = body.get("digests", {})
            if not isinstance(digests, dict):
                raise ValueError("digests must be an object")
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            raise SavedCatalogError(f"malformed: {exc}") from exc
        kept: list[str] = []
        for ref in refs:
            try:
                if not isinstance(ref, str) or parse_ref(ref).version is None:
                    raise ValueError("it names no version")
            except (ValueError, InvalidModelName) as exc:
                self.dropped.append(f"{ref!r:.80}: {exc}")
                continue
            kept.append(ref)
            digest = digests.get(ref)
            if isinstance(digest, str) and _DIGEST.fullmatch(digest):
                self.hints[ref] = digest
        return list(dict.fromkeys(kept))

    # The changes are made on the event loop, each taking a snapshot in order; the writes run
    # in threads, one at a time, and a snapshot older than the one written is never written
    # (two pins saved at once could land in either order: an unpin undone at the restart).

    def full(self) -> bool:
        """As many pins as a restart reads back (``MAX_PINS``): ``pin`` refuses more."""
        return len(set(self.refs) | set(self.kept)) >= MAX_PINS

    def add(self, ref: str, digest: str) -> tuple[int, bytes]:
        self.refs[ref] = digest
        self.kept = [k for k in self.kept if k != ref]
        return self._snapshot()

    def drop(self, digest: str, ref: str) -> tuple[int, bytes]:
        """Forget every reference to ``digest`` (an unpin is of the image), and ``ref`` if it
        is a pin kept for the next start (one not placed at this one)."""
        for name in [name for name, d in self.refs.items() if d == digest]:
            del self.refs[name]
        self.kept = [k for k in self.kept if k != ref]
        return self._snapshot()

    def keep(self, refs: list[str]) -> tuple[int, bytes]:
        """Pins of the daemon before that could not be placed at this start (the store is
        down, L1 is full of leases): kept in the file for the next start, not pinned now."""
        self.kept = list(refs)
        return self._snapshot()

    def _snapshot(self) -> tuple[int, bytes]:
        self._taken += 1
        refs = sorted(set(self.refs) | set(self.kept))
        named = {**{k: self.hints[k] for k in self.kept if k in self.hints}, **self.refs}
        digests = {ref: named[ref] for ref in refs if ref in named}
        body = {"format": FORMAT, "pins": refs, "digests": digests}
        return self._taken, json.dumps(body).encode()

    def write(self, snapshot: tuple[int, bytes]) -> None:
        """Write a snapshot (from any thread), unless a newer one was written already."""
        number, data = snapshot
        with self._writing:
            if number <= self._written:
                return
            write_atomically(self.path, self.tmpdir, data)
            self._written = number
