"""The daemon under a systemd that this test plays: notify over a real datagram socket (READY,
STATUS, WATCHDOG, STOPPING, a reload), and the descriptor store keeping L1 across a restart
under load, with no store read and no copy from disk after it."""

from __future__ import annotations

import array
import os
import signal
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import modelshelf
from modelshelf.store import Store

from .conftest import Daemon, Images, Shelf, wait_for, write_config


class FakeSystemd:
    """The manager's side of sd_notify: states in order, and a descriptor store by name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.states: list[str] = []
        self.store: dict[str, int] = {}
        # called (in this thread) when READY=1 arrives, its answer kept: what holds then
        self.on_ready: Callable[[], Any] | None = None
        self.at_ready: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, ancdata, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(253 * 4))
            except TimeoutError:
                continue
            fds = [
                fd
                for level, kind, payload in ancdata
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
                for fd in array.array("i", payload[: len(payload) - len(payload) % 4])
            ]
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.states.append(data.decode())
            if fields.get("READY") == "1" and self.on_ready is not None:
                try:
                    self.at_ready = self.on_ready()
                except Exception as exc:  # the test's assertion reports it
                    self.at_ready = exc
            name = fields.get("FDNAME", "")
            if fields.get("FDSTORE") == "1":
                old = self.store.pop(name, None)
                if old is not None:
                    os.close(old)
                self.store[name] = fds[0]
            elif fields.get("FDSTOREREMOVE") == "1" and name in self.store:
                os.close(self.store.pop(name))

    def has(self, prefix: str) -> bool:
        return any(s.startswith(prefix) for s in list(self.states))

    def count(self, line: str) -> int:
        return sum(line in s.splitlines() for s in list(self.states))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()
        for fd in self.store.values():
            os.close(fd)


def _start_with_store(daemon: Daemon, manager: FakeSystemd) -> None:
    """Start the daemon as systemd does: the kept descriptors at 3, 4, ..., LISTEN_FDS,
    LISTEN_FDNAMES, and LISTEN_PID set to its own pid (by the shell it execs from)."""
    names = list(manager.store)
    fds = [manager.store[n] for n in names]
    env = {**daemon.env, "NOTIFY_SOCKET": str(manager.path)}
    env.update(LISTEN_FDS=str(len(fds)), LISTEN_FDNAMES=":".join(names))

    def place() -> None:  # in the child: every kept descriptor moved to 3 + i, in order
        high = [os.dup(fd) for fd in fds]
        for i, fd in enumerate(high):
            os.dup2(fd, 3 + i)  # inheritable
            os.close(fd)

    daemon.log_handle = open(daemon.log, "ab")  # noqa: SIM115
    daemon.proc = subprocess.Popen(
        ["sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"', sys.executable, "-m", "modelshelfd",
         "--config", str(daemon.config_path)],
        env=env, stdout=daemon.log_handle, stderr=subprocess.STDOUT, preexec_fn=place,
        close_fds=False,
    )  # fmt: skip
    wait_for(daemon._ready, what="modelshelfd under the fake systemd")


LOAD = """
import time
from pathlib import Path
from modelshelf.errors import DaemonUnavailable
refs = ["ns/lr", *(f"ns/m{i}" for i in range(8))]
served = reconnects = after = 0
flag, seen = Path(FLAG), None
end = time.monotonic() + 60
while seen is None or time.monotonic() < seen + 1.0:  # until 1 s after the new daemon is up
    assert time.monotonic() < end, "the restarted daemon never came"
    if seen is None and flag.exists():
        seen = time.monotonic()
    for ref in refs:
        try:  # a round trip each time: acquire, predict, release
            if ref == "ns/lr":
                assert np.array_equal(client.model(ref).predict_proba(X), expected)
            else:
                assert client.tensors(ref)["w"][0] == int(ref[4:])
            served += 1
            after += seen is not None
        except DaemonUnavailable:  # the daemon is restarting: the client reconnects
            reconnects += 1
            time.sleep(0.01)
        client.release(ref)
