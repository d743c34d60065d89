"""A process that forks while it uses a Client: the child gets its own connection (never its
parent's lock, socket or leases), and the parent's leases end with the parent, whatever its
children inherited."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np

from modelshelf.store import Store

from .conftest import Images, Shelf, wait_for


def _wait_child(pid: int, seconds: float = 30.0) -> int | None:
    """The child's exit status, or None (killed) if it did not end within ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def test_a_child_forked_while_another_thread_holds_the_client_does_not_hang(
    shelf: Shelf, images: Images
) -> None:
    Store(shelf.store).publish("ns", "m", images.bytes("logreg"))
    daemon = shelf.make()
    client = daemon.client()
    expected = client.model("ns/m").predict(images.X)
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:  # as a thread inside a call at the moment of the fork
        with client._lock:
            holding.set()
            done.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    holding.wait(30)
    pid = os.fork()
    if pid == 0:  # the child: its own connection, its own lock
        try:
            got = client.model("ns/m").predict(images.X)
            os._exit(0 if np.array_equal(got, expected) else 2)
        except BaseException:
            os._exit(3)
    done.set()
    thread.join()
    assert _wait_child(pid) == 0  # None: it hung on the parent's lock


def test_a_forked_child_does_not_keep_its_parents_leases(shelf: Shelf, images: Images) -> None:
    Store(shelf.store).publish("ns", "m", images.bytes("logreg"))
    daemon = shelf.make()
    client = daemon.client()
    client.model("ns/m")
    assert daemon.admin("status")["leases"] == 1
    pid = os.fork()
    if pid == 0:  # a child that never uses modelshelf (a worker of another library)
        time.sleep(30)
        os._exit(0)
    try:
        client.close()
        wait_for(lambda: daemon.admin("status")["leases"] == 0, what="the parent's leases to end")
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_an_idle_client_still_releases_at_once_and_keeps_its_board(
    shelf: Shelf, images: Images
) -> None:
    """The release thread's look at the connection (every second) must never wait: a recv on
    the socket waited out its timeout (10 s), holding back every release meanwhile, then took
    the live daemon for gone."""
    import gc

    Store(shelf.store).publish("ns", "m", images.bytes("logreg"))
    daemon = shelf.make()
    client = daemon.client()
    model = client.model("ns/m")
    time.sleep(2.5)  # idle: the thread has looked at least twice
    assert client._board is not None
    client.release("ns/m")
    del model
    gc.collect()
    wait_for(lambda: daemon.admin("status")["leases"] == 0, timeout=3.0, what="the release")
    assert client._board is not None
