"""Compiled kernels against the numpy runtime, on the same images (issue 13).

    .venv/bin/python -m bench.kernels            # prints a table, writes bench/out/kernels.md

A LightGBM classifier of 500 trees (default 31 leaves) and a scikit-learn RandomForest of 200
trees (unlimited depth), fitted on bench/trees.py's problem (2000 rows x 20 features). Each is
loaded twice from one image, once per kernel (``modelshelf._kernels.use``), and
``predict_proba`` is timed on one row and on 1000 rows. The two kernels alternate within every
repetition (their order flips each time), so that a busy machine slows both alike; the table
gives medians over repetitions of the wall time per call and of the process CPU time per call
(which leaves out the time spent waiting for a core on a busy machine), and the spread (25th-75th
percentile) of the ratios.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench._util import OUT, markdown_table
from bench.trees import _data


def _models() -> dict[str, Any]:
    from lightgbm import LGBMClassifier
    from sklearn.ensemble import RandomForestClassifier

    X, y, _ = _data()
    return {
        "LightGBM 500 trees": LGBMClassifier(n_estimators=500, verbose=-1).fit(X, y),
        "RandomForest 200 trees": RandomForestClassifier(n_estimators=200, random_state=0).fit(
            X, y
        ),
    }


def _per_call(fn: Callable[[], Any], calls: int) -> tuple[float, float]:
    """Wall and CPU seconds per call."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls


def _cells(t_np: np.ndarray, t_c: np.ndarray) -> list[str]:
    ratio = t_np / t_c
    q1, q3 = np.percentile(ratio, [25, 75])
    return [
        f"{np.median(t_np) * 1e6:.1f} us",
        f"{np.median(t_c) * 1e6:.1f} us",
        f"{np.median(ratio):.1f}x ({q1:.1f}-{q3:.1f})",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=21, help="interleaved repetitions")
    args = parser.parse_args()

    import modelshelf
    from modelshelf import _kernels

    if _kernels.BUILT is None:
        raise SystemExit("the compiled kernels are not built (pip install -e .)")
    _, _, X_test = _data()
    rows = {"1 row": (X_test[:1], 200), "1000 rows": (X_test[:1000], 3)}
    table = []
    for name, est in _models().items():
        image = modelshelf.compile(est)
        loaded = {}
        for kernel in ("numpy", "compiled"):
            _kernels.use(kernel)
            loaded[kernel] = modelshelf.load(image)
        _kernels.use("compiled")
        for label, (X, calls) in rows.items():
            a, b = loaded["numpy"].predict_proba(X), loaded["compiled"].predict_proba(X)
            assert a.tobytes() == b.tobytes(), "kernels disagree"
            times: dict[str, list[tuple[float, float]]] = {"numpy": [], "compiled": []}
            for rep in range(args.reps):
                order = ("numpy", "compiled") if rep % 2 else ("compiled", "numpy")
                for kernel in order:
                    model = loaded[kernel]
                    times[kernel].append(_per_call(lambda m=model, X=X: m.predict_proba(X), calls))
            t_np, t_c = np.array(times["numpy"]), np.array(times["compiled"])
            table.append(
                [name, label, *_cells(t_np[:, 0], t_c[:, 0]), *_cells(t_np[:, 1], t_c[:, 1])]
            )
            print(" | ".join(table[-1]), flush=True)
    header = ["model", "batch", "numpy", "compiled", "numpy / compiled (IQR)"]
    header += ["numpy CPU", "compiled CPU", "CPU ratio (IQR)"]
    text = markdown_table(header, table)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "kernels.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
