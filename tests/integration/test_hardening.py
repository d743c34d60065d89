"""Bounds a hostile or careless peer runs into: a client that stops reading its replies is
dropped after ``send_timeout`` (with its leases) while others are served; descriptors handed
out are read-only and none leak across many acquire/release cycles; a client dying mid-fetch
does not cancel the fetch for the others; shutdown keeps its deadline."""

from __future__ import annotations

import fcntl
import os
import signal
import stat
import threading
import time
from pathlib import Path

import numpy as np

import modelshelf
from modelshelf import wire as _wire
from modelshelf.admin import AdminConnection
from modelshelf.store import Store

from .conftest import Images, Shelf, raw_connect, wait_for


def _hello(sock) -> None:
    _wire.send(sock, {"op": "hello", "protocol": 1})
    reply, fds = _wire.recv(sock)
    _wire.close_fds(fds)
    assert reply["ok"] is True


def _leases(daemon) -> int:
    return int(daemon.admin("status")["leases"])


def _settles(predicate, timeout: float) -> bool:
    try:
        wait_for(predicate, timeout=timeout)
    except AssertionError:
        return False
    return True


def test_a_peer_that_stops_reading_is_dropped_with_its_leases(shelf: Shelf, images: Images) -> None:
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make(send_timeout=1.0)
    good = daemon.client()
    good.model("ns/lr")
    stuck = raw_connect(daemon.socket)
    _hello(stuck)
    # acquires with a "have" take the ordinary (awaited) path; each takes a lease and its
    # reply carries a descriptor. Never read: once the daemon's buffer is full, its send
    # waits for a reader that never comes.
    request = _wire.encode({"op": "acquire", "model": "ns/lr@1", "have": "0" * 64})
    sent = 0
    while True:
        stuck.sendall(request * 16)
        sent += 16
        if not _settles(lambda n=sent: _leases(daemon) == 1 + n, timeout=2.0):
            break  # the daemon stopped: its reply cannot be delivered
        assert sent < 20_000, "the daemon never blocked on this peer"
    # the stuck peer is dropped within the send timeout, its leases with it
    wait_for(lambda: daemon.admin("status")["connections"]["client"] == 1, timeout=10)
    wait_for(lambda: _leases(daemon) == 1, timeout=10, what="the stuck peer's leases")
    # everyone else was served all along
    assert good.model("ns/lr@1").predict(images.X).shape == (16,)
    stuck.close()


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _daemon_fds(daemon, fd_dir: Path) -> int:
    """The daemon's descriptors besides one per L1 segment (linked or retired) and the one
    admin connection asking, counted once earlier admin connections are gone and no L2 write
    runs (one writes after the reply: its mapping and temp file hold descriptors).

    The daemon opens files for a moment on its own (the catalog's atomic save, the socket
    check each second, /proc and cgroup readings): the count is the least of a few samples
    over a quarter second, which a leaked descriptor, held for good, still raises."""
    with AdminConnection(daemon.admin_socket) as admin:

        def settled() -> dict | None:
            status = admin.request({"op": "status"})
            quiet = status["connections"]["admin"] == 1 and status["l2_writes"] == 0
            return status if quiet else None

        counts = []
        for _ in range(5):
            l1 = wait_for(settled, what="earlier admin connections closed, L2 writes ended")["l1"]
            counts.append(len(list(fd_dir.iterdir())) - l1["count"] - l1["retired"])
            time.sleep(0.05)
        return min(counts)


