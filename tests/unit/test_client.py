"""The client against a scripted daemon (a thread on a real Unix socket): a reply it cannot
use gives its lease back, and a forked child never speaks on its parent's connection."""

from __future__ import annotations

import fcntl
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelshelf
from modelshelf import wire as _wire
from modelshelf.client import Client
from modelshelf.errors import ProtocolError

from .test_board import EPOCH, GENERATION, bump, make_board, slot_offset


class FakeDaemon:
    """Answers hello with a board, acquire with ``acquire_reply`` and a small memfd, and
    records every request."""

    def __init__(self, path: Path, acquire_reply: dict[str, Any]) -> None:
        self.path = str(path)
        self.acquire_reply = acquire_reply
        self.hello_extra: dict[str, Any] = {}
        self.image = modelshelf.compile_tensors({"w": np.arange(10.0)})
        self.requests: list[dict[str, Any]] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(4)
        self.board = os.memfd_create("board", os.MFD_ALLOW_SEALING)  # a board without notices
        os.ftruncate(self.board, 4096)
        os.pwrite(self.board, b"MSBOARD1" + (1).to_bytes(8, "little"), 0)
        fcntl.fcntl(self.board, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            while True:
                try:
                    message, fds = _wire.recv(conn)
                except (EOFError, OSError):
                    return
                _wire.close_fds(fds)
                self.requests.append(message)
                rid = {"id": message["id"]} if "id" in message else {}
                if message["op"] == "hello":
                    hello = {"ok": True, "protocol": 1, "generation": 1, **self.hello_extra}
                    _wire.send(conn, hello, [self.board])
                elif message["op"] == "acquire":
                    image = os.memfd_create("image")
                    os.write(image, self.image)
                    _wire.send(conn, {"ok": True, **self.acquire_reply, **rid}, [image])
                    os.close(image)
                else:
                    _wire.send(conn, {"ok": True, **rid})

    def close(self) -> None:
        self.listener.close()
        os.close(self.board)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeDaemon]:
    d = FakeDaemon(
        tmp_path / "fake.sock",
        {"model": "ns/m", "version": 1, "digest": "ab" * 32, "size": 1 << 20, "tier": "l1"},
    )
    yield d
    d.close()


def test_an_unusable_acquire_reply_gives_the_lease_back(fake: FakeDaemon) -> None:
    client = Client(fake.path, timeout=10)
    with pytest.raises(ProtocolError, match="cannot map"):  # 1 MiB announced, less sent
        client.model("ns/m")
    client.close()
    fake.thread.join(10)
    ops = [(m["op"], m.get("digest")) for m in fake.requests]
    assert ops == [("hello", None), ("acquire", None), ("release", "ab" * 32)]


@pytest.mark.parametrize("size", [0, -5, 1 << 70])
def test_an_impossible_size_in_an_acquire_reply_is_a_protocol_error(
    fake: FakeDaemon, size: int
) -> None:
    fake.acquire_reply["size"] = size  # was a bare OverflowError from mmap
    client = Client(fake.path, timeout=10)
    with pytest.raises(ProtocolError, match=f"size {size} is not in 1"):
        client.model("ns/m")
    client.close()


def test_a_forked_child_never_uses_the_parents_connection(fake: FakeDaemon) -> None:
    fake.acquire_reply["size"] = len(fake.image)
    client = Client(fake.path, timeout=10)
    held = client.model("ns/m")
    sent = len(fake.requests)
    pid = os.fork()
    if pid == 0:  # the child: whatever happens, never write to the parent's socket
        code = 1
        try:
            code = 0 if client.release("ns/m") is False else 3  # the parent's, not the child's
        except BaseException:
            code = 2
        finally:
            client.close()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(fake.requests) == sent
    assert client.model("ns/m") is held  # the parent's lease and cache are intact
    client.close()


