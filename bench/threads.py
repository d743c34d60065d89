"""modelshelf's compiled kernels at 1 and 2 threads (``modelshelf.set_threads``), in one
process, interleaved: for each of the peer benchmark's models (bench/out/peers_models, built by
``python -m bench.peers``), each round idles ``--settle`` seconds before each sample, then times
``--calls`` calls of ``predict_proba`` on 1000 rows; medians of the rounds, in ms.

    .venv/bin/python -m bench.threads                # about a minute
    .venv/bin/python -m bench.threads --settle 0     # back to back
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

import modelshelf
from modelshelf import _kernels

MODELS = ("logreg", "scaler-logreg", "rf-200", "hgb-200", "lgbm-500", "xgb-500")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", default=str(Path(__file__).parent / "out/peers_models"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--settle", type=float, default=0.12, help="idle seconds before a sample")
    args = parser.parse_args()
    if _kernels.mode() != "compiled":
        raise SystemExit("the compiled kernels do not serve here (modelshelf._kernels.mode())")
    base = Path(args.models_dir)
    models = {m: modelshelf.load(base / f"{m}.msi") for m in MODELS if (base / f"{m}.msi").exists()}
    rows = {m: np.load(base / f"{m}.rows.npy")[:1000] for m in models}
    times: dict[tuple[str, int], list[float]] = {}
    try:
        for _ in range(args.rounds):
            for m, model in models.items():
                for threads in (1, 2):
                    modelshelf.set_threads(threads)
                    time.sleep(args.settle)
                    start = time.perf_counter()
                    for _ in range(args.calls):
                        model.predict_proba(rows[m])
                    elapsed = (time.perf_counter() - start) / args.calls * 1e3
                    times.setdefault((m, threads), []).append(elapsed)
    finally:
        modelshelf.set_threads(1)
    print("| model | 1 thread (ms) | 2 threads (ms) | 2 / 1 |")
    print("|---|---|---|---|")
    result = {}
    for m in models:
        one, two = (statistics.median(times[m, t]) for t in (1, 2))
        result[m] = {"1": one, "2": two}
        print(f"| {m} | {one:.3f} | {two:.3f} | {two / one:.2f}x |")
    print(json.dumps({"settle": args.settle, "rounds": args.rounds, "ms": result}))


if __name__ == "__main__":
    main()
