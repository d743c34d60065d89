"""Async framing on raw non-blocking Unix sockets (asyncio streams cannot carry descriptors).

Same messages as ``modelshelf.wire`` (which owns the format). ``Reader`` keeps one persistent
``add_reader`` callback per connection: it reads whatever arrived, cuts it into frames, and
either answers a frame on the spot (the ``fast`` hook, for requests that need no waiting) or
queues it for the connection's task. Descriptors arrive with the first byte of their message;
the kernel never merges them into the middle of another read, so they are matched to the frame
that starts where they came in.

A peer cannot pin the daemon's descriptors or park half a message: a connection may hold at most
``max_fds`` descriptors not yet handed to a handler (none on the client socket, where no message
takes any: they are closed as they arrive), descriptors that arrive in the middle of a message
are closed at once, and a message begun must be complete within ``frame_timeout`` seconds. Each
of these closes the connection and is counted (``descriptors_refused``, ``frames_timed_out``).
"""

from __future__ import annotations

import array
import asyncio
import collections
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

from modelshelf import wire as _wire
from modelshelf.errors import ProtocolError

MAX_QUEUED = 64  # pipelined requests waiting for a slow one; more is abuse
# bytes of those queued requests: 64 maximal messages would be 4 MiB per connection (and
# more once parsed), times max_connections; real requests are a few hundred bytes
MAX_QUEUED_BYTES = 256 * 1024
FRAME_TIMEOUT = 5.0  # seconds from a message's first byte to its last: a real peer needs far less
_READ = 256 * 1024
# One read buffer per thread (each event loop reads on its own thread), reused by every
# connection's callback: a fresh 256 KiB bytes per read costs an allocation (mmap-sized) and
# its page faults, which on an idle daemon is most of the time to a reply.
_scratch = threading.local()


def _read_buffer() -> memoryview:
    view: memoryview | None = getattr(_scratch, "view", None)
    if view is None:
        view = _scratch.view = memoryview(bytearray(_READ))
    return view


Message = _wire.Message