def test_descriptors_are_read_only_private_and_never_leak(shelf: Shelf, images: Images) -> None:
    store = Store(shelf.store)
    for name in ("lr", "r", "p"):
        store.publish("ns", name, images.bytes({"lr": "logreg", "r": "ridge", "p": "pipe"}[name]))
    daemon = shelf.make()
    sock = raw_connect(daemon.socket)
    _hello(sock)
    _wire.send(sock, {"op": "acquire", "model": "ns/lr"})
    reply, fds = _wire.recv(sock)
    assert reply["ok"] is True and len(fds) == 1
    assert fcntl.fcntl(fds[0], fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
    assert stat.S_IMODE(os.fstat(fds[0]).st_mode) == 0o600
    _wire.close_fds(fds)
    sock.close()
    # the L2 write after the reply holds a descriptor of the segment until it ends: a listing
    # of the daemon's descriptors taken meanwhile may name one closed before its stat
    wait_for(lambda: daemon.admin("status")["l2_writes"] == 0, what="the L2 write to end")
    for label, path in daemon.segment_fds():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, label
    assert daemon.proc is not None
    daemon_fds = Path(f"/proc/{daemon.proc.pid}/fd")
    client = modelshelf.client.Client(daemon.socket)
    client.model("ns/lr")  # connected, board mapped: the steady state
    mine, theirs = _fds(), _daemon_fds(daemon, daemon_fds)
    for i in range(200):
        name = ("ns/lr", "ns/r", "ns/p@1")[i % 3]
        model = client.model(name)
        assert model.predict(images.X).shape[0] == 16
        assert next(iter(model.tensors.values())).flags.writeable is False
        client.release(name)
        if i % 50 == 1:
            daemon.admin("evict", model="ns/r")  # retired and re-created segments too
    client.model("ns/lr")
    del model
    assert _fds() == mine
    # the daemon closes freed segments' descriptors in its reaper thread: a moment later
    wait_for(lambda: _daemon_fds(daemon, daemon_fds) == theirs, what="no descriptor leaked")
    client.close()


def test_a_client_dying_mid_fetch_does_not_cancel_it_for_the_others(
    shelf: Shelf, images: Images, s3
) -> None:
    url = s3.bucket()
    s3.store(url).publish("ns", "blob", images.bytes("blob48m"))
    daemon = shelf.make(store=url, env=s3.env, range_bytes="1M", fetch_parallelism=1)
    first = shelf.start_client(daemon.socket, "", after='client.model("ns/blob")')
    assert first.stdin is not None
    first.stdin.write("\n")
    first.stdin.flush()
    wait_for(lambda: daemon.admin("status")["inflight_fetches"] == 1, what="fetch started")
    got: list[object] = []
    second = daemon.client()
    thread = threading.Thread(target=lambda: got.append(second.tensors("ns/blob")["w"]))
    thread.start()
    wait_for(lambda: daemon.stats().get("fetch_waits") == 1, what="the second joined")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    thread.join(timeout=60)
    assert len(got) == 1
    np.testing.assert_array_equal(got[0], modelshelf.load(images.path("blob48m")).tensors["w"])
    status = daemon.admin("status")
    assert status["inflight_fetches"] == 0 and status["leases"] == 1
    assert daemon.stats()["l3_fetches"] == 1
    assert [r["state"] for r in daemon.admin("ls")["models"]] == ["ready"]


def test_shutdown_keeps_its_deadline_with_a_stuck_peer(shelf: Shelf, images: Images) -> None:
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make(send_timeout=600.0, shutdown_timeout=1.0)
    daemon.client().model("ns/lr")
    stuck = raw_connect(daemon.socket)
    _hello(stuck)
    request = _wire.encode({"op": "acquire", "model": "ns/lr@1", "have": "0" * 64})
    sent = 0
    while True:
        stuck.sendall(request * 16)
        sent += 16
        if not _settles(lambda n=sent: _leases(daemon) == 1 + n, timeout=2.0):
            break
    assert daemon.proc is not None
    started = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=30) == 0
    assert time.monotonic() - started < 10.0
    daemon.log_handle.close()
    assert daemon.segments() == []
    stuck.close()


def test_queued_request_bytes_are_bounded_per_connection(shelf: Shelf, images: Images) -> None:
    """A slow request at the head, then large pipelined ones behind it: far fewer than the
    64-request limit, but more bytes than one connection may park in the daemon."""
    Store(shelf.store).publish("ns", "blob", images.bytes("blob48m"))
    daemon = shelf.make()
    sock = raw_connect(daemon.socket)
    _hello(sock)
    slow = _wire.encode({"op": "acquire", "model": "ns/blob", "id": 0})
    pad = "x" * (60 * 1024)
    big = [_wire.encode({"op": "frobnicate", "id": i, "pad": pad}) for i in range(1, 9)]
    sock.sendall(slow + b"".join(big))
    replies = 0
    try:
        while True:
            _reply, fds = _wire.recv(sock)
            _wire.close_fds(fds)
            replies += 1
    except (EOFError, ConnectionResetError):
        pass  # closed by the daemon: what this test wants
    assert replies < 9
    sock.close()
    assert daemon.client().tensors("ns/blob")["w"].nbytes == 48 << 20  # others are served


def test_descriptors_thrown_at_the_daemon_are_all_closed(shelf: Shelf) -> None:
    """Too many descriptors on one message, descriptors on hello, descriptors in the middle
    of a message: each closes that connection, and the daemon keeps none of them."""
    import array
    import socket

    daemon = shelf.make()
    assert daemon.proc is not None
    fd_dir = Path(f"/proc/{daemon.proc.pid}/fd")
    before = _daemon_fds(daemon, fd_dir)
    r, w = os.pipe()
    frame = _wire.encode({"op": "hello", "protocol": 1})
    for count, split in ((16, False), (2, False), (1, True)):
        sock = raw_connect(daemon.socket)
        fds = array.array("i", [r] * count)
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)]
        if split:  # half a frame, then descriptors riding on the second half
            sock.sendall(frame[:5])
            sock.sendmsg([frame[5:]], ancillary)
        else:
            sock.sendmsg([frame], ancillary)
        sock.settimeout(10)
        try:
            while sock.recv(65536):
                pass
        except ConnectionResetError:
            pass
        sock.close()
    os.close(r)
    os.close(w)
    wait_for(lambda: daemon.admin("status")["connections"]["client"] == 0)
    assert _daemon_fds(daemon, fd_dir) == before
