"""The notify protocol against a real datagram socket, as systemd reads it: KEY=VALUE lines,
descriptors with FDSTORE=1, abstract addresses; and which passed descriptors a run takes."""

from __future__ import annotations

import array
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelshelfd import systemd


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    yield sock
    sock.close()


def _receive(sock: socket.socket) -> tuple[str, list[int]]:
    data, ancdata, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.extend(array.array("i", payload[: len(payload) - len(payload) % 4]))
    return data.decode(), fds


def test_states_and_descriptors_reach_the_socket(notify_socket: socket.socket) -> None:
    assert systemd.notify("READY=1\nSTATUS=L1 0/64 MiB")
    assert _receive(notify_socket) == ("READY=1\nSTATUS=L1 0/64 MiB", [])
    r, w = os.pipe()
    try:
        systemd.Keeper().keep("ab" * 32, r)
        text, fds = _receive(notify_socket)
        assert text == f"FDSTORE=1\nFDNAME=l1-{'ab' * 32}" and len(fds) == 1
        assert os.fstat(fds[0]).st_ino == os.fstat(r).st_ino  # the very same pipe
        os.close(fds[0])
        systemd.Keeper().drop("ab" * 32)
        assert _receive(notify_socket) == (f"FDSTOREREMOVE=1\nFDNAME=l1-{'ab' * 32}", [])
    finally:
        os.close(r)
        os.close(w)


def test_an_abstract_address(monkeypatch: pytest.MonkeyPatch) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0modelshelf-test-notify")
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", "@modelshelf-test-notify")
    try:
        assert systemd.notify("STOPPING=1")
        assert _receive(sock) == ("STOPPING=1", [])
    finally:
        sock.close()


def test_nothing_without_notify_socket_and_a_gone_socket_is_survived(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not systemd.notify("READY=1") and not systemd.Keeper().enabled
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert not systemd.notify("READY=1")  # logged, never raised


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # another process's watchdog
    assert systemd.watchdog_interval() is None


def test_passed_segments_are_taken_only_for_this_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISTEN_PID", "1")
    monkeypatch.setenv("LISTEN_FDS", "2")
    assert systemd.passed_segments() == {}  # not ours: nothing is touched
    assert os.environ["LISTEN_FDS"] == "2"