class Reader:
    """Frames read from one non-blocking socket, with the descriptors that came with them."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        max_fds: int = _wire.MAX_FDS,
        frame_timeout: float = FRAME_TIMEOUT,
        stats: collections.Counter[str] | None = None,
    ) -> None:
        self.sock = sock
        self.fast: Callable[[dict[str, Any], list[int]], bool] | None = None
        self.max_fds = max_fds  # descriptors held here, not yet handed to a handler
        self.frame_timeout = frame_timeout
        self.stats = collections.Counter[str]() if stats is None else stats
        self._held_fds = 0
        self._partial = -1  # stream position of the incomplete message the timer watches
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        # loop time of the last message received, whether answered on the spot or queued
        self.last_message = self._loop.time()
        self._buf = bytearray()
        self._offset = 0  # stream position of _buf[0]
        self._marks: list[tuple[int, list[int]]] = []  # (stream position, descriptors)
        self._frames: collections.deque[Message] = collections.deque()
        self._sizes: collections.deque[int] = collections.deque()
        self._queued_bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._fd = sock.fileno()
        self._loop.add_reader(self._fd, self._readable)

    async def next(self) -> Message:
        """The next queued message (the caller owns its descriptors). EOFError when the peer
        closed between messages; ProtocolError for anything malformed."""
        while not self._frames:
            if self._error is not None:
                raise self._error
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self._queued_bytes -= self._sizes.popleft()
        message = self._frames.popleft()
        self._held_fds -= len(message[1])
        return message

    def fail(self, exc: BaseException) -> None:
        """Stop reading; the connection's task sees ``exc`` at its next ``next()``."""
        if self._error is None:
            self._error = exc
            self._loop.remove_reader(self._fd)
            self._disarm()
        self._wake()

    def close(self) -> None:
        if self._error is None:
            self._error = EOFError("closed")
            self._loop.remove_reader(self._fd)
        self._disarm()
        self._held_fds = 0
        for _, fds in self._marks:
            _wire.close_fds(fds)
        for _, fds in self._frames:
            _wire.close_fds(fds)
        self._marks.clear()
        self._frames.clear()
        self._sizes.clear()
        self._queued_bytes = 0

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _readable(self) -> None:
        # one read per callback: a peer that streams requests cannot starve the others
        try:
            try:
                view = _read_buffer()
                n, ancillary, flags, _ = self.sock.recvmsg_into([view], _wire._ANCILLARY_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            fds = _wire.fds_from_ancillary(ancillary)
            if fds:
                self._take(fds)
            if flags & _wire.MSG_CTRUNC:
                raise ProtocolError("too many descriptors attached to one message")
            if not n:
                if self._buf:
                    raise ProtocolError(f"connection closed mid-message ({len(self._buf)} bytes)")
                raise EOFError("connection closed by peer")
            self._buf += view[:n]
            self._frame()
            self._arm()
        except (ProtocolError, EOFError, OSError) as exc:
            self.fail(exc)

    def _take(self, fds: list[int]) -> None:
        """Keep descriptors that start a message, within the connection's bound; close any
        other at once (a peer must not be able to make the daemon hold descriptors)."""
        if self._buf:
            reason = "descriptors attached inside a message"
        elif self._held_fds + len(fds) > self.max_fds:
            reason = (
                f"{self._held_fds + len(fds)} descriptors sent, more than the {self.max_fds} "
                "this connection may have pending"
                if self.max_fds
                else "descriptors sent on a socket where no message takes any"
            )
        else:
            self._marks.append((self._offset, fds))
            self._held_fds += len(fds)
            return
        _wire.close_fds(fds)
        self.stats["descriptors_refused"] += len(fds)
        raise ProtocolError(reason)

    def _arm(self) -> None:
        """Time the incomplete message at the end of the buffer, from its first byte."""
        if not self._buf:
            self._disarm()
        elif self._partial != self._offset:
            self._disarm()
            self._partial = self._offset
            self._timer = self._loop.call_later(self.frame_timeout, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._partial = -1

    def _expired(self) -> None:
        self._timer = None
        self.stats["frames_timed_out"] += 1
        self.fail(
            ProtocolError(
                f"a message begun {self.frame_timeout:g} s ago is still incomplete "
                f"({len(self._buf)} bytes)"
            )
        )

    def _frame(self) -> None:
        buf = self._buf
        while len(buf) >= _wire.LENGTH.size:
            length = _wire.decode_length(bytes(buf[: _wire.LENGTH.size]))
            end = _wire.LENGTH.size + length
            if len(buf) < end:
                return
            start = self._offset
            self.last_message = self._loop.time()
            body = bytes(buf[_wire.LENGTH.size : end])
            del buf[:end]
            self._offset += end
            fds: list[int] = []
            while self._marks and self._marks[0][0] < self._offset:
                position, got = self._marks.pop(0)
                fds.extend(got)
                if position != start:
                    _wire.close_fds(fds)
                    raise ProtocolError("descriptors attached inside a message")
            self._held_fds -= len(fds)  # back to the count below if queued
            try:
                message = _wire.decode_body(body)
            except ProtocolError:
                _wire.close_fds(fds)
                raise
            idle = not self._frames and self._waiter is not None  # replies stay in order
            if idle and self.fast is not None and self.fast(message, fds):
                continue  # answered on the spot
            if len(self._frames) >= MAX_QUEUED or self._queued_bytes + end > MAX_QUEUED_BYTES:
                _wire.close_fds(fds)
                raise ProtocolError(
                    f"more than {MAX_QUEUED} requests or {MAX_QUEUED_BYTES} bytes queued on one "
                    "connection"
                )
            self._frames.append((message, fds))
            self._held_fds += len(fds)
            self._sizes.append(end)
            self._queued_bytes += end
            self._wake()


def send_now(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> bool:
    """Send a whole reply without waiting; False if the socket could not take all of it (a
    peer that does not read its replies)."""
    return send_frame_now(sock, _wire.encode(message), fds)


def send_frame_now(sock: socket.socket, data: bytes, fds: Sequence[int] = ()) -> bool:
    """``send_now`` of a message already framed (``modelshelf.wire.encode``'s bytes)."""
    ancillary = [(_wire.SOL_SOCKET, _wire.SCM_RIGHTS, array.array("i", fds))] if fds else []
    try:
        return sock.sendmsg([data], ancillary) == len(data)
    except (BlockingIOError, InterruptedError):
        return False


async def _wait_writable(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()
    fd = sock.fileno()

    def ready() -> None:
        if not future.done():
            future.set_result(None)

    loop.add_writer(fd, ready)
    try:
        await future
    finally:
        loop.remove_writer(fd)


async def send(
    sock: socket.socket,
    message: dict[str, Any],
    fds: Sequence[int] = (),
    *,
    timeout: float | None = None,
) -> None:
    """Send a whole reply, waiting for the peer to read; TimeoutError after ``timeout``
    seconds, so that a peer that stops reading cannot hold its connection (and its leases)
    forever."""
    async with asyncio.timeout(timeout):
        await _send(sock, message, fds)


async def _send(sock: socket.socket, message: dict[str, Any], fds: Sequence[int]) -> None:
    data = memoryview(_wire.encode(message))
    ancillary = [(_wire.SOL_SOCKET, _wire.SCM_RIGHTS, array.array("i", fds))] if fds else []
    while data:
        try:
            sent = sock.sendmsg([data], ancillary)
        except (BlockingIOError, InterruptedError):
            await _wait_writable(sock)
            continue
        data = data[sent:]
        ancillary = []  # descriptors ride on the first byte only
