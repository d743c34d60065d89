"""Catalog benchmark (issue 14): a daemon following the change feed of a large catalog.

    .venv/bin/python bench/catalog.py               # file:// and moto S3, 100,000 versions
    .venv/bin/python bench/catalog.py --stores file --versions 20000 --idle 10  # a smoke run

Writes ``--versions`` refs (``--per-model`` versions per model) straight into the store in bulk
(files for file://, moto's backend in-process for S3: not 100,000 publishes), a snapshot of
them (what ``modelshelf gc`` writes), then for each store:

- startup: the time from spawning ``modelshelfd`` until its catalog holds every model (the
  admin ``names`` op), and the in-process time of the catalog's read (``Follower.load``);
- idle: the daemon's CPU (psutil ``cpu_times``, user + system) over ``--idle`` seconds, and its
  store requests per poll (its ``catalog_requests`` counter; on S3 also moto's request log);
- spread: a version published from this process reaches a client of a second daemon (its
  ``model("ns/name")`` returns the new version) within ``ref_poll_seconds`` + 1 s;
- the full listing an earlier daemon made every poll, for comparison (``Store.list_refs``).

Prints a table with each goal met or missed and writes bench/out/catalog.json and .md. It
never asserts: it reports.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

import modelshelf
from bench._util import OUT, ROOT
from modelshelf import feed
from modelshelf.admin import AdminConnection
from modelshelf.client import Client
from modelshelf.store import Store, ref_path


def _image(version: int) -> bytes:
    return modelshelf.compile_tensors({"w": np.arange(8.0)}, metadata={"v": str(version)})


def _bulk(store: Store, args: argparse.Namespace, where: Any) -> dict[str, list[int]]:
    """Refs and a snapshot, written straight into the store; returns the catalog."""
    blob = _image(0)
    digest = store.put_image(blob)
    body = json.dumps({"digest": digest, "size": len(blob)}).encode()
    models = {
        f"bench/m{i:06d}": list(range(1, args.per_model + 1))
        for i in range(args.versions // args.per_model)
    }
    keys = [ref_path(*m.split("/"), v) for m, vs in models.items() for v in vs]
    where(keys, body)
    cutoff = int(time.time() * 1000) - 1
    snapshot = {"format": 1, "cutoff_ms": cutoff, "time_ms": cutoff, "models": models}
    key = f"{feed.SNAPSHOT_PREFIX}{cutoff:016d}-{uuid.uuid4().hex[:8]}.json"
    store.create(key, json.dumps(snapshot, separators=(",", ":")).encode())
    return models


def _file_writer(root: Path) -> Any:
    def write(keys: list[str], body: bytes) -> None:
        for key in keys:
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.write_bytes(body)

    return write


def _moto_writer(bucket: str, prefix: str) -> Any:
    def write(keys: list[str], body: bytes) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        for key in keys:
            backend.put_object(bucket, f"{prefix}/{key}", body)

    return write


class Daemon:
    def __init__(self, root: Path, store: str, env: dict[str, str], poll: float) -> None:
        root.mkdir(parents=True)
        self.admin_socket = str(root / "admin.sock")
        self.socket = str(root / "s.sock")
        config = {
            "socket": self.socket, "admin_socket": self.admin_socket, "store": store,
            "cache_dir": str(root / "cache"), "shm_prefix": f"msb-{uuid.uuid4().hex[:8]}",
            "l1_bytes": "64M", "l2_bytes": "256M", "ref_poll_seconds": poll,
            "log_level": "INFO",
        }  # fmt: skip
        (root / "d.toml").write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in config.items()))
        self.log = open(root / "daemon.log", "wb")  # noqa: SIM115 - as long as the daemon
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelshelfd", "--config", str(root / "d.toml")],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def admin(self, op: str, **fields: Any) -> dict[str, Any]:
        with AdminConnection(self.admin_socket, timeout=60) as admin:
            return admin.request({"op": op, **fields})

    def wait_catalog(self, last: str, timeout: float = 120.0) -> float:
        """Seconds from the spawn until the catalog holds model ``last`` (it is read whole at
        once: then it holds every model)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"modelshelfd exited with {self.proc.returncode}")
            try:
                if self.admin("names", pattern=last)["names"] == [last]:
                    return time.perf_counter() - self.t0
            except (modelshelf.errors.ShelfError, OSError, EOFError):
                pass
            time.sleep(0.02)
        raise RuntimeError("the catalog never filled")

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds from the spawn until the daemon answers (an empty store: no catalog)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if self.admin("status")["generation"] >= 0 and self.admin("names")["names"] == []:
                    return time.perf_counter() - self.t0
            except (modelshelf.errors.ShelfError, OSError, EOFError):
                pass
            time.sleep(0.02)
        raise RuntimeError("the daemon never answered")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def _measure(name: str, url: str, env: dict[str, str], store: Store, models: dict[str, list[int]],
             args: argparse.Namespace, tmp: Path) -> dict[str, Any]:  # fmt: skip
    import psutil

    from modelshelfd.follow import Follower

    row: dict[str, Any] = {"store": name, "versions": sum(map(len, models.values()))}
    row["models"] = len(models)
    loads = []
    for _ in range(3):
        t0 = time.perf_counter()
        update = Follower(store).load()
        loads.append(time.perf_counter() - t0)
    row["catalog_load_s"] = statistics.median(loads)
    row["load_how"] = update.how
    t0 = time.perf_counter()
    store.list_refs()
    row["full_listing_s"] = time.perf_counter() - t0
    # the same daemon on an empty store: what starting costs without any catalog
    empty = tmp / f"{name}-empty"
    base = Daemon(tmp / f"{name}-base", empty.as_uri(), env, args.poll)
    try:
        row["startup_empty_s"] = base.wait_ready()
    finally:
        base.stop()
    a = Daemon(tmp / f"{name}-a", url, env, args.poll)
    b = Daemon(tmp / f"{name}-b", url, env, args.poll)
    try:
        row["startup_s"] = a.wait_catalog(max(models))
        b.wait_catalog(max(models))
        time.sleep(2 * args.poll)  # past its first polls
        proc = psutil.Process(a.proc.pid)
        before, requests = proc.cpu_times(), a.admin("stats")["counters"]["catalog_requests"]
        recorded = _recording(True) if name == "s3" else None
        t0 = time.perf_counter()
        time.sleep(args.idle)
        elapsed = time.perf_counter() - t0
        after, requests2 = proc.cpu_times(), a.admin("stats")["counters"]["catalog_requests"]
        cpu = (after.user - before.user) + (after.system - before.system)
        row["idle_seconds"] = round(elapsed, 1)
        row["idle_cpu_percent"] = 100 * cpu / elapsed
        polls = elapsed / args.poll
        row["requests_per_poll"] = (requests2 - requests) / polls
        if recorded is not None:
            log = _recording(False)
            bucket = url.split("/")[2]
            mine = [r for r in log if bucket in r["url"]]
            # two daemons poll the bucket: half of what the server saw is this one's
            row["moto_requests_per_poll_per_daemon"] = len(mine) / 2 / polls
        # spread: a client on b holds "latest"; a publish here reaches it
        client = Client(b.socket)
        model = "bench/m000000"
        client.model(model)
        delays = []
        for i in range(args.spreads):
            time.sleep(random.uniform(0, args.poll))  # anywhere in the daemon's poll period
            store.publish(*model.split("/"), _image(1000 + i))
            t0 = time.perf_counter()
            while client.model(model).metadata["extra"]["v"] != str(1000 + i):
                time.sleep(0.01)
            delays.append(time.perf_counter() - t0)
        client.close()
        row["spread_s_max"] = max(delays)
        row["spread_s_median"] = statistics.median(delays)
    finally:
        a.stop()
        b.stop()
    return row


