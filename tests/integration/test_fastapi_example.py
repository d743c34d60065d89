"""examples/fastapi/app.py under real uvicorn workers against a real daemon: concurrent
requests answered exactly as scikit-learn answers, every worker mapping the daemon's one copy."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest

import modelshelf
from modelshelf.store import Store

from .conftest import DEADLINE, Shelf

pytestmark = pytest.mark.slow  # three uvicorn workers import FastAPI and numpy: a few seconds

APP_DIR = Path(__file__).resolve().parents[2] / "examples" / "fastapi"
WORKERS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def iris() -> tuple[Any, np.ndarray]:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_iris()
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    clf.fit(data.data, data.target_names[data.target])  # string labels
    return clf, data.data


def start_uvicorn(socket_path: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSHELF_")}
    env["MODELSHELF_SOCKET"] = socket_path
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app:app", "--app-dir", str(APP_DIR),
             "--workers", str(WORKERS), "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


@pytest.fixture
def uvicorn_app(shelf: Shelf, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """(base URL, the uvicorn supervisor) serving the example against ``shelf``'s daemon "a"."""
    daemon = shelf.make()
    port = free_port()
    log = tmp_path / "uvicorn.log"
    proc = start_uvicorn(daemon.socket, port, log)
    base = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + DEADLINE * 2
        while True:
            assert proc.poll() is None, f"uvicorn exited:\n{log.read_text()}"
            try:
                if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < end, f"uvicorn never answered:\n{log.read_text()}"
            time.sleep(0.05)
        yield base, proc
    finally:
        proc.send_signal(signal.SIGTERM)  # the supervisor stops its workers
        try:
            proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_workers_answer_exactly_from_one_copy_on_the_node(
    shelf: Shelf, iris: tuple[Any, np.ndarray], uvicorn_app: tuple[str, subprocess.Popen[bytes]]
) -> None:
    clf, X = iris
    base, proc = uvicorn_app
    info = Store(shelf.store).publish("demo", "iris", modelshelf.compile(clf))
    daemon = shelf.daemons[0]
    rng = np.random.default_rng(0)
    batches = [X[rng.choice(len(X), size=int(rng.integers(1, 20)))] for _ in range(24)]

    async def burst() -> list[httpx.Response]:
        # a new connection per request, so the kernel spreads them over the workers
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:
            return await asyncio.gather(
                *(http.post("/predict/demo/iris", json={"rows": b.tolist()}) for b in batches)
            )

    def clients() -> list[dict[str, int]]:
        return [c for c in daemon.admin("status")["clients"] if c["leases"]]

    end = time.monotonic() + DEADLINE * 2
    while True:  # until at least two workers have mapped the model
        for batch, reply in zip(batches, asyncio.run(burst()), strict=True):
            assert reply.status_code == 200, reply.text
            body = reply.json()
            assert body["model"] == "demo/iris"
            assert body["predictions"] == clf.predict(batch).tolist()
            assert body["classes"] == ["setosa", "versicolor", "virginica"]
            np.testing.assert_allclose(
                body["probabilities"], clf.predict_proba(batch), rtol=1e-12, atol=0
            )
        if len(clients()) >= 2:
            break
        assert time.monotonic() < end, f"one worker answered everything: {clients()}"

    # every worker that answered maps the daemon's one copy: one fetch, one L1 image
    status = daemon.admin("status")
    assert status["l1"]["count"] == 1 and status["l1"]["bytes"] >= info.size
    stats = daemon.stats()
    assert stats["l3_fetches"] == 1 and stats.get("l2_hits", 0) == 0
    workers = {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
    pids = {c["pid"] for c in clients()}
    assert 2 <= len(pids) <= WORKERS and pids <= workers, (pids, workers)
    assert status["l1"]["leases"] == len(pids)  # one lease per worker, whatever it answered

    # a version, a large batch (predicted in a thread), and the errors
    big = np.repeat(X, 2, axis=0)  # 300 rows
    reply = httpx.post(f"{base}/predict/demo/iris", json={"rows": big.tolist(), "version": 1})
    assert reply.status_code == 200 and reply.json()["model"] == "demo/iris@1"
    assert reply.json()["predictions"] == clf.predict(big).tolist()
    for path, body, status_code in (
        ("/predict/demo/iris", {"rows": [[1.0, 2.0]]}, 400),  # feature count
        ("/predict/demo/iris", {"rows": [[1, 2, 3, 4]], "version": 9}, 404),
        ("/predict/demo/nothing", {"rows": [[1, 2, 3, 4]]}, 404),
        ("/predict/demo/iris", {"rows": []}, 422),
    ):
        reply = httpx.post(base + path, json=body)
        assert reply.status_code == status_code, (path, body, reply.text)
    assert daemon.stats()["l3_fetches"] == 1
