"""Faults: the store unreachable, the disk tier full, hostile socket messages, access control
and the name grammar. Each fault affects only what it must."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import modelshelf
from modelshelf import wire as _wire
from modelshelf.client import Client
from modelshelf.errors import AccessDenied, InvalidModelName, ShelfBusy, ShelfError, StoreError
from modelshelf.store import Store

from .conftest import Daemon, Images, Shelf, raw_connect, run_client, wait_for


def test_store_unreachable(shelf: Shelf, images: Images, private_s3) -> None:
    url = private_s3.bucket()
    store = private_s3.store(url)
    store.publish("ns", "lr", images.bytes("logreg"))
    store.publish("ns", "r", images.bytes("ridge"))
    daemon = shelf.make(store=url, env=private_s3.env)
    client = daemon.client()
    held = client.model("ns/lr")
    with pytest.raises(modelshelf.ModelNotFound) as missing:
        client.model("ns/nope")
    assert url not in str(missing.value) and "127.0.0.1" not in str(missing.value)
    private_s3.server.stop()
    with pytest.raises(StoreError, match="object store is unavailable") as err:
        client.model("ns/r@1")
    # no store location reaches a client: not the bucket, not the endpoint
    endpoint = private_s3.env.get("AWS_ENDPOINT_URL", "127.0.0.1")
    assert url not in str(err.value) and endpoint not in str(err.value)
    assert "127.0.0.1" not in str(err.value)
    assert "the object store failed" in daemon.logs()  # the operator sees the details
    assert held.predict(images.X).shape == (16,)
    assert client.model("ns/lr@1").predict(images.X).shape == (16,)  # in L1: no store needed
    wait_for(lambda: daemon.admin("status")["store_error"], what="the poller notices")


def test_store_down_latest_is_served_from_the_last_listing(
    shelf: Shelf, images: Images, private_s3
) -> None:
    """With the store down, ``ns/name`` (latest) resolves through the last listing the daemon
    saw: a new client gets the resident image, not a StoreError."""
    url = private_s3.bucket()
    private_s3.store(url).publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make(store=url, env=private_s3.env, ref_poll_seconds=0.2)
    expected = daemon.client().model("ns/lr").predict(images.X)
    private_s3.server.stop()
    wait_for(lambda: daemon.admin("status")["store_error"], what="the poller notices")
    fresh = daemon.client()  # a process that never held the model
    np.testing.assert_array_equal(fresh.model("ns/lr").predict(images.X), expected)
    with pytest.raises(StoreError):
        fresh.model("ns/never-listed")


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 1 MiB filesystem (tmpfs; the test suite runs as root), so that L2 writes fail
    with a genuine ENOSPC."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_disk_tier_full(small_disk: Path, shelf: Shelf, images: Images) -> None:
    Store(shelf.store).publish("ns", "blob", images.bytes("blob4m"))
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make(cache_dir=str(small_disk / "cache"))
    client = daemon.client()
    tensors = client.tensors("ns/blob")  # 4 MiB into a 1 MiB disk: served from L1 anyway
    assert tensors["w"].nbytes == 4 << 20
    # the L2 write runs after the reply: it is over once status counts no write in flight
    wait_for(lambda: daemon.admin("status")["l2_writes"] == 0, what="the L2 write to end")
    assert daemon.stats()["l2_write_errors"] == 1
    assert list((small_disk / "cache" / "tmp").iterdir()) == []
    assert list((small_disk / "cache" / "images").iterdir()) == []
    assert daemon.admin("status")["l2"]["bytes"] == 0
    # a small image still fits and goes to disk
    client.model("ns/lr")
    wait_for(lambda: daemon.admin("status")["l2_writes"] == 0, what="the L2 write to end")
    assert len(list((small_disk / "cache" / "images").iterdir())) == 1
    assert "L2 write of" in daemon.logs()


def test_a_full_cache_disk_refuses_what_only_it_could_hold_as_busy(
    small_disk: Path, shelf: Shelf, images: Images
) -> None:
    """An image larger than L1 goes straight to an L2 file: on a full disk that was an
    ``internal`` error with a bare errno and a traceback; now ``busy`` naming the disk, counted
    in l2_write_errors, logged once per kind every 10 s. An image L1 can take still goes there
    on its first use, whatever the admission rule said (it had failed the same way)."""
    store = Store(shelf.store)
    store.publish("ns", "big", images.bytes("blob4m"))
    store.publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make(cache_dir=str(small_disk / "cache"), l1_bytes="2M")
    filler = small_disk / "filler"
    with contextlib.suppress(OSError), open(filler, "wb") as fh:
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()
    client = daemon.client()
    for _ in range(3):
        with pytest.raises(ShelfBusy, match="cannot be written to the cache disk"):
            client.tensors("ns/big")
    assert client.model("ns/lr").predict(images.X).shape == (len(images.X),)
    counters = daemon.stats()
    assert counters.get("refused_internal", 0) == 0 and counters["l2_write_errors"] >= 3
    assert daemon.logs().count("L2 write of") == 1 and "Traceback" not in daemon.logs()


def _frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def _hello(sock: socket.socket) -> None:
    _wire.send(sock, {"op": "hello", "protocol": 1})
    reply, fds = _wire.recv(sock)
    _wire.close_fds(fds)
    assert reply["ok"] is True


def _closed(sock: socket.socket) -> bool:
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


HOSTILE = {
    "oversized length": struct.pack(">I", 0xFFFFFFFF),
    "zero length": struct.pack(">I", 0),
    "garbage": _frame(b"\xff\xfe not json"),
    "not an object": _frame(b"[1, 2, 3]"),
    "NaN": _frame(b'{"op": "hello", "protocol": NaN}'),
    "missing hello": _frame(json.dumps({"op": "acquire", "model": "ns/lr"}).encode()),
    "truncated": struct.pack(">I", 100) + b'{"op":',
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_message_closes_only_its_connection(
    shelf: Shelf, images: Images, case: str
) -> None:
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make()
    good = raw_connect(daemon.socket)
    _hello(good)
    bad = raw_connect(daemon.socket)
    bad.sendall(HOSTILE[case])
    if case == "truncated":
        bad.shutdown(socket.SHUT_WR)
    assert _closed(bad)
    bad.close()
    _wire.send(good, {"op": "acquire", "model": "ns/lr@1", "id": 7})
    reply, fds = _wire.recv(good)
    assert reply["ok"] is True and reply["id"] == 7 and len(fds) == 1
    _wire.close_fds(fds)
    good.close()


def test_unexpected_descriptors_close_the_connection(shelf: Shelf, images: Images) -> None:
    daemon = shelf.make()
    sock = raw_connect(daemon.socket)
    _hello(sock)
    r, w = os.pipe()
    _wire.send(sock, {"op": "ping"}, [r])
    os.close(r)
    os.close(w)
    assert _closed(sock)
    sock.close()
    assert daemon.admin("status")["connections"]["client"] == 0


def test_bad_requests_are_answered_and_the_connection_stays(shelf: Shelf) -> None:
    daemon = shelf.make()
    sock = raw_connect(daemon.socket)
    _hello(sock)
    for message, code in (
        ({"op": "frobnicate"}, "bad_request"),
        ({"op": "acquire"}, "bad_request"),
        ({"op": "acquire", "model": "../etc/passwd"}, "invalid_name"),
        ({"op": "acquire", "model": "NS/Upper"}, "invalid_name"),
        ({"op": "acquire", "model": ["ns/lr"]}, "invalid_name"),
        ({"op": "acquire", "model": "ns/absent"}, "not_found"),
        ({"op": "release", "digest": "00" * 32}, "bad_request"),
        ({"op": "status"}, "bad_request"),  # an admin op on the client socket
        ({"op": "ping", "id": "x"}, "bad_request"),
    ):
        _wire.send(sock, message)
        reply, fds = _wire.recv(sock)
        assert fds == []
        assert (reply["ok"], reply["error"]) == (False, code), (message, reply)
    _wire.send(sock, {"op": "ping", "id": 3})
    assert _wire.recv(sock) == ({"ok": True, "id": 3}, [])
    sock.close()


def test_wrong_protocol_version(shelf: Shelf) -> None:
    daemon = shelf.make()
    sock = raw_connect(daemon.socket)
    _wire.send(sock, {"op": "hello", "protocol": 99})
    reply, _ = _wire.recv(sock)
    assert reply["error"] == "bad_request" and "protocol" in reply["message"]
    assert _closed(sock)
    sock.close()


def test_connections_are_bounded(shelf: Shelf, images: Images) -> None:
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make(max_connections=8)
    held = [raw_connect(daemon.socket) for _ in range(8)]
    for s in held:
        _hello(s)
    extra = [raw_connect(daemon.socket) for _ in range(20)]
    for s in extra:
        reply, _ = _wire.recv(s)
        assert reply["error"] == "busy"
        assert _closed(s)
        s.close()
    with pytest.raises(ShelfError, match=r"limit of 8 client connections.*max_connections"):
        daemon.client().model("ns/lr")
    held.pop().close()
    wait_for(lambda: daemon.admin("status")["connections"]["client"] == 7, what="slot freed")
    assert daemon.client().model("ns/lr").predict([[5, 3, 1, 0.2]]).shape == (1,)
    assert daemon.stats()["connections_refused"] == 21
    # logged, but at a bounded rate: one line for the flood, not 21
    assert daemon.logs().count("connection of pid") == 1
    assert "limit of 8 client connections" in daemon.logs()
    for s in held:
        s.close()


def test_a_reload_changes_the_connection_limits_at_the_next_accept(shelf: Shelf) -> None:
    """SIGHUP logged 'reloaded: max_connections' and the old limit stayed (read once, before
    the accept loop)."""
    import signal

    daemon = shelf.make(max_connections=2, log_level="INFO")
    with contextlib.ExitStack() as closing:
        for _ in range(2):
            _hello(closing.enter_context(raw_connect(daemon.socket)))
        with pytest.raises(ShelfBusy, match="limit of 2 client connections"):
            daemon.client().model("ns/none")
        daemon.config_path.write_text(
            daemon.config_path.read_text().replace("max_connections = 2", "max_connections = 3")
        )
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded: max_connections" in daemon.logs(), what="the reload")
        _hello(closing.enter_context(raw_connect(daemon.socket)))  # let in
        with pytest.raises(ShelfBusy, match="limit of 3 client connections"):
            daemon.client().model("ns/none")


def test_a_client_beyond_the_daemons_descriptors_is_answered_busy_at_once(
    shelf: Shelf,
) -> None:
    """With connections holding every descriptor, the next client waited its whole timeout
    on a connection the kernel had queued and nobody read ('did not answer')."""

    def few_descriptors() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))

    daemon = shelf.make(preexec=few_descriptors)
    with contextlib.ExitStack() as closing:
        _fill_descriptors(daemon, closing)


def _fill_descriptors(daemon: Daemon, closing: contextlib.ExitStack) -> None:
    held = []
    for _ in range(48):
        s = closing.enter_context(raw_connect(daemon.socket))
        with contextlib.suppress(BrokenPipeError):  # a refusal may close it first
            _wire.send(s, {"op": "hello", "protocol": 1})
        reply, fds = _wire.recv(s)
        _wire.close_fds(fds)
        if not reply["ok"]:  # refused: the daemon is out of descriptors
            assert reply["error"] == "busy" and "out of file descriptors" in reply["message"]
            assert "limit is 48" in reply["message"] and "LimitNOFILE" in reply["message"]
            s.close()
            break
        held.append(s)
    else:
        raise AssertionError("48 connections were all let in with 48 descriptors")
    started = time.monotonic()
    with Client(daemon.socket, timeout=20) as client, pytest.raises(ShelfBusy, match="out of"):
        client.model("ns/none")
    assert time.monotonic() - started < 5  # not the client's timeout
    assert daemon.admin("status")["connections"]["client"] == len(held)  # the admin answers
    for s in held:
        s.close()
    wait_for(lambda: daemon.admin("status")["connections"]["client"] == 0, what="closed")
    with pytest.raises(modelshelf.errors.ModelNotFound):  # served again
        daemon.client().model("ns/none")


def test_a_client_at_its_descriptor_limit_is_told_so(shelf: Shelf, images: Images) -> None:
    """The kernel drops the descriptor the daemon sends to a process with no free slot: it
    was reported as the daemon breaking the protocol ('too many descriptors attached')."""
    store = Store(shelf.store)
    store.publish("ns", "a", images.bytes("logreg"))
    store.publish("ns", "b", images.bytes("ridge"))
    daemon = shelf.make()
    body = """
    import os, resource
    client.model("ns/a")  # connected, the board mapped
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    junk = []
    try:
        while True:
            junk.append(os.open("/dev/null", os.O_RDONLY))
    except OSError:
        pass
    result = []
    for _ in range(2):
        try:
            client.model("ns/b")
            result.append("served")
        except modelshelf.ShelfError as exc:
            result.append([type(exc).__name__, str(exc)])
    for fd in junk:
        os.close(fd)
    result.append(list(client.model("ns/b").predict(np.ones((1, 4))).shape))
    """
    *refused, served = run_client(daemon.socket, body)
    for name, message in refused:
        assert name == "ShelfBusy", (name, message)
        assert "this process is out of file descriptors (its limit is 64" in message
    assert served == [1]  # once descriptors are free again


def test_a_fetch_past_the_address_space_limit_is_refused_and_the_daemon_lives(
    shelf: Shelf, images: Images
) -> None:
    """Under ``ulimit -v`` (RLIMIT_AS) the store's client (Rust) aborted the whole daemon on an
    allocation it could not make ("memory allocation of 8388608 bytes failed"). The daemon
    says at start that the limit is set, and refuses a fetch the limit leaves no room for as
    busy, out of memory, counted, alive for everyone; with room again, the fetch is served.
    The limit is lowered on the running daemon (prlimit) to just above its size now, so the
    test does not depend on where a limit set at start would bite."""

    def a_limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 40, resource.RLIM_INFINITY))

    Store(shelf.store).publish("ns", "big", images.bytes("blob48m"))
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make(preexec=a_limit, l1_bytes="16M")
    assert daemon.proc is not None
    pid = daemon.proc.pid
    assert "address-space limit of 1099511627776 bytes" in daemon.logs()
    held = daemon.client().model("ns/lr")
    size = int(Path(f"/proc/{pid}/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.prlimit(pid, resource.RLIMIT_AS, (size + (100 << 20), resource.RLIM_INFINITY))
    try:
        with Client(daemon.socket, timeout=60) as client, pytest.raises(ShelfBusy) as refused:
            client.tensors("ns/big")  # maps 48 MiB, and 6 ranges of 8 MiB with their stacks
    finally:
        resource.prlimit(pid, resource.RLIMIT_AS, (resource.RLIM_INFINITY,) * 2)
    message = str(refused.value)
    assert "out of memory" in message and "address-space limit" in message, message
    assert daemon.stats()["address_space_refusals"] == 1
    assert "refused fetching image" in daemon.logs() and "ulimit -v" in daemon.logs()
    assert held.predict(images.X).shape == (16,)  # the daemon lives, what it served stays
    with Client(daemon.socket, timeout=60) as client:
        assert client.tensors("ns/big")["w"].nbytes == 48 << 20  # room again: served


def test_access_control(shelf: Shelf, images: Images) -> None:
    store = Store(shelf.store)
    store.publish("secret", "lr", images.bytes("logreg"))
    store.publish("team", "lr", images.bytes("logreg"))
    store.publish("open", "lr", images.bytes("logreg"))
    other = 54321  # no such user here: only it may use "secret"
    daemon = shelf.make(
        namespaces={
            "secret": {"uids": [other], "gids": []},
            "team": {"uids": [], "gids": [os.getgid()]},
        }
    )
    client = daemon.client()
    with pytest.raises(AccessDenied, match="namespace 'secret'"):
        client.model("secret/lr")
    assert client.model("team/lr").predict([[5, 3, 1, 0.2]]).shape == (1,)  # by group
    assert client.model("open/lr") is not None  # no rule: the daemon's own uid
    assert daemon.stats().get("l3_fetches") == 1  # the denied request fetched nothing


def test_name_grammar(shelf: Shelf) -> None:
    daemon = shelf.make()
    client = daemon.client()
    for bad in ("ns", "ns/", "/m", "NS/m", "ns/m@0", "ns/m@-1", "ns/../m", "n s/m", "ns/m/x"):
        with pytest.raises(InvalidModelName):
            client.model(bad)
    with pytest.raises(InvalidModelName):
        daemon.admin("prefetch", model="ns/a..b")


def test_pipelined_requests_are_answered_in_order(shelf: Shelf, images: Images) -> None:
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    Store(shelf.store).publish("ns", "r", images.bytes("ridge"))
    daemon = shelf.make()
    daemon.admin("prefetch", model="ns/lr")  # resident: answered on the spot
    sock = raw_connect(daemon.socket)
    _hello(sock)
    requests = [
        {"op": "acquire", "model": "ns/r@1"},  # a fetch: the slow path
        {"op": "ping"},  # must wait behind it
        {"op": "acquire", "model": "ns/lr@1"},
        {"op": "frobnicate"},
        {"op": "ping"},
    ]
    sock.sendall(b"".join(_wire.encode({**m, "id": i}) for i, m in enumerate(requests)))
    replies = []
    for _ in requests:
        reply, fds = _wire.recv(sock)
        _wire.close_fds(fds)
        replies.append((reply["id"], reply["ok"], len(fds)))
    assert replies == [(0, True, 1), (1, True, 0), (2, True, 1), (3, False, 0), (4, True, 0)]
    assert daemon.admin("status")["leases"] == 2
    sock.close()
    wait_for(lambda: daemon.admin("status")["leases"] == 0, what="leases released")


def _small_dev_shm() -> None:
    """preexec for the daemon: a private mount namespace whose /dev/shm is a 1 MiB tmpfs (the
    suite runs as root). Clients outside still map what it hands out: descriptors, not names."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    clone_newns, ms_rec, ms_private = 0x00020000, 0x4000, 1 << 18
    if libc.unshare(clone_newns) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    if libc.mount(b"none", b"/", None, ms_rec | ms_private, None) != 0:
        raise OSError(ctypes.get_errno(), "make / private")
    if libc.mount(b"tmpfs", b"/dev/shm", b"tmpfs", 0, b"size=1m") != 0:
        raise OSError(ctypes.get_errno(), "mount a small /dev/shm")


