"""The scenario's request stream: which model each request asks for, and when.

Poisson arrivals at a fixed rate; Zipf popularity over the catalog's models (the popular ones
picked at random, or the smallest, or the largest); tenant bursts that send a share of the
requests to one tenant's models for a few seconds. Fixed by a seed, computed whole before the
run, and shared out among the workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .catalog import Catalog


@dataclass(frozen=True)
class Traffic:
    """The request stream: Poisson arrivals, Zipf popularity, bursty tenants."""

    rate: float = 150.0  # requests per second, all workers together
    duration: float = 240.0  # seconds
    zipf: float = 1.0  # popularity of the k-th most popular model ~ 1 / k**zipf
    hot: str = "random"  # which models are popular: "random", "small" or "large" ones
    burst_rate: float = 4.0  # tenant bursts per minute
    burst_seconds: float = 5.0
    burst_share: float = 0.5  # of the requests during a burst that go to the hot tenant
    seed: int = 0


@dataclass(frozen=True)
class Stream:
    """The scheduled requests: arrival times, models, and the tenant bursts."""

    times: np.ndarray  # seconds from the start, ascending
    models: np.ndarray  # model index per request
    bursts: list[tuple[float, int]]  # (start, tenant)


def request_stream(catalog: Catalog, traffic: Traffic) -> Stream:
    """The whole stream, fixed by ``traffic.seed``. During a burst, each request goes to the
    hot tenant's models with probability ``burst_share`` (weighted by their popularity), else
    follows the global Zipf law; a later burst overlapping an earlier one takes its share of
    what is left."""
    rng = np.random.default_rng(traffic.seed)
    n = len(catalog.refs)
    by_rank = np.arange(1, n + 1, dtype=np.float64) ** -traffic.zipf
    if traffic.hot == "random":
        order = rng.permutation(n)  # popularity independent of size
    elif traffic.hot in ("small", "large"):
        order = np.argsort(catalog.sizes if traffic.hot == "small" else -catalog.sizes)
    else:
        raise ValueError(f"hot must be random, small or large, got {traffic.hot!r}")
    weight = np.empty(n)
    weight[order] = by_rank
    popularity = weight / weight.sum()
    count = int(rng.poisson(traffic.rate * traffic.duration))
    times = np.sort(rng.uniform(0.0, traffic.duration, count))
    models = rng.choice(n, size=count, p=popularity)
    n_bursts = int(rng.poisson(traffic.burst_rate * traffic.duration / 60.0))
    bursts = sorted(
        (float(s), int(t))
        for s, t in zip(
            rng.uniform(0.0, traffic.duration, n_bursts),
            rng.integers(catalog.spec.tenants, size=n_bursts),
            strict=True,
        )
    )
    for start, tenant in bursts:
        members = np.flatnonzero(catalog.tenant_of == tenant)
        hit = (times >= start) & (times < start + traffic.burst_seconds)
        hit &= rng.random(count) < traffic.burst_share
        if members.size and hit.any():
            p = popularity[members] / popularity[members].sum()
            models[hit] = rng.choice(members, size=int(hit.sum()), p=p)
    return Stream(times, models.astype(np.int32), bursts)
