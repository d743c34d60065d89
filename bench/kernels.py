"""Compiled tree kernel against the numpy runtime, on the same images (issue 13).

    .venv/bin/python -m bench.kernels    # ~2 minutes; prints a table, writes bench/out/kernels.md
    .venv/bin/python -m bench.kernels --models rf-200 --reps 5

The four tree models of the peer benchmark, fitted as ``bench/peers_models.py`` fits them on its
problem (make_classification, 2000 rows x 20 features): RandomForest 200 (max_depth 12),
HistGradientBoosting 200, LightGBM 500 (31 leaves), XGBoost 500 (depth 6). Each image is loaded
twice, once per kernel (``modelshelf._kernels.use``), and ``predict_proba`` is timed on one row
and on 1000 rows; the compiled kernel on 1000 rows also with 2 threads
(``modelshelf.set_threads(2)``, where this checkout has it). The variants alternate within
every repetition (their order reversed every other one), so that a busy machine slows them
alike. The table gives medians over repetitions of the wall time per call and of the process
CPU time per call (which leaves out time spent waiting for a core; with 2 threads it adds both
threads' time). The outputs of every variant are checked equal to the bit before timing.

Only public names and ``modelshelf._kernels.use`` are used, so the same file measures an older
checkout too: ``PYTHONPATH=<checkout>/client python -m bench.kernels`` (run from this one).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench._util import OUT, markdown_table

MODELS = {
    "rf-200": "RandomForest 200",
    "hgb-200": "HistGradientBoosting 200",
    "lgbm-500": "LightGBM 500",
    "xgb-500": "XGBoost 500",
}


def _per_call(fn: Callable[[], Any], calls: int) -> tuple[float, float]:
    """Wall and CPU seconds per call."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls


def _cells(t_np: np.ndarray, t_c: np.ndarray) -> list[str]:
    """Median times of the numpy and compiled kernels, and the median ratio with its quartiles
    (bench/kernels_dense.py and bench/kernels_text.py)."""
    ratio = t_np / t_c
    q1, q3 = np.percentile(ratio, [25, 75])
    return [
        f"{np.median(t_np) * 1e6:.1f} us",
        f"{np.median(t_c) * 1e6:.1f} us",
        f"{np.median(ratio):.1f}x ({q1:.1f}-{q3:.1f})",
    ]


def _time(t: float) -> str:
    return f"{t * 1e6:.1f} us" if t < 1e-3 else f"{t * 1e3:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reps", type=int, default=15, help="interleaved repetitions")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated ids")
    args = parser.parse_args()

    import modelshelf
    from bench.peers_models import _data, _fit
    from modelshelf import _kernels

    if _kernels.BUILT is None:
        raise SystemExit("the compiled kernels are not built (setup.py build_ext --inplace)")
    set_threads = getattr(modelshelf, "set_threads", None)
    X_fit, y_fit, X_test = _data("trees")
    batches = {"1 row": (np.ascontiguousarray(X_test[:1]), 300), "1000 rows": (X_test, 3)}
    table = []
    for model_id in args.models.split(","):
        image = modelshelf.compile(_fit(model_id, X_fit, y_fit))
        loaded = {}
        for kernel in ("numpy", "compiled"):
            _kernels.use(kernel)
            loaded[kernel] = modelshelf.load(image)
        _kernels.use("compiled")
        for label, (X, calls) in batches.items():
            variants = {"numpy": (loaded["numpy"], 1), "compiled": (loaded["compiled"], 1)}
            if set_threads is not None and len(X) > 1:
                variants["compiled 2t"] = (loaded["compiled"], 2)
            reference = loaded["numpy"].predict_proba(X).tobytes()
            for name, (model, threads) in variants.items():
                if set_threads is not None:
                    set_threads(threads)
                assert model.predict_proba(X).tobytes() == reference, f"{name} differs"
            times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
            for rep in range(args.reps):
                order = list(variants) if rep % 2 else list(reversed(variants))
                for name in order:
                    model, threads = variants[name]
                    if set_threads is not None:
                        set_threads(threads)
                    times[name].append(_per_call(lambda m=model, X=X: m.predict_proba(X), calls))
            if set_threads is not None:
                set_threads(1)
            for name, samples in times.items():
                t = np.median(np.array(samples), axis=0)
                table.append([MODELS[model_id], label, name, _time(t[0]), _time(t[1])])
                print(" | ".join(table[-1]), flush=True)
    text = markdown_table(["model", "batch", "kernel", "wall", "CPU"], table)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "kernels.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
