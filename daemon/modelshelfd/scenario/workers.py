"""The scenario's worker processes, and the per-request source codes they report in.

Each worker is spawned once and lives for the whole run: one ``Client``, its share of the
stream sent open-loop at the scheduled times (a late request is sent late, not skipped), one
``predict`` of one row per model acquired. Once a second it sends the parent a chunk: per
request the time, the lateness, the acquire and predict latencies and where the model came
from (an index into ``CODES``); failures counted by kind; its held set, if the client tells.
"""

from __future__ import annotations

import contextlib
import re
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import psutil

SOURCES = ("held", "checked", "l1", "l2", "l3")
CODES = (*SOURCES, "unknown", "failed")  # per-request source, as a uint8 index


_VARYING = re.compile(r"t\d{3}/m\d+(@\d+)?|\b[0-9a-f]{12,}\b|\d+(\.\d+)?")


def _error_key(stage: str, exc: BaseException) -> str:
    # model names, digests and numbers vary; the kind of failure does not
    return f"{stage}: {type(exc).__name__}: {_VARYING.sub('#', str(exc))[:200]}"


def worker_main(conn: Connection, job: dict[str, Any]) -> None:
    """One long-lived worker: one Client, open-loop requests at the scheduled times."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    from modelshelf.client import Client

    client = Client(
        job["socket"], max_held_bytes=job["held_bytes"], max_held_models=job["held_models"]
    )
    rows = {f: np.random.default_rng(job["seed"]).standard_normal((1, f)) for f in job["features"]}
    baseline = psutil.Process().memory_full_info().pss
    conn.send(("ready", {"baseline_pss": baseline}))
    try:
        message = conn.recv()
    except EOFError:
        return
    if message[0] != "start":
        return
    start, end = float(message[1]), float(message[1]) + job["duration"]
    refs, features, times, models = job["refs"], job["model_features"], job["times"], job["models"]
    buf: dict[str, list[float]] = {k: [] for k in ("at", "late", "acquire", "predict")}
    codes: list[int] = []
    errors: dict[str, list[Any]] = {}
    other_sources: set[str] = set()
    flushed = time.monotonic()

    def flush() -> None:
        arrays = {k: np.array(v, dtype=np.float32) for k, v in buf.items()}
        arrays["source"] = np.array(codes, dtype=np.uint8)
        conn.send(("chunk", arrays, dict(errors), client.held()))
        for v in buf.values():
            v.clear()
        codes.clear()
        errors.clear()

    issued = 0
    for at, index in zip(times, models, strict=True):
        due = start + float(at)
        if due >= end:
            break
        wait_for = due - time.monotonic()
        # sleeping on the pipe: a stop from the parent wakes us at once
        if wait_for > 0 and conn.poll(wait_for):
            with contextlib.suppress(EOFError):
                conn.recv()
            break
        late = time.monotonic() - due
        failed = None
        t0 = time.perf_counter()
        try:
            model = client.model(refs[index])
        except Exception as exc:
            failed = _error_key("acquire", exc), exc
        t1 = time.perf_counter()
        source = "failed" if failed else client.last_source
        if failed is None:
            try:
                model.predict(rows[features[index]])
            except Exception as exc:
                failed = _error_key("predict", exc), exc
                source = "failed"
            del model  # the lease lives as long as a reference: the held set decides, not us
        t2 = time.perf_counter()
        if failed is not None:
            count = errors.setdefault(failed[0], [0, f"{type(failed[1]).__name__}: {failed[1]}"])
            count[0] += 1
        buf["at"].append(float(at))
        buf["late"].append(late)
        buf["acquire"].append(t1 - t0)
        buf["predict"].append(t2 - t1)
        if source not in CODES:
            other_sources.add(source)
            source = "unknown"
        codes.append(CODES.index(source))
        issued += 1
        if time.monotonic() - flushed >= 1.0:
            flushed = time.monotonic()
            flush()
    flush()
    conn.send(("done", {"issued": issued, "other_sources": sorted(other_sources)}))
    client.close()
