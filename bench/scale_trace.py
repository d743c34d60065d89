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

``--exclusive`` makes the tiers exclusive (an image is in L1 or in L2, never both): a promotion
into L1 removes the L2 file, an L1 victim is demoted into an L2 file (a local write, no store
read; dropped only if L2 will not take it), a store fetch goes into L1 alone if L1 admits it.
``--compare`` runs both layouts, ``--policies lru,cost,offline`` adds ``Oracle`` (the offline
heuristic of ``bench/policy.py`` in both tiers) and the offline heuristic as one cache of L2
alone and of L1 + L2, over the ``--seed`` list, and prints a markdown table (``--json``: rows):

    .venv/bin/python -m bench.scale_trace --duration 180 --compare --policies lru,cost,offline \
        --seed 0,1,2,3,4
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._util import ROOT
from bench.policy import NEVER, Trace, run_offline
from modelshelfd import scenario
from modelshelfd.policy import Candidate, Candidates, CostAwarePolicy, LRUPolicy, Policy
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


class Oracle:
    """The offline heuristic of ``bench/policy.py`` (``run_offline``) as a ``Policy`` for one
    tier: it knows when each image is used next. Victims: the largest ``(requests until the
    next use) x size / cost`` first, never-used-again first; none (the newcomer is kept out,
    ``make_room`` fails) when the newcomer would score at least as high as a victim it needs.
    Admission into L1 is left to ``victims``. ``next_use[i]``: the index of the next request
    of the model of request ``i`` (``Trace.next_uses``); it follows the requests through
    ``on_request``, which the model calls once per request, in order."""

    def __init__(self, next_use: list[int], cost: Callable[[int], float]) -> None:
        self.next_use, self.cost = next_use, cost
        self.i = -1
        self.when: dict[str, float] = {}  # key -> index of its next request (inf: never)

    def on_request(self, key: str, size: int, now: float) -> None:
        self.i += 1
        n = self.next_use[self.i]
        self.when[key] = math.inf if n == NEVER else float(n)

    def on_load(self, key: str, size: int, seconds: float, now: float) -> None:
        pass

    def on_insert(self, key: str, size: int, now: float) -> None:
        pass

    def on_evict(self, key: str, now: float) -> None:
        pass

    def admit(self, candidate: Candidate, free: int, now: float) -> bool:
        return True

    def score(self, key: str, size: int) -> float:
        far = self.when.get(key, math.inf) - self.i
        return math.inf if far == math.inf else far * size / max(self.cost(size), 1e-12)

    def victims(self, candidates: Candidates, need: int, now: float) -> list[str]:
        return self.victims_for(None, 0, candidates, need)

    def victims_for(
        self, key: str | None, size: int, candidates: Candidates, need: int
    ) -> list[str]:
        view = candidates if isinstance(candidates, Mapping) else {c.key: c for c in candidates}
        mine = -math.inf if key is None else self.score(key, size)
        ranked = sorted(view.values(), key=lambda c: (-self.score(c.key, c.size), c.key))
        chosen: list[str] = []
        freed = 0
        for c in ranked:
            if freed >= need:
                break
            if self.score(c.key, c.size) <= mine:
                return []  # the newcomer is worth less than what it would push out
            chosen.append(c.key)
            freed += c.size
        return chosen


class Tier:
    def __init__(self, budget: int, policy: Policy) -> None:
        self.budget, self.policy = budget, policy
        self.copies: dict[str, Candidate] = {}
        self.used = 0

    def make_room(
        self, key: str, size: int, now: float, usage: dict[str, tuple[float, int]]
    ) -> tuple[bool, list[tuple[str, int]]]:
        """Whether ``size`` bytes fit after the evictions, and the evicted (key, size)."""
        need = self.used + size - self.budget
        gone: list[tuple[str, int]] = []
        if need > 0:
            # the shelf's ``_usage``: last use and hits of the entry, shared by both tiers
            view = {k: Candidate(k, c.size, *usage[k]) for k, c in self.copies.items()}
            if isinstance(self.policy, Oracle):
                chosen = self.policy.victims_for(key, size, view, need)
            else:
                chosen = self.policy.victims(view, need, now)
            for victim in chosen:
                c = self.copies.pop(victim)
                self.used -= c.size
                gone.append((victim, c.size))
        return self.used + size <= self.budget, gone

    def add(self, key: str, size: int, seconds: float, now: float) -> None:
        self.policy.on_load(key, size, seconds, now)
        self.policy.on_insert(key, size, now)
        self.copies[key] = Candidate(key, size, now)
        self.used += size

    def drop(self, key: str, now: float) -> None:
        """The copy leaves the tier for another reason than ``victims`` (a promotion)."""
        self.used -= self.copies.pop(key).size
        self.policy.on_evict(key, now)


Audit = Callable[[Tier, Tier], None]


