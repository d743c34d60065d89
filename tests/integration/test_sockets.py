"""The sockets under abuse (issue 9, points 4 to 7): a flood of connections does not stall the
others; a peer cannot pin descriptors, hold every slot or sit on a half-sent message; and a
client never talks to a socket another user planted."""

from __future__ import annotations

import array
import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from modelshelf import wire as _wire
from modelshelf.store import Store

from .conftest import Images, Shelf, raw_connect
from .test_hardening import _daemon_fds, _hello

_FLOOD = """\
import socket, sys, threading
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
count = 0
print("FLOODING", flush=True)
while not stop.is_set():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect({path!r})
        count += 1
    except OSError:
        pass
    s.close()
print(count, flush=True)
"""

_LEGIT = """\
import sys
from modelshelf.client import Client
for _ in range(5):
    with Client({path!r}, timeout=20) as client:
        assert client.model("ns/lr").predict({rows!r}).shape == (2,)
print("OK", flush=True)
"""


def _closed(sock: socket.socket, timeout: float = 20.0) -> bool:
    """Whether the daemon closes ``sock`` within ``timeout`` (with or without a last word)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


def _python(script: str, **stdin: bool) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdin=subprocess.PIPE if stdin else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_connect_close_flood_does_not_stall_the_others(shelf: Shelf, images: Images) -> None:
    """Peers that connect and close as fast as they can, while legitimate clients connect,
    acquire and predict: every legitimate one is served (issue 9, point 7)."""
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make()
    daemon.admin("prefetch", model="ns/lr")
    floods = [_python(_FLOOD.format(path=daemon.socket), stdin=True) for _ in range(2)]
    try:
        for flood in floods:
            assert flood.stdout is not None and flood.stdout.readline().strip() == "FLOODING"
        rows = [[5.0, 3.5, 1.4, 0.2], [6.5, 3.0, 5.5, 2.0]]
        legit = [_python(_LEGIT.format(path=daemon.socket, rows=rows)) for _ in range(8)]
        results = [proc.communicate(timeout=120) for proc in legit]
        failed = [err for proc, (_, err) in zip(legit, results, strict=True) if proc.returncode]
        assert failed == [], failed[0] if failed else ""
    finally:
        flooded = [int(flood.communicate(input="", timeout=30)[0].split()[-1]) for flood in floods]
    assert min(flooded) > 100, flooded  # the flood really ran
    assert daemon.client().model("ns/lr") is not None


def test_descriptors_sent_to_the_client_socket_are_closed_on_arrival(
    shelf: Shelf, images: Images
) -> None:
    """A peer past its hello starts a message it never finishes and attaches descriptors to
    byte after byte: the first ones are closed on arrival and the connection with them, the
    daemon's descriptor count is back where it was, and others are served (issue 9, point 5)."""
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make()
    assert daemon.proc is not None
    fd_dir = Path(f"/proc/{daemon.proc.pid}/fd")
    good = daemon.client()
    good.model("ns/lr")
    before = _daemon_fds(daemon, fd_dir)
    hostile = raw_connect(daemon.socket)
    _hello(hostile)
    r, w = os.pipe()
    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r] * _wire.MAX_FDS))]
    hostile.sendall(_wire.LENGTH.pack(_wire.MAX_MESSAGE))  # a message begun, never finished
    sent = 0
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        for _ in range(600):  # 2,400 descriptors if the daemon took them all
            hostile.sendmsg([b"\0"], rights)
            sent += 1
    os.close(r)
    os.close(w)
    assert _closed(hostile), "the daemon keeps the connection"
    assert _daemon_fds(daemon, fd_dir) == before
    assert daemon.stats()["descriptors_refused"] >= _wire.MAX_FDS
    assert good.model("ns/lr@1").predict(images.X).shape == (16,)
    assert daemon.client().model("ns/lr").predict(images.X).shape == (16,)
    hostile.close()


def test_a_message_left_unfinished_is_timed_out(shelf: Shelf, images: Images) -> None:
    """Half a message, then silence: the connection is closed after ``frame_timeout`` (and a
    message sent in pieces within it is answered)."""
    daemon = shelf.make(frame_timeout=1.0)
    sock = raw_connect(daemon.socket)
    _hello(sock)
    frame = _wire.encode({"op": "ping", "id": 1})
    sock.sendall(frame[:3])
    time.sleep(0.3)
    sock.sendall(frame[3:])
    assert _wire.recv(sock) == ({"ok": True, "id": 1}, [])  # slow, but within the bound
    stalled = raw_connect(daemon.socket)
    _hello(stalled)
    stalled.sendall(frame[:5])
    assert _closed(stalled), "the daemon keeps a connection with half a message"
    assert daemon.stats()["frames_timed_out"] == 1
    _wire.send(sock, {"op": "ping", "id": 2})  # the patient one is still served
    assert _wire.recv(sock) == ({"ok": True, "id": 2}, [])
    sock.close()
    stalled.close()