def _recording(on: bool) -> list[dict[str, Any]]:
    from moto.moto_api import recorder

    path = Path(tempfile.gettempdir()) / f"moto-bench-{os.getpid()}.jsonl"
    recorder._location = str(path)
    if on:
        path.write_text("")
        recorder._user_enabled = True
        return []
    recorder._user_enabled = False
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    path.unlink()
    return lines


def _goals(row: dict[str, Any], poll: float) -> list[tuple[str, str, bool]]:
    idle_requests = row.get("moto_requests_per_poll_per_daemon", row["requests_per_poll"])
    return [
        ("idle daemon CPU < 1% of a core", f"{row['idle_cpu_percent']:.2f}%",
         row["idle_cpu_percent"] < 1.0),
        ("one store request per idle poll", f"{idle_requests:.2f}", idle_requests <= 1.05),
        (f"new version on another daemon's client < {poll + 1:.1f} s",
         f"max {row['spread_s_max']:.2f} s", row["spread_s_max"] < poll + 1),
        ("startup from a snapshot < 2 s (catalog read)", f"{row['catalog_load_s']:.2f} s",
         row["catalog_load_s"] < 2.0),
        ("startup from a snapshot < 2 s (spawn to catalog)", f"{row['startup_s']:.2f} s",
         row["startup_s"] < 2.0),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--stores", default="file,s3", help="file, s3 or both (comma-separated)")
    p.add_argument("--versions", type=int, default=100_000)
    p.add_argument("--per-model", type=int, default=5, help="versions per model")
    p.add_argument("--poll", type=float, default=2.0, help="ref_poll_seconds")
    p.add_argument("--idle", type=float, default=60.0, help="seconds of idle CPU measurement")
    p.add_argument("--spreads", type=int, default=5, help="publishes timed to the other daemon")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="msbench-") as tmpdir:
        tmp = Path(tmpdir)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSHELF_")}
        env["PYTHONPATH"] = f"{ROOT / 'client'}:{ROOT / 'daemon'}"
        for name in args.stores.split(","):
            print(f"[{name}] writing {args.versions} refs and a snapshot ...", flush=True)
            if name == "file":
                root = tmp / "store"
                url = root.as_uri()
                store = Store(url)
                models = _bulk(store, args, _file_writer(root))
                rows.append(_measure(name, url, env, store, models, args, tmp))
            else:
                rows.append(_s3(args, env, tmp))
            print(json.dumps(rows[-1], indent=1), flush=True)
        report = _report(rows, args)  # before the cleanup of 100,000 files, which is slow
        print(report, flush=True)
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "catalog.json").write_text(json.dumps(rows, indent=1))
        (OUT / "catalog.md").write_text(report)


