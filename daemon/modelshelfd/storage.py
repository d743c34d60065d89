"""The tiers' blocking I/O: L1 shared-memory segments, L2 image files and the board.

Everything here that reads or writes image bytes is synchronous and runs in worker threads (the
shelf calls it through ``asyncio.to_thread``). Nothing here keeps state beyond the objects it
returns; the tiers (``tiers.py``) do the accounting. Every image entering a tier from below is
verified here before it is kept.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import mmap
import os
import queue
import re
import secrets
import stat
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import posix_ipc

from modelshelf import board as _board
from modelshelf.errors import ChecksumError
from modelshelf.image import Image
from modelshelf.store import make_private_dirs
from modelshelf.trust import foreign_links

from .saved import CATALOG_RECORD, LEARNED_RECORD, PINS_RECORD

log = logging.getLogger("modelshelfd.storage")

SHM_DIR = Path("/dev/shm")
BOARD_SLOTS = 16384  # per-model change counters on the board: 128 KiB (docs/scaling.md)
_U64 = 0xFFFF_FFFF_FFFF_FFFF


def verify(buffer: object, digest: str) -> None:
    """Structure, CRC-32 and SHA-256 == digest, or an ImageError subclass."""
    image = Image(buffer)
    image.verify()
    del image  # drop the views before the caller unmaps
    actual = hashlib.sha256(memoryview(buffer).cast("B")).hexdigest()  # type: ignore[arg-type]
    if actual != digest:
        raise ChecksumError(f"image sha256 is {actual[:16]}..., its name says {digest[:16]}...")


@dataclass(eq=False)
class Segment:
    """An L1 segment holding one image: a sealed memfd (no name in /dev/shm or anywhere else).
    ``fd`` is read-only: the descriptor the daemon hands to clients. Its seals forbid every
    write, truncation and growth, by anyone (the daemon's own uid included), for its whole
    life; the memory lives until the last holder (lease, client mapping, our fd) lets go.
    ``name`` is a label: it shows in ``/proc/<pid>/maps`` as ``/memfd:<name> (deleted)``."""

    name: str
    digest: str
    fd: int
    size: int

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def map(self) -> mmap.mmap:
        return mmap.mmap(self.fd, self.size, prot=mmap.PROT_READ, flags=mmap.MAP_SHARED)


SEALED = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL


def segment_name(prefix: str, digest: str) -> str:
    return f"{prefix}-{digest[:32]}"


def create_segment(
    name: str, digest: str, size: int, fill: Callable[[memoryview], None]
) -> Segment:
    """Create a memfd labelled ``name``, fill it, verify it, seal it, and return it with a
    read-only descriptor. Nothing is left on failure (a memfd has no name to leak).

    The size is fixed (shrink and grow sealed) before the first byte is written, so nobody can
    truncate it under the fill (a SIGBUS in the daemon); writes are sealed once it is verified,
    so nobody can change it after (``F_SEAL_WRITE`` also forbids writable shared mappings)."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        # Reserve the pages now: out of memory fails here with ENOSPC/ENOMEM (the image is
        # served from the page cache), where writing into a sparse segment would SIGBUS.
        os.posix_fallocate(fd, 0, size)
        os.fchmod(fd, 0o600)  # a memfd is 0777: others could reopen a descriptor they get
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
        fill_verified(fd, size, digest, fill)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALED)  # EBUSY while a writable mapping lives
        ro_fd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(fd)
    return Segment(name, digest, ro_fd, size)


def adopt_segment(name: str, digest: str, fd: int) -> Segment:
    """A segment a previous run left in systemd's descriptor store: it must be a sealed
    memfd (nobody could have changed it since), and its bytes the image ``digest`` names
    (structure, CRC-32, SHA-256). Returns it with a read-only descriptor of its own; ``fd`` is
    the caller's to close. ImageError or OSError otherwise."""
    if not sealed(fd):
        raise ChecksumError("not a sealed segment")
    size = os.fstat(fd).st_size
    if size <= 0:
        raise ChecksumError("an empty segment")
    mapped = mmap.mmap(fd, size, prot=mmap.PROT_READ)  # sealed: it cannot shrink under us
    try:
        with memoryview(mapped) as view:
            verify(view, digest)
    finally:
        _close_map(mapped)
    ro_fd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    return Segment(name, digest, ro_fd, size)


def sealed(fd: int) -> bool:
    """Is ``fd`` a memfd nobody can write, truncate or grow?"""
    try:
        return fcntl.fcntl(fd, fcntl.F_GET_SEALS) & SEALED == SEALED
    except OSError:
        return False