def test_a_tiny_dev_shm_does_not_limit_l1(shelf: Shelf, images: Images) -> None:
    """L1 segments are memfds, not /dev/shm files: the 64 MiB /dev/shm of a container (1 MiB
    here) neither fills nor limits L1; nothing of the daemon's appears in it."""
    blob = images.bytes("blob4m")
    Store(shelf.store).publish("ns", "blob", blob)
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make(preexec=_small_dev_shm)
    client = daemon.client()
    tensors = client.tensors("ns/blob")
    assert client.last_source == "l3"
    expected = modelshelf.load(blob).tensors
    for name, array in expected.items():
        np.testing.assert_array_equal(tensors[name], array)
    assert client.model("ns/lr").predict(images.X).shape == (16,)
    status = daemon.admin("status")
    assert status["l1"]["count"] == 2 and status["l1"]["bytes"] >= len(blob)
    assert daemon.stats()["shm_errors"] == 0 and daemon.segments()


def _memory_cgroup(tmp: Path, limit: int) -> tuple[Path, Callable[[], None]]:
    """A real memory cgroup of ``limit`` bytes (v2 where the machine has it, else v1) and a
    preexec that moves the daemon into it."""
    v2 = Path("/sys/fs/cgroup")
    if not (v2 / "cgroup.controllers").exists():
        v2 = Path("/sys/fs/cgroup/unified")
    if (v2 / "cgroup.controllers").exists() and "memory" in (
        v2 / "cgroup.subtree_control"
    ).read_text():
        group, limit_file = v2 / f"mst-{tmp.name[-12:]}", "memory.max"
    else:
        group, limit_file = (
            Path(f"/sys/fs/cgroup/memory/mst-{tmp.name[-12:]}"),
            "memory.limit_in_bytes",
        )
    group.mkdir()
    (group / limit_file).write_text(str(limit))

    def preexec() -> None:
        (group / "cgroup.procs").write_text(str(os.getpid()))

    return group, preexec


