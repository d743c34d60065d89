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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelshelf.errors import InvalidModelName
from modelshelf.image import HEADER_SIZE, MAX_IMAGE_SIZE
from modelshelf.names import check_part, parse_ref
from modelshelf.store import RefInfo

CATALOG_RECORD = "catalog.json"  # in cache_dir
FORMAT = 1
MAX_SAVED_BYTES = 512 << 20  # a million refs take about 200 MB
MAX_VERSION = 2**63 - 1
_DIGEST = re.compile(r"[0-9a-f]{64}")


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
    """``data`` into a new file of ``tmpdir`` (cleared at start if a crash leaves it), renamed
    over ``path``: a reader finds the old file or the new one, never a part."""
    tmp = tmpdir / f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load(path: Path, store: str) -> SavedCatalog | None:
    """The catalog saved at ``path`` for ``store``; None if there is none. Raises
    SavedCatalogError if it cannot be used."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SavedCatalogError(f"cannot open it: {exc}") from exc
    try:
        size = os.fstat(fd).st_size
        if size > MAX_SAVED_BYTES:
            raise SavedCatalogError(f"it is {size} bytes, at most {MAX_SAVED_BYTES}")
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read(MAX_SAVED_BYTES + 1)
    except OSError as exc:
        raise SavedCatalogError(f"cannot read it: {exc}") from exc
    finally:
        os.close(fd)
    try:
        return _parse(json.loads(raw), store)
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

    def load(self) -> list[str]:
        """The references saved by the daemon before; raises SavedCatalogError if unusable."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise SavedCatalogError(f"cannot open it: {exc}") from exc
        try:
            with os.fdopen(fd, "rb", closefd=False) as f:
                raw = f.read(MAX_PINS * 200 + 1)
        finally:
            os.close(fd)
        try:
            body = json.loads(raw)
            if not isinstance(body, dict) or body.get("format") != FORMAT:
                raise ValueError(f"not a format-{FORMAT} pin list")
            refs = body["pins"]
            if not isinstance(refs, list) or len(refs) > MAX_PINS:
                raise ValueError(f"pins must be a list of at most {MAX_PINS} references")
            for ref in refs:
                if parse_ref(ref).version is None:
                    raise ValueError(f"{ref!r:.80} names no version")
        except (ValueError, TypeError, KeyError, RecursionError, InvalidModelName) as exc:
            raise SavedCatalogError(f"malformed: {exc}") from exc
        return list(dict.fromkeys(refs))

    def add(self, ref: str, digest: str) -> None:
        self.refs[ref] = digest
        self._save()

    def drop(self, digest: str) -> list[str]:
        """Forget every reference to ``digest`` (an unpin is of the image); the ones dropped."""
        gone = [ref for ref, d in self.refs.items() if d == digest]
        for ref in gone:
            del self.refs[ref]
        if gone:
            self._save()
        return gone

    def keep(self, refs: list[str]) -> None:
        """Pins of the daemon before that could not be placed at this start (the store is
        down, L1 is full of leases): kept in the file for the next start, not pinned now."""
        self.kept = refs
        self._save()

    def _save(self) -> None:
        refs = sorted(set(self.refs) | set(self.kept))
        write_atomically(
            self.path, self.tmpdir, json.dumps({"format": FORMAT, "pins": refs}).encode()
        )