def test_held_budgets_come_from_the_caller_the_environment_or_the_daemon(
    fake: FakeDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.hello_extra = {"held_bytes": 12345, "held_models": 7}
    fake.acquire_reply["size"] = len(fake.image)
    advised = Client(fake.path, timeout=10)
    advised.model("ns/m@1")  # connects: the daemon's advice applies
    assert (advised.max_held_bytes, advised.max_held_models) == (12345, 7)
    advised.close()
    monkeypatch.setenv("MODELSHELF_MAX_HELD_BYTES", "64M")
    monkeypatch.setenv("MODELSHELF_MAX_HELD_MODELS", "3")
    assert Client(fake.path).max_held_bytes == 64 << 20
    assert Client(fake.path).max_held_models == 3
    assert Client(fake.path, max_held_bytes=10, max_held_models=0).held()["max_bytes"] == 10


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MODELSHELF_MAX_HELD_BYTES", "lots"),
        ("MODELSHELF_MAX_HELD_BYTES", "-5"),
        ("MODELSHELF_MAX_HELD_BYTES", "1.5"),  # a fraction of a byte
        ("MODELSHELF_MAX_HELD_MODELS", "10k"),
        ("MODELSHELF_MAX_HELD_MODELS", "10b"),
        ("MODELSHELF_MAX_HELD_MODELS", "\u00b2"),  # a digit to str.isdigit, not to int()
        ("MODELSHELF_TIMEOUT", "nan"),
        ("MODELSHELF_TIMEOUT", "inf"),
        ("MODELSHELF_TIMEOUT", "0"),
        ("MODELSHELF_TIMEOUT", "1e9"),
        ("MODELSHELF_TIMEOUT", "5s"),
    ],
)
def test_a_malformed_budget_in_the_environment_names_it(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=rf"{variable} must be .* got '{re.escape(value)}'"):
        Client("/nonexistent.sock")


def test_the_environment_takes_sizes_as_the_daemon_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """ "1.5G" was refused by the client and accepted by the daemon's configuration."""
    monkeypatch.setenv("MODELSHELF_MAX_HELD_BYTES", "1.5G")
    assert Client("/nonexistent.sock").max_held_bytes == 3 << 29


@pytest.mark.parametrize("bad", [-1, 1.5, "1G", True])
def test_a_malformed_budget_argument_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="max_held_bytes must be a non-negative integer"):
        Client("/nonexistent.sock", max_held_bytes=bad)  # type: ignore[arg-type]


def test_a_model_larger_than_the_budget_is_returned_not_kept(fake: FakeDaemon) -> None:
    fake.acquire_reply["size"] = len(fake.image)
    client = Client(fake.path, timeout=10, max_held_bytes=len(fake.image) - 1)
    model = client.model("ns/m@1")
    assert client.held()["models"] == 0 and client.last_source == "l1"
    assert model.tensors["w"][3] == 3.0
    del model  # the mapping ends: its lease is released (by the flusher, or the next request)
    deadline = time.monotonic() + 5
    while not any(m.get("op") == "release" for m in fake.requests):
        assert time.monotonic() < deadline, fake.requests
        time.sleep(0.01)
    release = next(m for m in fake.requests if m.get("op") == "release")
    assert release["digests"] == ["ab" * 32]
    client.close()


def test_the_release_thread_starts_with_the_connection_not_the_first_model(
    fake: FakeDaemon,
) -> None:
    # Thread.start() waits until the new thread runs: on a busy node, milliseconds that the
    # first acquire of a process must not pay (bench/peers.py, load + first prediction).
    fake.acquire_reply["size"] = len(fake.image)
    client = Client(fake.path, timeout=10)
    client._connect()
    flusher = client._flusher
    assert flusher is not None and flusher.is_alive()
    started = threading.Thread.start
    calls: list[str] = []

    def counting(self: threading.Thread) -> None:
        calls.append(self.name)
        started(self)

    threading.Thread.start = counting  # type: ignore[method-assign]
    try:
        client.model("ns/m@1")
    finally:
        threading.Thread.start = started  # type: ignore[method-assign]
    assert calls == [] and client._flusher is flusher
    client.close()


