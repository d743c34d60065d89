"""The object store: content-addressed images and versioned refs (docs/protocol.md, "Object
store layout"). Publishers and the daemon both use it; ``obstore`` is imported lazily so that
applications which only map models never need it.

    images/<sha256 hex>                              an image, byte for byte
    refs/<namespace>/<name>/<version, 20 digits>     {"digest", "size", "published", "publisher"}
    versions/<namespace>/<name>/<version, 20 digits> the same, written first, never deleted
    events/...                                       the change feed (feed.py): one small
                                                     object per publish and removal, and
                                                     the snapshots that compact them

A version number is claimed by a create-only put of its ``versions/`` key, then its ref is
created. ``rm`` deletes refs, never claims, so a number once assigned is never assigned again:
``ns/name@3`` names one image forever, or nothing. A publisher that loses a race (the claim, or
the ref of a version claimed before claims existed, exists) takes the next number. Refs are
never rewritten. The API is synchronous; the daemon calls it from
threads. obstore's exceptions are translated here: not found -> ModelNotFound, anything else ->
StoreError. A ``file://`` store whose directory is gone is unreachable (StoreError), not empty.
A ``file://`` store is private to its writer: directories 0700, files 0600; its
staging files (``<key>#<n>``, left by uploads killed midway) are found by ``staged`` and deleted
by ``collect_staged`` (``modelshelf gc``), and by the next publish of the same image.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import logging
import mmap
import os
import re
import secrets
import socket
import stat
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from . import feed as _feed
from .errors import (
    ChecksumError,
    ImageError,
    InvalidStoreURL,
    MalformedRef,
    MissingDependencyError,
    ModelNotFound,
    ShelfBusy,
    ShelfError,
    StoreError,
    TruncatedImageError,
)
from .image import HEADER_SIZE, MAX_IMAGE_SIZE, Image, _format
from .names import ModelRef, check_part

log = logging.getLogger("modelshelf.store")

SCHEMES = ("file", "s3", "gs", "az", "memory")
MAX_REF_BYTES = 4096  # a ref is a small JSON object; anything larger is not one
_DIGEST = re.compile(r"[0-9a-f]{64}")
# obstore's local store writes <key>#<n> and renames it into place: a publish killed
# mid-upload leaves it behind, and obstore's own listings never show it
_STAGED = re.compile(r"[^#/]+#\d+")
_TREES = ("images", "refs", "versions")  # where staging objects may be, in any store
STAGING_GRACE = 600.0  # seconds: a staging file untouched this long has no live writer
_MAX_RACE = 1000  # create-only attempts before giving up on a version number
UPLOAD_CHUNK = 8 << 20  # bytes read from a file at a time by publish_file: what it holds
_CHECKSUM_AT = 24  # the header's CRC-32 field (docs/format.md), read as zeros by the CRC
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
)


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


@dataclass(frozen=True)
class Published(RefInfo):
    """What ``publish`` did: the version assigned, or with ``skip_unchanged`` the latest one
    when it already holds the same bytes (``unchanged``: no version was created)."""

    unchanged: bool = False


@dataclass(frozen=True)
class Staged:
    """A staging object: part of an upload that never completed."""

    path: str  # its key in the store
    size: int
    age: float  # seconds since it was last written


def ref_path(namespace: str, name: str, version: int) -> str:
    return f"refs/{namespace}/{name}/{version:020d}"


def claim_path(namespace: str, name: str, version: int) -> str:
    return f"versions/{namespace}/{name}/{version:020d}"


def image_path(digest: str) -> str:
    return f"images/{digest}"


def sha256(data: Any) -> str:
    return hashlib.sha256(memoryview(data).cast("B")).hexdigest()


def _rehashed(
    fh: Any, digest: str, source: str, progress: Callable[[int], None] | None
) -> Iterator[bytes]:
    """``fh``'s chunks for an upload, hashed again on the way; each chunk is yielded only
    once the next is read, so that a file which no longer hashes to ``digest`` fails before
    its last chunk leaves: the upload is abandoned, never completed."""
    sha = hashlib.sha256()
    held = fh.read(UPLOAD_CHUNK)
    sha.update(held)
    while held:
        following = fh.read(UPLOAD_CHUNK)
        sha.update(following)
        if not following and sha.hexdigest() != digest:
            raise StoreError(f"{source} changed while it was being published; nothing was stored")
        yield held
        if progress is not None:
            progress(len(held))
        held = following


@contextlib.contextmanager
def _translate(what: str, reachable: Callable[[str], None] | None = None) -> Iterator[None]:
    """obstore's errors as ours; ``reachable`` vets a "not found" (it raises StoreError if the
    store itself is gone)."""
    try:
        yield
    except (ShelfError, ImageError):
        raise
    except FileNotFoundError as exc:  # obstore's NotFoundError subclasses it
        if reachable is not None:
            reachable(what)
        raise ModelNotFound(f"{what}: not found in the store") from exc
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if _out_of_descriptors(exc):  # this process's limit: the store itself may be fine
            raise ShelfBusy(
                f"{what}: out of file descriptors ({first}); retry later, or raise the "
                "process's descriptor limit (ulimit -n, systemd's LimitNOFILE)"
            ) from exc
        if _out_of_memory(exc):  # the same: this process, not the store
            raise ShelfBusy(
                f"{what}: out of memory ({first}); retry later, or raise the process's memory "
                "limit (systemd's MemoryMax, the container's limit, ulimit -v)"
            ) from exc
        raise StoreError(f"{what}: the object store failed: {first}") from exc


def _out_of_memory(exc: Exception) -> bool:
    """MemoryError, ENOMEM, or a thread the interpreter could not start (its stack is memory:
    "can't start new thread")."""
    if isinstance(exc, MemoryError) or getattr(exc, "errno", None) == errno.ENOMEM:
        return True
    return isinstance(exc, RuntimeError) and "can't start new thread" in str(exc)


# obstore reports the operating system's error in its text: "Too many open files (os error 24)"
_OS_OUT_OF_DESCRIPTORS = re.compile(rf"\(os error (?:{errno.EMFILE}|{errno.ENFILE})\)")


def _out_of_descriptors(exc: Exception) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.EMFILE, errno.ENFILE)
    return _OS_OUT_OF_DESCRIPTORS.search(str(exc)) is not None


def check_url(url: str) -> None:
    """InvalidStoreURL unless ``url`` can name a store: a known scheme, a file store's absolute
    path (``file:///dir``), a bucket's name (``s3://bucket/prefix``). Contacts nothing."""
    parsed = urlparse(url)
    scheme = parsed.scheme
    if scheme not in SCHEMES:
        raise InvalidStoreURL(f"store URL {url!r}: expected one of {', '.join(SCHEMES)}://")
    if scheme == "file" and (parsed.netloc or not parsed.path.startswith("/")):
        raise InvalidStoreURL(
            f"store URL {url!r}: a file store is file:///absolute/path (three slashes)"
        )
    if scheme in ("s3", "gs", "az") and not parsed.netloc:
        raise InvalidStoreURL(f"store URL {url!r}: name the bucket ({scheme}://bucket/prefix)")


def _check_length(what: str, actual: int, size: int) -> None:
    """A stored image of the wrong length is a damaged copy (ImageError: read again, then
    refused as image_error), not a store that failed (which a retry later may fix)."""
    if actual < size:
        raise TruncatedImageError(f"{what}: the store holds {actual} bytes, the ref says {size}")
    if actual > size:
        raise ChecksumError(f"{what}: the store holds {actual} bytes, the ref says {size}")


def _private_dir(path: Path) -> bool:
    """Create ``path`` 0700 whatever the umask; False if it already existed (left as it is)."""
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        return False
    os.chmod(path, 0o700)  # mkdir's mode passes through the umask
    return True


def make_private_dirs(path: Path) -> bool:
    """Create ``path`` and its missing parents 0700 whatever the umask (a parent made 0777
    under umask 000 would let anyone rename what is below); False if ``path`` existed."""
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        _private_dir(directory)
    return bool(missing)


def _private_root(root: Path) -> None:
    """Create a file:// store's directory (and its missing parents) 0700. One that exists and
    is open to other users is reported, never changed: it is not ours to change."""
    missing = make_private_dirs(root)
    st = root.stat()
    mode = stat.S_IMODE(st.st_mode)
    if not missing and st.st_uid not in (os.geteuid(), 0):
        log.warning(
            "the file store %s belongs to uid %d, not to this process (uid %d): its owner may "
            "publish into and remove from every namespace it serves; use a store directory "
            "of this uid's (or root's)", root, st.st_uid, os.geteuid(),
        )  # fmt: skip
    if not missing and mode & 0o077:
        log.warning(
            "the file store %s has mode %o: other local users may read every model in it; "
            "make it private with 'chmod 700 %s' (modelshelf creates its store 0700, but never "
            "changes the mode of a directory it did not create)", root, mode, root,
        )  # fmt: skip


def _store_kwargs(
    options: Mapping[str, Any], max_retries: int, retry_timeout: float
) -> dict[str, Any]:
    """obstore's ``from_url`` arguments: the retry policy, the store's config keys and the
    HTTP client's options, both from ``options``."""
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
    config = {k: v for k, v in options.items() if k not in _CLIENT_OPTIONS}
    client = {k: v for k, v in options.items() if k in _CLIENT_OPTIONS}
    if config:
        kwargs["config"] = config
    if client:
        kwargs["client_options"] = client
    return kwargs


def check_options(
    url: str, options: Mapping[str, Any], *, max_retries: int = 3, retry_timeout: float = 10.0
) -> None:
    """Raise StoreError if the store at ``url`` would not open with ``options`` (an unknown
    key, a value of the wrong type, a missing account): obstore builds the store, which
    contacts nothing. A file:// store takes none (obstore would ignore them) and is not
    opened here: its directory may not exist yet."""
    if urlparse(url).scheme == "file":
        if options:
            raise StoreError(
                f"a file:// store takes no options, got {sorted(options)}: they are for "
                "s3://, gs:// and az:// stores"
            )
        return
    try:
        from obstore.store import from_url
    except ImportError as exc:
        raise MissingDependencyError(
            f"the object store needs the 'store' extra (pip install 'modelshelf[store]'): {exc}"
        ) from exc
    kwargs = _store_kwargs(options, max_retries, retry_timeout)
    try:
        from_url(url, **kwargs)
    except Exception as exc:  # obstore's, or a TypeError naming no key: find the key
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        for key, value in options.items():
            try:
                from_url(url, **_store_kwargs({key: value}, max_retries, retry_timeout))
            except Exception:
                raise StoreError(f"{key}: {first}") from None  # never the value: a secret
        raise StoreError(f"{url}: {first}") from None


def _leading_copy(fd: int, size: int) -> mmap.mmap:
    """A read-only mapping of ``size`` bytes holding the file's header, array table, names and
    manifest (what ``Image()`` reads to check the structure) and zeros after them (the arrays,
    which it does not read): a private memfd, which nobody can truncate under us. Its zeros
    cost no memory; the leading bytes are bounded by the format's limits."""
    lead = HEADER_SIZE
    head = os.pread(fd, _format.HEADER.size, 0)
    if len(head) == _format.HEADER.size:
        fields = _format.HEADER.unpack(head)
        lead = max(lead, fields[9] + fields[10])  # manifest_offset + manifest_length
    lead = min(lead, size, _MAX_LEAD)  # Image() refuses a header past the limits anyway
    memfd = os.memfd_create("modelshelf-publish-check", os.MFD_CLOEXEC)
    try:
        os.ftruncate(memfd, size)
        pos = 0
        while pos < lead:
            data = os.pread(fd, min(UPLOAD_CHUNK, lead - pos), pos)
            if not data:  # shorter now than at fstat: the check sees zeros, and refuses
                break
            os.pwrite(memfd, data, pos)
            pos += len(data)
        return mmap.mmap(memfd, size, prot=mmap.PROT_READ)
    finally:
        os.close(memfd)


_MAX_LEAD = (
    HEADER_SIZE
    + _format.MAX_ARRAYS * _format.ENTRY_SIZE
    + _format.MAX_STRINGS_SIZE
    + _format.MAX_MANIFEST_SIZE
)


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
        clock: Callable[[], float] = time.time,
        create: bool = True,
    ) -> None:
        """``create``: a file:// store's directory is created if missing (a publish); False
        (a command that only reads or tidies): a missing one is a StoreError, never an empty
        store made of a typo."""
        try:
            import obstore
            from obstore.store import from_url
        except ImportError as exc:
            raise MissingDependencyError(
                f"the object store needs the 'store' extra (pip install 'modelshelf[store]'): {exc}"
            ) from exc
        check_url(url)
        scheme = urlparse(url).scheme
        self.url = url
        self.clock = clock  # wall clock of the change feed's keys (feed.py); tests skew it
        self._ob = obstore
        kwargs = _store_kwargs(options or {}, max_retries, retry_timeout)
        self._root: Path | None = None  # a file:// store's directory: kept private
        if scheme == "file":
            self._root = Path(urlparse(url).path)
            if not create and not self._root.is_dir():
                what = "is not a directory" if self._root.exists() else "does not exist"
                raise InvalidStoreURL(
                    f"store URL {url!r}: {self._root} {what}; a file store is a directory "
                    "(publishing creates it): check the URL"
                )
            _private_root(self._root)
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

    def _put(self, path: str, data: Any, **kwargs: Any) -> None:
        """``obstore.put``; in a file:// store, into directories made 0700 and as a file made
        0600 whatever the umask (obstore creates them with the umask's modes)."""
        if self._root is None:
            self._ob.put(self._store, path, data, **kwargs)
            return
        parent = self._root
        for part in path.split("/")[:-1]:
            parent = parent / part
            _private_dir(parent)
        self._ob.put(self._store, path, data, **kwargs)
        os.chmod(self._root / path, 0o600)

    # -- images -------------------------------------------------------------------------------

    def put_image(self, data: Any) -> str:
        """Validate ``data`` as an image and store it under its digest; return the digest.

        Anything but ``bytes`` is copied first and the copy is what is verified, hashed and
        stored: ``data`` may be a mapping of a file someone else can still write to. (A file
        too large to copy goes through ``publish_file``, which streams it.)
        """
        blob = data if type(data) is bytes else bytes(memoryview(data).cast("B"))
        image = Image(blob)
        image.verify()  # a publisher never stores bytes no reader could load
        del image
        digest = sha256(blob)
        path = image_path(digest)
        with _translate(f"storing image {digest[:12]}", self._reachable):
            try:
                head = self._ob.head(self._store, path)
                stored = int(head["size"]) == len(blob)
            except FileNotFoundError:
                stored = False
            if not stored:
                self._put(path, blob)
        if self._root is not None:
            # what an earlier publish of these bytes, killed mid-upload, left; a staging
            # file written recently may be a live publisher's, so it is left to `gc`
            with contextlib.suppress(OSError):
                self.collect_staged(STAGING_GRACE, digest=digest)
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
                _check_length(what, int(result.meta["size"]), size)
                pos = 0
                for chunk in result:
                    n = len(chunk)
                    if pos + n > size:
                        raise ChecksumError(f"{what}: longer than the expected {size} bytes")
                    view[pos : pos + n] = memoryview(chunk).cast("B")
                    pos += n
                if pos != size:  # the store said one length and sent another
                    raise StoreError(f"{what}: got {pos} bytes, expected {size}")
                return
            # the object's length first: a shorter one fails its last ranges as a store error
            # would, and a longer one would pass on its first bytes
            _check_length(what, int(self._ob.head(self._store, path)["size"]), size)

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

    def staged(self, older_than: float = 0.0, *, digest: str | None = None) -> list[Staged]:
        """Staging objects (``<key>#<n>``) not written for ``older_than`` seconds: what
        uploads killed midway left (only a ``file://`` store makes them; a bucket holds them
        only if copied from one). ``digest``: only that image's."""
        now = time.time()
        found: list[Staged] = []
        if self._root is not None:
            # the store's own trees only, as in a bucket: never any other file of the directory
            tops = ["images"] if digest else list(_TREES)
            walked = (w for top in tops for w in os.walk(self._root / top))
            for parent, _, files in walked:  # obstore's listings hide them
                for leaf in files:
                    path = Path(parent) / leaf
                    with contextlib.suppress(FileNotFoundError):
                        st = path.lstat()
                        if _STAGED.fullmatch(leaf) and stat.S_ISREG(st.st_mode):
                            key = path.relative_to(self._root).as_posix()
                            found.append(Staged(key, st.st_size, now - st.st_mtime))
        else:
            with _translate("listing staging objects"):
                for prefix in ("images/",) if digest else ("images/", "refs/", "versions/"):
                    for item in self._ob.list(self._store, prefix=prefix).collect():
                        key = str(item["path"])
                        if _STAGED.fullmatch(key.rpartition("/")[2]):
                            age = now - item["last_modified"].timestamp()
                            found.append(Staged(key, int(item["size"]), age))
        if digest is not None:
            found = [s for s in found if s.path.startswith(f"images/{digest}#")]
        return sorted((s for s in found if s.age >= older_than), key=lambda s: s.path)

    def check_is_store(self) -> None:
        """StoreError unless a ``file://`` store's directory holds a store (one of its trees)
        or nothing: gc pointed at another directory by a typo must touch nothing there."""
        root = self._root
        if root is None or not any(root.iterdir()):
            return
        if not any((root / top).is_dir() for top in (*_TREES, "events")):
            raise StoreError(
                f"{root} is not a modelshelf store (it has none of {', '.join(_TREES)}, events): "
                "check the URL; nothing was changed"
            )

    def collect_staged(
        self, older_than: float, *, dry_run: bool = False, digest: str | None = None
    ) -> list[Staged]:
        """Delete the staging objects not written for ``older_than`` seconds (``staged``);
        return them. Nothing else is ever deleted."""
        stale = self.staged(older_than, digest=digest)
        if dry_run:
            return stale
        for item in stale:
            if self._root is not None:
                (self._root / item.path).unlink(missing_ok=True)
            else:
                with _translate(f"deleting {item.path}"):
                    self._ob.delete(self._store, item.path)
        return stale

    # -- refs ---------------------------------------------------------------------------------

    def versions(self, namespace: str, name: str) -> list[int]:
        """Published versions of ``namespace/name``, ascending (empty if none)."""
        return self._listed("refs", namespace, name)

    def _listed(self, top: str, namespace: str, name: str) -> list[int]:
        check_part(namespace)
        check_part(name, "name")
        prefix = f"{top}/{namespace}/{name}/"
        with _translate(f"listing {namespace}/{name}"):
            items = self._ob.list(self._store, prefix=prefix).collect()
        if not items:
            self._reachable(f"listing {namespace}/{name}")
        out = []
        for item in items:
            leaf = str(item["path"])[len(prefix) :]
            if len(leaf) == 20 and leaf.isascii() and leaf.isdigit():
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
            if (
                len(parts) != 4
                or len(parts[3]) != 20
                or not (parts[3].isascii() and parts[3].isdigit())
            ):
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
            raise MalformedRef(f"{what}: the ref in the store is malformed: {exc}") from exc
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

    def publish(
        self, namespace: str, name: str, data: Any, *, skip_unchanged: bool = False
    ) -> Published:
        """Store image ``data`` and assign it the next version of ``namespace/name``.
        ``skip_unchanged``: if the latest version holds the same bytes, assign nothing and
        return that version with ``unchanged`` set."""
        check_part(namespace)
        check_part(name, "name")
        digest = self.put_image(data)
        size = len(memoryview(data).cast("B"))
        return self._assign(namespace, name, digest, size, skip_unchanged=skip_unchanged)

    def publish_file(
        self,
        namespace: str,
        name: str,
        path: str | os.PathLike[str] | int,
        *,
        skip_unchanged: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> Published:
        """``publish`` for an image file, streamed: it is never read into memory whole.

        One pass checks the image (structure, then CRC-32 and SHA-256 chunk by chunk), a
        second uploads it chunk by chunk, hashing again: if the file changed in between, the
        upload is abandoned before its last chunk (StoreError), so what is stored is always
        what was checked. ``progress(n)`` is called with each chunk's size as it is uploaded
        (once with the whole size if the store holds these bytes already). ``path`` may be an
        open descriptor (read from its start, left open).
        """
        check_part(namespace)
        check_part(name, "name")
        # a descriptor (the daemon's publish: a file another uid may own) is read, not reopened
        source = f"descriptor {path}" if isinstance(path, int) else os.fspath(path)
        descriptor = isinstance(path, int)
        with open(path if descriptor else source, "rb", closefd=not descriptor) as fh:
            fh.seek(0)
            found = os.fstat(fh.fileno()).st_size
            if found < HEADER_SIZE:
                raise TruncatedImageError(
                    f"{source}: {found} bytes is shorter than the {HEADER_SIZE}-byte image header"
                )
            # the structure only, from a private copy of the file's leading bytes: a mapping of
            # the file itself faults (SIGBUS, the whole process) if another one truncates it
            mapped = _leading_copy(fh.fileno(), found)
            try:
                image = Image(mapped)  # its size is the file's: neither shorter nor longer
                size, checksum = image.size, image.checksum
                del image
            finally:
                with contextlib.suppress(BufferError):  # a view in a traceback: GC unmaps
                    mapped.close()
            crc, sha = 0, hashlib.sha256()
            buf = bytearray(UPLOAD_CHUNK)
            pos = 0
            while n := fh.readinto(buf):
                chunk = memoryview(buf)[:n]
                sha.update(chunk)
                if pos == 0:  # the checksum field is read as zeros (image_crc32)
                    crc = zlib.crc32(chunk[:_CHECKSUM_AT])
                    crc = zlib.crc32(b"\0\0\0\0", crc)
                    crc = zlib.crc32(chunk[_CHECKSUM_AT + 4 :], crc)
                else:
                    crc = zlib.crc32(chunk, crc)
                pos += n
            if crc != checksum:
                raise ChecksumError(
                    f"{source}: image checksum mismatch: header records {checksum:#010x}, the "
                    f"bytes hash to {crc:#010x}; the image is corrupted"
                )
            digest = sha.hexdigest()
            del buf
            if skip_unchanged and (same := self._unchanged(namespace, name, digest)):
                return same
            fh.seek(0)
            uploaded = self._upload(digest, size, _rehashed(fh, digest, source, progress))
            if not uploaded and progress is not None:
                progress(size)  # stored already: nothing left to send
        return self._assign(namespace, name, digest, size)

    def _upload(self, digest: str, size: int, chunks: Iterator[bytes]) -> bool:
        """Store ``chunks`` as image ``digest`` unless it is stored already (False then)."""
        path = image_path(digest)
        with _translate(f"storing image {digest[:12]}", self._reachable):
            try:
                stored = int(self._ob.head(self._store, path)["size"]) == size
            except FileNotFoundError:
                stored = False
            if not stored:
                self._put(path, chunks, chunk_size=UPLOAD_CHUNK, max_concurrency=4)
        if self._root is not None:  # as in put_image
            with contextlib.suppress(OSError):
                self.collect_staged(STAGING_GRACE, digest=digest)
        return not stored

    def _unchanged(self, namespace: str, name: str, digest: str) -> Published | None:
        """The latest version, if it holds image ``digest``."""
        versions = self.versions(namespace, name)
        latest = self.ref(namespace, name, versions[-1]) if versions else None
        if latest is None or latest.digest != digest:
            return None
        return Published(**vars(latest), unchanged=True)

    def _assign(
        self, namespace: str, name: str, digest: str, size: int, *, skip_unchanged: bool = False
    ) -> Published:
        """The next version of ``namespace/name`` for image ``digest`` (already stored)."""
        if skip_unchanged and (same := self._unchanged(namespace, name, digest)):
            return same
        body: dict[str, Any] = {
            "digest": digest,
            "size": size,
            "published": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "publisher": socket.gethostname(),
        }
        payload = json.dumps(body, sort_keys=True).encode()
        # every number ever claimed, and refs published before claims existed
        taken = self._listed("versions", namespace, name) + self.versions(namespace, name)
        version = max(taken, default=0) + 1
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        for _ in range(_MAX_RACE):
            with _translate(f"publishing {namespace}/{name}@{version}"):
                try:
                    # the claim is never deleted: once it exists, no one else gets the number
                    self._put(claim_path(namespace, name, version), payload, mode="create")
                    self._put(ref_path(namespace, name, version), payload, mode="create")
                except (AlreadyExistsError, PreconditionError):
                    version += 1  # another publisher took this number
                    continue
            info = Published(
                namespace, name, version, digest, size, body["published"], body["publisher"]
            )
            _feed.published(self, info)  # after the ref: whoever reads the event finds the ref
            return info
        raise StoreError(f"publishing {namespace}/{name}: lost {_MAX_RACE} version races in a row")

    def remove(self, namespace: str, name: str, version: int | None = None) -> list[int]:
        """Delete one version's ref (or every version's); images stay, other refs may share
        them, and the versions' claims stay, so their numbers are never assigned again.
        Return the versions this call removed (one that a removal running alongside removed
        first is its to announce); their removal events are written even if the store fails
        midway."""
        versions = self.versions(namespace, name) if version is None else [version]
        if version is not None:
            self.ref(namespace, name, version)  # ModelNotFound if absent
        if not versions:
            raise ModelNotFound(f"no model {namespace}/{name} in the store {self.url}")
        deleted: list[int] = []
        try:
            with _translate(f"removing {namespace}/{name}"):
                for v in versions:
                    try:
                        self._ob.delete(self._store, ref_path(namespace, name, v))
                    except FileNotFoundError:  # a removal running alongside took it: its own
                        continue
                    deleted.append(v)
        finally:  # what was deleted is announced, even if the store failed midway
            if deleted:
                _feed.removed(self, namespace, name, deleted)
        return deleted

    # -- small objects by key (the change feed, feed.py) ----------------------------------

    def keys(self, prefix: str, after: str | None = None) -> list[str]:
        """The keys under ``prefix`` (``events/``...), sorted; with ``after``, only those that
        sort after it (S3's start-after: one request whatever precedes it)."""
        with _translate(f"listing {prefix}"):
            items = self._ob.list(self._store, prefix=prefix, offset=after).collect()
        if not items:
            self._reachable(f"listing {prefix}")
        return sorted(str(item["path"]) for item in items)

    def get_small(self, path: str, limit: int) -> bytes | None:
        """The object at ``path``; None, unread, if it holds more than ``limit`` bytes: the
        bucket is shared, its objects are not trusted. ModelNotFound if it is absent."""
        with _translate(path, self._reachable):
            result = self._ob.get(self._store, path)
            if int(result.meta["size"]) > limit:
                return None
            raw = bytes(result.bytes())
        return raw if len(raw) <= limit else None

    def create(self, path: str, data: bytes) -> None:
        """Write a new object; StoreError if ``path`` exists (create-only, as version claims)."""
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        with _translate(f"writing {path}"):
            try:
                self._put(path, data, mode="create")
            except (AlreadyExistsError, PreconditionError) as exc:
                raise StoreError(f"{path}: already exists") from exc

    def store_time(self) -> float:
        """The store's own clock, in seconds: a bucket's, the modification time of a small
        object written now and deleted; a ``file://`` store's is its host's (``clock``). gc
        takes its cutoff from it, not from a host whose clock may be ahead of the bucket's."""
        if self._root is not None:
            return self.clock()
        path = f"clock/{secrets.token_hex(8)}"
        self.create(path, b"")
        try:
            with _translate(f"reading {path}"):
                return float(self._ob.head(self._store, path)["last_modified"].timestamp())
        finally:  # its own object: not one of the deletions a caller makes (gc counts those)
            with _translate(f"deleting {path}"), contextlib.suppress(FileNotFoundError):
                self._ob.delete(self._store, path)

    def delete(self, path: str) -> None:
        """Delete one object (absent already: nothing to do)."""
        with _translate(f"deleting {path}"), contextlib.suppress(FileNotFoundError):
            self._ob.delete(self._store, path)
