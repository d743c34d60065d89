"""Worker processes of the shelf benchmark (``bench/shelf.py``), one fresh interpreter each.

Each public function is the body of one worker: it takes its arguments as one JSON string and
prints one JSON document last (``bench._util.run_worker`` reads it). The density workers instead
follow a line protocol (``_step``) so that the parent can line eight processes up: every process
measures its baseline, acquires, and measures again while all eight hold their models.

Only the joblib workers import scikit-learn; the shelf workers import the client (numpy only),
as an application process would.
"""

from __future__ import annotations

import gc
import json
import mmap
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _summary(seconds: list[float]) -> dict[str, float]:
    a = np.asarray(seconds)
    return {
        "n": len(a),
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
        "mean": float(a.mean()),
    }


def _drop_cache(path: str) -> None:
    """Push one file out of the page cache (this file only: the box is shared)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # dirty pages are not dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _plain_read(path: str, *, touched: bool = False) -> float:
    """The floor: ``readinto`` the whole file into fresh, not yet faulted memory, as the daemon
    fills a new segment; ``touched``: into memory already faulted in (a reused buffer)."""
    buf = mmap.mmap(-1, os.path.getsize(path))
    view = memoryview(buf)
    if touched:
        np.frombuffer(buf, dtype=np.uint8)[:: mmap.PAGESIZE] = 1
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as fh:
        pos = 0
        while pos < len(view):
            pos += fh.readinto(view[pos:]) or 0
    elapsed = time.perf_counter() - t0
    view.release()
    buf.close()
    return elapsed


def _plain_write(directory: str, size: int) -> float:
    """What the L3 path adds: write ``size`` bytes to a new file and fsync it (like L2)."""
    data = np.ones(size, dtype=np.uint8).data  # not zeros: a virtual disk may skip those
    path = os.path.join(directory, f"bench-write-{os.getpid()}")
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        pos = 0
        while pos < size:
            pos += os.write(fd, data[pos : pos + (16 << 20)])
        os.fsync(fd)
    finally:
        os.close(fd)
    elapsed = time.perf_counter() - t0
    os.unlink(path)
    return elapsed


def acquire_l1(args_json: str) -> None:
    """Item 1 and 2: acquire of L1-resident images by a process that has not used them, and
    ``client.model()`` of a held model."""
    from modelshelf.client import Client
    from modelshelf.image import Image
    from modelshelf.model import Model

    args = json.loads(args_json)
    sock: str = args["socket"]
    client = Client(sock)
    out: dict[str, Any] = {}
    for label, ref in args["refs"]:
        # (a) release + drop from the client cache: the next model() is a full acquire
        first = []
        for _ in range(args["samples"]):
            t0 = time.perf_counter()
            model = client.model(ref)
            first.append(time.perf_counter() - t0)
            client.release(ref)
            del model
        # (b) a fresh Client per sample: connect + hello + board map on top of (a)
        fresh = []
        for _ in range(args["fresh_samples"]):
            t0 = time.perf_counter()
            c = Client(sock)
            model = c.model(ref)
            fresh.append(time.perf_counter() - t0)
            c.close()
            del model, c
        # (c) the steps of (a), timed one by one (the client's own code path, replayed)
        steps: dict[str, list[float]] = {"round trip + fd": [], "mmap": [], "Image": []}
        steps["Model (executor)"] = []
        steps["ping round trip (floor)"] = []
        for _ in range(args["samples"]):
            t0 = time.perf_counter()
            reply, fds = client._request({"op": "acquire", "model": ref})
            t1 = time.perf_counter()
            mapped = mmap.mmap(fds[0], int(reply["size"]), mmap.MAP_SHARED, mmap.PROT_READ)
            os.close(fds[0])
            t2 = time.perf_counter()
            image = Image(mapped, owner=mapped)
            t3 = time.perf_counter()
            model = Model(image)
            t4 = time.perf_counter()
            client._request({"op": "release", "digest": reply["digest"]})
            del model, image, mapped
            t5 = time.perf_counter()
            client._request({"op": "ping"})
            ping = time.perf_counter() - t5
            for key, dt in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, ping), strict=True):
                steps[key].append(dt)
        # (d) a held model: the board check, no round trip
        model = client.model(ref)
        n = args["held_calls"]
        t0 = time.perf_counter()
        for _ in range(n):
            client.model(ref)
        held_mean = (time.perf_counter() - t0) / n
        each = []
        for _ in range(20000):
            t = time.perf_counter_ns()
            client.model(ref)
            each.append(time.perf_counter_ns() - t)
        empty = []
        for _ in range(20000):
            t = time.perf_counter_ns()
            empty.append(time.perf_counter_ns() - t)
        client.release(ref)
        del model
        out[label] = {
            "first": _summary(first),
            "fresh": _summary(fresh),
            "steps": {k: statistics.median(v) for k, v in steps.items()},
            "held_mean": held_mean,
            "held_each": _summary([x * 1e-9 for x in each]),
            "timer": statistics.median(empty) * 1e-9,
        }
    client.close()
    print(json.dumps(out))


def joblib_load(args_json: str) -> None:
    """Item 1's comparison: ``joblib.load`` of the same models, page cache warm, in a process
    that has already imported scikit-learn (and with ``mmap_mode="r"``, its zero-copy mode)."""
    import warnings

    import joblib
    import sklearn.linear_model
    import sklearn.neural_network  # noqa: F401 - imported before timing, like the shelf's

    warnings.simplefilter("ignore")
    out = {}
    for label, path, samples in json.loads(args_json):
        times, mapped = [], []
        for _ in range(samples):
            t0 = time.perf_counter()
            obj = joblib.load(path)
            times.append(time.perf_counter() - t0)
            del obj
            gc.collect()
        for _ in range(samples):
            t0 = time.perf_counter()
            obj = joblib.load(path, mmap_mode="r")
            mapped.append(time.perf_counter() - t0)
            del obj
        out[label] = {"load": _summary(times), "mmap": _summary(mapped)}
    print(json.dumps(out))


def acquire_below(args_json: str) -> None:
    """Item 3: acquire of images that are not in L1, against a plain read of the file they come
    from. ``evict``: evict from L1 first (L2 acquire); otherwise the daemon is cold (L3).
    ``cold``: push the source file out of the page cache before each sample."""
    from modelshelf.admin import AdminConnection
    from modelshelf.client import Client
    from modelshelf.image import Image

    args = json.loads(args_json)
    client = Client(args["socket"])
    out = {}
    for label, ref, source in args["refs"]:
        acquire, floor, reused = [], [], []
        for _ in range(args["samples"]):
            if args["evict"]:
                with AdminConnection(args["admin"]) as admin:
                    admin.request({"op": "evict", "model": ref})
            if args["cold"]:
                _drop_cache(source)
            t0 = time.perf_counter()
            model = client.model(ref)
            acquire.append(time.perf_counter() - t0)
            client.release(ref)
            del model
            if args["cold"]:
                _drop_cache(source)
            floor.append(_plain_read(source))
            if args["cold"]:
                _drop_cache(source)
            reused.append(_plain_read(source, touched=True))
        # what the daemon does on top of the read: verify structure + CRC-32, and SHA-256
        with open(source, "rb") as fh:
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        bytes(memoryview(data)[:: 1 << 12])  # fault the pages in: time the checks alone
        t0 = time.perf_counter()
        image = Image(data)
        image.verify()
        t_crc = time.perf_counter() - t0
        del image
        import hashlib

        t0 = time.perf_counter()
        hashlib.sha256(data).hexdigest()
        t_sha = time.perf_counter() - t0
        data.close()
        write = _plain_write(args["write_dir"], os.path.getsize(source)) if args["write_dir"] else 0
        out[label] = {
            "acquire": statistics.median(acquire),
            "floor": statistics.median(floor),
            "reused": statistics.median(reused),
            "write": write,
            "crc": t_crc,
            "sha": t_sha,
            "size": os.path.getsize(source),
        }
    client.close()
    print(json.dumps(out))


def _step(name: str) -> None:
    """Tell the parent we reached ``name`` and wait for its go (one line on stdin)."""
    print(f"STEP {name}", flush=True)
    sys.stdin.readline()


def _pss() -> dict[str, int]:
    import psutil

    info = psutil.Process().memory_full_info()
    return {"pss": int(info.pss), "uss": int(info.uss)}


def density(args_json: str) -> None:
    """Item 4: hold ``refs`` (shelf) or ``paths`` (joblib), predict one row with each so that
    every page is touched, and report PSS/USS before and after, while all peers hold theirs."""
    args = json.loads(args_json)
    if args["kind"] == "shelf":
        from modelshelf.client import Client

        client = Client(args["socket"])
        client._connect()  # the board is mapped before the baseline: per process, not per model

        load: Callable[[str], Any] = client.model
        names = args["refs"]
    else:
        import warnings

        import joblib
        import sklearn.linear_model  # noqa: F401 - imported before the baseline

        warnings.simplefilter("ignore")

        load = joblib.load
        names = args["paths"]
    rng = np.random.default_rng(0)
    rows = {d: rng.standard_normal((1, d)) for d in set(args["n_features"])}
    gc.collect()
    _step("baseline")
    before = _pss()
    held = []
    for name, d in zip(names, args["n_features"], strict=True):
        model = load(name)
        model.predict(rows[d])
        held.append(model)
    gc.collect()
    _step("holding")
    after = _pss()
    print(json.dumps({"before": before, "after": after, "held": len(held)}), flush=True)
    sys.stdin.readline()  # stay alive until every peer has measured


def acquire_profile(args_json: str) -> None:
    """cProfile of the client side of ``samples`` acquire + release cycles (for proportions:
    the profiler's own overhead inflates every call)."""
    import cProfile

    from modelshelf.client import Client

    args = json.loads(args_json)
    client = Client(args["socket"])
    model = client.model(args["ref"])  # warm up: lazy imports, first mapping
    client.release(args["ref"])
    del model
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(args["samples"]):
        client.model(args["ref"])
        client.release(args["ref"])
    prof.disable()
    prof.dump_stats(args["out"])
    client.close()
    print(json.dumps({"ok": True}))


def heap_per_model(args_json: str) -> None:
    """Where a process's private memory per held model goes: Python allocations (tracemalloc)
    by source line, while holding ``refs`` and after one prediction each."""
    import tracemalloc

    from modelshelf.client import Client

    args = json.loads(args_json)
    client = Client(args["socket"])
    client._connect()
    rng = np.random.default_rng(0)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    held = []
    for ref, d in zip(args["refs"], args["n_features"], strict=True):
        model = client.model(ref)
        model.predict(rng.standard_normal((1, d)))
        held.append(model)
    gc.collect()
    snap = tracemalloc.take_snapshot()
    tracemalloc.stop()
    stats = snap.compare_to(base, "lineno")
    n = len(held)
    top = [
        [f"{s.traceback[0].filename.split('site-packages/')[-1].split('client/')[-1]}:"
         f"{s.traceback[0].lineno}", s.size_diff / n]
        for s in stats[:12]
    ]  # fmt: skip
    total = sum(s.size_diff for s in stats) / n
    print(json.dumps({"per_model": total, "top": top, "models": n}))
