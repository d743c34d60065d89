"""Shelf benchmark: acquiring models from ``modelshelfd``, against ``joblib.load`` of the same.

    .venv/bin/python -m bench.shelf            # writes bench/out/shelf.md and shelf_*.png
    .venv/bin/python -m bench.shelf --quick    # no 1 GB image, fewer samples (a smoke run)
    .venv/bin/python -m bench.shelf --l1-only  # item 1 and 2 only: bench/out/shelf_l1.md

Starts a daemon on a ``file://`` store in a temporary directory (like ``modelshelfd.demo``),
publishes the models of ``bench/shelf_models.py``, warms the daemon's L1, then measures, each in
fresh worker processes (``bench/shelf_workers.py``):

1. acquire of an L1 image by a process that has not used it: p50/p99 per image size;
2. ``client.model()`` of a held model;
3. L2 and L3 acquire of large images, in GB/s, against a plain read of the source file;
4. density: 8 processes holding the same 500 small models, total PSS, shelf vs joblib.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import shelf_profile, shelf_report
from bench._util import OUT, ROOT
from bench.shelf_daemon import Daemon, worker
from bench.shelf_models import Built, acquire_set, density_set


def measure_l1(d: Daemon, sizes: list[Built], samples: int) -> dict[str, Any]:
    for b in sizes:
        d.admin("prefetch", model=b.ref)  # warm L1
    args = {
        "socket": d.socket,
        "refs": [[b.label, b.ref] for b in sizes],
        "samples": samples,
        "fresh_samples": max(20, samples // 3),
        "held_calls": 200_000,
    }
    before = d.stats()
    shelf = worker("acquire_l1", args)
    after = d.stats()
    counts = {"joblib": {"10 KB": samples // 2, "1 MB": samples // 4, "100 MB": 8, "1 GB": 4}}
    jl = worker("joblib_load", [[b.label, b.joblib_path, counts["joblib"][b.label]] for b in sizes])
    misses = after.get("l2_hits", 0) - before.get("l2_hits", 0)
    misses += after.get("l3_fetches", 0) - before.get("l3_fetches", 0)
    return {"shelf": shelf, "joblib": jl, "misses": misses}


def measure_l2(d: Daemon, large: list[Built], samples: int) -> dict[str, Any]:
    out = {}
    for cold in (False, True):
        args = {
            "socket": d.socket,
            "admin": d.admin_socket,
            "refs": [[b.label, b.ref, str(d.cache_dir / "images" / b.digest)] for b in large],
            "samples": samples,
            "evict": True,
            "cold": cold,
            "write_dir": "",
        }
        before = d.stats()
        res = worker("acquire_below", args)
        hits = d.stats().get("l2_hits", 0) - before.get("l2_hits", 0)
        out["cold" if cold else "warm"] = {"results": res, "l2_hits": hits}
    return out


def measure_l3(
    tmp: Path, store: str, store_dir: Path, large: list[Built], samples: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cold in (False, True):
        runs = []
        for i in range(samples):
            root = tmp / f"cold-{int(cold)}-{i}"
            d = Daemon(root, store, l1="3G", l2="8G")
            try:
                args = {
                    "socket": d.socket,
                    "admin": d.admin_socket,
                    "refs": [[b.label, b.ref, str(store_dir / "images" / b.digest)] for b in large],
                    "samples": 1,
                    "evict": False,
                    "cold": cold,
                    "write_dir": str(d.cache_dir),
                }
                res = worker("acquire_below", args)
                res["_fetches"] = d.stats().get("l3_fetches", 0)
                runs.append(res)
            finally:
                d.stop()
                shutil.rmtree(root, ignore_errors=True)
        out["cold" if cold else "warm"] = runs
    return out


def _start(args: dict[str, Any]) -> subprocess.Popen[str]:
    code = f"from bench.shelf_workers import density; density({json.dumps(args)!r})"
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _barrier(procs: list[subprocess.Popen[str]], step: str) -> None:
    """Wait until every process reached ``step``, then let them all go on."""
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline().strip()
        if line != f"STEP {step}":
            raise RuntimeError(f"density worker said {line!r}, expected STEP {step}")
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("\n")
        p.stdin.flush()


def measure_density(d: Daemon, dense: list[Built], processes: int) -> dict[str, Any]:
    for b in dense:
        d.admin("prefetch", model=b.ref)
    n_features = [b.n_features for b in dense]
    out: dict[str, Any] = {}
    for kind in ("shelf", "joblib"):
        args = {
            "kind": kind,
            "socket": d.socket,
            "refs": [b.ref for b in dense],
            "paths": [b.joblib_path for b in dense],
            "n_features": n_features,
        }
        procs = [_start(args) for _ in range(processes)]
        try:
            _barrier(procs, "baseline")
            _barrier(procs, "holding")
            results = []
            for p in procs:
                assert p.stdout is not None
                results.append(json.loads(p.stdout.readline()))
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("\n")
                p.stdin.close()
        finally:
            for p in procs:
                if p.wait(timeout=120) != 0:
                    raise RuntimeError(f"density worker ({kind}) exited with {p.returncode}")
                assert p.stdout is not None
                p.stdout.close()
        out[kind] = results
    out["daemon_pss"] = _pss_of(d.proc.pid)
    out["heap"] = worker(
        "heap_per_model",
        {"socket": d.socket, "refs": [b.ref for b in dense], "n_features": n_features},
    )
    return out


def _pss_of(pid: int) -> int:
    import psutil

    return int(psutil.Process(pid).memory_full_info().pss)


def l1_only(samples: int, *, big: bool) -> None:
    """Items 1 and 2 alone: the L1 acquire and the held model, without the rest of the run."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="msbench-") as tmp_name:
        tmp = Path(tmp_name)
        from modelshelf.store import Store

        store = (tmp / "store").as_uri()
        joblib_dir = tmp / "joblib"
        joblib_dir.mkdir()
        sizes = acquire_set(Store(store), joblib_dir, big=big)
        d = Daemon(tmp / "main", store, l1="3G", l2="8G")
        try:
            l1 = measure_l1(d, sizes, samples)
        finally:
            d.stop()
    results = {"sizes": [b.as_dict() for b in sizes], "l1": l1}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "shelf_l1.json").write_text(json.dumps(results, indent=1))
    report = shelf_report.render_l1(results, time.perf_counter() - started)
    print(report)
    (OUT / "shelf_l1.md").write_text(report + "\n")
    print(f"\nwrote {OUT / 'shelf_l1.md'} and {OUT / 'shelf_l1.json'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="no 1 GB image, fewer samples")
    parser.add_argument("--samples", type=int, default=300, help="L1 acquires per size")
    parser.add_argument("--models", type=int, default=500, help="models in the density test")
    parser.add_argument("--processes", type=int, default=8, help="processes in the density test")
    parser.add_argument(
        "--dense-scale",
        type=int,
        default=1,
        help="multiply the density models' feature counts (1: 48-144 KB models; 8: 0.4-1.2 MB)",
    )
    parser.add_argument(
        "--l1-only", action="store_true", help="items 1 and 2 only (L1 acquire, held model)"
    )
    args = parser.parse_args()
    samples = 60 if args.quick else args.samples
    if args.l1_only:
        l1_only(samples, big=not args.quick)
        return
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="msbench-") as tmp_name:
        tmp = Path(tmp_name)
        store_dir = tmp / "store"
        store = store_dir.as_uri()
        from modelshelf.store import Store

        publisher = Store(store)
        joblib_dir = tmp / "joblib"
        joblib_dir.mkdir()
        t = time.perf_counter()
        sizes = acquire_set(publisher, joblib_dir, big=not args.quick)
        dense = density_set(
            publisher, joblib_dir, 50 if args.quick else args.models, args.dense_scale
        )
        print(f"built and published {len(sizes) + len(dense)} models in "
              f"{time.perf_counter() - t:.0f} s", file=sys.stderr)  # fmt: skip
        large = [b for b in sizes if b.image_bytes >= 50_000_000]
        d = Daemon(tmp / "main", store, l1="3G", l2="8G")
        try:
            l1 = measure_l1(d, sizes, samples)
            print("L1 done", file=sys.stderr)
            l2 = measure_l2(d, large, 2 if args.quick else 3)
            print("L2 done", file=sys.stderr)
            density = measure_density(d, dense, args.processes)
            print("density done", file=sys.stderr)
        finally:
            d.stop()
        l3 = measure_l3(tmp, store, store_dir, large, 1 if args.quick else 2)
        print("L3 done", file=sys.stderr)
        diagnosis = shelf_profile.diagnose(tmp, store, sizes[0], sizes[1], samples)
        print("profiles done", file=sys.stderr)
        results = {
            "sizes": [b.as_dict() for b in sizes],
            "dense": [b.as_dict() for b in dense],
            "l1": l1,
            "l2": l2,
            "l3": l3,
            "density": density,
            "diagnosis": diagnosis,
            "elapsed": time.perf_counter() - started,
        }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "shelf.json").write_text(json.dumps(results, indent=1))
    report = shelf_report.render(results)
    print(report)
    (OUT / "shelf.md").write_text(report + "\n")
    img = ROOT / "docs" / "img"
    img.mkdir(parents=True, exist_ok=True)
    for path in shelf_report.plots(results, OUT):
        shutil.copy(path, img / path.name)
    print(f"\nwrote {OUT / 'shelf.md'}, {OUT / 'shelf.json'}, shelf_*.png in {OUT} and {img}")


if __name__ == "__main__":
    main()
