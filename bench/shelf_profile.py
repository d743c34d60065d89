"""Diagnostics of the shelf benchmark: where an L1 acquire spends its time and where a held
model's private memory goes (run by ``bench/shelf.py`` after the measurements).

- the daemon runs under ``cProfile`` (``python -m cProfile -m modelshelfd``; it writes its
  profile on SIGTERM) while a client process, itself profiled, acquires and releases a small
  model; the top functions of both sides by own time are reported per acquire;
- the same L1 acquire with the catalog poll effectively off (``ref_poll_seconds`` = 1 hour), to
  see what the poll of every ref costs the tail;
- ``tracemalloc`` in a client holding the density models: Python bytes per held model.
"""

from __future__ import annotations

import pstats
from pathlib import Path
from typing import Any

PROFILED_ACQUIRES = 5000


def top_functions(path: Path, per: int, limit: int = 12) -> list[list[Any]]:
    """[function, own time per acquire (s), cumulative per acquire (s), calls per acquire]."""
    stats = pstats.Stats(str(path))
    rows = []
    for (filename, line, name), (_, ncalls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        short = filename.split("site-packages/")[-1].split("/work/main/")[-1]
        rows.append([f"{name} ({short}:{line})", tottime / per, cumtime / per, ncalls / per])
    rows.sort(key=lambda r: r[1], reverse=True)
    return rows[:limit]


def diagnose(tmp: Path, store: str, small: Any, mid: Any, samples: int) -> dict[str, Any]:
    """Profiles of the L1 acquire of ``small`` (a Built), and the acquire of ``small`` and
    ``mid`` with the catalog poll off."""
    from bench.shelf_daemon import Daemon, worker

    out: dict[str, Any] = {}
    daemon_prof, client_prof = tmp / "daemon.prof", tmp / "client.prof"
    d = Daemon(tmp / "profiled", store, l1="1G", l2="1G", profile=daemon_prof)
    try:
        d.admin("prefetch", model=small.ref)
        args = {"socket": d.socket, "ref": small.ref, "samples": PROFILED_ACQUIRES}
        worker("acquire_profile", {**args, "out": str(client_prof)})
    finally:
        d.stop()
    out["daemon"] = top_functions(daemon_prof, PROFILED_ACQUIRES)
    out["client"] = top_functions(client_prof, PROFILED_ACQUIRES)
    d = Daemon(tmp / "nopoll", store, l1="1G", l2="1G", env={"MODELSHELF_REF_POLL_SECONDS": "3600"})
    try:
        for b in (small, mid):
            d.admin("prefetch", model=b.ref)
        args = {
            "socket": d.socket,
            "refs": [[b.label, b.ref] for b in (small, mid)],
            "samples": samples,
            "fresh_samples": 20,
            "held_calls": 1000,
        }
        out["nopoll"] = worker("acquire_l1", args)
    finally:
        d.stop()
    return out
