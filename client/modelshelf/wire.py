"""Wire framing shared by the client, the CLI and the daemon (docs/protocol.md specifies it).

A message is a 4-byte big-endian length N (1 <= N <= MAX_MESSAGE) followed by N bytes of a UTF-8
JSON object. File descriptors travel as SCM_RIGHTS ancillary data attached to a message's first
byte; at most MAX_FDS per message. Anything else is a ProtocolError, and the peer that sees one
closes that connection and nothing else.
"""

from __future__ import annotations

import array
import contextlib
import errno
import json
import os
import resource
import socket
import struct
import time
from collections.abc import Sequence
from typing import Any, Final

from .errors import ProtocolError, ShelfBusy

PROTOCOL_VERSION: Final = 1
MAX_MESSAGE: Final = 64 * 1024
MAX_FDS: Final = 4
LENGTH = struct.Struct(">I")
Message = tuple[dict[str, Any], list[int]]  # a decoded message and the descriptors it carried
_ANCILLARY_SPACE: Final = socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)
# Plain ints: the socket module's constants are enum members, and ``flags & MSG_CTRUNC`` on
# one costs a Python-level enum call on every message.
MSG_CTRUNC: Final = int(socket.MSG_CTRUNC)
SOL_SOCKET: Final = int(socket.SOL_SOCKET)
SCM_RIGHTS: Final = int(socket.SCM_RIGHTS)


def encode(message: dict[str, Any]) -> bytes:
    """Frame ``message``; raise ProtocolError if it exceeds MAX_MESSAGE."""
    body = _ENCODER.encode(message).encode("utf-8")
    if len(body) > MAX_MESSAGE:
        raise ProtocolError(f"message of {len(body)} bytes exceeds the limit {MAX_MESSAGE}")
    return LENGTH.pack(len(body)) + body


def decode_length(header: bytes) -> int:
    """The body length a 4-byte header announces, bounded before anything is allocated."""
    (length,) = LENGTH.unpack(header)
    if not 1 <= length <= MAX_MESSAGE:
        raise ProtocolError(f"announced message length {length} is outside 1..{MAX_MESSAGE}")
    return int(length)


def decode_body(body: bytes) -> dict[str, Any]:
    try:
        message = _DECODER.decode(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"message is not UTF-8 JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise ProtocolError(f"message must be a JSON object, got {type(message).__name__}")
    return message


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    """A JSON number as a float: 1e999 would be inf, which no reply can echo (not JSON)."""
    value = float(text)
    if value in (_INF, -_INF):
        raise ValueError(f"the number {text[:40]} is beyond a 64-bit float")
    return value


_INF = float("inf")


# Built once: json.dumps/loads with options build a new coder (and scanner) on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_DECODER = json.JSONDecoder(parse_constant=_no_constants, parse_float=_finite)


def connect(path: str, timeout: float) -> socket.socket:
    """A blocking Unix stream socket connected to ``path``, with ``timeout`` on every
    operation. A full listen queue makes a Unix socket's connect fail at once with EAGAIN, not
    wait: it is tried again, a little later each time, until ``timeout`` has passed (a flood
    of connections from others must delay a client, not fail it)."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            return sock
        except BlockingIOError:
            sock.close()
            if time.monotonic() + pause > deadline:
                raise TimeoutError(
                    f"the daemon's listen queue stayed full for {timeout:g} s"
                ) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        except BaseException:
            sock.close()
            raise


def send(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    """Send one framed message on a blocking socket, with ``fds`` attached to its first byte."""
    data = encode(message)
    if len(fds) > MAX_FDS:
        raise ProtocolError(f"{len(fds)} descriptors exceed the limit {MAX_FDS}")
    if fds:
        ancillary = [(SOL_SOCKET, SCM_RIGHTS, array.array("i", fds))]
        sent = sock.sendmsg([data], ancillary)
        data = data[sent:]
    if data:
        sock.sendall(data)


def recv(sock: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """Receive one framed message on a blocking socket: (message, received descriptors).

    The caller owns the returned descriptors. On any error the descriptors are closed first.
    Raises EOFError if the peer closed the connection before a message began.
    """
    fds: list[int] = []
    try:
        header = _recv_exact(sock, LENGTH.size, fds, allow_eof=True)
        body = _recv_exact(sock, decode_length(header), fds, allow_eof=False)
        return decode_body(body), fds
    except BaseException:
        close_fds(fds)
        raise


def _recv_exact(sock: socket.socket, n: int, fds: list[int], *, allow_eof: bool) -> bytes:
    chunks: list[bytes] = []
    remaining = n
    while remaining:
        data, ancillary, flags, _ = sock.recvmsg(remaining, _ANCILLARY_SPACE)
        fds.extend(fds_from_ancillary(ancillary))
        if flags & MSG_CTRUNC:
            raise _truncated()
        if not data:
            if allow_eof and remaining == n and not chunks:
                raise EOFError("connection closed by peer")
            raise ProtocolError(f"connection closed mid-message ({n - remaining} of {n} bytes)")
        chunks.append(data)
        remaining -= len(data)
    return b"".join(chunks)


def _truncated() -> Exception:
    """The kernel dropped descriptors of a message: this process at its descriptor limit (no
    slot for them: its own shortage, said as such), or more than one message may carry."""
    try:
        held = len(os.listdir("/proc/self/fd")) - 1  # less the one listdir held
    except OSError as exc:
        if exc.errno not in (errno.EMFILE, errno.ENFILE):
            return ProtocolError("too many descriptors attached to one message")
        held = -1  # none left even to look
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if held < 0 or held + 4 >= limit:
        return out_of_descriptors("the descriptor the daemon sent was dropped by the kernel")
    return ProtocolError("too many descriptors attached to one message")


def out_of_descriptors(what: str) -> ShelfBusy:
    """This process's shortage of descriptors, with its limit and the ways out."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return ShelfBusy(
        f"{what}: this process is out of file descriptors (its limit is {limit}, ulimit -n); "
        "close files it no longer needs, hold fewer models (each mapped model keeps one: "
        "Client(max_held_models=...)), or raise the limit"
    )


def local_shortage(what: str, exc: BaseException) -> ShelfBusy | None:
    """``exc`` as this process's own shortage (descriptors, memory), or None if it is not."""
    code = getattr(exc, "errno", None)
    if code in (errno.EMFILE, errno.ENFILE):
        return out_of_descriptors(what)
    if code == errno.ENOMEM or isinstance(exc, MemoryError):
        return ShelfBusy(
            f"{what}: this process is out of memory or address space ({exc}); raise its "
            "limit (ulimit -v, the container's memory limit) or hold fewer models"
        )
    return None


def fds_from_ancillary(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    """Descriptors from recvmsg ancillary data (whole ints only; stray bytes are ignored)."""
    out: list[int] = []
    for level, kind, data in ancillary:
        if level == SOL_SOCKET and kind == SCM_RIGHTS:
            fds = array.array("i")
            usable = len(data) - len(data) % fds.itemsize
            fds.frombytes(data[:usable])
            out.extend(fds)
    return out


def close_fds(fds: Sequence[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


MAX_TIMEOUT = 1e9  # seconds: a socket's timeout must be finite


def seconds_from_env(name: str, default: float) -> float:
    """``$name`` as a timeout in seconds (``default`` if unset or empty); a ValueError naming
    the variable, the range and what was found otherwise."""
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value < MAX_TIMEOUT:
        raise ValueError(
            f"{name} must be a number of seconds above 0 and below {MAX_TIMEOUT:.0f}, like "
            f"{default:g}, got {raw!r}"
        )
    return value