def fill_verified(fd: int, size: int, digest: str, fill: Callable[[memoryview], None]) -> None:
    """Map ``size`` bytes of ``fd`` writable, fill them, verify them (ImageError), unmap.
    ``fd`` must be one nobody else can truncate (a sealed memfd): see ``filled``."""
    _fill_map(mmap.mmap(fd, size), digest, fill)


def filled(size: int, digest: str, fill: Callable[[memoryview], None]) -> mmap.mmap:
    """Anonymous memory of ``size`` bytes, filled and verified; the caller closes it. For
    bytes bound for a file: a file is never mapped, since whoever can truncate it would kill
    the daemon with SIGBUS."""
    mapped = mmap.mmap(-1, size)
    try:
        _fill_map(mapped, digest, fill, close=False)
    except BaseException:
        _close_map(mapped)
        raise
    return mapped


def _fill_map(
    mapped: mmap.mmap, digest: str, fill: Callable[[memoryview], None], *, close: bool = True
) -> None:
    view = memoryview(mapped)
    try:
        fill(view)
        verify(view, digest)
    except BaseException as exc:
        # the failed frames' locals (an Image, a cast view) would keep the memory mapped for
        # as long as anyone keeps the exception: let go of them now
        traceback.clear_frames(exc.__traceback__)
        raise
    finally:
        view.release()
        if close:
            _close_map(mapped)


def owned_privately(fd: int) -> bool:
    """Is the object behind ``fd`` ours (our euid) and closed to everyone else (no group or
    other bits)? A segment anybody else created or may write is never adopted or served."""
    st = os.fstat(fd)
    return st.st_uid == os.geteuid() and st.st_mode & 0o077 == 0 and stat.S_ISREG(st.st_mode)


def _close_map(mapped: mmap.mmap) -> None:
    # a view may have escaped (in an exception's traceback); the GC unmaps it later then
    with contextlib.suppress(BufferError):
        mapped.close()


def copy_from(path: Path) -> Callable[[memoryview], None]:
    """A ``fill`` that copies an L2 file into a segment."""

    def fill(view: memoryview) -> None:
        with open(path, "rb", buffering=0) as fh:
            actual = os.fstat(fh.fileno()).st_size
            if actual != len(view):  # a longer file would pass on its verified prefix
                raise ChecksumError(f"{path}: {actual} bytes, the image has {len(view)}")
            pos = 0
            while pos < len(view):
                n = fh.readinto(view[pos:])
                if not n:
                    raise ChecksumError(f"{path}: shorter than the {len(view)} bytes expected")
                pos += n

    return fill


def remove_legacy_segments(prefix: str) -> int:
    """Unlink what versions before sealed segments left in /dev/shm for this instance: names of
    exactly this instance's form (``<prefix>-<32 hex>``, ``<prefix>-board``), owned by us and
    closed to everyone else (so created by a daemon of ours). Returns how many."""
    if not SHM_DIR.is_dir():
        return 0
    pattern = re.compile(re.escape(prefix) + r"-(?:[0-9a-f]{32}|board)")
    removed = 0
    for entry in sorted(SHM_DIR.iterdir()):
        if pattern.fullmatch(entry.name) is None:
            continue
        try:  # never opened unless it is a file of ours: a FIFO planted under this name by
            st = entry.lstat()  # another user would block the open, and the daemon's start
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
            continue  # not ours (/dev/shm is sticky: nobody else can swap one of ours)
        try:
            shm = posix_ipc.SharedMemory(f"/{entry.name}", read_only=True)
        except (posix_ipc.ExistentialError, posix_ipc.PermissionsError):
            continue
        try:
            if not owned_privately(shm.fd):
                continue
        finally:
            shm.close_fd()
        with contextlib.suppress(posix_ipc.ExistentialError):
            posix_ipc.unlink_shared_memory(f"/{entry.name}")
            removed += 1
    return removed


