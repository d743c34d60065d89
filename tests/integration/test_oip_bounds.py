"""The Open Inference Protocol endpoint against requests that cost the daemon more than they
say (a few bytes that inflate to a gigabyte of output, compressed bodies) and peers that go
wrong midway: found by driving a real daemon with tritonclient and raw HTTP. Each refusal is
typed, JSON, counted by its own outcome and never an internal error."""

from __future__ import annotations

import gzip
import json
import socket
import time
from typing import Any

import numpy as np
import psutil
import pytest
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import Ridge

import modelshelf
from modelshelf.store import Store

from .conftest import Shelf, wait_for
from .test_oip import Server, _serve, _tensor

X = np.random.default_rng(0).normal(size=(50, 5))


def _metric(server: Server, outcome: str) -> float:
    text = server.raw("GET", "/metrics")[2].decode()
    line = f'modelshelf_http_infer_requests_total{{outcome="{outcome}"}} '
    return float(text.split(line, 1)[1].split()[0])


def _post(port: int, head: bytes, body: bytes, *, read: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + body)
        if not read:
            return b""
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


@pytest.fixture
def served(shelf: Shelf) -> Any:
    server = _serve(shelf, None, http_max_body="1M", http_infer_timeout=2.0)
    store = Store(shelf.store)
    store.publish("t", "reg", modelshelf.compile(Ridge().fit(X, X[:, 0])))
    store.publish("t", "hash", modelshelf.compile(HashingVectorizer().fit(["a b c"])))
    yield server
    server.close()


def test_an_output_too_large_to_send_is_refused_before_it_is_made(served: Server) -> None:
    """24 one-letter documents to a HashingVectorizer (2**20 columns): the sparse output was
    made dense and listed for JSON (1.2 GB of RSS for a 197-byte request) before the response
    bound refused it."""
    assert served.daemon.proc is not None
    daemon = psutil.Process(served.daemon.proc.pid)
    request = {"inputs": [_tensor([64], "BYTES", ["a"] * 64)], "outputs": [{"name": "transform"}]}
    before = daemon.memory_info().rss
    status, body = served.json("POST", "/v2/models/t:hash/infer", request)
    assert status == 400 and "more than a response of 1048576 bytes" in body["error"], body
    assert daemon.memory_info().rss - before < 200 << 20


