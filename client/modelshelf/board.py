"""The board: the read-only shared memory a daemon hands every client (docs/protocol.md, "The
board"). Its layout, the slot of a model, and the client's reader (``BoardView``); the daemon
writes it (``modelshelfd.storage.Board``).

Page 0 keeps the first board's meaning for its first 24 bytes (magic, a generation that moves
on every catalog change, the pressure counter), so a client that knows only that layout stays
correct. The **notices** extension follows it, announced by a magic of its own: an **epoch**
that moves on events concerning every model (a daemon's start or stop), and a table of
per-model change counters, one per slot, a model's slot being a hash of its ``ns/name``. A
client holding a model re-checks it only when the epoch or that model's counter moved; two
models sharing a slot only cost each other a spurious round trip, never a stale answer.

Everything read here is bounded by the board's size before it is used; a board without the
extension (an older daemon) is read as the first layout, with the generation for everything.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import mmap
import os
import struct
import sys
from typing import Final

from .errors import ProtocolError
from .wire import local_shortage

__all__ = ["BoardView", "slot_hash"]

HEADER_SIZE: Final = 4096  # page 0; the only part of a board without the extension
MAGIC: Final = b"MSBOARD1"  # bytes 0..7
GENERATION_AT: Final = 8  # u64: moves on every catalog change (what readers of page 0 use)
PRESSURE_AT: Final = 16  # u64: moves when clients should trim idle held models
NOTICES_MAGIC: Final = b"MSNOTES1"  # bytes 24..31: the extension below is present
EPOCH_AT: Final = 32  # u64: moves on events that concern every model
GEOMETRY_AT: Final = 40  # u32 slot count (a power of two), u32 byte offset of the table
GEOMETRY: Final = struct.Struct("<II")
MAX_SLOTS: Final = 1 << 20  # 8 MiB of counters: a board announcing more is refused
COUNTER: Final = struct.Struct("<Q")
_EXTENSION_END: Final = GEOMETRY_AT + GEOMETRY.size
_U64 = COUNTER.unpack_from
_serials = itertools.count(1)


def slot_hash(name: str) -> int:
    """The 64-bit hash of a model's ``ns/name`` that places it in the table: BLAKE2b with an
    8-byte digest (no key, salt or personalisation) of its UTF-8 bytes, read little-endian.
    Its slot in a table of ``n`` slots (a power of two) is ``slot_hash(name) & (n - 1)``."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "little")


def table_size(slots: int) -> int:
    """Bytes of a board with ``slots`` counters after page 0."""
    return HEADER_SIZE + slots * COUNTER.size


class BoardView:
    """A client's read-only mapping of the board behind ``fd`` (the caller keeps ``fd``).

    ``words`` are the board's u64 words (``words[i]`` at byte ``8 * i``); ``at`` is the index
    of the counter that moves for every model (the epoch, or the generation without the
    extension). ``slot(name)`` is the index of the model's counter (without the extension,
    0: the magic, which never moves). ``stamp(slot)`` is what must stay equal for a model
    held since it was read: (``serial``, epoch or generation, counter); ``serial`` tells one
    view from another, so a stamp never matches another board."""

    __slots__ = ("at", "map", "serial", "slots", "table", "words")

    def __init__(self, fd: int) -> None:
        try:
            size = os.fstat(fd).st_size
            seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
            header = os.pread(fd, _EXTENSION_END, 0)
        except OSError as exc:
            raise ProtocolError(f"the daemon's board cannot be read: {exc}") from exc
        if size < HEADER_SIZE or len(header) < _EXTENSION_END:
            raise ProtocolError(f"the daemon's board is {size} bytes, expected at least 4096")
        if not seals & fcntl.F_SEAL_SHRINK:  # a truncation would kill its readers (SIGBUS)
            raise ProtocolError("the daemon's board is not sealed against shrinking")
        if header[: len(MAGIC)] != MAGIC:
            raise ProtocolError("the daemon's board does not start with its magic")
        self.slots, self.table, at = 0, 0, GENERATION_AT
        length = HEADER_SIZE
        if header[24:32] == NOTICES_MAGIC:
            slots, table = GEOMETRY.unpack_from(header, GEOMETRY_AT)
            if not (0 < slots <= MAX_SLOTS and slots & (slots - 1) == 0):
                raise ProtocolError(f"the daemon's board announces {slots} slots")
            if table < _EXTENSION_END or table % COUNTER.size or table + slots * 8 > size:
                raise ProtocolError(
                    f"the daemon's board puts {slots} slots at byte {table}: over its header, "
                    f"misaligned or outside its {size} bytes"
                )
            self.slots, self.table, at = slots, table, EPOCH_AT
            length = table + slots * COUNTER.size
        try:
            self.map = mmap.mmap(fd, length, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        except (OSError, ValueError) as exc:
            shortage = local_shortage("cannot map the daemon's board", exc)
            raise shortage or ProtocolError(f"cannot map the daemon's board: {exc}") from exc
        self.at = at // COUNTER.size
        # an index into a cast view costs a fraction of a struct call: this is every held
        # model's check; the length is a multiple of 8, and the board little-endian
        self.words: _Words = memoryview(self.map).cast("Q") if _NATIVE else _Unpacked(self.map)
        self.serial = next(_serials)

    @property
    def notices(self) -> bool:
        """Does this board carry per-model counters (else every change moves one number)?"""
        return self.slots > 0

    def slot(self, name: str) -> int:
        if not self.slots:
            return 0
        return (self.table >> 3) + (slot_hash(name) & (self.slots - 1))

    def stamp(self, slot: int) -> tuple[int, int, int]:
        words = self.words
        return self.serial, words[self.at], words[slot]

    def pressure(self) -> int:
        return self.words[PRESSURE_AT >> 3]

    def generation(self) -> int:
        """The counter that moves on every catalog change (page 0, bytes 8..15)."""
        return self.words[GENERATION_AT >> 3]


class _Unpacked:
    """The board's counters on a big-endian host: one struct call per read."""

    __slots__ = ("map",)

    def __init__(self, board: mmap.mmap) -> None:
        self.map = board

    def __getitem__(self, index: int) -> int:
        return int(_U64(self.map, index * COUNTER.size)[0])


_Words = memoryview | _Unpacked
_NATIVE = sys.byteorder == "little"