def two_tiers(
    rows: list[tuple[float, int]],
    catalog: Catalog,
    l1: int,
    l2: int,
    policy: str,
    l1_cost: Callable[[int], float],
    l2_cost: Callable[[int], float],
    *,
    exclusive: bool = False,
    audit: Audit | None = None,
) -> dict[str, int]:
    """Store fetches and bytes of the daemon's two tiers (the module docstring). ``policy``:
    ``lru``, ``cost`` (the daemon's) or ``offline`` (``Oracle`` in both tiers). ``audit`` is
    called with (L1, L2) after each request (the tests' check of the invariants)."""
    if policy == "lru":
        p1: Policy = LRUPolicy()
        p2: Policy = LRUPolicy()
    elif policy == "cost":
        p1 = CostAwarePolicy(l1, bandwidth=L1_BANDWIDTH)
        p2 = CostAwarePolicy(l2, bandwidth=L2_BANDWIDTH)
    elif policy == "offline":
        keys = np.fromiter((m for _, m in rows), dtype=np.int64, count=len(rows))
        sizes = catalog.sizes[keys] if len(rows) else keys
        nxt = Trace("rows", keys.astype(np.float64), keys, sizes, sizes.astype(np.float64))
        following = nxt.next_uses().tolist() if len(rows) else []
        p1, p2 = Oracle(following, l1_cost), Oracle(following, l2_cost)
    else:
        raise ValueError(f"policy: expected lru, cost or offline, found {policy!r}")
    t1, t2 = Tier(l1, p1), Tier(l2, p2)
    usage: dict[str, tuple[float, int]] = {}  # the shelf's entries: (last use, hits)
    names = (
        "requests l1_hits l2_hits fetches fetched_bytes promotions promoted_bytes "
        "demotions demoted_bytes l2_written_bytes dropped"
    )
    out = dict.fromkeys(names.split(), 0)

    def into_l1(key: str, size: int, now: float) -> bool:
        """Room in L1 for ``key``; exclusive: each L1 victim goes down into L2 (a local write,
        no store read), or is dropped if L2 will not take it."""
        ok, gone = t1.make_room(key, size, now, usage)
        if not ok:
            if exclusive:
                for victim, vsize in gone:
                    into_l2(victim, vsize, now, demoted=True)
            return False
        if exclusive and key in t2.copies:
            t2.drop(key, now)  # promoted: the L2 file is removed
        if exclusive:
            for victim, vsize in gone:
                into_l2(victim, vsize, now, demoted=True)
        t1.add(key, size, l1_cost(size), now)
        return True

    def into_l2(key: str, size: int, now: float, *, demoted: bool = False) -> bool:
        ok, _ = t2.make_room(key, size, now, usage)
        if not ok:
            out["dropped"] += demoted
            return False
        t2.add(key, size, l2_cost(size), now)
        out["l2_written_bytes"] += size
        if demoted:
            out["demotions"] += 1
            out["demoted_bytes"] += size
        return True

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
            if admitted and into_l1(key, size, now):
                out["promotions"] += 1
                out["promoted_bytes"] += size
        else:
            out["fetches"] += 1
            out["fetched_bytes"] += size
            usage[key] = (now, 0)
            if admitted and into_l1(key, size, now):
                if not exclusive:
                    into_l2(key, size, now)
            elif into_l2(key, size, now):
                pass
            elif not isinstance(p1, Oracle):
                t1.make_room(key, size, now, usage)  # L1 after all (never refused here)
                t1.add(key, size, l1_cost(size), now)
        usage[key] = (now, hits + 1)
        if audit is not None:
            audit(t1, t2)
    return out


def one_cache_offline(rows: list[tuple[float, int]], catalog: Catalog, capacity: int) -> int:
    """Store bytes of ``bench/policy.py``'s offline heuristic as one cache of ``capacity``
    bytes seeing every request (cost = size: the byte objective): what clairvoyant exclusive
    tiers of ``capacity`` bytes in all could get."""
    keys = np.fromiter((m for _, m in rows), dtype=np.int64, count=len(rows))
    sizes = catalog.sizes[keys].astype(np.int64)
    trace = Trace("rows", keys.astype(np.float64), keys, sizes, sizes.astype(np.float64))
    hits = run_offline(trace, capacity)
    return int(sizes[~hits].sum())


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
    p.add_argument(
        "--seed",
        dest="seeds",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[0],
        help="catalog and traffic seed; with --tiers, several comma-separated",
    )
    p.add_argument(
        "--exclusive",
        action="store_true",
        help="--tiers with exclusive tiers (an image in L1 or L2, never both)",
    )
    p.add_argument(
        "--compare", action="store_true", help="--tiers, inclusive and exclusive, a markdown table"
    )
    p.add_argument("--policies", default="lru,cost", help="with --tiers: lru, cost, offline")
    p.add_argument("--json", action="store_true", help="with --tiers: the rows as JSON")
    p.add_argument("--cache", type=Path, default=ROOT / "bench" / ".cache", help="built catalogs")
    return p.parse_args(argv)


