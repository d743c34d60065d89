"""The HTTP endpoint against hostile peers (real daemons, raw TCP sockets): half-open and slow
requests are closed within their bound, connections are capped, malformed requests cost a log
line at a bounded rate, and an ordinary request is answered meanwhile."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request

from modelshelfd.http import HEAD_TIMEOUT, LINGER, MAX_HTTP_CONNECTIONS, REQUEST_TIMEOUT

from .conftest import Daemon, Shelf, wait_for

SLACK = 3.0  # seconds past a bound within which the daemon must have acted (a loaded machine)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http(shelf: Shelf) -> tuple[Daemon, int]:
    port = _free_port()
    return shelf.make(http=f"127.0.0.1:{port}", log_level="INFO"), port


def _healthz(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
        assert json.load(r)["ok"] is True
        return int(r.status)


def _closed_within(sock: socket.socket, limit: float) -> float:
    """Seconds until the daemon closes ``sock`` (reading and discarding what it answers);
    fails past ``limit``."""
    start = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - start < limit:
        try:
            if not sock.recv(65536):
                return time.monotonic() - start
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - start
    raise AssertionError(f"the daemon kept the connection open for more than {limit} s")


def test_half_open_and_slow_requests_are_closed_in_bounded_time(shelf: Shelf) -> None:
    daemon, port = _http(shelf)
    peers = {
        "head never finished": b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        "nothing at all": b"",
        "body never sent": b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n",
    }
    socks = {}
    for name, data in peers.items():
        socks[name] = socket.create_connection(("127.0.0.1", port))
        socks[name].sendall(data)
    slow = socket.create_connection(("127.0.0.1", port))
    stop = threading.Event()

    def slowloris() -> None:  # one byte of an endless head every 0.2 s
        head = b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 1000
        for byte in head:
            if stop.wait(0.2):
                return
            try:
                slow.send(bytes([byte]))
            except OSError:
                return

    thread = threading.Thread(target=slowloris, daemon=True)
    thread.start()
    try:
        assert _healthz(port) == 200  # served meanwhile
        for name, sock in socks.items():
            bound = LINGER if name == "body never sent" else HEAD_TIMEOUT
            assert _closed_within(sock, bound + SLACK) < bound + SLACK, name
        _closed_within(slow, HEAD_TIMEOUT + SLACK)
    finally:
        stop.set()
        thread.join()
        for sock in (*socks.values(), slow):
            sock.close()
    assert _healthz(port) == 200
    assert "Traceback" not in daemon.logs()


def test_a_peer_that_does_not_read_its_responses_is_dropped(shelf: Shelf) -> None:
    """Pipelined requests and no reads: once the socket buffers are full, writing a response
    waits for good; the answer's deadline aborts the connection."""
    daemon, port = _http(shelf)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    requests = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 50
    start = time.monotonic()
    try:
        while time.monotonic() - start < REQUEST_TIMEOUT + 2 * SLACK:
            try:
                sock.send(requests)
            except BlockingIOError:
                time.sleep(0.05)
            except (BrokenPipeError, ConnectionResetError):
                break
        else:
            raise AssertionError("the daemon kept a peer that reads nothing")
    finally:
        sock.close()
    assert daemon.stats()["http_timeouts"] == 1
    assert _healthz(port) == 200


def test_http_connections_are_capped(shelf: Shelf) -> None:
    daemon, port = _http(shelf)
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(MAX_HTTP_CONNECTIONS)]
    try:
        # the daemon has registered them all once one more is refused
        with socket.create_connection(("127.0.0.1", port)) as extra:
            _closed_within(extra, SLACK)
        assert daemon.stats()["http_refused"] >= 1
        assert "HTTP connection refused" in daemon.logs()
    finally:
        for sock in held:
            sock.close()
    # their slots are given back as they close
    wait_for(lambda: _try_healthz(port), what="a slot for an ordinary request")


def _try_healthz(port: int) -> bool:
    try:
        return _healthz(port) == 200
    except OSError:
        return False


def test_malformed_requests_cost_a_bounded_number_of_log_lines(shelf: Shelf) -> None:
    """aiohttp logs a traceback (about a dozen lines) per malformed request: a peer sending
    thousands filled the log at megabytes a second."""
    daemon, port = _http(shelf)
    before = len(daemon.logs().splitlines())
    bad = (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nNo Colon Here\r\n\r\n",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
        b"\x00\x01\x02 garbage\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nBad Header\r\n\r\n",
    )
    for i in range(400):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(bad[i % len(bad)])
            _closed_within(sock, HEAD_TIMEOUT + SLACK)
    assert _healthz(port) == 200
    added = daemon.logs().splitlines()[before:]
    assert len(added) <= 8, "\n".join(added[:40])
    assert "Traceback" not in "\n".join(added)
