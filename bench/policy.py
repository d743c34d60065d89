"""Policy simulator: a trace through the daemon's own policy and the field's anchors.

    .venv/bin/python -m bench.policy                                  # Azure-shaped, 3 seeds
    .venv/bin/python -m bench.policy --trace my.csv --cache-fraction 0.2 --json
    .venv/bin/python -m bench.policy --seeds 5 --only modelshelf,offline --policy-arg gate=0.1

Replays a request trace through ``modelshelfd.policy.CostAwarePolicy`` (the very object the
daemon drives, through the same hooks: ``on_request``, ``admit``, ``victims``, ``on_load``,
``on_insert``), through libCacheSim's LRU, S3-FIFO, SIEVE, LHD, GDSF and Belady,
and through an offline cost- and size-aware Belady heuristic, at cache sizes that are shares
of the trace's working set (the bytes of its distinct models). Every policy sees the same
requests and the same cache bytes. A request is a hit if the model is in the cache; an image
the daemon's policy does not admit is served from the page cache, a miss for this tier.

Reports, per policy and cache share (mean over seeds, with the spread): the request miss
ratio, the byte miss ratio, and the cost miss ratio (the reload seconds of the misses over the
reload seconds of all requests). Prints a table, draws bench/out/policy.png (or --img), and
with --json prints one JSON object instead (``per_trace``: each seed's numbers). To try a
variant of the daemon's policy: ``--policy-arg NAME=VALUE`` (its keyword arguments) and
``--only`` (the policies to run: the offline heuristic and modelshelf take seconds per trace,
libCacheSim's minutes).

Traces: ``azure_trace`` is shaped like the Azure Functions 2019 trace (per-model daily rate
with log10 ~ Normal(1.6, 1.77), gamma inter-arrivals with lognormal coefficients of variation,
a diurnal cycle per tenant, tenants of one to many models, lognormal sizes between 10 KB and
8 GB, reload seconds a fixed part plus size over the tier's bandwidth). ``csv_trace`` replays
a file with the columns ``time,model,size`` and an optional ``cost`` (seconds to reload).
It never asserts: it reports.
"""

from __future__ import annotations

import argparse
import csv
import functools
import inspect
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._util import OUT, machine_summary, markdown_table
from modelshelfd.policy import Candidate, CostAwarePolicy

FRACTIONS = (0.01, 0.05, 0.10, 0.20, 0.40)
DAY = 86400.0
NEVER = np.iinfo(np.int64).max  # the next use of a model never used again
MIN_SIZE, MAX_SIZE = 10_000, 8_000_000_000


@dataclass
class Trace:
    """Requests in time order: which model, its size and its reload seconds."""

    name: str
    times: np.ndarray  # float seconds
    keys: np.ndarray  # int model ids 0..models-1
    sizes: np.ndarray  # int bytes
    costs: np.ndarray  # float seconds to bring the model from the tier below
    notes: tuple[str, ...] = ()  # what the reader changed, said to the user

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def working_set(self) -> int:
        """Bytes of the distinct models (the last size seen of each)."""
        last = np.zeros(int(self.keys.max()) + 1, dtype=np.int64)
        last[self.keys] = self.sizes  # later requests overwrite earlier ones
        return int(last.sum())

    def next_uses(self) -> np.ndarray:
        """For each request, the index of the next request of the same model (or NEVER)."""
        order = np.lexsort((np.arange(len(self)), self.keys))
        out = np.full(len(self), NEVER, dtype=np.int64)
        same = self.keys[order[1:]] == self.keys[order[:-1]]
        out[order[:-1][same]] = order[1:][same]
        return out


# -- traces -----------------------------------------------------------------------------------