def test_l1_stays_below_the_daemons_memory_limit(shelf: Shelf, images: Images) -> None:
    """In a cgroup of 512 MiB, an l1_bytes of 4 GiB would end in the OOM killer: the daemon
    says so and keeps L1 below the limit."""
    group, preexec = _memory_cgroup(shelf.tmp, 512 << 20)
    try:
        daemon = shelf.make(preexec=preexec, l1_bytes=4 << 30)
        assert daemon.admin("status")["l1"]["budget"] == int((512 << 20) * 0.75)
        assert "l1_bytes is 4294967296 bytes but this daemon may use 536870912 bytes" in (
            daemon.logs()
        )
        Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
        assert daemon.client().model("ns/lr").predict(images.X).shape == (16,)
        daemon.stop()
    finally:
        group.rmdir()


def _descriptors(limit: int) -> Callable[[], None]:
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return preexec


def test_a_low_descriptor_limit_bounds_l1_and_every_model_is_served(
    shelf: Shelf, images: Images
) -> None:
    """With ``nofile`` 96 (each L1 segment is a descriptor) the daemon says at start how many
    segments it keeps, evicts by count as well as by bytes, and serves many more models than
    that without running out of descriptors."""
    store = Store(shelf.store)
    store.publish("ns", "lr", images.bytes("logreg"))
    for i in range(100):
        store.publish("ns", f"t{i}", modelshelf.compile_tensors({"w": np.full(64, float(i))}))
    daemon = shelf.make(preexec=_descriptors(96))
    assert "the descriptor limit (96) leaves little room" in daemon.logs()
    client = Client(daemon.socket, max_held_models=2)
    for i in range(100):
        np.testing.assert_array_equal(client.tensors(f"ns/t{i}")["w"], np.full(64, float(i)))
    assert client.model("ns/lr").predict(images.X).shape == (16,)
    status = daemon.admin("status")
    assert status["l1"]["count"] <= 16 and status["l1"]["evictions"] > 0
    assert daemon.proc is not None
    assert len(os.listdir(f"/proc/{daemon.proc.pid}/fd")) < 96
    client.close()