def test_the_timeout_comes_from_the_caller_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Client("/nonexistent.sock").timeout == 10.0
    monkeypatch.setenv("MODELSHELF_TIMEOUT", "2.5")
    assert Client("/nonexistent.sock").timeout == 2.5
    assert Client("/nonexistent.sock", timeout=1).timeout == 1.0
    for bad in ("soon", "-1", "nan", "0"):
        monkeypatch.setenv("MODELSHELF_TIMEOUT", bad)
        with pytest.raises(ValueError, match=r"MODELSHELF_TIMEOUT must be a number of seconds"):
            Client("/nonexistent.sock")
    with pytest.raises(ValueError, match=r"the timeout must be .* below 1000000000, .* got 0"):
        Client("/nonexistent.sock", timeout=0)


def _acquires(fake: FakeDaemon) -> int:
    return sum(m.get("op") == "acquire" for m in fake.requests)


def test_a_held_model_is_rechecked_only_when_its_own_model_changed(fake: FakeDaemon) -> None:
    """Per-model notices: another model's change costs no round trip; its own, or the epoch
    (every model), costs one, for latest and explicit versions alike (issue 14, point 2)."""
    os.close(fake.board)
    fake.board = make_board(slots=64)
    fake.acquire_reply["size"] = len(fake.image)
    other = next(f"ns/o{i}" for i in range(64) if slot_offset(f"ns/o{i}") != slot_offset("ns/m"))
    client = Client(fake.path, timeout=10)
    latest, pinned = client.model("ns/m"), client.model("ns/m@1")
    assert _acquires(fake) == 2
    for _ in range(3):  # another model published: the generation of page 0 moves too
        bump(fake.board, slot_offset(other))
        bump(fake.board, GENERATION)
        assert client.model("ns/m") is latest and client.model("ns/m@1") is pinned
        assert client.last_source == "held" and _acquires(fake) == 2
    bump(fake.board, slot_offset("ns/m"))
    assert client.model("ns/m") is latest and client.model("ns/m@1") is pinned
    assert _acquires(fake) == 4
    rechecks = [m for m in fake.requests if m.get("op") == "acquire"][2:]
    assert all(m["have"] == "ab" * 32 for m in rechecks)  # a re-check, not a new acquire
    bump(fake.board, EPOCH)
    client.model("ns/m")
    assert _acquires(fake) == 5
    client.close()


def test_a_board_without_notices_rechecks_on_every_change(fake: FakeDaemon) -> None:
    """An older daemon's board (no notices): its one generation covers every model."""
    fake.acquire_reply["size"] = len(fake.image)
    client = Client(fake.path, timeout=10)
    held = client.model("ns/m")
    assert client.model("ns/m") is held and _acquires(fake) == 1
    bump(fake.board, GENERATION)
    assert client.model("ns/m") is held and _acquires(fake) == 2
    client.close()


def test_a_board_too_small_is_refused_clearly(fake: FakeDaemon) -> None:
    os.close(fake.board)
    fake.board = make_board(size=100, notices=False)
    client = Client(fake.path, timeout=10)
    with pytest.raises(ProtocolError, match="board is 100 bytes, expected at least 4096"):
        client.model("ns/m")
    assert _acquires(fake) == 0
    client.close()


def test_clients_models_and_images_refuse_pickling_and_copying_saying_why(tmp_path) -> None:
    """They map memory or hold a connection: pickle's own error named CPython internals
    ("cannot pickle 'mmap.mmap' object"), and copy.copy(client) returned a second Client on
    the same socket whose close emptied the first one's held set (a probe)."""
    import copy
    import pickle

    import numpy as np

    import modelshelf
    from modelshelf import AsyncClient, Client

    path = tmp_path / "m.msi"
    path.write_bytes(modelshelf.compile_tensors({"w": np.zeros(4)}))
    model = modelshelf.load(path)
    client = Client(str(tmp_path / "nobody.sock"))
    for thing, says in (
        (model, "a modelshelf Model is a view"),
        (model.image, "a modelshelf Image is a view"),
        (client, "a modelshelf Client is a connection"),
        (AsyncClient(str(tmp_path / "nobody.sock")), "a modelshelf Client is a connection"),
    ):
        for how in (pickle.dumps, copy.copy, copy.deepcopy):
            with pytest.raises(TypeError, match=says):
                how(thing)