def azure_trace(
    seed: int,
    *,
    models: int = 1000,
    days: float = 1.0,
    max_rate: float = 2000.0,
    size_median: float = 8e6,
    size_sigma: float = 2.0,
    fixed: float = 0.03,
    bandwidth: float = 100e6,
) -> Trace:
    """A day of requests shaped like the Azure Functions 2019 trace (the module docstring).

    Daily rates above ``max_rate`` are capped (the hottest models stay resident under every
    policy; uncapped they would be most of the requests and tell the policies apart less)."""
    rng = np.random.default_rng(seed)
    tenant_of: list[int] = []
    while len(tenant_of) < models:  # tenants of one to many models, most of few
        n = int(min(models - len(tenant_of), max(1, round(rng.lognormal(0.0, 1.2)))))
        tenant_of += [tenant_of[-1] + 1 if tenant_of else 0] * n
    tenants = tenant_of[-1] + 1
    phase = rng.uniform(0, 2 * np.pi, tenants)
    swing = rng.uniform(0.2, 0.9, tenants)  # diurnal amplitude
    rate = np.minimum(10 ** rng.normal(1.6, 1.77, models), max_rate) / DAY  # per second
    cv = np.clip(rng.lognormal(0.0, 0.8, models), 0.2, 8.0)
    sizes = np.clip(rng.lognormal(np.log(size_median), size_sigma, models), MIN_SIZE, MAX_SIZE)
    sizes = sizes.astype(np.int64)
    span = days * DAY
    grid = np.linspace(0.0, span, int(days * 1440) + 1)  # one point a minute
    times, keys = [], []
    for m in range(models):
        t = tenant_of[m]
        # operational time of a cycle 1 + a sin(wt + phase): arrivals are gamma there
        w = 2 * np.pi / DAY
        op = grid + swing[t] / w * (np.cos(phase[t]) - np.cos(w * grid + phase[t]))
        expected = rate[m] * op[-1]
        n = int(expected * 1.5 + 10 * (1 + cv[m]) + 10)
        shape = 1.0 / cv[m] ** 2
        gaps = rng.gamma(shape, 1.0 / (shape * rate[m]), n)
        arrivals = np.cumsum(gaps) - rng.uniform(0, 1) * gaps[0]  # start mid-gap
        while arrivals[-1] < op[-1]:
            more = rng.gamma(shape, 1.0 / (shape * rate[m]), n)
            arrivals = np.concatenate([arrivals, arrivals[-1] + np.cumsum(more)])
        arrivals = arrivals[(arrivals >= 0) & (arrivals < op[-1])]
        times.append(np.interp(arrivals, op, grid))
        keys.append(np.full(len(arrivals), m, dtype=np.int64))
    all_times = np.concatenate(times)
    all_keys = np.concatenate(keys)
    order = np.argsort(all_times, kind="stable")
    all_keys = all_keys[order]
    req_sizes = sizes[all_keys]
    return Trace(
        f"azure-like seed {seed}",
        all_times[order],
        all_keys,
        req_sizes,
        fixed + req_sizes / bandwidth,
    )


def _number(text: str | None, what: str, where: str) -> float:
    try:
        value = float(text if text is not None else "")
    except ValueError:
        raise SystemExit(f"{where}: {what} must be a number, got {text!r}") from None
    if not np.isfinite(value):
        raise SystemExit(f"{where}: {what} must be finite, got {text!r}")
    return value