def _s3(args: argparse.Namespace, env: dict[str, str], tmp: Path) -> dict[str, Any]:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        bucket = f"b{uuid.uuid4().hex[:12]}"
        boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        ).create_bucket(Bucket=bucket)  # fmt: skip
        s3env = {
            **env, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true",
        }  # fmt: skip
        url = f"s3://{bucket}/shelf"
        options = {
            "endpoint": endpoint, "allow_http": True, "access_key_id": "testing",
            "secret_access_key": "testing", "region": "us-east-1",
        }  # fmt: skip
        store = Store(url, options)
        models = _bulk(store, args, _moto_writer(bucket, "shelf"))
        return _measure("s3", url, s3env, store, models, args, tmp)
    finally:
        server.stop()


def _report(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"`.venv/bin/python bench/catalog.py --versions {args.versions} --idle {args.idle:g} "
        f"--poll {args.poll:g}` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)",
        "",
        "| store | versions | models | catalog read | spawn to catalog (empty store) | idle CPU "
        "| requests per idle poll | spread max / median | full listing (before) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        req = f"{r['requests_per_poll']:.2f}"
        if "moto_requests_per_poll_per_daemon" in r:
            req += f" (moto: {r['moto_requests_per_poll_per_daemon']:.2f})"
        lines.append(
            f"| {r['store']} | {r['versions']:,} | {r['models']:,} | {r['catalog_load_s']:.2f} s "
            f"| {r['startup_s']:.2f} s ({r['startup_empty_s']:.2f} s) "
            f"| {r['idle_cpu_percent']:.2f}% over {r['idle_seconds']} s "
            f"| {req} | {r['spread_s_max']:.2f} / {r['spread_s_median']:.2f} s "
            f"| {r['full_listing_s']:.2f} s |"
        )
    lines += ["", "| store | goal | measured | |", "|---|---|---|---|"]
    for r in rows:
        for goal, value, met in _goals(r, args.poll):
            lines.append(f"| {r['store']} | {goal} | {value} | {'met' if met else 'MISSED'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
