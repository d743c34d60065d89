"""Real daemons, real sockets, real shared memory: fixtures for the shelf's integration tests.

``shelf`` starts ``modelshelfd`` subprocesses with a unique shm prefix, sockets, cache and a
``file://`` store under tmp_path; ``moto`` gives a real S3 endpoint on loopback. Readiness is
awaited by connecting (with a deadline); teardown terminates the daemons and checks that no
name with their prefix is in /dev/shm (segments are memfds: nothing can be left behind).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelshelf
from modelshelf.admin import AdminConnection
from modelshelf.client import Client
from modelshelf.store import Store

PYTHON = sys.executable
SHM = Path("/dev/shm")
DEADLINE = 30.0


def wait_for(predicate: Callable[[], Any], timeout: float = DEADLINE, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail at the deadline."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.01)


@dataclass
class Daemon:
    config_path: Path
    socket: str
    admin_socket: str
    prefix: str
    cache_dir: Path
    store: str
    env: dict[str, str]
    log: Path
    preexec: Callable[[], None] | None = None
    proc: subprocess.Popen[bytes] | None = None
    clients: list[Client] = field(default_factory=list)

    def start(self) -> Daemon:
        self.log_handle = open(self.log, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "modelshelfd", "--config", str(self.config_path)],
            env=self.env,
            stdout=self.log_handle,
            stderr=subprocess.STDOUT,
            preexec_fn=self.preexec,
        )
        wait_for(self._ready, what=f"modelshelfd on {self.admin_socket}")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"modelshelfd exited with {self.proc.returncode}:\n{self.logs()}")
        try:
            with AdminConnection(self.admin_socket, timeout=5) as admin:
                admin.request({"op": "ping"})
            return True
        except modelshelf.errors.AccessDenied:
            return True  # it answers; this test made us no admin
        except modelshelf.errors.ShelfError:
            return False

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def admin(self, op: str, **fields: Any) -> dict[str, Any]:
        with AdminConnection(self.admin_socket, timeout=60) as admin:
            return admin.request({"op": op, **fields})

    def stats(self) -> dict[str, int]:
        return dict(self.admin("stats")["counters"])

    def client(self) -> Client:
        c = Client(self.socket)
        self.clients.append(c)
        return c

    def segments(self) -> list[str]:
        """The L1 segments the running daemon holds: its memfds' labels (not the board)."""
        return sorted(label for label, _ in self.segment_fds())

    def segment_fds(self) -> list[tuple[str, Path]]:
        """(label, /proc/<pid>/fd/<n>) of each L1 segment the running daemon holds."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        found = []
        for fd in Path(f"/proc/{self.proc.pid}/fd").iterdir():
            with contextlib.suppress(FileNotFoundError):  # closed meanwhile
                target = os.readlink(fd)
                label = target.removeprefix("/memfd:").removesuffix(" (deleted)")
                if target.startswith(f"/memfd:{self.prefix}-") and not label.endswith("-board"):
                    found.append((label, fd))
        return found

    def shm_names(self) -> list[str]:
        """Names in /dev/shm with this instance's prefix (the daemon creates none)."""
        return sorted(p.name for p in SHM.iterdir() if p.name.startswith(self.prefix + "-"))

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=DEADLINE)
        self.log_handle.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            assert self.proc.returncode == 0, self.logs()


def write_config(path: Path, values: dict[str, Any]) -> None:
    lines = []
    tables = {k: v for k, v in values.items() if isinstance(v, dict)}
    for key, value in values.items():
        if key not in tables:
            lines.append(f"{key} = {json.dumps(value)}")
    for key, table in tables.items():
        lines.append(f"[{key}]")
        for sub, value in table.items():
            if isinstance(value, dict):
                inner = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
                lines.append(f'"{sub}" = {{ {inner} }}')
            else:
                lines.append(f"{sub} = {json.dumps(value)}")
    path.write_text("\n".join(lines) + "\n")