def csv_trace(path: Path, *, fixed: float = 0.03, bandwidth: float = 100e6) -> Trace:
    """``time,model,size[,cost]`` rows (a header line); without ``cost`` (or with it empty),
    the reload seconds are ``fixed + size / bandwidth``. Rows are replayed in time order
    (stable). Every row is checked, and a bad one stops the replay with its line: a time and a
    cost that are finite numbers (cost >= 0), a size in whole bytes > 0 and a model name. A
    model whose size changes is a new version: each size is replayed as an image of its own
    (cached apart, as the daemon caches ``model@1`` and ``model@2``), and the trace's ``notes``
    say how many models that was."""
    ids: dict[tuple[str, int], int] = {}
    sized: dict[str, set[int]] = {}  # model -> its sizes
    times, keys, sizes, costs = [], [], [], []
    try:
        fh = path.open(newline="")
    except OSError as exc:
        raise SystemExit(f"{path}: cannot read the trace: {exc.strerror or exc}") from None
    with fh:
        reader = csv.DictReader(fh)
        missing = {"time", "model", "size"} - set(reader.fieldnames or ())
        if missing:
            raise SystemExit(
                f"{path}: expected the columns time,model,size[,cost] in a header line; "
                f"{', '.join(sorted(missing))} missing (found {reader.fieldnames})"
            )
        try:
            for row in reader:
                where = f"{path}:{reader.line_num}"
                if None in row or any(v is None for v in row.values()):
                    raise SystemExit(
                        f"{where}: expected {len(reader.fieldnames or ())} fields, "
                        "found a different number"
                    )
                model = row["model"].strip()
                if not model:
                    raise SystemExit(f"{where}: the model name is empty")
                size = _number(row["size"], "size", where)
                if size <= 0 or not size.is_integer():
                    raise SystemExit(
                        f"{where}: size must be a whole number of bytes > 0, got {row['size']!r}"
                    )
                sized.setdefault(model, set()).add(int(size))
                cost_text = row.get("cost")
                if cost_text in (None, ""):
                    cost = fixed + size / bandwidth
                else:
                    cost = _number(cost_text, "cost", where)
                    if cost < 0:
                        raise SystemExit(f"{where}: cost must be >= 0 seconds, got {cost_text!r}")
                times.append(_number(row["time"], "time", where))
                keys.append(ids.setdefault((model, int(size)), len(ids)))
                sizes.append(int(size))
                costs.append(cost)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise SystemExit(f"{path}:{reader.line_num}: not a CSV trace: {exc}") from None
    if not keys:
        raise SystemExit(f"{path}: no requests")
    order = np.argsort(np.asarray(times), kind="stable")
    changed = sum(len(s) > 1 for s in sized.values())
    notes = (
        (
            f"{changed:,} of {len(sized):,} models change size in the trace: each size is "
            f"replayed as an image of its own ({len(ids):,} images)",
        )
        if changed
        else ()
    )
    return Trace(
        path.name,
        np.asarray(times, dtype=np.float64)[order],
        np.asarray(keys, dtype=np.int64)[order],
        np.asarray(sizes, dtype=np.int64)[order],
        np.asarray(costs, dtype=np.float64)[order],
        notes,
    )


# -- policies ---------------------------------------------------------------------------------


def run_modelshelf(trace: Trace, capacity: int, **options: Any) -> np.ndarray:
    """Hits of the daemon's policy, driven as the tier and the fetcher drive it. ``options``:
    the policy's keyword arguments, to try variants (``--policy-arg``)."""
    policy = CostAwarePolicy(capacity, **options)
    names = [str(k) for k in range(int(trace.keys.max()) + 1)]
    resident: dict[str, Candidate] = {}  # what the tier holds; all evictable here
    used = 0
    hits = np.zeros(len(trace), dtype=bool)
    for i, (k, size, cost, now) in enumerate(
        zip(
            trace.keys.tolist(),
            trace.sizes.tolist(),
            trace.costs.tolist(),
            trace.times.tolist(),
            strict=True,
        )
    ):
        key = names[k]
        policy.on_request(key, size, now)
        if key in resident:
            hits[i] = True
            continue
        if size > capacity or not policy.admit(Candidate(key, size, now), capacity - used, now):
            continue  # served from the page cache: a miss for this tier
        if used + size > capacity:
            for victim in policy.victims(resident, used + size - capacity, now):
                used -= resident.pop(victim).size
        policy.on_load(key, size, cost, now)
        policy.on_insert(key, size, now)
        resident[key] = Candidate(key, size, now)
        used += size
    return hits


def lcs_policies() -> dict[str, Callable[[int], Any]]:
    import libcachesim as lcs

    hp = 16  # the hash table grows as needed; 2**24 slots per cache would be 128 MB each
    return {
        "LRU": lambda size: lcs.LRU(size, hashpower=hp),
        "S3-FIFO": lambda size: lcs.S3FIFO(size, hashpower=hp),
        "SIEVE": lambda size: lcs.Sieve(size, hashpower=hp),
        "LHD": lambda size: lcs.LHD(size, hashpower=hp),
        "GDSF": lambda size: lcs.GDSF(size, hashpower=hp),
        "Belady": lambda size: lcs.Belady(size, hashpower=hp),
    }