def test_a_compressed_body_counts_what_it_inflates_to(served: Server) -> None:
    """Content-Encoding: gzip was admitted by its compressed length against the bodies' budget
    (4 x http_max_body) and then inflated in full: 16 such bodies held 16 times the limit. Held
    bodies fill the budget here; a gzip body of 200 bytes that inflates to 50 KB is refused."""
    limit = 1 << 20
    holders = []
    for _ in range(4):  # four uploads declaring nearly the limit, sending nothing yet
        sock = socket.create_connection(("127.0.0.1", served.port), timeout=30)
        sock.sendall(
            b"POST /v2/models/t:reg/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n{"
            % (limit - 1000)
        )
        holders.append(sock)
    try:
        time.sleep(0.5)
        rows = np.zeros((1250, 5))
        plain = json.dumps({"inputs": [_tensor([1250, 5], "FP64", rows.ravel().tolist())]})
        packed = gzip.compress(plain.encode(), 9)
        assert len(packed) < 1000 < len(plain)
        status, _, data = served.raw(
            "POST", "/v2/models/t:reg/infer", packed,
            {"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )  # fmt: skip
        assert status == 503 and "bodies being read" in json.loads(data)["error"]
    finally:
        for sock in holders:
            sock.close()


def test_a_body_that_does_not_decode_is_a_bad_request(served: Server) -> None:
    """A gzip body that is not gzip was a 500 "internal error" with two tracebacks."""
    for path in ("/v2/models/t:reg/infer", "/v2/repository/index"):
        status, _, data = served.raw("POST", path, b"not gzip at all", {"Content-Encoding": "gzip"})
        assert status == 400 and "cannot be read" in json.loads(data)["error"], data
    assert _metric(served, "internal") == 0
    assert "Traceback" not in served.daemon.logs()


@pytest.mark.parametrize("given", ["\u00b2", "\u0661\u0662", "12a", "-1", " "])
def test_a_header_length_must_be_ascii_digits(served: Server, given: str) -> None:
    """'²' passed isdigit() and failed int() (500); Arabic-Indic digits were read as 12."""
    head = (
        "POST /v2/models/t:reg/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        f"Inference-Header-Content-Length: {given}\r\n\r\n"
    ).encode()
    answer = _post(served.port, head, b"{}")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"must be a byte count" in answer
    assert _metric(served, "internal") == 0


def test_a_client_gone_mid_body_is_disconnected_not_internal(served: Server) -> None:
    """Counted as outcome="internal" (the daemon-bug outcome) with an ERROR traceback."""
    head = b"POST /v2/models/t:reg/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    _post(served.port, head, b'{"inputs": [', read=False)
    wait_for(lambda: _metric(served, "disconnected") == 1, what="the disconnect counted")
    assert _metric(served, "internal") == 0
    assert "Traceback" not in served.daemon.logs()


def test_an_answer_never_read_is_a_timeout_not_ok(shelf: Shelf) -> None:
    """A client that never reads its 8 MB answer is cut at http_infer_timeout; the request
    was counted ok (it was answered before the write)."""
    from sklearn.preprocessing import StandardScaler

    server = _serve(shelf, None, http_infer_timeout=2.0)
    Store(shelf.store).publish("t", "scaler", modelshelf.compile(StandardScaler().fit(X)))
    rows = np.zeros((200_000, 5))
    head = json.dumps(
        {"inputs": [_tensor([200_000, 5], "FP64", None, binary_data_size=rows.nbytes)],
         "outputs": [{"name": "transform", "parameters": {"binary_data": True}}]}
    ).encode()  # fmt: skip
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(
            b"POST /v2/models/t:scaler/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
            b"Inference-Header-Content-Length: %d\r\n\r\n"
            % (len(head) + rows.nbytes, len(head))
            + head
            + rows.tobytes()
        )
        wait_for(lambda: server.daemon.stats().get("http_timeouts") == 1, what="the cut")
    wait_for(lambda: _metric(server, "timeout") == 1, what="the outcome")
    assert _metric(server, "ok") == 0
    server.close()


def test_a_numeric_model_refuses_a_bytes_tensor(served: Server) -> None:
    """Strings were parsed as numbers ("1_0" was 10) by one tensor and refused per feature."""
    request = {"inputs": [_tensor([1, 5], "BYTES", ["1_0", "2", " 3 ", "nan", "5"])]}
    status, body = served.json("POST", "/v2/models/t:reg/infer", request)
    assert status == 400 and "takes numbers only" in body["error"]


def test_out_of_range_numbers_get_advice_that_applies(served: Server) -> None:
    """ "Send a wider datatype" for the widest ones, Python's set_int_max_str_digits() for a
    5000-digit literal: advice the caller cannot follow."""
    for datatype, literal, says in (
        ("UINT64", str(2**64), "the widest of its kind"),
        ("INT64", str(2**63), "the widest of its kind"),
        ("INT64", "9" * 5000, "out of every datatype's range"),
        ("FP32", "1e39", "send a wider datatype"),
    ):
        tensor = json.dumps(_tensor([1, 5], datatype, [0, 1, 1, 1, 1])).replace(
            "[0,", f"[{literal},"
        )
        body = '{"inputs": [' + tensor + "]}"
        status, _, data = served.raw("POST", "/v2/models/t:reg/infer", body.encode())
        message = json.loads(data)["error"]
        assert status == 400 and "set_int_max_str_digits" not in message, message
        assert says in message, message
