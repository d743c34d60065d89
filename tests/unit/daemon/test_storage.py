"""L1 segments and L2 files at the tier boundary: modes that do not depend on the umask,
read-only descriptors, adoption that touches only this instance's own private segments, and L2
copies whose size must match exactly."""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import posix_ipc
import pytest

import modelshelf
from modelshelf.errors import ChecksumError
from modelshelfd import storage


@pytest.fixture
def prefix() -> Iterator[str]:
    p = f"mst-tiers-{uuid.uuid4().hex[:8]}"
    yield p
    for entry in storage.SHM_DIR.iterdir():
        if entry.name.startswith(p):
            entry.unlink()


@pytest.fixture(scope="module")
def image() -> bytes:
    return modelshelf.compile_tensors({"w": np.arange(1000, dtype=np.float64)})


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _raw_segment(name: str, data: bytes, mode: int = 0o600) -> None:
    shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600, size=len(data))
    os.fchmod(shm.fd, mode)
    with mmap.mmap(shm.fd, len(data)) as m:
        m[:] = data
    shm.close_fd()


def _fill(data: bytes):
    def fill(view: memoryview) -> None:
        view[:] = data

    return fill


def test_segment_mode_is_0600_whatever_the_umask(prefix: str, image: bytes) -> None:
    digest = _digest(image)
    old = os.umask(0o277)  # would leave 0400 if shm_open's mode were trusted
    try:
        segment = storage.create_segment(
            storage.segment_name(prefix, digest), digest, len(image), _fill(image)
        )
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(os.fstat(segment.fd).st_mode) == 0o600
        assert fcntl.fcntl(segment.fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
        with pytest.raises(PermissionError):
            mmap.mmap(segment.fd, segment.size, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        segment.unlink()
        segment.close()


def test_board_mode_is_0600_whatever_the_umask(prefix: str) -> None:
    old = os.umask(0o277)
    try:
        board = storage.Board(prefix)
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(os.fstat(board.fd).st_mode) == 0o600
        assert fcntl.fcntl(board.fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
    finally:
        board.close(unlink=True)


def test_a_failed_fill_unlinks_its_segment(prefix: str, image: bytes) -> None:
    digest = _digest(image)
    name = storage.segment_name(prefix, digest)
    bad = bytearray(image)
    bad[-1] ^= 1
    with pytest.raises(ChecksumError):
        storage.create_segment(name, digest, len(image), _fill(bytes(bad)))
    assert not (storage.SHM_DIR / name[1:]).exists()


def test_adoption_never_touches_another_instance(prefix: str, image: bytes) -> None:
    """Prefixes "p" and "p-x" are both valid: the daemon of "p" must not take "p-x-..." for
    its own (nor unlink it as invalid)."""
    digest = _digest(image)
    other = f"{prefix}-x"
    _raw_segment(storage.segment_name(other, digest), image)
    other_board = storage.Board(other)
    try:
        adopted, discarded = storage.adopt_segments(prefix, f"/{prefix}-board")
        assert (adopted, discarded) == ([], 0)
        assert (storage.SHM_DIR / f"{other}-{digest[:32]}").exists()
        assert (storage.SHM_DIR / f"{other}-board").exists()
    finally:
        other_board.close(unlink=True)


def test_adoption_skips_segments_others_own_or_may_open(prefix: str, image: bytes) -> None:
    digest = _digest(image)
    name = storage.segment_name(prefix, digest)
    _raw_segment(name, image, mode=0o644)  # valid bytes, but readable by everyone
    adopted, discarded = storage.adopt_segments(prefix, f"/{prefix}-board")
    assert (adopted, discarded) == ([], 1)
    posix_ipc.unlink_shared_memory(name)
    _raw_segment(name, image)
    fd = os.open(storage.SHM_DIR / name[1:], os.O_RDONLY)
    os.fchown(fd, 54321, 54321)  # planted by another user (the tests run as root)
    os.close(fd)
    adopted, discarded = storage.adopt_segments(prefix, f"/{prefix}-board")
    assert (adopted, discarded) == ([], 1)
    os.chown(storage.SHM_DIR / name[1:], os.geteuid(), os.getegid())
    adopted, discarded = storage.adopt_segments(prefix, f"/{prefix}-board")  # now it is ours
    assert [s.digest for s in adopted] == [digest] and discarded == 0
    for s in adopted:
        s.close()


def test_board_of_another_owner_is_replaced(prefix: str) -> None:
    name = f"/{prefix}-board"
    shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600, size=storage.BOARD_SIZE)
    with mmap.mmap(shm.fd, storage.BOARD_SIZE) as m:
        m[:16] = storage.BOARD_MAGIC + (10**9).to_bytes(8, "little")
    os.fchown(shm.fd, 54321, 54321)
    shm.close_fd()
    board = storage.Board(prefix)
    try:
        st = os.fstat(board.fd)
        assert st.st_uid == os.geteuid() and board.generation == 1
    finally:
        board.close(unlink=True)


def test_an_l2_file_longer_than_the_image_is_refused(tmp_path: Path, image: bytes) -> None:
    path = tmp_path / "f"
    path.write_bytes(image + b"\0")  # the verified prefix is intact; the file is not
    out = bytearray(len(image))
    with pytest.raises(ChecksumError, match="bytes, the image has"):
        storage.copy_from(path)(memoryview(out))
    path.write_bytes(image)
    storage.copy_from(path)(memoryview(out))
    assert out == image


def test_cache_dir_is_marked_when_created_or_empty(tmp_path: Path) -> None:
    new = storage.Disk(str(tmp_path / "new"))
    assert new.marker.is_file() and stat.S_IMODE(new.marker.stat().st_mode) == 0o600
    (tmp_path / "empty").mkdir()
    assert storage.Disk(str(tmp_path / "empty")).marker.is_file()


def test_an_earlier_daemons_cache_dir_is_adopted(tmp_path: Path) -> None:
    """A cache_dir from before the marker existed holds only the daemon's own names."""
    root = tmp_path / "cache"
    digest = "ab" * 32
    for d in ("images", "tmp"):
        (root / d).mkdir(parents=True)
    (root / "lock").touch()
    (root / "images" / digest).write_bytes(b"x")
    (root / "tmp" / f"{digest}.123.0123abcd").write_bytes(b"y")
    disk = storage.Disk(str(root))
    assert disk.marker.is_file()
    assert disk.scan() == ({digest: 1}, 1)


@pytest.mark.parametrize(
    "layout", ["notes.txt", "images/holiday.jpg", "tmp/draft", "images/sub/" + "ab" * 32]
)
def test_a_foreign_cache_dir_is_refused_and_left_alone(tmp_path: Path, layout: str) -> None:
    root = tmp_path / "home"
    (root / layout).parent.mkdir(parents=True, exist_ok=True)
    (root / layout).write_text("precious\n")
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    with pytest.raises(storage.ForeignDirectory, match="did not create"):
        storage.Disk(str(root))
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before
    assert (root / layout).read_text() == "precious\n"


def test_scan_deletes_nothing_without_the_marker(tmp_path: Path) -> None:
    disk = storage.Disk(str(tmp_path / "cache"))
    (disk.images / "stray").write_text("x")
    disk.marker.unlink()
    with pytest.raises(storage.ForeignDirectory):
        disk.scan()
    assert (disk.images / "stray").exists()


def test_a_dedicated_filesystem_is_taken_despite_its_lost_and_found(tmp_path: Path) -> None:
    """A disk mounted at cache_dir brings its own lost+found; nothing else may be there."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        (mount / "lost+found").mkdir()
        assert storage.Disk(str(mount)).marker.is_file()
        (tmp_path / "plain" / "lost+found").mkdir(parents=True)  # not a mount point
        with pytest.raises(storage.ForeignDirectory, match="lost"):
            storage.Disk(str(tmp_path / "plain"))
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)