def lcs_requests(trace: Trace) -> list[Any]:
    import libcachesim as lcs

    nxt = trace.next_uses()
    get = lcs.ReqOp.OP_GET
    return [
        lcs.Request(
            obj_size=size, op=get, obj_id=k + 1, clock_time=int(t), next_access_vtime=int(n)
        )
        for k, size, t, n in zip(
            trace.keys.tolist(),
            trace.sizes.tolist(),
            trace.times.tolist(),
            nxt.tolist(),
            strict=True,
        )
    ]


def run_lcs(make: Callable[[int], Any], capacity: int, requests: list[Any]) -> np.ndarray:
    cache = make(capacity)
    return np.fromiter((cache.get(r) for r in requests), dtype=bool, count=len(requests))


def run_offline(trace: Trace, capacity: int) -> np.ndarray:
    """The offline heuristic: evict the resident model with the largest
    ``(next use - now) * size / cost`` (requests until its next use, times the bytes it holds,
    per second its reload costs), never-used-again first; bypass the cache when the incoming
    model scores at least as high as a victim it would need."""
    nxt = trace.next_uses()
    models = int(trace.keys.max()) + 1
    resident = np.zeros(models, dtype=bool)
    next_use = np.full(models, NEVER, dtype=np.float64)
    size_of = np.zeros(models, dtype=np.float64)
    cost_of = np.ones(models, dtype=np.float64)
    used = 0
    hits = np.zeros(len(trace), dtype=bool)
    for i, (k, size, cost, n) in enumerate(
        zip(
            trace.keys.tolist(),
            trace.sizes.tolist(),
            trace.costs.tolist(),
            nxt.tolist(),
            strict=True,
        )
    ):
        far = np.inf if n == NEVER else float(n - i)
        next_use[k] = np.inf if n == NEVER else float(n)
        size_of[k], cost_of[k] = size, max(cost, 1e-12)
        if resident[k]:
            hits[i] = True
            continue
        if size > capacity or far == np.inf:
            continue
        need = used + size - capacity
        if need > 0:
            mine = far * size / cost_of[k]
            score = np.where(resident, (next_use - i) * size_of / cost_of, -np.inf)
            chosen, freed = [], 0.0
            for v in np.argsort(-score, kind="stable"):
                if freed >= need:
                    break
                if not resident[v] or score[v] <= mine:
                    chosen = []
                    break
                chosen.append(int(v))
                freed += size_of[v]
            if freed < need:
                continue
            for v in chosen:
                resident[v] = False
                used -= int(size_of[v])
        resident[k] = True
        used += size
    return hits


def run_static(trace: Trace, capacity: int) -> np.ndarray:
    """A reference, not a policy: the cache holds from the start the models with the highest
    ``(requests in the whole trace) x cost / size``, filled greedily to the budget; a model's
    first request is a miss all the same. What a policy could do that knows how popular each
    model is but not when it is used (under independent requests, the best online one)."""
    models = int(trace.keys.max()) + 1
    count = np.bincount(trace.keys, minlength=models).astype(np.float64)
    size = np.zeros(models)
    size[trace.keys] = trace.sizes
    cost = np.zeros(models)
    cost[trace.keys] = trace.costs
    keep = np.zeros(models, dtype=bool)
    used = 0.0
    for m in np.argsort(-count * cost / np.maximum(size, 1.0), kind="stable"):
        if count[m] and used + size[m] <= capacity:
            keep[m] = True
            used += size[m]
    first = np.zeros(len(trace), dtype=bool)
    first[np.unique(trace.keys, return_index=True)[1]] = True
    return keep[trace.keys] & ~first


# -- measures ---------------------------------------------------------------------------------


