"""One Client used by many threads and by an AsyncClient's worker threads, against a real
daemon: the held set's order, the connection's turn and a close while requests wait. Found by
driving the client concurrently (8 threads, cancelled tasks, a stopped daemon)."""

from __future__ import annotations

import asyncio
import signal
import threading
import time

import numpy as np
import pytest

import modelshelf
from modelshelf import AsyncClient
from modelshelf.client import _PRESSURE, Client, _unchanged
from modelshelf.errors import DaemonUnavailable
from modelshelf.store import Store

from .conftest import Shelf


def _publish(shelf: Shelf, n: int) -> None:
    store = Store(shelf.store)
    for i in range(n):
        store.publish("ns", f"t{i}", modelshelf.compile_tensors({"w": np.full(8, float(i))}))


def test_a_held_model_is_answered_while_another_thread_walks_the_held_set(
    shelf: Shelf,
) -> None:
    """held_model() reordered the held set without the lock while a thread holding it walked
    the set (a pressure trim): "OrderedDict mutated during iteration", a bare RuntimeError.

    A memory-pressure event of the daemon (PSI on a loaded machine), or a move of the board's
    epoch or of a model's slot, makes the held models stale (held_model answers None and
    touches nothing): the walk is then done again. (CI at cafbd2a met a None with the pressure
    word unchanged: the check looked at pressure only.)"""
    _publish(shelf, 3)
    client = Client(shelf.make().socket)
    try:
        for _attempt in range(3):
            for i in range(3):
                client.model(f"ns/t{i}")
            held = _walk_while_held(client)
            if held:
                break
            board = client._board
            assert board is not None, "held_model answered None with no board"
            moved = board.words[_PRESSURE] != client._pressure or not all(
                _unchanged(board, held) for held in list(client._held.values())
            )  # a pressure event, or the daemon moved the epoch or a model's slot
            assert moved, "held_model answered None while the board said nothing changed"
        else:
            pytest.fail("the board moved three times in a row: the machine is too loaded")
    finally:
        client.close()


def _walk_while_held(client: Client) -> bool:
    """One thread walks the held set, holding the lock, while this one asks for a held model:
    whether it was answered (False: not fresh); never a RuntimeError in the walk."""
    walked, answered = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def trim() -> None:  # what _trim_if_pressed does, stopped midway
        with client._lock:
            walk = iter(client._held)
            next(walk)
            walked.set()
            answered.wait(10)
            try:
                list(walk)
            except RuntimeError as exc:
                errors.append(exc)

    thread = threading.Thread(target=trim)
    thread.start()
    try:
        assert walked.wait(10)
        held = client.held_model("ns/t0") is not None  # answered without waiting for the lock
    finally:
        answered.set()
        thread.join(10)
    assert errors == []
    return held


def test_requests_that_wait_for_the_connection_wait_one_timeout_at_most(shelf: Shelf) -> None:
    """Against a stopped daemon, six threads' calls lined up on the connection and each then
    waited its own timeout: 2, 4, ... 12 s for a timeout of 2 s."""
    _publish(shelf, 6)
    daemon = shelf.make()
    client = Client(daemon.socket, timeout=1.0)
    client.model("ns/t0")  # connected
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGSTOP)
    took: list[float] = []
    try:

        def call(i: int) -> None:
            start = time.monotonic()
            with pytest.raises(DaemonUnavailable):
                client.model(f"ns/t{i}")
            took.append(time.monotonic() - start)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(1, 6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        daemon.proc.send_signal(signal.SIGCONT)
    assert len(took) == 5 and max(took) < 2 * 1.0 + 0.5, took
    client.close()


async def test_a_close_stops_the_acquires_still_waiting_for_the_connection(shelf: Shelf) -> None:
    """An AsyncClient's worker thread outlives its cancelled task: it took the connection after
    the close, reconnected, and held leases until the client was garbage collected."""
    _publish(shelf, 2)
    daemon = shelf.make()
    client = AsyncClient(daemon.socket)
    await client.model("ns/t0")
    holding, go, done = threading.Event(), threading.Event(), threading.Event()

    def other_thread() -> None:  # holds the connection, then closes the client
        with client.client._lock:
            holding.set()
            go.wait(10)
            client.client.close()
        done.set()

    threading.Thread(target=other_thread).start()
    holding.wait(10)
    task = asyncio.create_task(client.model("ns/t1"))
    await asyncio.sleep(0.3)  # its worker thread waits for the connection
    task.cancel()
    go.set()
    await asyncio.to_thread(done.wait, 10)
    await asyncio.sleep(1.0)  # the worker had its turn: refused, not reconnected
    assert client.client._sock is None
    assert daemon.admin("status")["leases"] == 0


class _Interrupted(Exception):
    """What a signal handler raises: Celery's soft time limit, an alarm-based timeout."""


@pytest.mark.parametrize("op", ["model", "release"])
def test_a_request_interrupted_while_it_waits_never_shifts_the_replies(
    shelf: Shelf, op: str
) -> None:
    """An exception raised into the wait (a signal handler's) left the connection open with
    the reply unread: each later request read the one before's reply, and ``model("ns/t2")``
    returned t1's image (held under t2's name). The interrupted connection is dropped now,
    and a reply with another request's id is never taken."""
    _publish(shelf, 5)
    daemon = shelf.make()
    assert daemon.proc is not None
    client = Client(daemon.socket, timeout=10)
    client.model("ns/t0")

    def interrupt(signum: int, frame: object) -> None:
        raise _Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    daemon.proc.send_signal(signal.SIGSTOP)  # the daemon slow to answer
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(_Interrupted):
            if op == "model":
                client.model("ns/t1")
            else:
                client.release("ns/t0")
                client.model("ns/t1")  # the release is sent with the next acquire
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        daemon.proc.send_signal(signal.SIGCONT)
    time.sleep(0.5)  # the daemon's answer to the interrupted request has come
    for i in (2, 3, 4, 1):
        np.testing.assert_array_equal(client.model(f"ns/t{i}").tensors["w"], np.full(8, float(i)))
    client.close()


def test_a_client_pointed_at_the_admin_socket_says_so(shelf: Shelf) -> None:
    daemon = shelf.make()
    with pytest.raises(DaemonUnavailable, match=r"is the daemon's admin socket.*MODELSHELF_SOCKET"):
        Client(daemon.admin_socket).model("ns/t0")
