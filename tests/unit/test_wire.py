"""Wire framing (modelshelf/wire.py) over real socketpairs."""

from __future__ import annotations

import os
import socket
import struct

import pytest

from modelshelf import wire as _wire
from modelshelf.errors import ProtocolError


@pytest.fixture
def pair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    a.settimeout(5)
    b.settimeout(5)
    yield a, b
    a.close()
    b.close()


def test_roundtrip_with_descriptors(pair) -> None:
    a, b = pair
    r, w = os.pipe()
    _wire.send(a, {"op": "x", "n": [1, 2.5, "é"]}, [r])
    os.close(r)
    message, fds = _wire.recv(b)
    assert message == {"op": "x", "n": [1, 2.5, "é"]}
    assert len(fds) == 1
    os.write(w, b"hi")
    assert os.read(fds[0], 2) == b"hi"
    _wire.close_fds([*fds, w])


def test_eof_between_messages(pair) -> None:
    a, b = pair
    a.close()
    with pytest.raises(EOFError):
        _wire.recv(b)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (struct.pack(">I", 0), "outside"),
        (struct.pack(">I", _wire.MAX_MESSAGE + 1), "outside"),
        (struct.pack(">I", 3) + b"[1]", "JSON object"),
        (struct.pack(">I", 2) + b"\xff\xfe", "UTF-8 JSON"),
        (struct.pack(">I", 11) + b'{"a": NaN }', "UTF-8 JSON"),
        # a number beyond a float is inf, which a reply echoing it cannot encode: the daemon
        # logged a traceback per request and answered nothing (a probe)
        (struct.pack(">I", 11) + b'{"id":1e999}', "beyond a 64-bit float"),
        (struct.pack(">I", 12) + b'{"id":-1e999}', "beyond a 64-bit float"),
        (struct.pack(">I", 10) + b"{}", "mid-message"),
    ],
)
def test_malformed(pair, raw: bytes, match: str) -> None:
    a, b = pair
    a.sendall(raw)
    a.shutdown(socket.SHUT_WR)
    with pytest.raises(ProtocolError, match=match):
        _wire.recv(b)


def test_encode_limits() -> None:
    assert _wire.encode({"a": 1})[:4] == struct.pack(">I", 7)
    with pytest.raises(ProtocolError, match="exceeds"):
        _wire.encode({"a": "x" * _wire.MAX_MESSAGE})
    with pytest.raises(ValueError):
        _wire.encode({"a": float("nan")})


def test_too_many_descriptors_are_closed(pair) -> None:
    a, b = pair
    fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(_wire.MAX_FDS + 2)]
    import array

    data = _wire.encode({"op": "x"})
    a.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    _wire.close_fds(fds)
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(ProtocolError, match="too many descriptors"):
        _wire.recv(b)
    assert len(os.listdir("/proc/self/fd")) <= before
    with pytest.raises(ProtocolError):
        _wire.send(a, {"op": "x"}, list(range(_wire.MAX_FDS + 1)))


def test_connect_waits_out_a_full_listen_queue(tmp_path) -> None:
    """A Unix socket's connect fails at once (EAGAIN) while the listen queue is full: connect()
    tries again until the listener makes room, or until its timeout."""
    import threading

    path = str(tmp_path / "s.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(0)
    queued = []
    while True:  # fill the queue
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(path)
        except BlockingIOError:
            s.close()
            break
        queued.append(s)
    with pytest.raises(TimeoutError, match=r"listen queue stayed full for 0\.2 s"):
        _wire.connect(path, 0.2)
    accepted = []
    timer = threading.Timer(0.2, lambda: accepted.append(listener.accept()[0]))
    timer.start()
    sock = _wire.connect(path, 10)  # would raise TimeoutError if it gave up
    timer.join()
    for s in [sock, *queued, *accepted, listener]:
        s.close()