print(served, reconnects, after, flush=True)
"""


def test_l1_survives_a_restart_under_load_through_the_descriptor_store(
    shelf: Shelf, images: Images, tmp_path: Path
) -> None:
    """SIGTERM keeps the shelf: two processes predict in a loop across the restart, see no
    error but the daemon's absence, and the next daemon serves them from the segments systemd
    kept: no store read (its images are moved away meanwhile), no copy from local disk."""
    store = Store(shelf.store)
    store.publish("ns", "lr", images.bytes("logreg"))
    for i in range(8):
        store.publish("ns", f"m{i}", modelshelf.compile_tensors({"w": np.full(50_000, float(i))}))
    manager = FakeSystemd(tmp_path / "notify")
    flag = tmp_path / "restarted"
    try:
        daemon = shelf.make(start=False, env={"NOTIFY_SOCKET": str(manager.path)})
        daemon.start()
        wait_for(lambda: manager.has("READY=1"), what="READY=1")
        assert "STATUS=L1 " in next(s for s in manager.states if s.startswith("READY=1"))
        loads = [
            shelf.start_client(
                daemon.socket,
                f"X = np.linspace(4, 7, 64).reshape(16, 4)\nFLAG = {str(flag)!r}\n"
                "expected = client.model('ns/lr').predict_proba(X)\n"
                "for i in range(8):\n    client.tensors(f'ns/m{i}')\n",
                after=LOAD,
            )
            for _ in range(2)
        ]
        wait_for(lambda: len(manager.store) == 9, what="9 segments in the descriptor store")
        assert all(name.startswith("l1-") for name in manager.store)
        for load in loads:  # under load across the restart
            assert load.stdin is not None
            load.stdin.write("\n")
            load.stdin.flush()
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGTERM)  # systemctl restart
        assert daemon.proc.wait(timeout=30) == 0
        daemon.log_handle.close()
        assert manager.has("STOPPING=1") and len(manager.store) == 9  # kept across the stop
        # any read of an image from the store would now fail, and the clients with it
        images_dir = shelf.tmp / "store" / "images"
        images_dir.rename(images_dir.with_name("images.away"))
        _start_with_store(daemon, manager)
        flag.touch()
        stats = daemon.stats()
        assert stats["adopted_l1"] == 9 and stats["validation_failures"] == 0
        for load in loads:
            assert load.stdout is not None
            served, reconnects, after = map(int, load.stdout.readline().split())
            assert load.wait(timeout=30) == 0  # no error but DaemonUnavailable, ever
            assert served > 0 and after > 0, (served, reconnects, after)
        stats = daemon.stats()
        assert stats["l3_fetches"] == 0 and stats["bytes_fetched"] == 0  # no store read
        assert stats["promotions"] == 0  # not even a copy from local disk
        assert stats["l1_hits"] > 0 and stats["store_errors"] == 0
        daemon.admin("evict", model="ns/m3")  # an eviction takes it out of the store too
        wait_for(lambda: len(manager.store) == 8, what="FDSTOREREMOVE")
    finally:
        for d in shelf.daemons:
            d.stop()
        manager.close()


def test_notify_protocol_ready_status_watchdog_reload_stopping(
    shelf: Shelf, tmp_path: Path
) -> None:
    """Against a real datagram socket: READY=1 only once the sockets answer and the warm
    list is placed; STATUS= with the tiers' usage and WATCHDOG=1 at half of $WATCHDOG_USEC;
    SIGHUP (systemctl reload) shows in the next STATUS=; STOPPING=1 on SIGTERM, last."""
    store = Store(shelf.store)
    for i in range(4):
        store.publish("ns", f"m{i}", modelshelf.compile_tensors({"w": np.full(1 << 16, float(i))}))
    manager = FakeSystemd(tmp_path / "notify")
    try:
        env = {"NOTIFY_SOCKET": str(manager.path), "WATCHDOG_USEC": "400000"}  # ping every 0.2 s
        daemon = shelf.make(start=False, env=env, warm=["ns/*"], l1_bytes="64M")
        manager.on_ready = lambda: daemon.admin("status")  # what the daemon says at READY=1
        daemon.start()
        wait_for(lambda: manager.has("READY=1"), what="READY=1")
        at_ready = wait_for(lambda: manager.at_ready, what="status at READY=1")
        assert isinstance(at_ready, dict), at_ready  # the admin socket answered at READY=1
        assert at_ready["ready"] is True and at_ready["l1"]["count"] == 4  # warm list placed
        assert at_ready["warm"]["placed"] == 4
        ready = manager.states.index(next(s for s in manager.states if s.startswith("READY=1")))
        assert "STATUS=L1 2/64 MiB (4 images), L2 2/1024 MiB (4 images)" in manager.states[ready]
        wait_for(lambda: manager.count("WATCHDOG=1") >= 3, timeout=10, what="WATCHDOG=1 x3")
        pings = [s for s in manager.states if "WATCHDOG=1" in s]
        assert all("STATUS=L1 " in s for s in pings)  # the status line rides along
        assert manager.states.index(pings[0]) > ready

        values = tomllib.loads(daemon.config_path.read_text())
        write_config(daemon.config_path, {**values, "l1_bytes": "32M"})
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGHUP)  # ExecReload=
        wait_for(lambda: manager.has("STATUS=L1 2/32 MiB"), timeout=10, what="reloaded STATUS")

        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=30) == 0
        daemon.log_handle.close()
        wait_for(lambda: manager.has("STOPPING=1"), timeout=5, what="STOPPING=1")
        stopping = manager.states.index(next(s for s in manager.states if "STOPPING=1" in s))
        after = manager.states[stopping + 1 :]
        assert not any("STATUS=" in s or "READY=1" in s for s in after), after
    finally:
        for d in shelf.daemons:
            d.stop()
        manager.close()
