"""First request of a cold image from a ``file://`` store: this tree's daemon against a baseline.

    .venv/bin/python -m bench.cold_fetch --baseline main --sizes 50,200 --repeat 7
    .venv/bin/python -m bench.cold_fetch --baseline main --sizes 50,200 --repeat 5 --s3

One daemon per contender (this tree, and ``git archive REF`` of the client and the daemon), the
same store; per sample the image is evicted from L1 and L2 (``evict all``), then a fresh client
in this process asks for it (``client.tensors``): the wall time of that request is the cold
first-request latency (store read, verification, segment; and on the baseline the L2 write
before the reply). "L2 file" is the time until the daemon lists the L2 copy (``ls``), "daemon
CPU" the daemon's CPU time (/proc utime + stime) over the sample. The store's files stay in the
page cache (the store read is the same for both; the write is what differs). Contenders
alternate within each repetition; medians. Prints a Markdown table. ``--s3``: the store is a
bucket of a moto server on loopback (in this process) instead of a directory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import modelshelf
from bench._util import ROOT, extract
from bench.shelf_daemon import Daemon
from modelshelf.client import Client
from modelshelf.store import Store

TICK = os.sysconf("SC_CLK_TCK")


def _baseline(ref: str, into: Path) -> str:
    """``PYTHONPATH`` of the client and daemon packages at ``ref``, extracted under ``into``."""
    extract(ref, into)
    return f"{into / 'client'}:{into / 'daemon'}"


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def _tiers(daemon: Daemon, ref: str) -> list[str]:
    """The tiers holding ``ref`` (version 1) now, from ``ls``."""
    for row in daemon.admin("ls")["models"]:
        if f"{ref}@1" in row["models"]:
            return list(row["tiers"])
    return []


def _sample(daemon: Daemon, ref: str) -> dict[str, float]:
    if _tiers(daemon, ref):
        daemon.admin("evict", model=ref, tier="all")
    deadline = time.monotonic() + 60
    while _tiers(daemon, ref):
        if time.monotonic() > deadline:
            raise SystemExit(f"{ref} still on the shelf after evict all")
        time.sleep(0.01)
    client = Client(daemon.socket)
    client.tensors("ns/warmup")  # connected, and the client's imports done, before the clock
    cpu0 = _cpu(daemon.proc.pid)
    t0 = time.perf_counter()
    tensors = client.tensors(ref)
    reply = time.perf_counter() - t0
    while "l2" not in _tiers(daemon, ref):
        if time.perf_counter() - t0 > 60:
            raise SystemExit(f"{ref}: no L2 file after 60 s")
        time.sleep(0.002)
    l2 = time.perf_counter() - t0
    cpu = _cpu(daemon.proc.pid) - cpu0
    assert tensors["w"].size > 0
    del tensors
    client.close()
    return {"reply": reply, "l2": l2, "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main", help="git ref to compare against")
    parser.add_argument("--sizes", default="50,200", help="image sizes in MB, comma-separated")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--s3", action="store_true", help="a moto S3 bucket as the store")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="cold-fetch-", dir=ROOT / "bench") as tmp:
        root = Path(tmp)
        store_url, env, store = (root / "store").as_uri(), {}, None
        if args.s3:
            store_url, env, store = _moto()
        store = store or Store(store_url)
        store.publish("ns", "warmup", modelshelf.compile_tensors({"w": np.zeros(16)}))
        for mb in sizes:
            w = rng.standard_normal((mb * 10**6) // 8)
            store.publish("ns", f"blob{mb}", modelshelf.compile_tensors({"w": w}))
        paths = {
            "this": f"{ROOT / 'client'}:{ROOT / 'daemon'}",
            "base": _baseline(args.baseline, root / "base"),
        }
        daemons = {
            name: Daemon(root / name, store_url, l1="2G", l2="4G", env={**env, "PYTHONPATH": path})
            for name, path in paths.items()
        }
        results: dict[tuple[int, str], list[dict[str, float]]] = {}
        try:
            for rep in range(args.repeat):
                for mb in sizes:
                    order = list(daemons) if rep % 2 == 0 else list(reversed(daemons))
                    for name in order:
                        sample = _sample(daemons[name], f"ns/blob{mb}")
                        results.setdefault((mb, name), []).append(sample)
        finally:
            for daemon in daemons.values():
                daemon.stop()
        _table(results, sizes, args)


def _moto() -> tuple[str, dict[str, str], Store]:
    """A bucket on a moto S3 server on loopback: its URL, the daemon's environment, and a
    publisher's store (the pattern of tests/integration/conftest.py)."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **keys).create_bucket(
        Bucket="coldfetch"
    )
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
    }
    options = {
        "endpoint": endpoint,
        "allow_http": True,
        "access_key_id": "testing",
        "secret_access_key": "testing",
        "region": "us-east-1",
    }
    url = "s3://coldfetch/shelf"
    return url, env, Store(url, options)


def _table(
    results: dict[tuple[int, str], list[dict[str, float]]], sizes: list[int], args: Any
) -> None:
    where = "moto S3" if args.s3 else "file://"
    print(f"\nmedians of {args.repeat}; base = {args.baseline}; store {where}\n")
    print(
        "| image | daemon | reply (first request) | L2 file in place | daemon CPU | reply / base |"
    )
    print("|---|---|---|---|---|---|")
    for mb in sizes:
        base = statistics.median(s["reply"] for s in results[(mb, "base")])
        for name in ("this", "base"):
            rows = results[(mb, name)]
            reply = statistics.median(s["reply"] for s in rows)
            l2 = statistics.median(s["l2"] for s in rows)
            cpu = statistics.median(s["cpu"] for s in rows)
            print(
                f"| {mb} MB | {name} | {reply * 1e3:.1f} ms | {l2 * 1e3:.1f} ms | "
                f"{cpu * 1e3:.0f} ms | {reply / base:.2f}x |"
            )


if __name__ == "__main__":
    main()