def ratios(trace: Trace, hits: np.ndarray) -> dict[str, float]:
    miss = ~hits
    return {
        "miss_ratio": float(miss.mean()),
        "byte_miss_ratio": float(trace.sizes[miss].sum() / trace.sizes.sum()),
        "cost_miss_ratio": float(trace.costs[miss].sum() / trace.costs.sum()),
    }


# -- the runs ---------------------------------------------------------------------------------

ONLINE = ("LRU", "S3-FIFO", "SIEVE", "LHD", "GDSF")  # libCacheSim's, the goals' anchors
OFFLINE = "offline (cost/size Belady)"
STATIC = "static"  # counts known in advance: ``run_static``


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LCS_STAMP = re.compile(r"^\[(\w+)\]\s+\S+ \S+\s+(\S+)\s+\(tid=\d+\):\s*")


def _messages(raw: bytes) -> list[str]:
    """libCacheSim's stderr, one entry per distinct message with its count ("12 x WARN
    cache.c:160: ... larger than cache size 1060"): its C code logs per request."""
    counts: dict[str, int] = {}
    for line in _ANSI.sub("", raw.decode("utf-8", "replace")).splitlines():
        line = line.strip()
        if line:
            stamp = _LCS_STAMP.match(line)
            if stamp:
                line = f"{stamp.group(1)} {stamp.group(2)}: {line[stamp.end() :]}"
            line = re.sub(
                r"^(WARN [^:]+:\d+): \d+ req, obj \d+, size \d+ larger",
                r"\1: an object larger",
                line,
            )
            counts[line] = counts.get(line, 0) + 1
    return [f"{n} x {text}" for text, n in counts.items()]


def _isolated(run: Callable[[], np.ndarray], n: int) -> tuple[np.ndarray | None, list[str]]:
    """Run a libCacheSim replay in a forked child: its C code may die of a signal (LHD can
    raise SIGFPE on multi-GB objects); None then, reported as a crash, not a number. Its C
    code's messages (to stderr, one per request for an object larger than the cache) are
    collected, counted and returned instead of flooding the terminal."""
    import faulthandler
    import multiprocessing
    import signal
    import tempfile

    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    with tempfile.TemporaryFile() as log:

        def child() -> None:
            faulthandler.disable()  # a crash here is reported by its signal, not a dump
            sys.stderr.flush()
            os.dup2(log.fileno(), 2)
            send.send_bytes(np.packbits(run()).tobytes())

        proc = ctx.Process(target=child)
        proc.start()
        send.close()
        try:
            data = receive.recv_bytes()
        except EOFError:
            data = None
        proc.join()
        log.seek(0)
        messages = _messages(log.read(1 << 20))
    if data is None or proc.exitcode != 0:
        code = proc.exitcode or 0
        why = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        return None, [*messages, f"crashed: {why}"]
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=n).astype(bool), messages


def simulate(
    trace: Trace,
    fractions: tuple[float, ...],
    say: Callable[[str], None],
    *,
    only: frozenset[str] | None = None,
    options: dict[str, Any] | None = None,
    notes: list[str] | None = None,
) -> dict[str, dict[float, dict[str, float] | None]]:
    """``{policy: {fraction: ratios or None (crashed)}}`` for one trace; ``only``: these
    policies (by name; "offline" for the offline heuristic), ``options``: the daemon's
    policy's keyword arguments; ``notes`` gets what libCacheSim said (counted) and why a run
    crashed."""

    def wanted(name: str) -> bool:
        return only is None or name in only or (name == OFFLINE and "offline" in only)

    lcs = {n: make for n, make in lcs_policies().items() if wanted(n)}
    requests = lcs_requests(trace) if lcs else []
    ws = trace.working_set
    out: dict[str, dict[float, dict[str, float] | None]] = {}
    for f in fractions:
        capacity = max(1, int(f * ws))
        t0 = time.perf_counter()
        if wanted("modelshelf"):
            hits = run_modelshelf(trace, capacity, **(options or {}))
            out.setdefault("modelshelf", {})[f] = ratios(trace, hits)
        if wanted(OFFLINE):
            out.setdefault(OFFLINE, {})[f] = ratios(trace, run_offline(trace, capacity))
        if only is not None and STATIC in only:  # a reference, on request only
            out.setdefault(STATIC, {})[f] = ratios(trace, run_static(trace, capacity))
        for name, make in lcs.items():
            got, said = _isolated(functools.partial(run_lcs, make, capacity, requests), len(trace))
            out.setdefault(name, {})[f] = None if got is None else ratios(trace, got)
            if notes is not None:
                notes += [f"{trace.name}, {name} at {f:.0%}: {m}" for m in said]
        say(f"  {trace.name}: {f:.0%} of the working set ({time.perf_counter() - t0:.0f} s)")
    return out