def test_a_client_can_hold_more_page_cache_models_than_the_daemon_has_descriptors(
    shelf: Shelf,
) -> None:
    """Each page-cache lease opens its file for the hand-off and closes it once sent: one
    client holding 140 models served from L2 costs a daemon of ``nofile`` 96 nothing per
    model. Before, the daemon kept one descriptor per leased file and refused the 40-odd
    models past its limit as busy ("out of file descriptors")."""
    store = Store(shelf.store)
    for i in range(140):
        store.publish("ns", f"t{i}", modelshelf.compile_tensors({"w": np.full(64, float(i))}))
    daemon = shelf.make(preexec=_descriptors(96))
    assert daemon.proc is not None
    client = Client(daemon.socket, max_held_models=256)
    held = [client.tensors(f"ns/t{i}")["w"] for i in range(140)]
    for i, w in enumerate(held):
        np.testing.assert_array_equal(w, np.full(64, float(i)))
    status = daemon.admin("status")
    assert status["l1"]["count"] <= 16 and status["l2"]["leases"] >= 140 - 16
    assert len(os.listdir(f"/proc/{daemon.proc.pid}/fd")) < 96
    counters = daemon.stats()
    assert counters.get("refused_busy", 0) == 0 and counters["served_page_cache"] >= 124
    del held
    client.close()


