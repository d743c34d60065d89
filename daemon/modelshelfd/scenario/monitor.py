"""The scenario's monitor: one sample of the run per tick, while the workers send requests.

A sample holds the daemon's tiers, leases and clients (admin ``status``), the bytes it read
from the store (``stats``), its shared memory (pages and apparent size), its CPU and RSS
(the anonymous part apart: the rest maps L1 segments, and a leak shows in the anonymous part),
the workers' CPU together and each one's PSS, this harness's CPU, and the machine's.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import psutil

from .daemon import Daemon


class Monitor:
    """Samples the daemon, its shared memory and the workers, once per tick."""

    def __init__(self, daemon: Daemon, workers: list[psutil.Process], started: float) -> None:
        self.daemon, self.workers, self.started = daemon, workers, started
        # CPU seconds so far of the daemon, the workers together, and this process
        self.groups = ([daemon.ps], workers, [psutil.Process()])
        self.cpu = self._cpu_seconds()
        self.at = time.monotonic()
        psutil.cpu_percent(None)  # primes the machine-wide figure

    def _cpu_seconds(self) -> list[float]:
        out = []
        for group in self.groups:
            total = 0.0
            for proc in group:
                with contextlib.suppress(psutil.Error):
                    t = proc.cpu_times()
                    total += t.user + t.system
            out.append(total)
        return out

    def sample(self) -> dict[str, Any]:
        now, cpu = time.monotonic(), self._cpu_seconds()
        elapsed = max(now - self.at, 1e-6)
        # max(0): a process that exited takes its CPU seconds with it
        daemon, workers, harness = (
            max(0.0, 100.0 * (b - a) / elapsed) for a, b in zip(self.cpu, cpu, strict=True)
        )
        self.cpu, self.at = cpu, now
        status = self.daemon.request("status") or {}
        stats = (self.daemon.request("stats") or {}).get("counters", {})
        pages, apparent, other = self.daemon.shm_bytes()
        l1, l2 = status.get("l1", {}), status.get("l2", {})
        pss: list[int | None] = []
        for w in self.workers:
            try:
                pss.append(int(w.memory_full_info().pss) or None)  # 0: an exited worker
            except psutil.Error:
                pss.append(None)
        memory = _memory_of(self.daemon.proc.pid)
        return {
            "t": round(now - self.started, 3),
            "l1_bytes": l1.get("bytes"),
            "l1_count": l1.get("count"),
            "l1_retired": l1.get("retired"),
            "l2_bytes": l2.get("bytes"),
            "l2_count": l2.get("count"),
            "leases": status.get("leases"),
            "leased_bytes": status.get("leased_bytes"),
            "clients": status.get("clients"),
            "shm_bytes": pages,
            "shm_apparent_bytes": apparent,
            "shm_other_bytes": other,
            "daemon_cpu": round(daemon, 2),
            "workers_cpu": round(workers, 2),
            "harness_cpu": round(harness, 2),
            "daemon_rss": memory.get("VmRSS"),
            "daemon_rss_anon": memory.get("RssAnon"),
            "daemon_rss_shmem": memory.get("RssShmem"),
            "machine_cpu": psutil.cpu_percent(None),
            "worker_pss": pss,
            "bytes_fetched": stats.get("bytes_fetched"),
            "answered": bool(status),
        }


def _memory_of(pid: int) -> dict[str, int]:
    """VmRSS and its parts (RssAnon, RssFile, RssShmem) in bytes: the daemon's RSS also counts
    the L1 segments it maps, which the budget bounds; a leak shows in RssAnon."""
    out = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0]) * 1024
    return out