MEASURES = ("miss_ratio", "byte_miss_ratio", "cost_miss_ratio")


def summarize(
    runs: list[dict[str, dict[float, dict[str, float] | None]]],
) -> dict[str, dict[float, dict[str, Any]]]:
    """Mean and spread (min, max) over the runs (seeds); ``crashed``: runs without numbers."""
    out: dict[str, dict[float, dict[str, Any]]] = {}
    for name in runs[0]:
        for f in runs[0][name]:
            got = [r[name][f] for r in runs]
            ok = [g for g in got if g is not None]
            cell: dict[str, Any] = {"crashed": len(got) - len(ok)}
            for m in MEASURES:
                values = [g[m] for g in ok]
                cell[m] = float(np.mean(values)) if values else None
                cell[m + "_spread"] = [min(values), max(values)] if values else None
            out.setdefault(name, {})[f] = cell
    return out


def goals(summary: dict[str, dict[float, dict[str, Any]]]) -> list[tuple[str, bool | None, str]]:
    """Issue 11 point 6 on the cost miss ratio: (goal, met (None: not measured), numbers)."""
    out: list[tuple[str, bool | None, str]] = []

    def cost(name: str, f: float) -> float | None:
        cell = summary.get(name, {}).get(f)
        return None if cell is None else cell["cost_miss_ratio"]

    for f, factor in ((0.20, 1.15), (0.05, 1.25)):
        ms = cost("modelshelf", f)
        if ms is None:
            continue
        lru = cost("LRU", f)
        if f == 0.20 and lru is not None:
            out.append(
                (
                    f"{f:.0%}: at least 40% below LRU",
                    ms <= 0.6 * lru,
                    f"{ms:.4f} vs LRU {lru:.4f} ({1 - ms / lru:.0%} below)",
                )
            )
        if f == 0.20 and any(n in summary for n in ONLINE):
            others = {n: cost(n, f) for n in ONLINE}
            worse = [f"{n} {v:.4f}" for n, v in others.items() if v is not None and v <= ms]
            crashed = [
                f"{n} on {summary[n][f]['crashed']} seed(s)"
                for n in ONLINE
                if n in summary and summary[n][f]["crashed"]
            ]
            out.append(
                (
                    f"{f:.0%}: below every libCacheSim policy (online)",
                    not worse and not crashed,
                    f"{ms:.4f}; "
                    + (f"not below {', '.join(worse)}" if worse else "below all that ran")
                    + (f"; crashed (SIGFPE): {', '.join(crashed)}" if crashed else ""),
                )
            )
        off = cost(OFFLINE, f)
        if off is not None:
            out.append(
                (
                    f"{f:.0%}: within {factor}x of the offline heuristic",
                    ms <= factor * off,
                    f"{ms:.4f} vs {off:.4f} ({ms / off:.2f}x)",
                )
            )
    return out


# -- report -----------------------------------------------------------------------------------


def _cell(cell: dict[str, Any], m: str) -> str:
    if cell[m] is None:
        return "crashed"
    lo, hi = cell[m + "_spread"]
    text = f"{cell[m]:.4f}" if lo == hi else f"{cell[m]:.4f} ({lo:.4f}-{hi:.4f})"
    return text + (f", {cell['crashed']} crashed" if cell["crashed"] else "")


