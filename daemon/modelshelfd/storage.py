"""The tiers' blocking I/O: L1 shared-memory segments, L2 image files and the board.

Everything here that reads or writes image bytes is synchronous and runs in worker threads (the
shelf calls it through ``asyncio.to_thread``). Nothing here keeps state beyond the objects it
returns; the tiers (``tiers.py``) do the accounting. Every image entering a tier from below is
verified here before it is kept.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import mmap
import os
import queue
import re
import secrets
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import posix_ipc

from modelshelf import wire as _wire
from modelshelf.errors import ChecksumError
from modelshelf.image import HEADER_SIZE, Image

log = logging.getLogger("modelshelfd.storage")

SHM_DIR = Path("/dev/shm")
BOARD_SIZE, BOARD_MAGIC, BOARD_COUNTERS = _wire.BOARD_SIZE, _wire.BOARD_MAGIC, _wire.BOARD_COUNTERS
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
    """An L1 shared-memory segment holding one image. ``fd`` is read-only: the descriptor the
    daemon hands to clients. ``linked`` is False once the name is unlinked (evicted); the
    memory then lives until the last holder (lease, client mapping, our fd) lets go."""

    name: str
    digest: str
    fd: int
    size: int
    linked: bool = True
    leases: int = 0

    def unlink(self) -> None:
        if self.linked:
            self.linked = False
            with contextlib.suppress(posix_ipc.ExistentialError):
                posix_ipc.unlink_shared_memory(self.name)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def map(self) -> mmap.mmap:
        return mmap.mmap(self.fd, self.size, prot=mmap.PROT_READ, flags=mmap.MAP_SHARED)


def segment_name(prefix: str, digest: str) -> str:
    return f"/{prefix}-{digest[:32]}"


def create_segment(
    name: str, digest: str, size: int, fill: Callable[[memoryview], None]
) -> Segment:
    """Create segment ``name`` (mode 0600 whatever the umask, exclusively), fill it, verify
    it, and return it with a read-only descriptor. On any failure the segment is unlinked."""
    try:
        shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600, size=size)
    except posix_ipc.ExistentialError:
        # a stale segment by this name (a crashed fill); it was never adopted, so replace it
        posix_ipc.unlink_shared_memory(name)
        shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600, size=size)
    ro_fd = -1
    try:
        os.fchmod(shm.fd, 0o600)  # shm_open applies the umask; the mode must not depend on it
        # Reserve the pages now: on a full /dev/shm this fails with ENOSPC (answered "busy"),
        # where writing into a sparse segment would kill the daemon with SIGBUS.
        if size:
            os.posix_fallocate(shm.fd, 0, size)
        # the read-only descriptor is taken now, while the name is surely ours, and checked to
        # be the same object: never reopened by name after the fill
        ro_fd = posix_ipc.SharedMemory(name, read_only=True).fd
        _same_file(shm.fd, ro_fd, name)
        fill_verified(shm.fd, size, digest, fill)
        shm.close_fd()
        segment = Segment(name, digest, ro_fd, size)
        ro_fd = -1
        return segment
    except BaseException:
        with contextlib.suppress(posix_ipc.ExistentialError):
            if _still_ours(name, ro_fd if ro_fd >= 0 else shm.fd):
                posix_ipc.unlink_shared_memory(name)
        if shm.fd >= 0:
            shm.close_fd()
        if ro_fd >= 0:
            os.close(ro_fd)
        raise


def fill_verified(fd: int, size: int, digest: str, fill: Callable[[memoryview], None]) -> None:
    """Map ``size`` bytes of ``fd`` writable, fill them, verify them (ImageError), unmap."""
    mapped = mmap.mmap(fd, size)
    view = memoryview(mapped)
    try:
        fill(view)
        verify(view, digest)
    finally:
        view.release()
        _close_map(mapped)


def _same_file(a: int, b: int, name: str) -> None:
    sa, sb = os.fstat(a), os.fstat(b)
    if (sa.st_dev, sa.st_ino) != (sb.st_dev, sb.st_ino):
        raise OSError(errno.EEXIST, f"segment {name} was replaced while being created")


def _still_ours(name: str, fd: int) -> bool:
    """Does ``name`` still name the object behind ``fd``? (Unlink only our own segment.)"""
    if fd < 0:
        return True
    try:
        other = posix_ipc.SharedMemory(name, read_only=True)
    except (posix_ipc.ExistentialError, posix_ipc.PermissionsError):
        return False
    try:
        mine, theirs = os.fstat(fd), os.fstat(other.fd)
        return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)
    finally:
        other.close_fd()


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


def adopt_segments(prefix: str, board: str) -> tuple[list[Segment], int]:
    """Verify the segments a previous run of this instance left; unlink invalid ones.
    Returns (adopted segments, number discarded).

    Only names of exactly this instance's form (``<prefix>-<32 hex>``) are considered: a
    daemon whose prefix is ``<prefix>-x`` is another instance, and its segments and board are
    never touched. A segment not owned by us or open to others is left alone, never served.
    """
    adopted: list[Segment] = []
    discarded = 0
    if not SHM_DIR.is_dir():
        return adopted, discarded
    pattern = re.compile(re.escape(prefix) + r"-([0-9a-f]{32})")
    for entry in sorted(SHM_DIR.iterdir()):
        match = pattern.fullmatch(entry.name)
        if match is None or f"/{entry.name}" == board:
            continue
        name = f"/{entry.name}"
        stub = match[1]
        try:
            shm = posix_ipc.SharedMemory(name, read_only=True)
        except (posix_ipc.ExistentialError, posix_ipc.PermissionsError):
            continue
        if not owned_privately(shm.fd):
            shm.close_fd()
            discarded += 1
            continue
        size = os.fstat(shm.fd).st_size
        try:
            if size < HEADER_SIZE:
                raise ChecksumError("shorter than an image header")
            mapped = mmap.mmap(shm.fd, size, prot=mmap.PROT_READ)
            try:
                image = Image(mapped)
                image.verify()
                del image
                digest = hashlib.sha256(mapped).hexdigest()
            finally:
                _close_map(mapped)
            if not digest.startswith(stub):
                raise ChecksumError("contents do not match the name")
        except Exception:
            shm.close_fd()
            discarded += 1
            with contextlib.suppress(posix_ipc.ExistentialError):
                posix_ipc.unlink_shared_memory(name)
            continue
        adopted.append(Segment(name, digest, shm.fd, size))
    return adopted, discarded


class Board:
    """The 4096-byte page clients map read-only (docs/protocol.md, "The board"): the catalog
    generation at bytes 8..15, the pressure counter at bytes 16..23."""

    def __init__(self, prefix: str) -> None:
        self.name = f"/{prefix}-board"
        try:  # a previous run's board: keep counting, so its clients notice the restart
            shm = posix_ipc.SharedMemory(self.name)
            if os.fstat(shm.fd).st_size != BOARD_SIZE or not owned_privately(shm.fd):
                shm.close_fd()
                raise ValueError("wrong size, owner or mode")
        except (posix_ipc.ExistentialError, ValueError):
            with contextlib.suppress(posix_ipc.ExistentialError):
                posix_ipc.unlink_shared_memory(self.name)
            shm = posix_ipc.SharedMemory(self.name, posix_ipc.O_CREX, mode=0o600, size=BOARD_SIZE)
            os.fchmod(shm.fd, 0o600)  # independent of the umask
        self._map = mmap.mmap(shm.fd, BOARD_SIZE)
        shm.close_fd()
        self.generation = self.pressure = 0
        if self._map[: len(BOARD_MAGIC)] == BOARD_MAGIC:
            self.generation, self.pressure = BOARD_COUNTERS.unpack_from(self._map, len(BOARD_MAGIC))
        self._map[: len(BOARD_MAGIC)] = BOARD_MAGIC
        self.fd = posix_ipc.SharedMemory(self.name, read_only=True).fd
        self.bump()

    def _write(self) -> None:
        BOARD_COUNTERS.pack_into(self._map, len(BOARD_MAGIC), self.generation, self.pressure)

    def bump(self) -> int:
        # wraps instead of overflowing: any value a previous run left must not crash us
        self.generation = (self.generation + 1) & _U64
        self._write()
        return self.generation

    def raise_pressure(self) -> int:
        """Tell clients to trim the idle models they hold (they compare the counter with the
        value they saw last, at their next call)."""
        self.pressure = (self.pressure + 1) & _U64
        self._write()
        return self.pressure

    def close(self, *, unlink: bool) -> None:
        if unlink:
            with contextlib.suppress(posix_ipc.ExistentialError):
                posix_ipc.unlink_shared_memory(self.name)
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


CACHE_MARKER = ".modelshelfd-cache"
_LOCK_NAME = "lock"  # the server's lock file (in a marked directory since the marker exists)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TMP_NAME = re.compile(r"[0-9a-f]{64}\.(\d+\.[0-9a-f]{8}|[0-9a-f]{8}\.evicted)")


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
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.marker.is_file():
            self._claim()
        for d in (self.images, self.tmp):
            d.mkdir(mode=0o700, exist_ok=True)

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
            stray.unlink(missing_ok=True)
            removed += 1
        found: dict[str, int] = {}
        for f in self.images.iterdir():
            if len(f.name) == 64 and all(c in "0123456789abcdef" for c in f.name) and f.is_file():
                found[f.name] = f.stat().st_size
            else:
                f.unlink(missing_ok=True)
                removed += 1
        return found, removed

    def write(self, digest: str, data: memoryview) -> None:
        """Write verified bytes atomically: temp file, fsync, rename, fsync the directory. On
        failure (ENOSPC, EFBIG, ...) no temp file is left and the error propagates."""

        def copy(fd: int) -> None:
            pos = 0
            while pos < len(data):
                pos += os.write(fd, data[pos : pos + (16 << 20)])

        self._atomically(digest, copy)

    def create(self, digest: str, size: int, fill: Callable[[memoryview], None]) -> None:
        """Fill a new file of ``size`` bytes through a mapping (the store writes straight into
        it), verify it, and rename it into place; nothing is left behind on failure."""

        def fill_and_verify(fd: int) -> None:
            if size:
                os.posix_fallocate(fd, 0, size)  # ENOSPC now, never SIGBUS while filling
            fill_verified(fd, size, digest, fill)

        self._atomically(digest, fill_and_verify)

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
        """Check a file a previous run left (length, structure, checksums) before serving it."""
        fd = self.open(digest)
        try:
            actual = os.fstat(fd).st_size
            if actual != size:
                raise ChecksumError(f"{self.path(digest)}: {actual} bytes, the image has {size}")
            mapped = mmap.mmap(fd, size, prot=mmap.PROT_READ)
            try:
                verify(mapped, digest)
            finally:
                _close_map(mapped)
        finally:
            os.close(fd)

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
