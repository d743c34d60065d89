"""The board as a client reads it (docs/protocol.md, "The board"), from boards written here by
hand after the spec: the slot hash's test vectors, per-model counters, the first layout (an
older daemon) read as it always was, and hostile boards refused before anything is mapped."""

from __future__ import annotations

import fcntl
import os
import struct

import pytest

from modelshelf.board import BoardView, _Unpacked, slot_hash
from modelshelf.errors import ProtocolError

GENERATION, PRESSURE, EPOCH = 8, 16, 32


def make_board(
    *,
    slots: int = 64,
    table: int = 4096,
    size: int | None = None,
    magic: bytes = b"MSBOARD1",
    notices: bool = True,
    seal: bool = True,
) -> int:
    """A board memfd laid out as the protocol says (generation 7, epoch 9, counters 0)."""
    if size is None:
        size = table + 8 * slots if notices else 4096
    fd = os.memfd_create("board", os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, size)
    header = magic + (7).to_bytes(8, "little") + bytes(8)
    if notices:
        header += b"MSNOTES1" + (9).to_bytes(8, "little") + struct.pack("<II", slots, table)
    os.pwrite(fd, header[:size], 0)
    if seal:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
    return fd


def bump(fd: int, offset: int) -> None:
    """What the daemon does to a counter: add one, wrapping at 2^64."""
    value = int.from_bytes(os.pread(fd, 8, offset), "little")
    os.pwrite(fd, ((value + 1) % 2**64).to_bytes(8, "little"), offset)


def slot_offset(name: str, slots: int = 64, table: int = 4096) -> int:
    return table + 8 * (slot_hash(name) & (slots - 1))


def test_slot_hash_test_vectors() -> None:
    """BLAKE2b, 8-byte digest, little-endian: the values docs/protocol.md lists."""
    assert slot_hash("ns/m") == 0xBF238AB4F567F86D
    assert slot_hash("ns/x") == 0xC1FD012E79AEB3FE
    assert slot_hash("ü/é") == 0xAE98533D8C0D4B67  # UTF-8 bytes
    assert slot_hash("ns/m") & 16383 == 14445


def test_a_view_follows_each_models_counter_and_the_epoch() -> None:
    fd = make_board(slots=64)
    try:
        view = BoardView(fd)
        assert view.notices and (view.slots, view.table) == (64, 4096)
        x, y = view.slot("ns/x"), view.slot("ns/y")
        assert (8 * x, 8 * y) == (slot_offset("ns/x"), slot_offset("ns/y")) and x != y
        before = view.stamp(x), view.stamp(y)
        assert before[0] == (view.serial, 9, 0)
        bump(fd, GENERATION)  # the counter of page 0 moves on every change: not read here
        bump(fd, 8 * x)
        assert view.stamp(x) != before[0] and view.stamp(y) == before[1]
        bump(fd, EPOCH)  # a change for every model
        assert view.stamp(y) != before[1]
        bump(fd, PRESSURE)
        assert view.pressure() == 1
        last = view.table // 8 + view.slots - 1  # the last counter lies inside the map
        assert view.stamp(last) == view.stamp(last)
    finally:
        os.close(fd)


def test_a_board_without_notices_is_read_as_the_first_layout() -> None:
    """An older daemon: one generation for every model (a change anywhere re-checks all)."""
    fd = make_board(notices=False)
    try:
        view = BoardView(fd)
        assert not view.notices and view.slot("ns/x") == 0  # the magic: it never moves
        magic = int.from_bytes(b"MSBOARD1", "little")
        assert view.stamp(0) == (view.serial, 7, magic)
        bump(fd, GENERATION)
        assert view.stamp(view.slot("ns/x")) == (view.serial, 8, magic)
        assert BoardView(fd).stamp(0) != view.stamp(0)  # another view: another stamp
    finally:
        os.close(fd)


HOSTILE = {
    "empty": ({"size": 0, "notices": False}, "board is 0 bytes"),
    "too small": ({"size": 100, "notices": False}, "board is 100 bytes"),
    "wrong magic": ({"magic": b"MSBOARD9"}, "does not start with its magic"),
    "not sealed": ({"seal": False}, "not sealed"),
    "no slots": ({"slots": 0}, "announces 0 slots"),
    "slots not a power of two": ({"slots": 3}, "announces 3 slots"),
    "too many slots": ({"slots": 1 << 21, "size": 4096}, "announces 2097152 slots"),
    "table past the end": ({"slots": 64, "size": 4096 + 8 * 63}, "outside its"),
    "table misaligned": ({"table": 4100, "size": 4100 + 8 * 64}, "outside its"),
    "table over the header": ({"table": 16, "size": 4096}, "outside its"),
    "table offset near 2^32": ({"table": 2**32 - 8, "size": 4096}, "outside its"),
}


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_a_hostile_board_is_refused_before_it_is_mapped(case: str) -> None:
    shape, message = HOSTILE[case]
    fd = make_board(**shape)  # type: ignore[arg-type]
    try:
        with pytest.raises(ProtocolError, match=message):
            BoardView(fd)
    finally:
        os.close(fd)


def test_a_big_endian_host_reads_the_same_counters() -> None:
    """The board is little-endian; a host that is not reads it one struct call at a time."""
    fd = make_board(slots=64)
    try:
        view = BoardView(fd)
        bump(fd, 8 * view.slot("ns/x"))
        unpacked = _Unpacked(view.map)
        assert [unpacked[i] for i in range(512 + 64)] == list(view.words)
    finally:
        os.close(fd)