def markdown(summary: dict[str, dict[float, dict[str, Any]]], header: str) -> str:
    lines = [header, ""]
    fractions = sorted(next(iter(summary.values())))
    for m, title in zip(
        MEASURES, ("Request miss ratio", "Byte miss ratio", "Cost miss ratio"), strict=True
    ):
        rows = [[name] + [_cell(summary[name][f], m) for f in fractions] for name in summary]
        lines += [f"**{title}** (mean over seeds, min-max in brackets)", ""]
        lines += [markdown_table(["policy"] + [f"{f:.0%}" for f in fractions], rows), ""]
    lines += ["**Goals** (cost miss ratio)", ""]
    for goal, met, numbers in goals(summary):
        verdict = "not measured" if met is None else ("met" if met else "**missed**")
        lines.append(f"- {goal}: {verdict}: {numbers}")
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, dict[float, dict[str, Any]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for ax, m, label in zip(
        axes, MEASURES, ("request miss ratio", "byte miss ratio", "cost miss ratio"), strict=True
    ):
        for name, cells in summary.items():
            fs = [f for f in sorted(cells) if cells[f][m] is not None]
            ys = [cells[f][m] for f in fs]
            lo = [cells[f][m] - cells[f][m + "_spread"][0] for f in fs]
            hi = [cells[f][m + "_spread"][1] - cells[f][m] for f in fs]
            style = {"lw": 2.5, "color": "black"} if name == "modelshelf" else {"lw": 1.2}
            if name in (OFFLINE, "Belady"):
                style["ls"] = "--"
            ax.errorbar([100 * f for f in fs], ys, yerr=[lo, hi], label=name, capsize=2, **style)
        ax.set_xscale("log")
        ax.set_xticks([1, 5, 10, 20, 40], ["1%", "5%", "10%", "20%", "40%"])
        ax.set_xlabel("cache size, share of the working set")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- command line -----------------------------------------------------------------------------


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(
            f"expected a share of the working set above 0 and at most 1 (0.2 for 20%), got {text}"
        )
    return value


def _names(text: str) -> frozenset[str]:
    known = {"modelshelf", "offline", STATIC, *ONLINE, "Belady"}
    names = frozenset(n.strip() for n in text.split(",") if n.strip())
    unknown = sorted(names - known)
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown policy {', '.join(map(repr, unknown)) or '(none named)'}; "
            f"expected some of {', '.join(sorted(known))}"
        )
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--trace", type=Path, help="a CSV file time,model,size[,cost] to replay")
    p.add_argument(
        "--cache-fraction",
        type=_fraction,
        action="append",
        help="cache size as a share of the working set (repeatable; default 1,5,10,20,40%%)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object, nothing else")
    p.add_argument(
        "--only",
        type=_names,
        help="these policies only, comma-separated (modelshelf, offline, LRU, S3-FIFO, ...; "
        "and static, a reference that knows each model's request count, run only if named)",
    )
    p.add_argument(
        "--policy-arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a keyword argument of the daemon's policy (a variant: gate=0.1), repeatable",
    )
    g = p.add_argument_group("generated traces (without --trace)")
    g.add_argument("--seeds", type=int, default=3, help="traces, seeds 0..N-1")
    g.add_argument("--models", type=int, default=1000)
    g.add_argument("--days", type=float, default=1.0)
    g.add_argument("--max-rate", type=float, default=2000.0, help="cap of a model's daily rate")
    g = p.add_argument_group("reload cost (generated traces, and CSV rows without cost)")
    g.add_argument("--fixed", type=float, default=0.03, help="seconds per reload")
    g.add_argument("--bandwidth", type=float, default=100e6, help="bytes per second")
    g = p.add_argument_group("output (without --json)")
    g.add_argument("--out", type=Path, default=OUT, help="policy.md and policy.json")
    g.add_argument("--img", type=Path, default=OUT / "policy.png", help="the PNG plot")
    return p.parse_args(argv)


