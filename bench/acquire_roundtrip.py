"""The daemon's acquire round trip for an L1-resident image, woken from idle: this tree's daemon
against a baseline's, interleaved (issue 13, point 5).

    .venv/bin/python -m bench.acquire_roundtrip --baseline main --samples 400

One daemon per tree (``bench.first_acquire``'s baseline: ``git archive REF``), the model
prefetched into L1. Each sample: a new connection and its hello, 30 ms idle (the daemon's loop
asleep, as for a serving process's first model), then one ``acquire`` timed from the send to
the reply with its descriptor; the connection closes (its lease ends). The daemons take turns
in a shuffled order; medians and the median of the per-pair ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import tempfile
import time
from pathlib import Path

from bench._util import OUT, ROOT
from bench.first_acquire import _baseline, _pythonpath
from bench.shelf_daemon import Daemon
from modelshelf import wire


def _round_trip(path: str, ref: str) -> float:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        wire.send(sock, {"op": "hello", "protocol": wire.PROTOCOL_VERSION, "client": "bench"})
        _, fds = wire.recv(sock)
        wire.close_fds(fds)
        time.sleep(0.03)
        t0 = time.perf_counter()
        wire.send(sock, {"op": "acquire", "model": ref, "id": 1})
        reply, fds = wire.recv(sock)
        took = time.perf_counter() - t0
        wire.close_fds(fds)
    if not reply.get("ok") or reply.get("tier") != "l1" or len(fds) != 1:
        raise SystemExit(f"expected an L1 acquire with one descriptor, got {reply} ({fds})")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="main", help="a git ref to compare against")
    parser.add_argument("--model", default="hgb-200")
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--models-dir", type=Path, default=OUT / "peers_models")
    args = parser.parse_args()
    specs = {s["id"]: s for s in json.loads((args.models_dir / "built.json").read_text())}
    ref = specs[args.model]["ref"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSHELF_")}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this": ROOT, "base": _baseline(args.baseline, Path(tmp) / "base")}
        daemons: dict[str, Daemon] = {}
        try:
            for name, tree in trees.items():
                daemons[name] = Daemon(
                    Path(tmp) / f"daemon-{name}",
                    (args.models_dir / "store").as_uri(),
                    l1="1G",
                    l2="2G",
                    env={**env, "PYTHONPATH": _pythonpath(tree)},
                )
                daemons[name].admin("prefetch", model=ref)
            samples: dict[str, list[float]] = {name: [] for name in daemons}
            for _ in range(args.samples):
                order = list(daemons)
                random.shuffle(order)
                for name in order:
                    samples[name].append(_round_trip(daemons[name].socket, ref))
        finally:
            for daemon in daemons.values():
                daemon.stop()
    for name, taken in samples.items():
        q = statistics.quantiles(taken, n=4)
        print(f"{name}: median {q[1] * 1e6:.0f} us (quartiles {q[0] * 1e6:.0f}-{q[2] * 1e6:.0f})")
    pairs = zip(samples["this"], samples["base"], strict=True)
    print(f"this / base, median of pairs: {statistics.median(a / b for a, b in pairs):.3f}")


if __name__ == "__main__":
    main()
