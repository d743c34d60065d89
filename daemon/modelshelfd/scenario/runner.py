"""The scenario's run: a daemon, the workers, the stream replayed, everything sampled.

``run`` starts a daemon on the catalog's store, spawns the workers and waits until each is
ready, gives them a common start time, then collects their chunks while the monitor samples
once a tick and a progress line goes out every five seconds; it stops the workers and the
daemon in that order, whatever happened, and returns the raw ``RunResult`` that ``summarize``
reads.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import tempfile
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from .catalog import Catalog, Progress, noop
from .daemon import LOG_TAIL, Daemon
from .monitor import Monitor
from .summary import format_mb
from .traffic import Traffic, request_stream
from .workers import CODES, worker_main


@dataclass(frozen=True)
class Setup:
    """Everything of a run besides the catalog and the stream."""

    workers: int = 6
    l1_bytes: int = 0
    l2_bytes: int = 0
    held_bytes: int | None = None
    held_models: int | None = None
    policy: str = "cost"  # the daemon's eviction policy (config.py: "cost" or "lru")
    warmup: float = 30.0  # seconds left out of the steady-state CPU and RSS figures
    tick: float = 1.0  # seconds between monitor samples


@dataclass
class RunResult:
    """Everything one scenario run measured, for the summary."""

    setup: Setup
    traffic: Traffic
    catalog: dict[str, Any]
    samples: list[dict[str, Any]] = field(default_factory=list)
    requests: dict[str, np.ndarray] = field(default_factory=dict)
    errors: dict[str, list[Any]] = field(default_factory=dict)
    workers: list[dict[str, Any]] = field(default_factory=list)
    scheduled: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    leftover_segments: int = 0
    notes: list[str] = field(default_factory=list)
    bursts: list[tuple[float, int]] = field(default_factory=list)  # (start, tenant)
    daemon_log: str = ""  # its end: the daemon logs at WARNING, so this is what went wrong


def run(
    catalog: Catalog, traffic: Traffic, setup: Setup, progress: Progress | None = None
) -> RunResult:
    """Start a daemon and the workers, replay the stream, sample everything; stop it all."""
    say = progress or noop
    stream = request_stream(catalog, traffic)
    owner = np.random.default_rng(traffic.seed + 7).integers(setup.workers, size=len(stream.times))
    result = RunResult(
        setup, traffic,
        {**asdict(catalog.spec), "actual_bytes": catalog.total_bytes, "root": str(catalog.root)},
        scheduled=len(stream.times), bursts=stream.bursts,
    )  # fmt: skip
    ctx = multiprocessing.get_context("spawn")
    procs: list[Any] = []
    conns: list[Connection] = []
    with tempfile.TemporaryDirectory(prefix="msscn-") as tmp:
        daemon = Daemon(
            Path(tmp), catalog.store_url, setup.l1_bytes, setup.l2_bytes, policy=setup.policy
        )
        try:
            daemon.wait_ready()
            before = (daemon.request("stats") or {}).get("counters", {})
            features = sorted(set(catalog.n_features))
            largest: list[int] = []  # per worker, the largest image it asks for
            for i in range(setup.workers):
                mine = owner == i
                sizes = catalog.sizes[stream.models[mine]]
                largest.append(int(sizes.max()) if sizes.size else 0)
                job = {
                    "socket": daemon.socket, "refs": catalog.refs,
                    "model_features": catalog.n_features, "features": features,
                    "times": stream.times[mine], "models": stream.models[mine],
                    "duration": traffic.duration, "held_bytes": setup.held_bytes,
                    "held_models": setup.held_models, "seed": traffic.seed + i,
                }  # fmt: skip
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=worker_main, args=(child, job), name=f"worker-{i}")
                proc.start()
                child.close()
                procs.append(proc)
                conns.append(parent)
            for i, conn in enumerate(conns):
                info: dict[str, Any] = {}
                try:
                    kind, info = conn.recv() if conn.poll(120) else ("timeout", {})
                except EOFError:
                    kind = "exited"
                if kind != "ready":
                    raise RuntimeError(f"worker {i} did not get ready ({kind})")
                result.workers.append(
                    {"index": i, "pid": procs[i].pid, "largest_model": largest[i], **info}
                )
            say(f"daemon up, {setup.workers} workers ready; {traffic.duration:.0f} s of requests")
            _replay(daemon, procs, conns, traffic, setup, result, say)
            after = (daemon.request("stats") or {}).get("counters", {})
            result.counters = {k: int(v) - int(before.get(k, 0)) for k, v in after.items()}
            if daemon.proc.poll() is not None:
                result.notes.append(f"the daemon exited during the run ({daemon.proc.returncode})")
        finally:
            for conn in conns:
                with contextlib.suppress(OSError):
                    conn.send(("stop",))
            for proc in procs:
                proc.join(timeout=30)
                if proc.is_alive():
                    proc.terminate()
                    proc.join()
            for conn in conns:
                conn.close()
            result.leftover_segments = daemon.stop()
            result.daemon_log = daemon.log_tail(LOG_TAIL)
    return result


def _replay(
    daemon: Daemon,
    procs: list[Any],
    conns: list[Connection],
    traffic: Traffic,
    setup: Setup,
    result: RunResult,
    say: Progress,
) -> None:
    started = time.monotonic() + 0.5  # every worker gets the start before it is due
    for conn in conns:
        conn.send(("start", started))
    monitor = Monitor(daemon, [psutil.Process(p.pid) for p in procs], started)
    chunks: list[dict[str, np.ndarray]] = []
    done: set[int] = set()
    next_tick, next_say = started, started + 5.0
    give_up = started + traffic.duration + 60.0  # a worker stuck on a request longer than this
    index = {id(c): i for i, c in enumerate(conns)}
    while len(done) < len(conns) and time.monotonic() < give_up:
        for ready in wait([c for i, c in enumerate(conns) if i not in done], timeout=0.1):
            i = index[id(ready)]
            try:
                message = conns[i].recv()
            except EOFError:
                done.add(i)
                result.notes.append(f"worker {i} exited early (code {procs[i].exitcode})")
                continue
            if message[0] == "chunk":
                chunks.append({**message[1], "worker": np.full(len(message[1]["at"]), i)})
                for key, (count, example) in message[2].items():
                    seen = result.errors.setdefault(key, [0, example])
                    seen[0] += count
                if message[3] is not None:
                    t = round(time.monotonic() - started, 3)
                    result.workers[i].setdefault("held", []).append({"t": t, **message[3]})
            elif message[0] == "done":
                done.add(i)
                result.workers[i].update(message[1])
                if message[1]["other_sources"]:
                    result.notes.append(
                        f"worker {i}: sources this harness does not know, counted as unknown: "
                        f"{', '.join(message[1]['other_sources'])}"
                    )
        now = time.monotonic()
        if now >= next_tick:
            result.samples.append(monitor.sample())
            next_tick += setup.tick * max(1, int((now - next_tick) // setup.tick) + 1)
        if now >= next_say:
            next_say += 5.0
            s = result.samples[-1] if result.samples else {}
            issued = sum(len(c["at"]) for c in chunks)
            failed = sum(int((c["source"] == CODES.index("failed")).sum()) for c in chunks)
            say(
                f"  t={now - started:4.0f} s  requests {issued:>7,}  failed {failed:>6,}  "
                f"L1 {format_mb(s.get('l1_bytes'))}/{format_mb(setup.l1_bytes)} MB  "
                f"leases {s.get('leases')}  daemon CPU {s.get('daemon_cpu', 0):.0f}%"
            )
    if len(done) < len(conns):
        result.notes.append(f"{len(conns) - len(done)} workers still busy at the end")
    if chunks:
        result.requests = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
