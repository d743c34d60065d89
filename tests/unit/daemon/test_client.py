"""The client against a scripted daemon (a thread on a real Unix socket): a reply it cannot
use gives its lease back, and a forked child never speaks on its parent's connection."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelshelf
from modelshelf import _wire
from modelshelf.client import Client
from modelshelf.errors import ProtocolError


class FakeDaemon:
    """Answers hello with a board, acquire with ``acquire_reply`` and a small memfd, and
    records every request."""

    def __init__(self, path: Path, acquire_reply: dict[str, Any]) -> None:
        self.path = str(path)
        self.acquire_reply = acquire_reply
        self.image = modelshelf.compile_tensors({"w": np.arange(10.0)})
        self.requests: list[dict[str, Any]] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(4)
        self.board = os.memfd_create("board")
        os.ftruncate(self.board, 4096)
        os.pwrite(self.board, b"MSBOARD1" + (1).to_bytes(8, "little"), 0)
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
                    _wire.send(conn, {"ok": True, "protocol": 1, "generation": 1}, [self.board])
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