def _still(directory: str) -> bool:
    before = sorted(os.listdir(directory))
    time.sleep(0.3)
    return sorted(os.listdir(directory)) == before


def test_out_of_descriptors_is_busy_loses_nothing_and_status_still_answers(
    shelf: Shelf, images: Images
) -> None:
    """A daemon at its descriptor limit (lowered under it with ``prlimit``, as a leak
    elsewhere in the process would leave it): each request that needs a descriptor is
    ``busy`` saying so. Before, the daemon deleted the valid L2 files it could not open
    (EMFILE taken for a damaged file), refused the rest as a store outage, logged a
    traceback a second, and its admin socket stopped answering."""
    store = Store(shelf.store)
    for i in range(140):
        store.publish("ns", f"t{i}", modelshelf.compile_tensors({"w": np.full(64, float(i))}))
    daemon = shelf.make(preexec=_descriptors(96), ref_poll_seconds=3600, ref_full_list_seconds=3600)
    assert daemon.proc is not None
    pid = daemon.proc.pid
    client = Client(daemon.socket, max_held_models=256)
    for i in range(140):  # every image onto the node (L1 keeps 16 of them)
        client.tensors(f"ns/t{i}")
        client.release(f"ns/t{i}")
    wait_for(lambda: daemon.admin("status")["l2"]["count"] == 140, what="every L2 file")
    wait_for(lambda: daemon.admin("status")["l2_writes"] == 0, what="the L2 writes")
    # the daemon at its limit: a new descriptor takes the lowest free number, and the limit
    # is that number (once the reaper's closes are done: the count holds still)
    wait_for(lambda: _still(f"/proc/{pid}/fd"), what="the daemon's descriptors to settle")
    numbers = {int(n) for n in os.listdir(f"/proc/{pid}/fd")}
    lowest_free = min(set(range(max(numbers) + 2)) - numbers)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (lowest_free, 96))
    held, refused = [], []
    for i in range(140):
        try:
            held.append(client.tensors(f"ns/t{i}"))
        except ShelfBusy as exc:
            refused.append((f"ns:t{i}", str(exc)))
    assert refused, "no request met the limit"
    assert all("out of file descriptors" in text for _, text in refused), refused[:3]
    status = daemon.admin("status")  # the operator gets in, through the reserve
    assert status["l2"]["count"] == 140 and status["store_reachable"]
    counters = daemon.stats()
    assert counters.get("refused_store_unavailable", 0) == 0
    assert counters["refused_busy"] == len(refused)
    assert "discarded" not in daemon.logs() and "Traceback" not in daemon.logs()
    del held
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (96, 96))
    fresh = Client(daemon.socket, max_held_models=2)  # the descriptors are back: all served
    for i in range(140):
        np.testing.assert_array_equal(fresh.tensors(f"ns/t{i}")["w"], np.full(64, float(i)))
    fresh.close()
    client.close()


