"""Async framing on raw non-blocking Unix sockets (asyncio streams cannot carry descriptors).

Same messages as ``modelshelf._wire`` (which owns the format); this module only waits for
readiness with ``loop.add_reader``/``add_writer`` and calls ``recvmsg``/``sendmsg``.
"""

from __future__ import annotations

import array
import asyncio
import socket
from collections.abc import Sequence
from typing import Any

from modelshelf import _wire
from modelshelf.errors import ProtocolError


async def _wait(sock: socket.socket, *, write: bool) -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()
    fd = sock.fileno()

    def ready() -> None:
        if not future.done():
            future.set_result(None)

    if write:
        loop.add_writer(fd, ready)
    else:
        loop.add_reader(fd, ready)
    try:
        await future
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def recv(sock: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """One message and the descriptors attached to it (the caller owns them). EOFError if the
    peer closed between messages; ProtocolError for anything malformed."""
    fds: list[int] = []
    try:
        header = await _recv_exact(sock, _wire.LENGTH.size, fds, allow_eof=True)
        body = await _recv_exact(sock, _wire.decode_length(header), fds, allow_eof=False)
        return _wire.decode_body(body), fds
    except BaseException:
        _wire.close_fds(fds)
        raise


async def _recv_exact(sock: socket.socket, n: int, fds: list[int], *, allow_eof: bool) -> bytes:
    chunks: list[bytes] = []
    remaining = n
    while remaining:
        try:
            data, ancillary, flags, _ = sock.recvmsg(remaining, _wire._ANCILLARY_SPACE)
        except (BlockingIOError, InterruptedError):
            await _wait(sock, write=False)
            continue
        fds.extend(_wire.fds_from_ancillary(ancillary))
        if flags & socket.MSG_CTRUNC:
            raise ProtocolError("too many descriptors attached to one message")
        if not data:
            if allow_eof and remaining == n:
                raise EOFError("connection closed by peer")
            raise ProtocolError(f"connection closed mid-message ({n - remaining} of {n} bytes)")
        chunks.append(data)
        remaining -= len(data)
    return b"".join(chunks)


async def send(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    data = memoryview(_wire.encode(message))
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    while data:
        try:
            sent = sock.sendmsg([data], ancillary)
        except (BlockingIOError, InterruptedError):
            await _wait(sock, write=True)
            continue
        data = data[sent:]
        ancillary = []  # descriptors ride on the first byte only