class Shelf:
    """Factory of daemons for one test."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.daemons: list[Daemon] = []
        self.procs: list[subprocess.Popen[str]] = []
        self.store = (tmp_path / "store").as_uri()

    def make(
        self,
        name: str = "a",
        *,
        store: str | None = None,
        env: dict[str, str] | None = None,
        preexec: Callable[[], None] | None = None,
        start: bool = True,
        **config: Any,
    ) -> Daemon:
        root = self.tmp / name
        root.mkdir(exist_ok=True)
        prefix = f"mst-{uuid.uuid4().hex[:10]}"
        values: dict[str, Any] = {
            "socket": str(root / "s.sock"),
            "admin_socket": str(root / "admin.sock"),
            "store": store or self.store,
            "cache_dir": str(root / "cache"),
            "shm_prefix": prefix,
            "l1_bytes": "256M",
            "l2_bytes": "1G",
            "log_level": "DEBUG",
            "store_max_retries": 1,
            "store_retry_timeout": 3.0,
        }
        values.update(config)
        write_config(root / "modelshelfd.toml", values)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSHELF_")}
        full_env.update(env or {})
        daemon = Daemon(
            root / "modelshelfd.toml",
            values["socket"],
            values["admin_socket"],
            prefix,
            Path(values["cache_dir"]),
            values["store"],
            full_env,
            root / "daemon.log",
            preexec,
        )
        self.daemons.append(daemon)
        return daemon.start() if start else daemon

    def start_client(self, socket_path: str, body: str, after: str = "") -> subprocess.Popen[str]:
        proc = start_client(socket_path, body, after)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
        for daemon in self.daemons:
            for c in daemon.clients:
                c.close()
            daemon.stop()
        for daemon in self.daemons:
            assert daemon.shm_names() == [], f"names left in /dev/shm: {daemon.shm_names()}"


@pytest.fixture
def shelf(tmp_path: Path) -> Iterator[Shelf]:
    s = Shelf(tmp_path)
    try:
        yield s
    finally:
        s.close()


# -- models -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Images:
    dir: Path
    X: np.ndarray

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.msi"

    def bytes(self, name: str) -> bytes:
        return self.path(name).read_bytes()


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = tmp_path_factory.mktemp("images")
    X, y = load_iris(return_X_y=True)
    models = {
        "logreg": LogisticRegression(max_iter=500).fit(X, y),
        "logreg_c": LogisticRegression(C=0.01, max_iter=500).fit(X, y),
        "ridge": Ridge().fit(X, X[:, 0]),
        "pipe": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y),
    }
    for name, est in models.items():
        (out / f"{name}.msi").write_bytes(modelshelf.compile(est, metadata={"name": name}))
    rng = np.random.default_rng(0)
    for name, mb in (("blob4m", 4), ("blob48m", 48)):
        tensors = {"w": rng.standard_normal((mb << 20) // 8)}
        (out / f"{name}.msi").write_bytes(modelshelf.compile_tensors(tensors))
    joblib_path = out / "pipe.joblib"
    import joblib

    joblib.dump(models["pipe"], joblib_path)
    return Images(out, rng.uniform(4, 7, (16, 4)))


# -- S3 on loopback ---------------------------------------------------------------------------


@dataclass
class S3:
    endpoint: str
    env: dict[str, str]
    server: Any

    def bucket(self) -> str:
        import boto3

        name = f"b{uuid.uuid4().hex[:12]}"
        boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).create_bucket(Bucket=name)
        return f"s3://{name}/shelf"

    def store(self, url: str) -> Store:
        """A publisher's view of the bucket (explicit options: the test's own environment is
        left alone)."""
        options = {
            "endpoint": self.endpoint,
            "allow_http": True,
            "access_key_id": "testing",
            "secret_access_key": "testing",
            "region": "us-east-1",
        }
        return Store(url, options, max_retries=1, retry_timeout=3.0)


def _start_moto() -> S3:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
    }
    return S3(endpoint, env, server)


@pytest.fixture(scope="session")
def s3() -> Iterator[S3]:
    s = _start_moto()
    yield s
    s.server.stop()


@pytest.fixture
def private_s3() -> Iterator[S3]:
    """A moto server of this test's own, which the test may stop."""
    s = _start_moto()
    yield s
    import contextlib

    with contextlib.suppress(Exception):
        s.server.stop()


# -- client processes -------------------------------------------------------------------------


def run_client(socket_path: str, body: str, *, timeout: float = 60.0) -> Any:
    """Run ``body`` in a fresh Python process with ``client`` connected to ``socket_path``;
    the script assigns ``result``, which comes back through JSON."""
    script = "import json, sys, numpy as np, modelshelf\nfrom modelshelf.client import Client\n"
    script += f"client = Client({socket_path!r})\n" + textwrap.dedent(body)
    script += "\nprint('RESULT=' + json.dumps(result))\n"
    proc = subprocess.run(
        [PYTHON, "-c", script], capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise AssertionError(f"client process failed:\n{proc.stderr}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT=")][-1]
    return json.loads(line[len("RESULT=") :])


def start_client(socket_path: str, body: str, after: str = "") -> subprocess.Popen[str]:
    """A long-lived client process: runs ``body``, prints READY, waits for a line on stdin,
    then runs ``after`` (which exits non-zero to report a failure)."""
    script = "import sys, numpy as np, modelshelf\nfrom modelshelf.client import Client\n"
    script += f"client = Client({socket_path!r})\n" + textwrap.dedent(body)
    script += "\nprint('READY', flush=True)\nsys.stdin.readline()\n" + textwrap.dedent(after)
    proc = subprocess.Popen(
        [PYTHON, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "READY", line
    return proc


def raw_connect(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s