def test_hostile_release_lists_are_bounded_and_never_release_what_is_not_theirs(
    shelf: Shelf, images: Images
) -> None:
    """A peer's ``release`` lists (alone or riding on an acquire) are type-checked and bounded;
    digests it holds no lease on are counted and skipped, never taken from another client."""
    store = Store(shelf.store)
    info = store.publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make()
    victim = daemon.client()
    kept = victim.model("ns/lr")  # another connection's lease on the same image
    sock = raw_connect(daemon.socket)
    _hello(sock)
    cases: list[tuple[dict[str, object], str]] = [
        ({"op": "release", "digests": [info.digest] * 3}, "ok"),  # holds none: skipped
        ({"op": "release", "digests": "abc"}, "bad_request"),
        ({"op": "release", "digests": ["x"] * 513}, "bad_request"),
        ({"op": "release", "digests": [1, None, {"a": 1}]}, "ok"),
        ({"op": "acquire", "model": "ns/lr", "release": "everything"}, "bad_request"),
        ({"op": "acquire", "model": "ns/lr", "release": [info.digest] * 600}, "bad_request"),
    ]
    for message, expected in cases:
        _wire.send(sock, message)
        reply, fds = _wire.recv(sock)
        _wire.close_fds(fds)
        assert (reply.get("error") or "ok") == expected, (message, reply)
        if expected == "ok":
            assert reply["released"] == 0
    # a well-formed acquire carrying a release of its own lease works, and nothing else moved
    _wire.send(sock, {"op": "acquire", "model": "ns/lr"})
    reply, fds = _wire.recv(sock)
    _wire.close_fds(fds)
    _wire.send(sock, {"op": "acquire", "model": "ns/lr", "release": [info.digest]})
    reply, fds = _wire.recv(sock)
    _wire.close_fds(fds)
    assert reply["ok"] is True
    mine = [c["leases"] for c in daemon.admin("status")["clients"] if c["pid"] == os.getpid()]
    assert sorted(mine) == [1, 1]  # the victim's lease, and the raw peer's (one taken, one
    # given back by the acquire that carried its release)
    assert daemon.stats()["release_unknown"] == 6  # 3 unheld + 3 malformed items
    assert kept.predict(images.X).shape == (16,)
    sock.close()


def test_a_daemon_that_accepts_but_never_answers_says_so(tmp_path: Path) -> None:
    """A socket that accepts connections and never answers: the client gives up after its
    timeout and says so, instead of hanging or blaming a missing daemon."""
    path = tmp_path / "silent.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(4)  # connections queue; nothing ever reads or writes them
    try:
        client = modelshelf.Client(str(path), timeout=0.5)
        with pytest.raises(modelshelf.DaemonUnavailable, match=r"did not answer within 0.5 s"):
            client.model("ns/lr")
    finally:
        listener.close()


