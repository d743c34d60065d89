"""L1 segments and L2 files at the tier boundary: sealed segments nobody can change, modes that
do not depend on the umask, read-only descriptors, removal of legacy segments that touches only
this instance's own private ones, and L2 copies that are read (never mapped) and whose size must
match exactly."""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import stat
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import posix_ipc
import pytest

import modelshelf
from modelshelf.board import BoardView
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


def _segment(prefix: str, image: bytes) -> storage.Segment:
    digest = _digest(image)
    return storage.create_segment(
        storage.segment_name(prefix, digest), digest, len(image), _fill(image)
    )


def test_segment_is_private_read_only_and_sealed(prefix: str, image: bytes) -> None:
    """Nobody, the daemon's own uid included, can change a verified segment: reopened
    read-write through /proc, it refuses writes, truncation, growth and writable mappings."""
    old = os.umask(0o022)  # a memfd starts 0777: the mode must not depend on the umask
    try:
        segment = _segment(prefix, image)
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(os.fstat(segment.fd).st_mode) == 0o600
        assert fcntl.fcntl(segment.fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
        assert storage.sealed(segment.fd)
        with pytest.raises(PermissionError):
            mmap.mmap(segment.fd, segment.size, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        rw = os.open(f"/proc/self/fd/{segment.fd}", os.O_RDWR)
        try:
            for change in (
                lambda: os.pwrite(rw, b"x", 100),
                lambda: os.ftruncate(rw, 10),
                lambda: os.ftruncate(rw, segment.size + 4096),
                lambda: mmap.mmap(rw, segment.size),
                lambda: fcntl.fcntl(rw, fcntl.F_ADD_SEALS, 0),  # the seals are sealed too
            ):
                with pytest.raises(PermissionError):
                    change()
        finally:
            os.close(rw)
        with segment.map() as m:
            assert bytes(m) == image
    finally:
        segment.close()


def test_segments_have_no_name_to_leak(prefix: str, image: bytes) -> None:
    segment = _segment(prefix, image)
    try:
        assert not [p for p in storage.SHM_DIR.iterdir() if p.name.startswith(prefix)]
        assert os.readlink(f"/proc/self/fd/{segment.fd}").startswith(f"/memfd:{prefix}-")
    finally:
        segment.close()


def test_board_is_private_read_only_and_cannot_be_truncated(prefix: str) -> None:
    old = os.umask(0o022)
    try:
        board = storage.Board(prefix)
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(os.fstat(board.fd).st_mode) == 0o600
        assert fcntl.fcntl(board.fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
        rw = os.open(f"/proc/self/fd/{board.fd}", os.O_RDWR)
        try:
            with pytest.raises(PermissionError):
                os.ftruncate(rw, 0)  # a reader's SIGBUS
            os.pwrite(rw, b"\xff" * 16, 8)  # the counters can be scribbled on: any value wraps
        finally:
            os.close(rw)
        board.generation = board.pressure = board.epoch = 2**64 - 1
        assert (board.bump(), board.raise_pressure(), board.epoch) == (0, 0, 0)
        offset = board.offset("ns/x")
        rw = os.open(f"/proc/self/fd/{board.fd}", os.O_RDWR)
        try:
            os.pwrite(rw, b"\xff" * 8, offset)
        finally:
            os.close(rw)
        board.bump(["ns/x"])
        assert board.notice("ns/x") == 0
    finally:
        board.close()


def test_boards_start_at_unrelated_generations(prefix: str) -> None:
    """Clients of a previous run compare generations for change: a new board never repeats."""
    boards = [storage.Board(prefix) for _ in range(3)]
    try:
        assert len({b.generation for b in boards}) == 3
        assert len({b.epoch for b in boards}) == 3
    finally:
        for b in boards:
            b.close()


def test_the_daemon_and_the_client_read_the_same_slot(prefix: str) -> None:
    """The daemon bumps the counter of the model that changed; the client, reading the board
    it is handed, sees that model's stamp move and no other's (issue 14, point 2)."""
    board = storage.Board(prefix, slots=1024)
    try:
        view = BoardView(board.fd)
        assert (view.slots, view.table) == (1024, 4096)
        assert os.fstat(board.fd).st_size == board.size == 4096 + 8 * 1024
        names = [f"ns/m{i}" for i in range(200)]
        assert all(8 * view.slot(n) == board.offset(n) for n in names)
        x, y = "ns/x", "ns/y"
        assert view.slot(x) != view.slot(y)
        before = {n: view.stamp(view.slot(n)) for n in (x, y)}
        generation = view.generation()
        assert board.bump([x]) == view.generation() != generation  # older clients re-check
        assert board.notice(x) == 1 and board.notice(y) == 0
        assert view.stamp(view.slot(x)) != before[x] and view.stamp(view.slot(y)) == before[y]
        board.bump([])  # nothing changed: nothing moves
        assert view.generation() == board.generation and view.stamp(view.slot(y)) == before[y]
        board.bump()  # every model: the epoch moves
        assert view.stamp(view.slot(y)) != before[y]
        epoch = board.epoch
        board.bump(names + [f"ns/n{i}" for i in range(1024)])  # more names than slots
        assert board.epoch == epoch + 1 and board.notice(x) == 1
        board.raise_pressure()
        assert view.pressure() == 1
    finally:
        board.close()


def test_an_older_client_reads_page_zero_as_it_always_did(prefix: str) -> None:
    """A client without notices maps 4096 bytes, checks the magic and reads the generation at
    bytes 8..15: it moves on every change, one model's included, so it never serves stale."""
    board = storage.Board(prefix)
    try:
        page = mmap.mmap(board.fd, 4096, prot=mmap.PROT_READ)
        assert page[:8] == b"MSBOARD1"
        before = int.from_bytes(page[8:16], "little")
        board.bump(["ns/x"])
        assert int.from_bytes(page[8:16], "little") == (before + 1) % 2**64
        page.close()
    finally:
        board.close()


@pytest.mark.parametrize("slots", [0, 3, 2**21])
def test_board_slots_are_a_bounded_power_of_two(prefix: str, slots: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        storage.Board(prefix, slots=slots)


def test_a_failed_fill_leaves_nothing(prefix: str, image: bytes) -> None:
    digest = _digest(image)
    name = storage.segment_name(prefix, digest)
    bad = bytearray(image)
    bad[-1] ^= 1
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(ChecksumError):
        storage.create_segment(name, digest, len(image), _fill(bytes(bad)))
    assert set(os.listdir("/proc/self/fd")) <= before


def test_legacy_segments_of_this_instance_only_are_removed(prefix: str, image: bytes) -> None:
    """What versions before sealed segments left in /dev/shm is removed at start, but only
    this instance's names ("p" never takes "p-x-..."), owned by us and closed to others."""
    digest = _digest(image)
    ours = [storage.segment_name(prefix, digest), f"{prefix}-board"]
    others = [storage.segment_name(f"{prefix}-x", digest), f"{prefix}-x-board"]
    open_to_all = storage.segment_name(prefix, _digest(image + b"1"))
    planted = storage.segment_name(prefix, _digest(image + b"2"))
    for name in [*ours, *others]:
        _raw_segment(f"/{name}", image)
    _raw_segment(f"/{open_to_all}", image, mode=0o644)
    _raw_segment(f"/{planted}", image)
    os.chown(storage.SHM_DIR / planted, 54321, 54321)  # another user's (the tests run as root)
    assert storage.remove_legacy_segments(prefix) == 2
    left = {p.name for p in storage.SHM_DIR.iterdir() if p.name.startswith(prefix)}
    assert left == {*others, open_to_all, planted}


def test_verifying_an_l2_file_truncated_meanwhile_never_kills_the_daemon(tmp_path: Path) -> None:
    """The file is read, never mapped: a truncation (by the daemon's uid or root) while it is
    verified is a ChecksumError, not a SIGBUS. Run in a child process, which SIGBUS would kill."""
    script = textwrap.dedent(
        """
        import hashlib, os, sys, threading
        import numpy as np
        import modelshelf
        from modelshelf.errors import ImageError
        from modelshelfd.storage import Disk
        data = modelshelf.compile_tensors({"w": np.ones(4 << 20)})
        digest = hashlib.sha256(data).hexdigest()
        disk = Disk(sys.argv[1])
        disk.write(digest, memoryview(data))
        stop = False
        def truncate():
            while not stop:
                with open(disk.path(digest), "r+b") as fh:
                    fh.truncate(4096)
                    fh.seek(0)
                    fh.write(data)
        t = threading.Thread(target=truncate)
        t.start()
        failed = 0
        for _ in range(40):
            try:
                disk.verify(digest, len(data))
            except ImageError:
                failed += 1
        stop = True
        t.join()
        print(failed)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert int(done.stdout) > 0  # the truncations did land while verifying


def test_an_l2_file_longer_than_the_image_is_refused(tmp_path: Path, image: bytes) -> None:
    path = tmp_path / "f"
    path.write_bytes(image + b"\0")  # the verified prefix is intact; the file is not
    out = bytearray(len(image))
    with pytest.raises(ChecksumError, match="bytes, the image has"):
        storage.copy_from(path)(memoryview(out))
    path.write_bytes(image)
    storage.copy_from(path)(memoryview(out))
    assert out == image


def test_a_fifo_planted_under_this_instances_name_never_blocks_the_start(prefix: str) -> None:
    """Any local user may create <prefix>-board in /dev/shm (the prefix follows from the
    daemon's uid and socket path): as a FIFO, the legacy cleanup's open blocked for ever and
    the daemon never started (SIGTERM did not stop it). Only files of ours are opened now."""
    fifo = storage.SHM_DIR / f"{prefix}-board"
    os.mkfifo(fifo, 0o600)
    try:
        script = (
            f"from modelshelfd import storage; print(storage.remove_legacy_segments({prefix!r}))"
        )
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
        )
        assert out.stdout.strip() == "0" and stat.S_ISFIFO(fifo.lstat().st_mode)
    finally:
        fifo.unlink()


@pytest.mark.parametrize("owner", ["another user", "group-writable", "world-writable"])
def test_a_cache_dir_others_can_write_is_refused_and_left_alone(tmp_path: Path, owner: str) -> None:
    """Whoever can write in cache_dir can plant links there (tmp -> /etc: the start-up
    cleanup deleted every file in it) or swap images/ (their bytes served as a tenant's model);
    the daemon used any directory it found empty or with a marker (a probe, as root)."""
    root = tmp_path / "cache"
    root.mkdir(mode=0o700)
    if owner == "another user":
        os.chown(root, 54321, 54321)
    else:
        os.chmod(root, 0o770 if owner == "group-writable" else 0o777)
    (root / storage.CACHE_MARKER).write_text("planted\n")
    with pytest.raises(storage.ForeignDirectory, match="writable by it alone"):
        storage.Disk(str(root))
    assert sorted(p.name for p in root.iterdir()) == [storage.CACHE_MARKER]


@pytest.mark.parametrize("name", ["tmp", "images", "lock", "store", "catalog.json", "pins.json"])
def test_a_link_in_cache_dir_is_refused_and_never_followed(tmp_path: Path, name: str) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me\n")
    storage.Disk(str(tmp_path / "cache"))  # made and marked by the daemon
    link = tmp_path / "cache" / name
    if link.is_dir():
        link.rmdir()
    elif link.exists():
        link.unlink()
    link.symlink_to(victim if name in ("tmp", "images") else victim / "precious")
    with pytest.raises(storage.ForeignDirectory, match="symbolic link"):
        storage.Disk(str(tmp_path / "cache"))
    assert (victim / "precious").read_text() == "keep me\n"


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


def test_a_directory_among_the_daemons_files_is_left_alone(tmp_path: Path) -> None:
    """Someone's directory under tmp/ or images/ stopped the start with a bare
    IsADirectoryError; it is not the daemon's to delete: left, said, the rest scanned."""
    disk = storage.Disk(str(tmp_path / "cache"))
    digest = "cd" * 32
    (disk.images / digest).write_bytes(b"xy")
    (disk.tmp / "someones").mkdir()
    (disk.tmp / "someones" / "notes").write_text("precious\n")
    (disk.images / "a-dir").mkdir()
    (disk.tmp / "stray").write_text("x")
    assert disk.scan() == ({digest: 2}, 1)
    assert (disk.tmp / "someones" / "notes").read_text() == "precious\n"
    assert (disk.images / "a-dir").is_dir()


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
    options = "size=1m,mode=0755"  # a disk's root: root's, not writable by others
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], check=True)
    try:
        (mount / "lost+found").mkdir()
        assert storage.Disk(str(mount)).marker.is_file()
        (tmp_path / "plain" / "lost+found").mkdir(parents=True)  # not a mount point
        with pytest.raises(storage.ForeignDirectory, match="lost"):
            storage.Disk(str(tmp_path / "plain"))
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_cache_dir_another_user_could_swap_is_refused(tmp_path: Path) -> None:
    """Its own owner and mode passed, but another user's link on the way (retargeted once
    the daemon ran: their files were served as a tenant's model; a probe, as real users)."""
    target = tmp_path / "real"
    target.mkdir(mode=0o700)
    link = tmp_path / "cache"
    link.symlink_to(target)
    os.lchown(link, 54321, 54321)
    with pytest.raises(storage.ForeignDirectory, match="symbolic link of uid 54321"):
        storage.Disk(str(link))
    assert list(target.iterdir()) == []


def test_a_cache_dir_under_a_parent_anyone_may_write_is_reported(tmp_path: Path, caplog) -> None:
    """Anyone may rename what is in it (and plant another cache): said at start; a container
    volume nobody else mounts is so (a Kubernetes emptyDir is 0777), hence not refused."""
    import logging

    open_parent = tmp_path / "open"
    open_parent.mkdir()
    open_parent.chmod(0o777)  # not sticky
    with caplog.at_level(logging.WARNING, logger="modelshelfd"):
        storage.Disk(str(open_parent / "cache"))
    assert "is writable by others (mode 777)" in caplog.text


def test_missing_parents_of_cache_dir_are_made_private_whatever_the_umask(tmp_path: Path):
    old = os.umask(0)
    try:
        disk = storage.Disk(str(tmp_path / "a" / "b" / "cache"))
    finally:
        os.umask(old)
    for path in (tmp_path / "a", tmp_path / "a" / "b", disk.root):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