def _setup(args: argparse.Namespace, seed: int) -> tuple[Catalog, scenario.Traffic]:
    spec = CatalogSpec(models=args.models, total_bytes=args.total, tenants=args.tenants, seed=seed)
    traffic = scenario.Traffic(rate=args.rate, duration=args.duration, zipf=args.zipf, seed=seed)
    return catalog_of(spec, args.cache), traffic


def compare(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every layout x policy x seed through the two-tier model, one row each, with store bytes
    against LRU's in today's inclusive layout and in the same layout."""
    layouts = (
        ("inclusive", "exclusive")
        if args.compare
        else (("exclusive",) if args.exclusive else ("inclusive",))
    )
    policies = args.policies.split(",")
    l1_cost = cost_of("local", 0.0, L1_BANDWIDTH)  # a copy from the L2 file
    table: list[dict[str, Any]] = []
    for seed in args.seeds:
        catalog, traffic = _setup(args, seed)
        total = catalog.total_bytes
        l1, l2 = int(args.l1 * total), int(args.l2 * total)
        everything = len(request_stream(catalog, traffic).times)
        listed = list(
            daemon_requests(
                catalog, traffic, workers=args.workers, held_bytes=l1 // 8, everything=args.all
            )
        )
        l2_cost = cost_of(args.cost, args.fixed, args.bandwidth)
        lru: dict[str, int] = {}
        for layout in layouts:
            for policy in policies:
                got = two_tiers(
                    listed,
                    catalog,
                    l1,
                    l2,
                    policy,
                    l1_cost,
                    l2_cost,
                    exclusive=layout == "exclusive",
                )
                if policy == "lru":
                    lru[layout] = got["fetched_bytes"]
                held = everything - len(listed)
                on_node = held + got["l1_hits"] + got["l2_hits"]
                table.append(
                    {
                        "seed": seed,
                        "layout": layout,
                        "policy": policy,
                        **got,
                        "all_requests": everything,
                        "on_node": on_node,
                        "vs_lru_inclusive": got["fetched_bytes"] / lru["inclusive"]
                        if "inclusive" in lru
                        else None,
                        "vs_lru_same": got["fetched_bytes"] / lru[layout]
                        if layout in lru
                        else None,
                    }
                )
        offline = (("L2 alone", l2), ("L1 + L2 as one", l1 + l2)) if "offline" in policies else ()
        for name, capacity in offline:
            nbytes = one_cache_offline(listed, catalog, capacity)
            table.append(
                {
                    "seed": seed,
                    "layout": f"one cache: {name}",
                    "policy": "offline",
                    "fetched_bytes": nbytes,
                    "vs_lru_inclusive": nbytes / lru["inclusive"] if "inclusive" in lru else None,
                }
            )
    return table


def _ratio(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def markdown(table: list[dict[str, Any]]) -> str:
    head = (
        "| seed | layout | policy | store fetches | store GB | vs LRU incl. | vs LRU same "
        "layout | L1 hits | L2 hits | L2 hits / on-node acquires | demotions (GB) "
        "| L2 writes GB | promotions |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in table:
        if "requests" not in r:
            lines.append(
                f"| {r['seed']} | {r['layout']} | {r['policy']} | | "
                f"{r['fetched_bytes'] / 1e9:.2f} | {_ratio(r['vs_lru_inclusive'])} "
                "| | | | | | | |"
            )
            continue
        lines.append(
            f"| {r['seed']} | {r['layout']} | {r['policy']} | {r['fetches']:,} | "
            f"{r['fetched_bytes'] / 1e9:.2f} | {_ratio(r['vs_lru_inclusive'])} | "
            f"{_ratio(r['vs_lru_same'])} | {r['l1_hits']:,} | {r['l2_hits']:,} | "
            f"{r['l2_hits'] / r['on_node']:.1%} | {r['demotions']:,} "
            f"({r['demoted_bytes'] / 1e9:.2f}) | {r['l2_written_bytes'] / 1e9:.2f} | "
            f"{r['promotions']:,} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.tiers or args.exclusive or args.compare:
        table = compare(args)
        if args.json:
            print(json.dumps(table, indent=1))
        elif args.compare or len(args.seeds) > 1 or args.policies != "lru,cost":
            print(markdown(table))
        else:  # today's short report
            for r in table:
                if "requests" in r:
                    print(
                        f"{r['policy']}: {r['requests']:,} requests at the daemon, L1 hits "
                        f"{r['l1_hits']:,}, L2 hits {r['l2_hits']:,}, store fetches "
                        f"{r['fetches']:,}, {r['fetched_bytes'] / 1e9:.2f} GB"
                    )
        return
    if args.out is None:
        raise SystemExit("expected --out FILE.csv (or --tiers)")
    (seed,) = args.seeds[:1] or (0,)
    catalog, traffic = _setup(args, seed)
    total = catalog.total_bytes
    l1, l2 = int(args.l1 * total), int(args.l2 * total)
    rows = daemon_requests(
        catalog, traffic, workers=args.workers, held_bytes=l1 // 8, everything=args.all
    )
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