def test_a_gids_rule_admits_supplementary_group_members(shelf: Shelf, images: Images) -> None:
    """``gids`` means members of the group, as ``usermod -aG`` makes them: a real process whose
    supplementary groups include the rule's gid may acquire, the same process without it may
    not (issue 9, point 11)."""
    Store(shelf.store).publish("team", "lr", images.bytes("logreg"))
    member = 4242  # a gid nobody has as primary group here
    daemon = shelf.make(namespaces={"team": {"uids": [], "gids": [member]}})
    script = (
        "import modelshelf\n"
        "try:\n"
        "    modelshelf.Client().model('team/lr')\n"
        "    print('ALLOWED')\n"
        "except modelshelf.AccessDenied:\n"
        "    print('DENIED')\n"
    )
    env = {**os.environ, "MODELSHELF_SOCKET": daemon.socket}

    def run(groups: list[int]) -> str:
        proc = subprocess.run(
            [sys.executable, "-c", script], extra_groups=groups, env=env,
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return proc.stdout.strip()

    assert run([]) == "DENIED"  # neither its uid nor its primary gid is in the rule
    assert run([member]) == "ALLOWED"


def test_a_flood_of_made_up_ops_is_logged_once(shelf: Shelf) -> None:
    """Refusals are logged at a bounded rate whatever the peer puts in its messages: 300
    distinct unknown ops make one log line, and every one is counted."""
    daemon = shelf.make(log_level="INFO")
    sock = raw_connect(daemon.socket)
    _hello(sock)
    for i in range(300):
        _wire.send(sock, {"op": f"op-{i}"})
        reply, fds = _wire.recv(sock)
        _wire.close_fds(fds)
        assert reply["error"] == "bad_request"
    sock.close()
    assert daemon.stats()["refused_bad_request"] == 300
    assert daemon.logs().count("refused for pid") == 1


def _group_used(group: Path) -> int:
    """What the group uses that cannot be reclaimed (as machine.read_memory counts it)."""
    v2 = (group / "memory.current").exists()
    usage = int((group / ("memory.current" if v2 else "memory.usage_in_bytes")).read_text())
    stat = dict(line.split() for line in (group / "memory.stat").read_text().splitlines())
    prefix = "" if v2 else "total_"
    return usage - int(stat[f"{prefix}active_file"]) - int(stat[f"{prefix}inactive_file"])


def test_memory_pressure_shrinks_l1_and_it_grows_back(shelf: Shelf, images: Images) -> None:
    """A real cgroup whose limit is lowered under the daemon: it sees the pressure, evicts
    from L1 and raises the clients' pressure signal; once the limit is raised again, L1's
    target grows back to its budget."""
    group, preexec = _memory_cgroup(shelf.tmp, 2 << 30)
    limit_file = group / (
        "memory.max" if (group / "memory.max").exists() else "memory.limit_in_bytes"
    )
    store = Store(shelf.store)
    for i in range(12):
        tensors = {"w": np.full(20 << 17, float(i))}  # 20 MiB each
        store.publish("ns", f"big{i}", modelshelf.compile_tensors(tensors))
    try:
        daemon = shelf.make(preexec=preexec, l1_bytes=400 << 20)
        configured = daemon.admin("status")["l1"]["budget"]
        run_client(
            daemon.socket,
            """
            for i in range(12):
                client.tensors(f"ns/big{i}")
                client.release(f"ns/big{i}")
            result = 1
            """,
        )
        filled = daemon.admin("status")["l1"]["bytes"]
        assert filled >= 12 * (20 << 20)
        pressure_before = daemon.admin("status")["pressure"]
        limit_file.write_text(str(int(_group_used(group) / 0.93)))  # over 90% in use
        wait_for(lambda: daemon.admin("status")["memory"]["pressed"], what="pressure seen")
        status = daemon.admin("status")
        assert status["l1"]["budget"] < configured and status["l1"]["bytes"] < filled
        assert status["pressure"] > pressure_before
        assert daemon.stats()["memory_pressure"] >= 1
        assert "memory pressed" in daemon.logs()
        limit_file.write_text(str(2 << 30))
        wait_for(
            lambda: daemon.admin("status")["l1"]["budget"] == configured,
            what="L1's target back to its budget",
        )
        assert not daemon.admin("status")["memory"]["pressed"]
    finally:
        with contextlib.suppress(OSError):
            limit_file.write_text(str(2 << 30))
        for d in shelf.daemons:  # the group can go once nothing runs in it
            d.stop()
        group.rmdir()


def test_the_leases_of_a_connection_are_bounded(shelf: Shelf, images: Images) -> None:
    """A peer that acquires without end (closing each descriptor, never releasing) grew the
    daemon by ~120 bytes a lease without limit: 400,000 leases, 46 MiB (a probe). Past
    MAX_LEASES a connection is refused busy saying why, on both paths (the L1 fast path and
    the ordinary one); a release makes room again, and other connections are not affected."""
    from modelshelfd.handlers import MAX_LEASES

    store = Store(shelf.store)
    store.publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make()
    sock = raw_connect(daemon.socket)
    _hello(sock)
    batch = 64
    replies: list[dict[str, object]] = []
    for start in range(0, MAX_LEASES + 2, batch):  # pipelined, as the probe did
        n = min(batch, MAX_LEASES + 2 - start)
        for _ in range(n):
            _wire.send(sock, {"op": "acquire", "model": "ns/lr"})
        for _ in range(n):
            reply, fds = _wire.recv(sock)
            _wire.close_fds(fds)
            replies.append(reply)
    assert all(r.get("ok") for r in replies[:MAX_LEASES])
    for reply in replies[MAX_LEASES:]:
        assert reply.get("error") == "busy" and "the most one may" in str(reply["message"])
    assert daemon.admin("status")["l1"]["leases"] == MAX_LEASES
    _wire.send(sock, {"op": "release", "digest": replies[0]["digest"]})
    assert _wire.recv(sock)[0]["ok"]
    _wire.send(sock, {"op": "acquire", "model": "ns/lr"})
    reply, fds = _wire.recv(sock)
    _wire.close_fds(fds)
    assert reply["ok"], reply
    other = daemon.client()
    assert other.model("ns/lr").predict(images.X).shape == (16,)
    sock.close()
    wait_for(lambda: daemon.admin("status")["l1"]["leases"] == 1, what="the leases to go")


def test_malformed_messages_are_counted(shelf: Shelf) -> None:
    """A peer flooding garbage was visible only in a rate-limited log line (a probe)."""
    daemon = shelf.make()
    bad = [struct.pack(">I", 0), struct.pack(">I", 1 << 30), struct.pack(">I", 3) + b"[1]"]
    for raw in bad:
        sock = raw_connect(daemon.socket)
        _hello(sock)
        sock.sendall(raw)
        wait_for(lambda s=sock: _closed(s), what="the connection closed")
        sock.close()
    wait_for(lambda: daemon.stats().get("protocol_errors") == len(bad), what="the count")


def test_every_l1_lease_counts_as_served_from_l1(shelf: Shelf, images: Images) -> None:
    """The fast path (an L1 hit answered without a task switch) left served_l1 out: five
    acquires, l1_hits 4, served_l1 1 (a probe): the page cache's share looked far larger."""
    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make()
    for _ in range(5):
        with Client(daemon.socket) as client:
            client.model("ns/lr")
    counters = daemon.stats()
    assert counters["served_l1"] == 5 and counters["served_page_cache"] == 0
    assert counters["l1_hits"] + counters["l3_hits"] == 5


def test_a_truncated_store_copy_is_an_image_error_not_an_outage(shelf: Shelf, images: Images):
    """A stored image shorter than its ref was answered store_unavailable ('retry later', for
    ever) with no validation failure counted; a malformed ref said nothing of it (a probe)."""
    from modelshelf.errors import ImageError
    from modelshelf.store import image_path

    store = Store(shelf.store)
    info = store.publish("ns", "lr", images.bytes("logreg"))
    store.publish("ns", "r", images.bytes("ridge"))
    root = Path(shelf.store.removeprefix("file://"))
    damaged = root / image_path(info.digest)
    damaged.write_bytes(damaged.read_bytes()[: info.size // 2])
    (root / "refs" / "ns" / "r" / f"{2:020d}").write_text("{not json")
    daemon = shelf.make()
    client = Client(daemon.socket)
    with pytest.raises(ImageError, match="the ref says"):
        client.model("ns/lr")
    with pytest.raises(StoreError, match="malformed ref for this model"):
        client.model("ns/r@2")
    client.close()
    counters = daemon.stats()
    assert counters["validation_failures"] == 2 and counters["refused_image_error"] == 1


def test_the_leases_of_one_uid_are_bounded_across_its_connections(
    shelf: Shelf, images: Images
) -> None:
    """The per-connection bound alone let one uid hold 256 x 8,192 leases (the daemon grew
    from 49 to 292 MiB; a second probe). Its connections together stop at
    MAX_LEASES_PER_UID; another uid (root's admin socket here) is not affected, and the
    tally goes with the connections."""
    from modelshelfd.handlers import MAX_LEASES, MAX_LEASES_PER_UID

    Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    daemon = shelf.make()
    socks = []
    for _ in range(MAX_LEASES_PER_UID // MAX_LEASES):
        sock = raw_connect(daemon.socket)
        _hello(sock)
        for _batch in range(MAX_LEASES // 64):  # pipelined, within the daemon's bound
            for _ in range(64):
                _wire.send(sock, {"op": "acquire", "model": "ns/lr"})
            for _ in range(64):
                reply, fds = _wire.recv(sock)
                _wire.close_fds(fds)
                assert reply.get("ok"), reply
        socks.append(sock)
    extra = raw_connect(daemon.socket)
    _hello(extra)
    _wire.send(extra, {"op": "acquire", "model": "ns/lr"})
    reply, fds = _wire.recv(extra)
    _wire.close_fds(fds)
    assert reply.get("error") == "busy" and "the most one uid may" in reply["message"], reply
    socks.pop().close()
    wait_for(lambda: daemon.admin("status")["leases"] <= MAX_LEASES_PER_UID - MAX_LEASES,
             what="a connection's leases to go")  # fmt: skip
    _wire.send(extra, {"op": "acquire", "model": "ns/lr"})
    reply, fds = _wire.recv(extra)
    _wire.close_fds(fds)
    assert reply.get("ok"), reply
    for sock in (*socks, extra):
        sock.close()


def test_an_image_lost_under_its_ref_is_not_a_missing_model(shelf: Shelf, images: Images) -> None:
    """The store lists the model and its ref names an image the store no longer holds: it was
    answered not_found ('image ...: not found in the store'), as if the model did not exist."""
    info = Store(shelf.store).publish("ns", "lr", images.bytes("logreg"))
    (shelf.tmp / "store" / "images" / info.digest).unlink()
    daemon = shelf.make()
    with pytest.raises(StoreError, match="names an image the store does not hold: retrying"):
        daemon.client().model("ns/lr")
    assert daemon.admin("status")["store_reachable"] is True  # the store answers
