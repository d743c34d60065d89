"""CPU time of one ``victims()`` call of the daemon's policy with N evictable residents.

    python -m bench.victims_cost --residents 2000 --calls 2000

Fills a ``CostAwarePolicy`` with N residents (lognormal sizes, a few uses each at random
gaps), then times ``victims`` on a miss that needs one mean image's bytes, with the residents
as candidates (a mapping, as the tier passes them; ``--list``: a list, as it passed them
before), in process CPU time. The
victims are not evicted (each call is put back), so every call sees the same N residents.
"""

from __future__ import annotations

import argparse
import random
import time

from modelshelfd.policy import Candidate, CostAwarePolicy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--residents", type=int, default=2000)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--list", action="store_true", help="candidates as a list (before: what the tier passed)"
    )
    a = p.parse_args()
    rng = random.Random(a.seed)
    sizes = {f"m{i:05d}": int(rng.lognormvariate(13.5, 1.5)) + 1 for i in range(a.residents)}
    policy = CostAwarePolicy(sum(sizes.values()), bandwidth=1e9)
    now = 0.0
    for key, size in sizes.items():
        for _ in range(rng.randint(1, 5)):
            now += rng.expovariate(10.0)
            policy.on_request(key, size, now)
        policy.on_load(key, size, 0.001 + size / 1e9, now)
        policy.on_insert(key, size, now)
    listed = [Candidate(k, s, now, 1) for k, s in sizes.items()]
    candidates = listed if a.list else {c.key: c for c in listed}
    need = sum(sizes.values()) // len(sizes)
    times = []
    for i in range(a.calls):
        t = now + i * 0.01
        t0 = time.process_time()
        out = policy.victims(candidates, need, t)
        times.append(time.process_time() - t0)
        for key in out:  # put them back: the same residents at every call
            policy.on_insert(key, sizes[key], t)
    times.sort()
    mean = sum(times) / len(times)
    p50, p99 = times[len(times) // 2], times[int(len(times) * 0.99)]
    kind = "list" if a.list else "mapping"
    print(
        f"{kind}: {a.residents} residents, {a.calls} calls: victims() mean "
        f"{mean * 1e3:.3f} ms, p50 {p50 * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms"
    )


if __name__ == "__main__":
    main()
