"""The real scenario's request stream as the policy simulator's CSV, and a two-tier replay.

    .venv/bin/python -m bench.scale_trace --duration 180 --out /tmp/scale180.csv
    .venv/bin/python -m bench.policy --trace /tmp/scale180.csv --cache-fraction 0.52
    .venv/bin/python -m bench.scale_trace --duration 180 --tiers      # L1 + L2, as the daemon

``bench/scale.py`` replays ``modelshelfd.scenario.request_stream`` (the same catalog spec,
traffic and seed as its defaults here) through 6 workers whose clients each hold a bounded set
of models (least recently used dropped first; by default the daemon's advice, an eighth of L1
and 256 models): a request for a held model never reaches the daemon. This writes the requests
that do reach it (``--all``: every request) as ``time,model,size,cost`` rows, the model named
as the daemon names it (``t007/m0123``: the namespace before the ``/``).

``cost``: ``local`` (default) is a local-directory store, a fixed ``--fixed`` seconds plus
size over ``--bandwidth`` (2 ms + size / 1 GB/s); ``bytes`` is the size itself (then the
cost miss ratio is the byte miss ratio).

``--tiers`` replays the daemon's request stream through a model of its two tiers instead, with
the daemon's policies (``lru`` and ``cost``, the objects ``Shelf`` builds): every request is
told to both policies; an L1 hit is a hit; else an L2 hit (promoted into L1 if L1 admits it);
else a store fetch, into L1 and L2 if L1 admits it, else into L2 alone. It prints the store
fetches and bytes, to set beside the real daemon's counters. Not modelled: leases (a held
model cannot be evicted from L1), fetches in flight, page rounding. It never asserts: it
reports.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._util import ROOT
from modelshelfd import scenario
from modelshelfd.policy import Candidate, CostAwarePolicy, LRUPolicy, Policy
from modelshelfd.scenario.catalog import Catalog, CatalogSpec, target_sizes
from modelshelfd.scenario.traffic import request_stream
from modelshelfd.shelf import L1_BANDWIDTH, L2_BANDWIDTH

WORKERS = 6
HELD_MODELS = 256  # the client's default count


def catalog_of(spec: CatalogSpec, cache: Path) -> Catalog:
    """The built catalog if ``bench/scale.py`` cached it, else its sizes from the spec (the
    images' real sizes are within a few hundred bytes of these), named as the build names
    them (``t{i % tenants}/m{i}``)."""
    built = cache / f"catalog-{spec.key()}"
    if (built / "catalog.json").is_file():
        return Catalog.load(built)
    sizes = target_sizes(spec)
    digits = max(4, len(str(spec.models - 1)))
    tenant = np.arange(spec.models) % spec.tenants
    refs = [f"t{t:03d}/m{i:0{digits}d}" for i, t in enumerate(tenant.tolist())]
    return Catalog(built, refs, sizes, tenant, [spec.n_features] * spec.models, spec)


def daemon_requests(
    catalog: Catalog, traffic: scenario.Traffic, *, workers: int, held_bytes: int, everything: bool
) -> Iterator[tuple[float, int]]:
    """(time, model) of the requests that reach the daemon, as ``scenario.run`` shares the
    stream out among the workers (the same owner draw) and each client holds its models."""
    stream = request_stream(catalog, traffic)
    owner = np.random.default_rng(traffic.seed + 7).integers(workers, size=len(stream.times))
    held: list[OrderedDict[int, int]] = [OrderedDict() for _ in range(workers)]
    held_used = [0] * workers
    for t, m, w in zip(stream.times.tolist(), stream.models.tolist(), owner.tolist(), strict=True):
        mine = held[w]
        if not everything and m in mine:
            mine.move_to_end(m)
            continue
        yield t, m
        size = int(catalog.sizes[m])
        if size > held_bytes:
            continue  # returned, not kept (the client's rule)
        mine[m] = size
        held_used[w] += size
        while held_used[w] > held_bytes or len(mine) > HELD_MODELS:
            _, dropped = mine.popitem(last=False)
            held_used[w] -= dropped


def cost_of(kind: str, fixed: float, bandwidth: float) -> Callable[[int], float]:
    if kind == "bytes":
        return float
    return lambda size: fixed + size / bandwidth


def write_csv(
    path: Path, rows: Iterator[tuple[float, int]], catalog: Catalog, cost: Callable[[int], float]
) -> dict[str, Any]:
    seen: set[int] = set()
    n = nbytes = first = 0
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["time", "model", "size", "cost"])
        for t, m in rows:
            size = int(catalog.sizes[m])
            out.writerow([f"{t:.6f}", catalog.refs[m], size, f"{cost(size):.9g}"])
            n += 1
            nbytes += size
            if m not in seen:
                seen.add(m)
                first += size
    return {"requests": n, "bytes": nbytes, "models": len(seen), "working_set": first}


# -- the two tiers ----------------------------------------------------------------------------


class _Tier:
    def __init__(self, budget: int, policy: Policy) -> None:
        self.budget, self.policy = budget, policy
        self.copies: dict[str, Candidate] = {}
        self.used = 0

    def make_room(self, size: int, now: float, usage: dict[str, tuple[float, int]]) -> bool:
        need = self.used + size - self.budget
        if need > 0:
            # the shelf's ``_usage``: last use and hits of the entry, shared by both tiers
            view = {k: Candidate(k, c.size, *usage[k]) for k, c in self.copies.items()}
            for victim in self.policy.victims(view, need, now):
                self.used -= self.copies.pop(victim).size
        return self.used + size <= self.budget

    def add(self, key: str, size: int, seconds: float, now: float) -> None:
        self.policy.on_load(key, size, seconds, now)
        self.policy.on_insert(key, size, now)
        self.copies[key] = Candidate(key, size, now)
        self.used += size


def two_tiers(
    rows: list[tuple[float, int]],
    catalog: Catalog,
    l1: int,
    l2: int,
    policy: str,
    l1_cost: Callable[[int], float],
    l2_cost: Callable[[int], float],
) -> dict[str, int]:
    """Store fetches and bytes of the daemon's two tiers (the module docstring)."""
    if policy == "lru":
        p1: Policy = LRUPolicy()
        p2: Policy = LRUPolicy()
    else:
        p1 = CostAwarePolicy(l1, bandwidth=L1_BANDWIDTH)
        p2 = CostAwarePolicy(l2, bandwidth=L2_BANDWIDTH)
    t1, t2 = _Tier(l1, p1), _Tier(l2, p2)
    usage: dict[str, tuple[float, int]] = {}  # the shelf's entries: (last use, hits)
    out = {"requests": 0, "l1_hits": 0, "l2_hits": 0, "fetches": 0, "fetched_bytes": 0}
    for now, m in rows:
        key, size = catalog.refs[m], int(catalog.sizes[m])
        out["requests"] += 1
        p1.on_request(key, size, now)
        p2.on_request(key, size, now)
        last, hits = usage.get(key, (now, 0))
        if key not in t1.copies and key not in t2.copies:
            hits = 0  # the shelf forgets an entry with no copy
        admitted = p1.admit(Candidate(key, size, last, hits), t1.budget - t1.used, now)
        if key in t1.copies:
            out["l1_hits"] += 1
        elif key in t2.copies:
            out["l2_hits"] += 1
            if admitted and t1.make_room(size, now, usage):
                t1.add(key, size, l1_cost(size), now)
        else:
            out["fetches"] += 1
            out["fetched_bytes"] += size
            usage[key] = (now, 0)
            if admitted and t1.make_room(size, now, usage):
                t1.add(key, size, l1_cost(size), now)
                if t2.make_room(size, now, usage):
                    t2.add(key, size, l2_cost(size), now)
            elif t2.make_room(size, now, usage):
                t2.add(key, size, l2_cost(size), now)
            else:
                t1.make_room(size, now, usage)  # L1 after all (never refused here)
                t1.add(key, size, l1_cost(size), now)
        usage[key] = (now, hits + 1)
    return out


# -- command line -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = CatalogSpec()
    t = scenario.Traffic()
    p.add_argument("--duration", type=float, default=180.0, help="seconds of requests")
    p.add_argument("--out", type=Path, help="the CSV to write (without --tiers)")
    p.add_argument("--cost", choices=("local", "bytes"), default="local")
    p.add_argument("--fixed", type=float, default=0.002, help="seconds per fetch (local)")
    p.add_argument("--bandwidth", type=float, default=1e9, help="bytes/s (local)")
    p.add_argument("--all", action="store_true", help="every request, held ones too")
    p.add_argument("--tiers", action="store_true", help="replay through L1 + L2 instead")
    p.add_argument("--l1", type=float, default=0.2, help="L1 budget, share of the catalog")
    p.add_argument("--l2", type=float, default=0.5, help="L2 budget, share of the catalog")
    p.add_argument("--workers", type=int, default=WORKERS)
    p.add_argument("--models", type=int, default=d.models)
    p.add_argument("--total", type=scenario.size_argument, default=d.total_bytes)
    p.add_argument("--tenants", type=int, default=d.tenants)
    p.add_argument("--rate", type=float, default=t.rate)
    p.add_argument("--zipf", type=float, default=t.zipf)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, default=ROOT / "bench" / ".cache", help="built catalogs")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    spec = CatalogSpec(
        models=args.models, total_bytes=args.total, tenants=args.tenants, seed=args.seed
    )
    catalog = catalog_of(spec, args.cache)
    traffic = scenario.Traffic(
        rate=args.rate, duration=args.duration, zipf=args.zipf, seed=args.seed
    )
    total = catalog.total_bytes
    l1, l2 = int(args.l1 * total), int(args.l2 * total)
    rows = daemon_requests(
        catalog, traffic, workers=args.workers, held_bytes=l1 // 8, everything=args.all
    )
    if args.tiers:
        listed = list(rows)
        l1_cost = cost_of("local", 0.0, L1_BANDWIDTH)  # a copy from the L2 file
        l2_cost = cost_of(args.cost, args.fixed, args.bandwidth)
        for policy in ("lru", "cost"):
            got = two_tiers(listed, catalog, l1, l2, policy, l1_cost, l2_cost)
            print(
                f"{policy}: {got['requests']:,} requests at the daemon, L1 hits "
                f"{got['l1_hits']:,}, L2 hits {got['l2_hits']:,}, store fetches "
                f"{got['fetches']:,}, {got['fetched_bytes'] / 1e9:.2f} GB"
            )
        return
    if args.out is None:
        raise SystemExit("expected --out FILE.csv (or --tiers)")
    info = write_csv(args.out, rows, catalog, cost_of(args.cost, args.fixed, args.bandwidth))
    print(
        f"{args.out}: {info['requests']:,} requests ({info['bytes'] / 1e9:.2f} GB) of "
        f"{info['models']:,} models; working set {info['working_set'] / 1e9:.3f} GB "
        f"(compulsory byte miss ratio {info['working_set'] / info['bytes']:.4f}); "
        f"L2 = {l2 / 1e9:.3f} GB = {l2 / info['working_set']:.4f} of the working set, "
        f"L1 = {l1 / info['working_set']:.4f}"
    )


if __name__ == "__main__":
    main()
