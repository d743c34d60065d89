"""The object store: content-addressed images and versioned refs (docs/protocol.md, "Object
store layout"). Publishers and the daemon both use it; ``obstore`` is imported lazily so that
applications which only map models never need it.

    images/<sha256 hex>                              an image, byte for byte
    refs/<namespace>/<name>/<version, 20 digits>     {"digest", "size", "published", "publisher"}

Versions are assigned by a create-only put of the next ref key; a publisher that loses the race
takes the next number. Refs are never rewritten. The API is synchronous; the daemon calls it from
threads. obstore's exceptions are translated here: not found -> ModelNotFound, anything else ->
StoreError. A ``file://`` store whose directory is gone is unreachable (StoreError), not empty.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import re
import socket
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .errors import MissingDependencyError, ModelNotFound, ShelfError, StoreError
from .image import HEADER_SIZE, MAX_IMAGE_SIZE, Image
from .names import ModelRef, check_part

SCHEMES = ("file", "s3", "gs", "az", "memory")
MAX_REF_BYTES = 4096  # a ref is a small JSON object; anything larger is not one
_DIGEST = re.compile(r"[0-9a-f]{64}")
_MAX_RACE = 1000
# obstore's HTTP client options; every other option key goes to the store's own config
_CLIENT_OPTIONS = frozenset(
    {
        "allow_http",
        "allow_invalid_certificates",
        "connect_timeout",
        "default_content_type",
        "http1_only",
        "http2_only",
        "pool_idle_timeout",
        "pool_max_idle_per_host",
        "proxy_url",
        "timeout",
        "user_agent",
    }
)  # create-only attempts before giving up on a version number


@dataclass(frozen=True)
class RefInfo:
    """One published version of a model."""

    namespace: str
    name: str
    version: int
    digest: str
    size: int
    published: str = ""
    publisher: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def ref_path(namespace: str, name: str, version: int) -> str:
    return f"refs/{namespace}/{name}/{version:020d}"


def image_path(digest: str) -> str:
    return f"images/{digest}"


def sha256(data: Any) -> str:
    return hashlib.sha256(memoryview(data).cast("B")).hexdigest()


@contextlib.contextmanager
def _translate(what: str, reachable: Callable[[str], None] | None = None) -> Iterator[None]:
    """obstore's errors as ours; ``reachable`` vets a "not found" (it raises StoreError if the
    store itself is gone)."""
    try:
        yield
    except ShelfError:
        raise
    except FileNotFoundError as exc:  # obstore's NotFoundError subclasses it
        if reachable is not None:
            reachable(what)
        raise ModelNotFound(f"{what}: not found in the store") from exc
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StoreError(f"{what}: the object store failed: {first}") from exc


class Store:
    """One object store, opened from a URL: ``file:///path``, ``s3://bucket/prefix``, ``gs://``,
    ``az://``. S3 endpoint, region and credentials come from the AWS_* environment variables or
    from ``options`` (obstore's config keys, e.g. ``{"endpoint": ..., "region": ...}``)."""

    def __init__(
        self,
        url: str,
        options: Mapping[str, Any] | None = None,
        *,
        max_retries: int = 3,
        retry_timeout: float = 10.0,
    ) -> None:
        try:
            import obstore
            from obstore.store import from_url
        except ImportError as exc:
            raise MissingDependencyError(
                f"the object store needs the 'daemon' extra (pip install 'modelshelf[daemon]'): "
                f"{exc}"
            ) from exc
        scheme = urlparse(url).scheme
        if scheme not in SCHEMES:
            raise StoreError(f"store URL {url!r}: expected one of {', '.join(SCHEMES)}://")
        self.url = url
        self._ob = obstore
        self._root = Path(urlparse(url).path) if scheme == "file" else None
        kwargs: dict[str, Any] = {
            "retry_config": {
                "max_retries": max_retries,
                "retry_timeout": dt.timedelta(seconds=retry_timeout),
                "backoff": {
                    "init_backoff": dt.timedelta(milliseconds=50),
                    "max_backoff": dt.timedelta(seconds=1),
                    "base": 2,
                },
            }
        }
        config = {k: v for k, v in (options or {}).items() if k not in _CLIENT_OPTIONS}
        client = {k: v for k, v in (options or {}).items() if k in _CLIENT_OPTIONS}
        if config:
            kwargs["config"] = config
        if client:
            kwargs["client_options"] = client
        if scheme == "file":
            Path(urlparse(url).path).mkdir(parents=True, exist_ok=True)
        with _translate(f"opening store {url}"):
            self._store = from_url(url, **kwargs)

    def __repr__(self) -> str:
        return f"<Store {self.url}>"

    def _reachable(self, what: str) -> None:
        """A local store whose directory is gone lists nothing and finds nothing: that is an
        outage (StoreError), not an empty store (ModelNotFound, or an empty listing)."""
        if self._root is not None and not self._root.is_dir():
            missing = FileNotFoundError(errno.ENOENT, "no such directory", str(self._root))
            raise StoreError(f"{what}: the store directory {self._root} is missing") from missing

    # -- images -------------------------------------------------------------------------------

    def put_image(self, data: Any) -> str:
        """Validate ``data`` as an image and store it under its digest; return the digest.

        The bytes are copied first and the copy is what is verified, hashed and stored:
        ``data`` may be a mapping of a file someone else can still write to.
        """
        blob = bytes(memoryview(data).cast("B"))
        image = Image(blob)
        image.verify()  # a publisher never stores bytes no reader could load
        del image
        digest = sha256(blob)
        path = image_path(digest)
        with _translate(f"storing image {digest[:12]}"):
            try:
                head = self._ob.head(self._store, path)
                if int(head["size"]) == len(blob):
                    return digest
            except FileNotFoundError:
                pass
            self._ob.put(self._store, path, blob)
        return digest

    def read_image(
        self, digest: str, out: Any, *, parallelism: int = 8, range_bytes: int = 8 << 20
    ) -> None:
        """Read image ``digest`` into the writable buffer ``out`` (its exact size).

        Large images are read as parallel ranged GETs of ``range_bytes``: separate requests on
        purpose (obstore's get_ranges coalesces adjacent ranges into one request).
        """
        view = memoryview(out).cast("B")
        size = len(view)
        path = image_path(digest)
        what = f"image {digest[:12]}"
        with _translate(what, self._reachable):
            if size <= range_bytes:
                result = self._ob.get(self._store, path)
                actual = int(result.meta["size"])
                if actual != size:
                    raise StoreError(f"{what}: the store holds {actual} bytes, expected {size}")
                pos = 0
                for chunk in result:
                    n = len(chunk)
                    if pos + n > size:
                        raise StoreError(f"{what}: longer than the expected {size} bytes")
                    view[pos : pos + n] = memoryview(chunk).cast("B")
                    pos += n
                if pos != size:
                    raise StoreError(f"{what}: got {pos} bytes, expected {size}")
                return

            def fetch(start: int) -> None:
                end = min(size, start + range_bytes)
                chunk = self._ob.get_range(self._store, path, start=start, end=end)
                data = memoryview(chunk).cast("B")
                if len(data) != end - start:
                    raise StoreError(f"{what}: short range read at {start}")
                view[start:end] = data

            with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
                for _ in pool.map(fetch, range(0, size, range_bytes)):
                    pass

    def get_image(self, digest: str, size: int) -> bytearray:
        out = bytearray(size)
        self.read_image(digest, out)
        return out

    # -- refs ---------------------------------------------------------------------------------

    def versions(self, namespace: str, name: str) -> list[int]:
        """Published versions of ``namespace/name``, ascending (empty if none)."""
        check_part(namespace)
        check_part(name, "name")
        prefix = f"refs/{namespace}/{name}/"
        with _translate(f"listing {namespace}/{name}"):
            items = self._ob.list(self._store, prefix=prefix).collect()
        if not items:
            self._reachable(f"listing {namespace}/{name}")
        out = []
        for item in items:
            leaf = str(item["path"])[len(prefix) :]
            if len(leaf) == 20 and leaf.isdigit():
                out.append(int(leaf))
        return sorted(out)

    def list_refs(self) -> dict[str, list[int]]:
        """Every ``namespace/name`` in the store with its versions, ascending."""
        with _translate("listing refs"):
            items = self._ob.list(self._store, prefix="refs/").collect()
        if not items:
            self._reachable("listing refs")
        out: dict[str, list[int]] = {}
        for item in items:
            parts = str(item["path"]).split("/")
            if len(parts) != 4 or len(parts[3]) != 20 or not parts[3].isdigit():
                continue
            try:
                check_part(parts[1])
                check_part(parts[2], "name")
            except ShelfError:
                continue  # a foreign key in the bucket; it is not a ref
            out.setdefault(f"{parts[1]}/{parts[2]}", []).append(int(parts[3]))
        for versions in out.values():
            versions.sort()
        return out

    def ref(self, namespace: str, name: str, version: int) -> RefInfo:
        what = f"{namespace}/{name}@{version}"
        with _translate(what, self._reachable):
            result = self._ob.get(self._store, ref_path(namespace, name, version))
            length = int(result.meta["size"])
            if length > MAX_REF_BYTES:  # bounded before it is read: the bucket is shared
                raise StoreError(f"{what}: the ref is {length} bytes, at most {MAX_REF_BYTES}")
            raw = bytes(result.bytes())
        try:
            if len(raw) > MAX_REF_BYTES:
                raise ValueError(f"{len(raw)} bytes, at most {MAX_REF_BYTES}")
            body = json.loads(raw)
            digest, size = body["digest"], body["size"]
            if not (isinstance(digest, str) and _DIGEST.fullmatch(digest)):
                raise ValueError("digest must be 64 lowercase hex characters")
            if isinstance(size, bool) or not isinstance(size, int):
                raise ValueError(f"size must be an integer, got {size!r:.40}")
            if not HEADER_SIZE <= size <= MAX_IMAGE_SIZE:
                raise ValueError(f"size {size} is outside {HEADER_SIZE}..{MAX_IMAGE_SIZE}")
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise StoreError(f"{what}: the ref in the store is malformed: {exc}") from exc
        return RefInfo(
            namespace,
            name,
            version,
            digest,
            size,
            str(body.get("published", "")),
            str(body.get("publisher", "")),
        )

    def resolve(self, ref: ModelRef) -> RefInfo:
        """The ref a reference names: its explicit version, or the latest."""
        if ref.version is not None:
            return self.ref(ref.namespace, ref.name, ref.version)
        versions = self.versions(ref.namespace, ref.name)
        if not versions:
            raise ModelNotFound(f"no model {ref.key} in the store {self.url}")
        return self.ref(ref.namespace, ref.name, versions[-1])

    def publish(self, namespace: str, name: str, data: Any) -> RefInfo:
        """Store image ``data`` and assign it the next version of ``namespace/name``."""
        check_part(namespace)
        check_part(name, "name")
        digest = self.put_image(data)
        size = len(memoryview(data).cast("B"))
        body: dict[str, Any] = {
            "digest": digest,
            "size": size,
            "published": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "publisher": socket.gethostname(),
        }
        payload = json.dumps(body, sort_keys=True).encode()
        versions = self.versions(namespace, name)
        version = (versions[-1] if versions else 0) + 1
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        for _ in range(_MAX_RACE):
            with _translate(f"publishing {namespace}/{name}@{version}"):
                try:
                    self._ob.put(
                        self._store, ref_path(namespace, name, version), payload, mode="create"
                    )
                except (AlreadyExistsError, PreconditionError):
                    version += 1  # another publisher took this number
                    continue
            return RefInfo(
                namespace, name, version, digest, size, body["published"], body["publisher"]
            )
        raise StoreError(f"publishing {namespace}/{name}: lost {_MAX_RACE} version races in a row")

    def remove(self, namespace: str, name: str, version: int | None = None) -> list[int]:
        """Delete one version's ref (or every version's); images stay, other refs may share
        them. Return the versions removed."""
        versions = self.versions(namespace, name) if version is None else [version]
        if version is not None:
            self.ref(namespace, name, version)  # ModelNotFound if absent
        if not versions:
            raise ModelNotFound(f"no model {namespace}/{name} in the store {self.url}")
        with _translate(f"removing {namespace}/{name}"):
            for v in versions:
                self._ob.delete(self._store, ref_path(namespace, name, v))
        return versions