def _option(text: str) -> tuple[str, Any]:
    """``gate=0.1`` -> ("gate", 0.1): a number (int or float), true/false, else the text."""
    name, sep, value = text.partition("=")
    if not sep:
        raise SystemExit(f"--policy-arg: expected NAME=VALUE, got {text!r}")
    for parse in (int, float):
        try:
            return name, parse(value)
        except ValueError:
            pass
    if value.lower() in ("true", "false"):
        return name, value.lower() == "true"
    return name, value


def policy_options(texts: list[str]) -> dict[str, Any]:
    """``--policy-arg`` texts as the daemon's policy's keyword arguments, checked against its
    signature and its own argument checks before any trace is read."""
    options = dict(_option(text) for text in texts)
    known = set(inspect.signature(CostAwarePolicy).parameters) - {"budget", "rng"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise SystemExit(
            f"--policy-arg: {', '.join(unknown)} is not a keyword of the daemon's policy; "
            f"expected one of {', '.join(sorted(known))}"
        )
    for name, value in options.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SystemExit(f"--policy-arg {name}: expected a number, got {value!r}")
    try:
        CostAwarePolicy(1, **options)
    except ValueError as exc:
        raise SystemExit(f"--policy-arg: {exc}") from None
    return options


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    fractions = tuple(args.cache_fraction or FRACTIONS)

    def say(message: str) -> None:
        if not args.json:
            print(message, file=sys.stderr, flush=True)

    options = policy_options(args.policy_arg)
    if args.trace is not None:
        traces = [csv_trace(args.trace, fixed=args.fixed, bandwidth=args.bandwidth)]
    else:
        traces = [
            azure_trace(
                seed,
                models=args.models,
                days=args.days,
                max_rate=args.max_rate,
                fixed=args.fixed,
                bandwidth=args.bandwidth,
            )
            for seed in range(args.seeds)
        ]
    runs = []
    notes: list[str] = []
    for trace in traces:
        say(
            f"{trace.name}: {len(trace):,} requests, {len(np.unique(trace.keys)):,} models, "
            f"working set {trace.working_set / 1e9:.2f} GB"
        )
        for note in trace.notes:
            say(f"  {note}")
        notes += [f"{trace.name}: {note}" for note in trace.notes]
        said: list[str] = []
        runs.append(simulate(trace, fractions, say, only=args.only, options=options, notes=said))
        for note in said:
            say(f"  {note}")
        notes += said
    summary = summarize(runs)
    doc = {
        "trace": str(args.trace) if args.trace else "azure-like",
        "seeds": len(traces),
        "requests": [len(t) for t in traces],
        "working_set": [t.working_set for t in traces],
        "cache_fractions": list(fractions),
        "machine": machine_summary(),
        "policy_args": options,
        "notes": notes,
        "per_trace": {
            name: {str(f): [r[name][f] for r in runs] for f in fractions} for name in runs[0]
        },
    }
    if args.json:
        pick = fractions[0] if len(fractions) == 1 else None
        doc["policies"] = {
            name: {m: cells[pick][m] for m in MEASURES} if pick is not None else cells
            for name, cells in summary.items()
        }
        print(json.dumps(doc, default=str))
        return
    header = (
        f"`{' '.join(['python -m bench.policy', *(argv if argv is not None else sys.argv[1:])])}`"
        f" on {doc['machine']}: {len(traces)} trace(s), "
        f"{', '.join(f'{n:,}' for n in doc['requests'])} requests, working sets "
        f"{', '.join(f'{w / 1e9:.1f}' for w in doc['working_set'])} GB"
    )
    text = markdown(summary, header)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "policy.md").write_text(text)
    doc["summary"] = {n: {str(f): c for f, c in cells.items()} for n, cells in summary.items()}
    (args.out / "policy.json").write_text(json.dumps(doc, indent=1) + "\n")
    plot(summary, args.img, f"Miss ratios by cache size ({doc['trace']}, {len(traces)} seeds)")
    print(text)
    say(
        f"wrote {args.out / 'policy.md'}, policy.json and {args.img} "
        f"({time.perf_counter() - started:.0f} s)"
    )


if __name__ == "__main__":
    main()
