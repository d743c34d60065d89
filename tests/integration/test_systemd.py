"""The daemon under a systemd that this test plays: notify over a real datagram socket, and
the descriptor store keeping L1 across a restart under load, with no store read and no copy
from disk after it."""

from __future__ import annotations

import array
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

import modelshelf
from modelshelf.store import Store

from .conftest import Daemon, Shelf, wait_for


class FakeSystemd:
    """The manager's side of sd_notify: states in order, and a descriptor store by name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.states: list[str] = []
        self.store: dict[str, int] = {}
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


def test_l1_survives_a_restart_under_load_through_the_descriptor_store(
    shelf: Shelf, tmp_path: Path
) -> None:
    store = Store(shelf.store)
    for i in range(8):
        store.publish("ns", f"m{i}", modelshelf.compile_tensors({"w": np.full(50_000, float(i))}))
    manager = FakeSystemd(tmp_path / "notify")
    try:
        daemon = shelf.make(start=False, env={"NOTIFY_SOCKET": str(manager.path)})
        daemon.start()
        wait_for(lambda: manager.has("READY=1"), what="READY=1")
        assert "STATUS=L1 " in next(s for s in manager.states if s.startswith("READY=1"))
        load = shelf.start_client(
            daemon.socket,
            "import time\nfor i in range(8):\n    client.tensors(f'ns/m{i}')\n",
            after="""
            import time
            from modelshelf.errors import DaemonUnavailable
            served = 0
            end = time.monotonic() + 6
            while time.monotonic() < end:  # under load across the restart
                for i in range(8):
                    try:
                        assert client.tensors(f"ns/m{i}")["w"][0] == i
                        served += 1
                    except DaemonUnavailable:
                        time.sleep(0.01)
                    client.release(f"ns/m{i}")
            print(served, flush=True)
            """,
        )
        wait_for(lambda: len(manager.store) == 8, what="8 segments in the descriptor store")
        assert all(name.startswith("l1-") for name in manager.store)
        assert load.stdin is not None and load.stdout is not None
        load.stdin.write("\n")
        load.stdin.flush()
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGTERM)  # systemctl restart
        assert daemon.proc.wait(timeout=30) == 0
        daemon.log_handle.close()
        assert manager.has("STOPPING=1") and len(manager.store) == 8  # kept across the stop
        _start_with_store(daemon, manager)
        stats = daemon.stats()
        assert stats["adopted_l1"] == 8 and stats["validation_failures"] == 0
        assert int(load.stdout.readline()) > 0
        stats = daemon.stats()
        assert stats["l3_fetches"] == 0 and stats["bytes_fetched"] == 0  # no store read
        assert stats["promotions"] == 0  # not even a copy from local disk
        assert stats["l1_hits"] > 0
        daemon.admin("evict", model="ns/m3")  # an eviction takes it out of the store too
        wait_for(lambda: len(manager.store) == 7, what="FDSTOREREMOVE")
    finally:
        for d in shelf.daemons:
            d.stop()
        manager.close()
