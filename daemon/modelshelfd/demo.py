"""``python -m modelshelfd.demo``: the shelf end to end on one node, with nothing configured.

Starts a daemon on an embedded ``file://`` store in a temporary directory, publishes a few
hundred small models, then has several client processes switch among them, and prints the
latency of ``client.model()`` per tier (store, disk, shared memory, held in-process) and the
memory the clients use. Needs the ``convert`` extra (it compiles the models it publishes).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _worker(args: tuple[str, list[str], int]) -> dict[str, Any]:
    import psutil

    from modelshelf.client import Client

    socket_path, names, repeats = args
    client = Client(socket_path)
    X = np.random.default_rng(os.getpid()).standard_normal((1, 20))
    first = []
    for name in names:
        t = time.perf_counter()
        model = client.model(name)
        first.append(time.perf_counter() - t)
        model.predict(X)
    held = []
    rng = random.Random(os.getpid())
    for _ in range(repeats):
        name = rng.choice(names)
        t = time.perf_counter()
        client.model(name)
        held.append(time.perf_counter() - t)
    info = psutil.Process().memory_full_info()
    client.close()
    return {"first": first, "held": held, "pss": info.pss, "uss": info.uss}


def _publish(store_url: str, n: int) -> int:
    from sklearn.linear_model import LogisticRegression

    import modelshelf
    from modelshelf.store import Store

    store = Store(store_url)
    rng = np.random.default_rng(0)
    total = 0
    for i in range(n):
        X = rng.standard_normal((200, 20))
        y = (X[:, i % 20] + 0.5 * rng.standard_normal(200) > 0).astype(int)
        image = modelshelf.compile(LogisticRegression().fit(X, y), metadata={"name": f"m{i}"})
        store.publish("demo", f"m{i:04d}", image)
        total += len(image)
    return total


def _table(label: str, seconds: list[float]) -> str:
    us = np.array(seconds) * 1e6
    return (
        f"{label:<34} {len(us):>6}  p50 {np.percentile(us, 50):>9.1f} us  "
        f"p99 {np.percentile(us, 99):>9.1f} us"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelshelfd.demo", description=__doc__)
    parser.add_argument("--models", type=int, default=300)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=20000, help="held lookups per client")
    args = parser.parse_args(argv)
    from modelshelf.cli._shelf import AdminConnection

    with tempfile.TemporaryDirectory(prefix="modelshelf-demo-") as tmp:
        root = Path(tmp)
        store = (root / "store").as_uri()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSHELF_")}
        sock, admin_sock = str(root / "s.sock"), str(root / "admin.sock")
        env.update(
            MODELSHELF_SOCKET=sock,
            MODELSHELF_ADMIN_SOCKET=admin_sock,
            MODELSHELF_STORE=store,
            MODELSHELF_CACHE_DIR=str(root / "cache"),
            MODELSHELF_LOG_LEVEL="WARNING",
        )
        t = time.perf_counter()
        total = _publish(store, args.models)
        print(f"published {args.models} models, {total / 1e6:.2f} MB of images, to {store} "
              f"in {time.perf_counter() - t:.1f} s")  # fmt: skip
        daemon = subprocess.Popen([sys.executable, "-m", "modelshelfd"], env=env)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    AdminConnection(admin_sock).close()
                    break
                except Exception:
                    if time.monotonic() > deadline or daemon.poll() is not None:
                        raise
                    time.sleep(0.05)
            names = [f"demo/m{i:04d}" for i in range(args.models)]
            chunks = [names[i :: args.clients] for i in range(args.clients)]
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(args.clients) as pool:
                # phase 1: every image comes from the store (L3), each client a share of them
                cold = pool.map(_worker, [(sock, c, 0) for c in chunks])
                with AdminConnection(admin_sock) as admin:
                    for name in names:
                        admin.request({"op": "evict", "model": name})
                # phase 2: out of shared memory, on local disk (L2)
                disk = pool.map(_worker, [(sock, c, 0) for c in chunks])
                # phase 3: every client switches among all the models, now in L1
                warm = pool.map(_worker, [(sock, names, args.repeats)] * args.clients)
            with AdminConnection(admin_sock) as admin:
                status = admin.request({"op": "status"})
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
    print()
    print(_table("acquire from the store (L3)", [x for r in cold for x in r["first"]]))
    print(_table("acquire from local disk (L2)", [x for r in disk for x in r["first"]]))
    print(_table("acquire from shared memory (L1)", [x for r in warm for x in r["first"]]))
    print(_table("client.model() of a held model", [x for r in warm for x in r["held"]]))
    print()
    pss = sum(r["pss"] for r in warm)
    print(f"{args.clients} clients each holding all {args.models} models: total PSS "
          f"{pss / 1e6:.1f} MB, USS per client "
          f"{np.mean([r['uss'] for r in warm]) / 1e6:.1f} MB; images {total / 1e6:.2f} MB, "
          f"held once in shared memory (L1 {status['l1']['bytes'] / 1e6:.2f} MB)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