class Board:
    """The memory clients map read-only (docs/protocol.md, "The board"; ``modelshelf.board``
    has the layout): page 0 holds the generation (bytes 8..15, moves on every catalog change:
    what clients without per-model counters read), the pressure counter (16..23) and the
    epoch (32..39, moves on changes that concern every model); a table of ``slots`` per-model
    change counters follows it.

    A memfd whose size is sealed, so nobody can truncate it under a reader (SIGBUS). The
    daemon's uid could still reopen it writable and scribble on it, so every reader takes any
    value as it is: the counters are compared for change only, and wrap. The generation and
    the epoch start at random values, so clients of a previous run notice the restart."""

    def __init__(self, prefix: str, slots: int = BOARD_SLOTS) -> None:
        if not 0 < slots <= _board.MAX_SLOTS or slots & (slots - 1):
            raise ValueError(f"board slots must be a power of two up to 2^20, got {slots}")
        self.slots = slots
        self.size = _board.table_size(slots)
        fd = os.memfd_create(f"{prefix}-board", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.posix_fallocate(fd, 0, self.size)
            os.fchmod(fd, 0o600)  # a memfd is 0777: clients of other uids must not reopen it
            seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
            self._map = mmap.mmap(fd, self.size)
            self.fd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            os.close(fd)
        self.generation = secrets.randbits(63)
        self.epoch = secrets.randbits(63)
        self.pressure = 0
        self._map[: len(_board.MAGIC)] = _board.MAGIC
        self._map[24:32] = _board.NOTICES_MAGIC
        _board.GEOMETRY.pack_into(self._map, _board.GEOMETRY_AT, slots, _board.HEADER_SIZE)
        self._write()

    def _write(self) -> None:
        counter = _board.COUNTER.pack_into
        counter(self._map, _board.EPOCH_AT, self.epoch)
        counter(self._map, _board.PRESSURE_AT, self.pressure)
        counter(self._map, _board.GENERATION_AT, self.generation)

    def offset(self, name: str) -> int:
        """The byte offset of the counter of the model ``name`` (``ns/name``)."""
        index = _board.slot_hash(name) & (self.slots - 1)
        return _board.HEADER_SIZE + index * _board.COUNTER.size

    def notice(self, name: str) -> int:
        """The change counter of the model ``name`` (shared with the names in its slot)."""
        return int(_board.COUNTER.unpack_from(self._map, self.offset(name))[0])

    def bump(self, names: Iterable[str] | None = None) -> int:
        """The catalog changed: for the models ``names`` (``ns/name``: their counters move),
        or for every model (None: the epoch moves; so it does for more names than slots,
        which would touch most slots anyway). The generation moves either way, nothing at
        all for no name. Returns the generation."""
        changed = None if names is None else set(names)
        if changed is not None and not changed:
            return self.generation
        if changed is None or len(changed) > self.slots:
            self.epoch = (self.epoch + 1) & _U64
        else:
            for offset in {self.offset(name) for name in changed}:
                value = _board.COUNTER.unpack_from(self._map, offset)[0]
                _board.COUNTER.pack_into(self._map, offset, (value + 1) & _U64)
        self.generation = (self.generation + 1) & _U64
        self._write()
        return self.generation

    def raise_pressure(self) -> int:
        """Tell clients to trim the idle models they hold (they compare the counter with the
        value they saw last, at their next call)."""
        self.pressure = (self.pressure + 1) & _U64
        self._write()
        return self.pressure

    def close(self) -> None:
        self._map.close()
        os.close(self.fd)


class Reaper:
    """Closes descriptors and deletes files in a thread of its own. The last close of a
    segment frees its pages, and deleting a large file frees its blocks: milliseconds that the
    event loop must not spend (every request waits behind them). Callers treat the resource as
    gone at once; ``drain`` waits for what is queued (at shutdown)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def close(self, fd: int) -> None:
        self._put(lambda: os.close(fd))

    def delete(self, path: Path) -> None:
        self._put(lambda: path.unlink(missing_ok=True))

    def _put(self, job: Callable[[], object]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="reaper", daemon=True)
                self._thread.start()
        self._queue.put(job)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                job()
            except OSError as exc:  # nothing to retry: the resource is gone either way
                log.warning("reaper: %s", exc)

    def drain(self, timeout: float = 10.0) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)


class ForeignDirectory(OSError):
    """``cache_dir`` holds files the daemon did not create: it is not ours to clean."""


class WriteAborted(Exception):
    """An L2 write stopped because the daemon stops or the image was evicted from L2 while
    it was written (its temp file removed)."""


CACHE_MARKER = ".modelshelfd-cache"
WRITE_CHUNK = 16 << 20  # bytes per write(2) of an L2 file: how soon an aborted write stops
STORE_RECORD = "store"  # in cache_dir: the store URL this cache was filled from (server.py)
_LOCK_NAME = "lock"  # the server's lock file (in a marked directory since the marker exists)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TMP_NAME = re.compile(r"[0-9a-f]{64}\.(\d+\.[0-9a-f]{8}|[0-9a-f]{8}\.evicted)")


def _remove_stray(path: Path) -> int:
    """Remove a file the daemon left (1); a directory is never the daemon's: left alone, said
    once (0). A directory there stopped the start with a bare IsADirectoryError."""
    if path.is_dir() and not path.is_symlink():
        log.warning("%s is a directory the daemon did not make: left alone (remove it)", path)
        return 0
    path.unlink(missing_ok=True)
    return 1


def _unsafe_way(directory: Path) -> str:
    """Why ``directory`` or one above it lets another user replace what is below ("" if none
    does): each must be root's or the daemon's, and writable by others only if sticky
    (/tmp: then only the entry's owner may rename it, and that one is checked as ours)."""
    me = os.geteuid()
    for probe in (directory, *directory.parents):
        st = probe.stat()
        if st.st_uid not in (0, me):
            return f"{probe} belongs to uid {st.st_uid}"
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            return f"{probe} is writable by others (mode {stat.S_IMODE(st.st_mode):o})"
    return ""


class Disk:
    """L2: ``cache_dir/images/<digest>`` files, written to ``cache_dir/tmp`` then renamed.

    Files are not fsynced: L2 is a cache, a file is renamed into place only once complete, and
    a file a previous run left is verified (length, structure, SHA-256) before it is served or
    promoted, so one damaged by a power loss is discarded and fetched again.

    The daemon deletes files in ``cache_dir`` (strays, evicted copies), so it only ever uses a
    directory it marked as its own (``CACHE_MARKER``): one it created, found empty, or found
    holding nothing but an earlier daemon's layout. Any other directory is refused
    (``ForeignDirectory``), and nothing in it is touched."""

    def __init__(self, cache_dir: str) -> None:
        self.root = Path(cache_dir)
        self.images = self.root / "images"
        self.tmp = self.root / "tmp"
        self.marker = self.root / CACHE_MARKER
        make_private_dirs(self.root)  # whatever the umask
        self._check_private()
        if not self.marker.is_file():
            self._claim()
        for d in (self.images, self.tmp):
            d.mkdir(mode=0o700, exist_ok=True)

    def _check_private(self) -> None:
        """``cache_dir`` must be the daemon's and writable by it alone: anyone else who can
        write there could plant links that make the daemon delete or overwrite files outside
        it (it deletes strays in tmp/ at start), or swap the images it serves from the page
        cache. Refused, untouched, otherwise."""
        unsafe = foreign_links(str(self.root))
        if unsafe:
            raise ForeignDirectory(
                f"cache_dir {self.root}: {unsafe}, so another user could swap the directory "
                "for one of theirs (and their files would be served as models): give it a path "
                "through directories of root's or the daemon's own (nothing here was changed)"
            )
        unsafe = _unsafe_way(self.root.resolve().parent)
        if unsafe:  # a container's volume may be so (a Kubernetes emptyDir is 0777)
            log.warning(
                "cache_dir %s: %s, so another user who can reach it could rename the cache "
                "away and plant another; fine for a volume nobody else mounts (a pod's "
                "emptyDir), else give cache_dir a path through directories of root's or the "
                "daemon's own", self.root, unsafe,
            )  # fmt: skip
        st = os.stat(self.root)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise ForeignDirectory(
                f"cache_dir {self.root} is owned by uid {st.st_uid} with mode "
                f"{stat.S_IMODE(st.st_mode):o}; it must belong to the daemon's uid "
                f"({os.geteuid()}) and be writable by it alone, or another user could make the "
                "daemon delete or overwrite files, or serve their bytes as a model: create it "
                "as the daemon's user (mkdir -m 700), or point cache_dir elsewhere (nothing "
                "here was changed)"
            )
        own = (
            "images", "tmp", _LOCK_NAME, STORE_RECORD, CATALOG_RECORD, PINS_RECORD,
            LEARNED_RECORD, CACHE_MARKER,
        )  # fmt: skip
        for name in own:
            path = self.root / name
            if path.is_symlink():
                raise ForeignDirectory(
                    f"cache_dir {self.root} holds a symbolic link {name} -> "
                    f"{os.readlink(path)}; the daemon makes these itself and never follows "
                    "links there: remove it (nothing here was changed)"
                )

    def _claim(self) -> None:
        """Mark ``root`` as ours if nothing in it can be anyone else's; else refuse."""
        foreign = [p.name for p in self.root.iterdir() if not self._ours(p)]
        if foreign:
            shown = ", ".join(sorted(foreign)[:5]) + (", ..." if len(foreign) > 5 else "")
            raise ForeignDirectory(
                f"cache_dir {self.root} holds files modelshelfd did not create ({shown}) and "
                f"no {CACHE_MARKER} marker; the daemon deletes files in its cache directory, so "
                "it will not use this one: point cache_dir at a new or empty directory (nothing "
                "here was changed)"
            )
        try:
            fd = os.open(self.marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return  # a daemon starting at the same time marked it (its lock decides who runs)
        try:
            os.write(fd, b"modelshelfd owns this directory and deletes files in it\n")
        finally:
            os.close(fd)
        log.info("cache_dir %s marked as the daemon's (%s)", self.root, CACHE_MARKER)

    def _ours(self, path: Path) -> bool:
        """The lock file, or an earlier daemon's images/ and tmp/ holding only its names (or
        the lost+found of a filesystem mounted there: the daemon never deletes at the top)."""
        if path.name == _LOCK_NAME and path.is_file() and not path.is_symlink():
            return True
        if path.name == "lost+found" and os.path.ismount(self.root):
            return True
        pattern = {"images": _HEX64, "tmp": _TMP_NAME}.get(path.name)
        if pattern is None or path.is_symlink() or not path.is_dir():
            return False
        return all(pattern.fullmatch(f.name) and f.is_file() for f in path.iterdir())

    def path(self, digest: str) -> Path:
        return self.images / digest

    def scan(self) -> tuple[dict[str, int], int]:
        """Files a previous run left: {digest: size}; temp files and strays are deleted.
        Contents are verified when a file is promoted to L1, before anyone sees it."""
        if not self.marker.is_file():  # never delete in a directory that is not marked ours
            raise ForeignDirectory(f"cache_dir {self.root} lost its {CACHE_MARKER} marker")
        removed = 0
        for stray in self.tmp.iterdir():
            removed += _remove_stray(stray)
        found: dict[str, int] = {}
        for f in self.images.iterdir():
            if len(f.name) == 64 and all(c in "0123456789abcdef" for c in f.name) and f.is_file():
                found[f.name] = f.stat().st_size
            else:
                removed += _remove_stray(f)
        return found, removed

    def write(self, digest: str, data: memoryview, abort: threading.Event | None = None) -> None:
        """Write verified bytes atomically: temp file, rename. On failure (ENOSPC, EFBIG, ...)
        no temp file is left and the error propagates; once ``abort`` is set (the daemon
        stops), the write stops at its next chunk the same way (``WriteAborted``)."""

        def copy(fd: int) -> None:
            pos = 0
            while pos < len(data):
                if abort is not None and abort.is_set():
                    raise WriteAborted(f"L2 write of {digest[:12]} stopped at {pos} bytes")
                pos += os.write(fd, data[pos : pos + WRITE_CHUNK])

        self._atomically(digest, copy)

    def create(self, digest: str, size: int, fill: Callable[[memoryview], None]) -> None:
        """Fill ``size`` bytes (the store writes into anonymous memory), verify them, and write
        them to a new file renamed into place; nothing is left behind on failure."""
        mapped = filled(size, digest, fill)
        try:
            with memoryview(mapped) as view:
                self.write(digest, view)
        finally:
            _close_map(mapped)

    def _atomically(self, digest: str, write: Callable[[int], None]) -> None:
        tmp = self.tmp / f"{digest}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                write(fd)
            finally:
                os.close(fd)
            os.rename(tmp, self.path(digest))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def open(self, digest: str) -> int:
        """A read-only descriptor of the image file (the one clients map)."""
        return os.open(self.path(digest), os.O_RDONLY | os.O_CLOEXEC)

    def verify(self, digest: str, size: int) -> None:
        """Check a file a previous run left (length, structure, checksums) before serving it.
        It is read (never mapped: a truncation under a mapping would be a SIGBUS)."""
        _close_map(filled(size, digest, copy_from(self.path(digest))))

    def remove(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def retire(self, digest: str, reaper: Reaper) -> None:
        """Take the file out of ``images/`` at once (a rename: no blocks freed yet) and let
        the reaper delete it; a crash in between leaves it in ``tmp/``, cleared at start."""
        doomed = self.tmp / f"{digest}.{secrets.token_hex(4)}.evicted"
        try:
            os.rename(self.path(digest), doomed)
        except FileNotFoundError:
            return
        reaper.delete(doomed)


DISK_FULL = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
