"""``python -m modelshelfd.demo``: many models on one node, more than its shared memory holds.

Builds a catalog of 2,000 real model images, about 300 MB of lognormal sizes from 10 KB to
8 MB, in an embedded file:// store (once: it is kept in $TMPDIR/modelshelf-demo, one catalog
at most, unless --no-cache); starts modelshelfd with L1 (shared memory) at 20% of the catalog
and L2 (local disk) at 50%, so that it must evict; then has 4 long-lived worker processes, one
Client each, send 150 requests/s for 30 s (Zipf popularity, bursty tenants). Prints failures
(there should be none), the latency of client.model() by where it was served from (held
in-process, L1 shared memory, L2 page cache, L3 store), the memory held against the budgets,
and a verdict.

The same engine (``modelshelfd.scenario``) runs the full-scale benchmark, ``bench/scale.py``.
Needs the ``convert`` extra (scikit-learn builds the models it publishes).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from modelshelfd import scenario

size = scenario.size_argument  # the flags' sizes: 300M, 8M


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modelshelfd.demo",
        description=(__doc__ or "").split("\n\n")[1],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--models", type=int, default=2000, help="models in the catalog")
    parser.add_argument("--total", type=size, default="300M", help="bytes of all images")
    parser.add_argument("--min-size", type=size, default="10K", help="smallest image")
    parser.add_argument("--max-size", type=size, default="8M", help="largest image")
    parser.add_argument("--l1", type=float, default=0.2, help="L1 budget, share of the catalog")
    parser.add_argument("--l2", type=float, default=0.5, help="L2 budget, share of the catalog")
    parser.add_argument("--clients", type=int, default=4, help="worker processes, one Client each")
    parser.add_argument("--seconds", type=float, default=30.0, help="of requests")
    parser.add_argument("--rate", type=float, default=150.0, help="requests/s, all clients")
    parser.add_argument(
        "--held-bytes", type=size, default="0", help="bound of each client's held set (0: the "
        "client's default, which is the daemon's advice)",
    )  # fmt: skip
    parser.add_argument(
        "--held-models", type=int, default=0, help="bound of each client's held set (0: the "
        "client's default)",
    )  # fmt: skip
    parser.add_argument("--tenants", type=int, default=20, help="namespaces t000...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-cache", action="store_true", help="build the catalog in a throwaway directory"
    )
    args = parser.parse_args(argv)
    spec = scenario.CatalogSpec(
        models=args.models, total_bytes=args.total, min_bytes=args.min_size,
        max_bytes=args.max_size, tenants=args.tenants, sigma=1.5, seed=args.seed,
    )  # fmt: skip
    started = time.monotonic()
    cache = Path(tempfile.gettempdir()) / "modelshelf-demo"
    if args.no_cache:
        cache = Path(tempfile.mkdtemp(prefix="modelshelf-demo-"))
    try:
        catalog = scenario.cached_catalog(cache, spec, _say, keep_others=False)
        total = catalog.total_bytes
        setup = scenario.Setup(
            workers=args.clients,
            l1_bytes=int(args.l1 * total),
            l2_bytes=int(args.l2 * total),
            held_bytes=args.held_bytes or None,
            held_models=args.held_models or None,
            warmup=min(10.0, args.seconds / 3),
        )
        traffic = scenario.Traffic(
            rate=args.rate, duration=args.seconds, burst_rate=6.0, seed=args.seed
        )
        _say(
            f"{len(catalog.refs):,} models, {total / 1e6:,.0f} MB of images "
            f"({args.min_size / 1e3:,.0f} KB..{args.max_size / 1e6:,.0f} MB, {args.tenants} "
            f"tenants) in {catalog.root}; L1 {setup.l1_bytes / 1e6:,.0f} MB, "
            f"L2 {setup.l2_bytes / 1e6:,.0f} MB; {args.clients} clients"
        )
        summary = scenario.summarize(scenario.run(catalog, traffic, setup, _say))
    except KeyboardInterrupt:  # the daemon and the workers are stopped by now
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if args.no_cache:
            shutil.rmtree(cache, ignore_errors=True)
    print()
    for line in scenario.report_lines(summary, p999=False):
        print(line)
    print()
    missed = [g["goal"] for g in summary["goals"] if g["met"] is False]
    failed = summary["requests"]["failed"]
    verdict = "OK" if failed == 0 and not missed else "NOT OK"
    print(
        f"verdict: {verdict}: {failed:,} failed requests; "
        + ("every goal met" if not missed else f"missed: {'; '.join(missed)}")
        + f" ({time.monotonic() - started:.0f} s)"
    )
    return 0 if failed == 0 else 1


def _say(message: str) -> None:
    print(message, flush=True)


if __name__ == "__main__":
    sys.exit(main())
