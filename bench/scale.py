"""Scale benchmark: the mission's scenario through the real daemon and real worker processes.

    .venv/bin/python bench/scale.py                       # 2,000 models, 2.4 GB, 4 minutes
    .venv/bin/python bench/scale.py --models 300 --total 200M --duration 20   # a smoke run

Builds (once, cached in bench/.cache/ by its parameters) a catalog of real model images with
lognormal sizes, starts ``modelshelfd`` with L1 and L2 budgets as shares of the catalog, and
has long-lived worker processes (one ``Client`` each) replay a Zipf request stream with bursty
tenants (``modelshelfd.scenario``). Reports requests, failures, latency by source at
p50/p99/p99.9, L1/L2/leased bytes and /dev/shm against the budgets, each worker's PSS, the
daemon's CPU and RSS, and bytes read from the store; marks each goal met or missed. Writes
bench/out/scale.json and scale.md and the plots scale_{latency,memory,daemon}.png (docs/img/
by default). It never asserts: it reports.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import scale_report
from bench._util import OUT, ROOT, machine_summary
from modelshelfd import scenario

_size = scenario.size_argument  # the flags' sizes: 2.4G, 50M


def _optional(text: str) -> int | None:
    value = _size(text)
    return value or None  # 0: leave the client's own default


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("catalog")
    g.add_argument("--models", type=int, default=2000, help="models in the catalog")
    g.add_argument("--total", type=_size, default="2.4G", help="bytes of all images (K=1000)")
    g.add_argument("--min-size", type=_size, default="10K", help="smallest image")
    g.add_argument("--max-size", type=_size, default="50M", help="largest image")
    g.add_argument("--sigma", type=float, default=2.0, help="of the lognormal sizes")
    g.add_argument("--tenants", type=int, default=40, help="namespaces t000...")
    g.add_argument("--cache", type=Path, default=ROOT / "bench" / ".cache", help="built catalogs")
    g = p.add_argument_group("daemon and workers")
    g.add_argument("--l1", type=float, default=0.2, help="L1 budget, share of the catalog")
    g.add_argument("--l2", type=float, default=0.5, help="L2 budget, share of the catalog")
    g.add_argument(
        "--policy", choices=("cost", "lru"), default="cost", help="the daemon's eviction policy"
    )
    g.add_argument("--workers", type=int, default=6, help="processes, one Client each")
    g.add_argument(
        "--held-bytes",
        type=_optional,
        default="0",
        help="each Client's max_held_bytes (0: not passed: the client's default, which is "
        "the daemon's advice)",
    )
    g.add_argument(
        "--held-models", type=int, default=0, help="each Client's max_held_models (0: not passed)"
    )
    g = p.add_argument_group("requests")
    g.add_argument("--rate", type=float, default=150.0, help="requests/s, all workers")
    g.add_argument("--duration", type=float, default=240.0, help="seconds of requests")
    g.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds left out of steady CPU and RSS (default: min(30, duration/4))",
    )
    g.add_argument("--zipf", type=float, default=1.0, help="popularity exponent")
    g.add_argument(
        "--hot",
        choices=("random", "small", "large"),
        default="random",
        help="which models are popular",
    )
    g.add_argument("--burst-rate", type=float, default=4.0, help="tenant bursts per minute")
    g.add_argument("--burst-seconds", type=float, default=5.0, help="length of a burst")
    g.add_argument(
        "--burst-share",
        type=float,
        default=0.5,
        help="share of the requests during a burst that go to its tenant",
    )
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("output")
    g.add_argument("--out", type=Path, default=OUT, help="scale.json and scale.md")
    g.add_argument("--img-dir", type=Path, default=ROOT / "docs" / "img", help="the PNG plots")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.monotonic()
    spec = scenario.CatalogSpec(
        models=args.models,
        total_bytes=args.total,
        min_bytes=args.min_size,
        max_bytes=args.max_size,
        tenants=args.tenants,
        sigma=args.sigma,
        seed=args.seed,
    )
    args.cache.mkdir(parents=True, exist_ok=True)
    (args.cache / ".gitignore").write_text("*\n")  # built stores are never committed
    catalog = scenario.cached_catalog(args.cache, spec, _say, keep_others=True)
    total = catalog.total_bytes
    setup = scenario.Setup(
        workers=args.workers,
        l1_bytes=int(args.l1 * total),
        l2_bytes=int(args.l2 * total),
        held_bytes=args.held_bytes,
        held_models=args.held_models or None,
        policy=args.policy,
        warmup=min(30.0, args.duration / 4) if args.warmup is None else args.warmup,
    )
    traffic = scenario.Traffic(
        rate=args.rate,
        duration=args.duration,
        zipf=args.zipf,
        hot=args.hot,
        burst_rate=args.burst_rate,
        burst_seconds=args.burst_seconds,
        burst_share=args.burst_share,
        seed=args.seed,
    )
    _say(
        f"catalog {catalog.root}: {len(catalog.refs):,} models, {total / 1e9:.2f} GB; "
        f"L1 {setup.l1_bytes / 1e6:,.0f} MB, L2 {setup.l2_bytes / 1e6:,.0f} MB"
    )
    result = scenario.run(catalog, traffic, setup, _say)
    summary = scenario.summarize(result)
    params = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    machine = machine_summary()
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {
        "params": params,
        "machine": machine,
        "summary": summary,
        "series": result.samples,
        "workers": result.workers,
        "per_second": scale_report.per_second(result),
        "bursts": [{"start": s, "tenant": t} for s, t in result.bursts],
        "elapsed": time.monotonic() - started,
    }
    (args.out / "scale_daemon.log").write_text(result.daemon_log)
    (args.out / "scale.json").write_text(json.dumps(doc, indent=1, default=_plain) + "\n")
    img = os.path.relpath(args.img_dir, args.out)
    text = scale_report.markdown(summary, params, machine, img)
    (args.out / "scale.md").write_text(text)
    paths = scale_report.plots(result, summary, args.img_dir)
    print()
    print(text)
    print(
        f"wrote scale.md, scale.json and scale_daemon.log in {args.out}, and "
        f"{', '.join(p.name for p in paths)} in {args.img_dir} "
        f"({time.monotonic() - started:.0f} s)"
    )


def _plain(value: object) -> object:
    # numpy scalars in the summary
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON: {value!r}")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the daemon and the workers are stopped by now
        sys.exit("interrupted")
