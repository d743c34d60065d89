"""Busy-node benchmark: linear models and MLPs, scikit-learn vs modelshelf, idle and under load.

    .venv/bin/python -m bench.busy            # about 3 minutes; writes bench/out/busy.md and PNG

Issue 9, point 24: on a busy node a 1000-row call stalled at ~8 ms while scikit-learn took
0.1-0.7 ms. numpy's OpenBLAS runs a product of more than 2^18 multiply-adds on two threads and
the calling thread waits for the second one, which on a loaded node waits for a core.

For each model, at 1 and 1000 rows, interleaved in one process (each sample of each variant in
turn, so that the node's load hits them alike):

- ``sklearn``: the estimator's own method;
- ``before``: modelshelf with its products made in one BLAS call each, as before the fix
  (``runtime._math.SINGLE_THREAD_CELLS = 0`` for the duration of the call);
- ``after``: modelshelf as shipped (row blocks BLAS keeps on the calling thread);
- ``1 thread``: ``before`` under ``threadpoolctl.threadpool_limits(1)``, for reference only: the
  client never changes the process's BLAS threads.

Each timed call follows a 2 ms sleep (``--gap``), as requests arrive on a server: in a tight loop
(``--gap 0``) OpenBLAS's workers keep spinning between calls and hide the wait. Two loads:
``idle`` (nothing started by the benchmark; other work on the node goes on) and ``busy`` (one
busy-spinning process per core). Medians and p99 of ``--samples`` calls per variant.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from bench._util import (
    OUT,
    ROOT,
    bar_plot,
    fmt_bytes,
    fmt_time,
    machine_summary,
    markdown_table,
    spinning,
)

GAP = 0.002  # seconds of sleep before each timed call


def _models() -> list[tuple[str, Any, np.ndarray]]:
    """(id, fitted estimator, 1000 rows to predict)."""
    from sklearn import datasets
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(0)
    X, y = datasets.load_digits(return_X_y=True)
    digits = np.resize(X, (1000, X.shape[1]))
    wide = rng.normal(size=(1000, 784))
    wide_y = wide @ rng.normal(size=784) + rng.normal(size=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [
            ("logreg-digits", LogisticRegression(max_iter=300).fit(X, y), digits),
            ("ridge-784", Ridge().fit(wide, wide_y), wide),
            (
                "mlp-digits-100",
                MLPClassifier((100,), max_iter=200, random_state=0).fit(X, y),
                digits,
            ),
            (
                "mlp-784-160",  # ~1 MB of weights: 784 x 160 + 160 x 10
                MLPClassifier((160,), max_iter=5, random_state=0).fit(wide, wide_y > 0),
                wide,
            ),
            (
                "mlp-784-512",  # 3.3 MB: 401k weights, over the one-thread bound even for 1 row
                MLPClassifier((512,), max_iter=2, random_state=0).fit(wide, wide_y > 0),
                wide,
            ),
        ]


@contextlib.contextmanager
def _whole_products() -> Iterator[None]:
    from modelshelf.runtime import _math

    saved = _math.SINGLE_THREAD_CELLS
    _math.SINGLE_THREAD_CELLS = 0  # every block < MIN_BLOCK_ROWS: one BLAS call per product
    try:
        yield
    finally:
        _math.SINGLE_THREAD_CELLS = saved


_CONTROLLER: Any = None


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """BLAS limited to one thread (threadpoolctl; the controller is built once, since building
    it inspects every loaded library and takes milliseconds)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    with _whole_products(), _CONTROLLER.limit(limits=1, user_api="blas"):
        yield


def _variants(est: Any, model: Any, method: str) -> dict[str, Callable[[np.ndarray], Any]]:
    sk, ms = getattr(est, method), getattr(model, method)

    def before(X: np.ndarray) -> Any:
        with _whole_products():
            return ms(X)

    def one_thread(X: np.ndarray) -> Any:
        with _one_thread():
            return ms(X)

    return {"sklearn": sk, "before": before, "after": ms, "1 thread": one_thread}


def _measure(variants: dict[str, Callable[[np.ndarray], Any]], X: np.ndarray, n: int) -> Any:
    times: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():
        fn(X)  # warm
    for _ in range(n):
        for name, fn in variants.items():
            if GAP:
                time.sleep(GAP)
            t0 = time.perf_counter()
            fn(X)
            times[name].append(time.perf_counter() - t0)
    out = {}
    for name, ts in times.items():
        ts.sort()
        out[name] = {"p50": statistics.median(ts), "p99": ts[min(len(ts) - 1, int(len(ts) * 0.99))]}
    return out


#: (label, k, n): products of 1000 rows by a k x n weight matrix, as the models above make them.
LAYOUT_SHAPES = (("64 x 10 (logreg-digits)", 64, 10), ("784 x 1 (ridge-784)", 784, 1))
LAYOUT_SHAPES += (("64 x 100 (mlp-digits-100, layer 1)", 64, 100),)


def _layouts(samples: int) -> list[dict[str, Any]]:
    """Does the weights' layout decide the stall? The same 1000-row product three ways."""
    from modelshelf.runtime._math import matmul

    rng = np.random.default_rng(1)
    out = []
    for label, k, n in LAYOUT_SHAPES:
        X = rng.normal(size=(1000, k))
        coef = rng.normal(size=(n, k))  # scikit-learn's coef_: (n_outputs, n_features), C order
        W = np.ascontiguousarray(coef.T)  # stored transposed: (n_features, n_outputs), C order
        variants = {
            "X @ coef.T": lambda X=X, coef=coef: X @ coef.T,
            "X @ W": lambda X=X, W=W: X @ W,
            "blocked": lambda X=X, coef=coef: matmul(X, coef.T),
        }
        out.append({"shape": label, **_measure(variants, X, samples)})
    return out


def main() -> None:
    global GAP
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--samples", type=int, default=150, help="timed calls per variant")
    parser.add_argument("--busy", type=int, default=os.cpu_count() or 2, help="spinners (busy)")
    parser.add_argument(
        "--gap", type=float, default=GAP, help="seconds of sleep before each call (0: tight loop)"
    )
    args = parser.parse_args()
    GAP = args.gap

    import modelshelf

    t_start = time.perf_counter()
    load_avg = os.getloadavg()
    models = []
    for model_id, est, rows in _models():
        image = modelshelf.compile(est)
        model = modelshelf.load(image)
        method = "predict_proba" if hasattr(est, "predict_proba") else "predict"
        expected = np.asarray(getattr(est, method)(rows), dtype=float)
        agree = bool(np.allclose(getattr(model, method)(rows), expected, rtol=1e-9, atol=1e-12))
        models.append((model_id, est, model, method, rows, len(image), agree))
    results: list[dict[str, Any]] = []
    layouts: dict[str, list[dict[str, Any]]] = {}
    for label, busy in (("idle", 0), ("busy", args.busy)):
        with spinning(busy):
            layouts[label] = _layouts(args.samples)
            for model_id, est, model, method, rows, size, agree in models:
                variants = _variants(est, model, method)
                for n_rows in (1, 1000):
                    measured = _measure(variants, np.ascontiguousarray(rows[:n_rows]), args.samples)
                    results.append(
                        {
                            "load": label,
                            "id": model_id,
                            "rows": n_rows,
                            "bytes": size,
                            "method": method,
                            "agree": agree,
                            **measured,
                        }
                    )
                    cells = [
                        f"{k} {fmt_time(v['p50'])}/{fmt_time(v['p99'])}"
                        for k, v in measured.items()
                    ]
                    print(f"{label} {model_id} {n_rows}: {', '.join(cells)}", flush=True)
    report = render(results, layouts, args, load_avg, time.perf_counter() - t_start)
    print(report)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "busy.md").write_text(report + "\n")
    (OUT / "busy.json").write_text(json.dumps({"models": results, "layouts": layouts}) + "\n")
    busy_big = [r for r in results if r["load"] == "busy" and r["rows"] == 1000]
    bar_plot(
        OUT / "busy_latency.png",
        f"1000 rows, node busy ({args.busy} spinning processes): p50",
        [r["id"] for r in busy_big],
        {name: [r[name]["p50"] * 1e6 for r in busy_big] for name in VARIANTS},
        "microseconds (log)",
    )
    print(f"\nwrote {OUT / 'busy.md'}, busy.json and busy_latency.png ({ROOT / 'bench' / 'out'})")


VARIANTS = ("sklearn", "before", "after", "1 thread")
LAYOUTS = ("X @ coef.T", "X @ W", "blocked")


def render(
    results: list[dict[str, Any]],
    layouts: dict[str, list[dict[str, Any]]],
    args: Any,
    load_avg: Any,
    elapsed: float,
) -> str:
    layout_rows = [
        [
            label,
            r["shape"],
            *(f"{fmt_time(r[v]['p50'])} / {fmt_time(r[v]['p99'])}" for v in LAYOUTS),
        ]
        for label, rs in layouts.items()
        for r in rs
    ]
    rows = []
    for r in results:
        rows.append(
            [
                r["load"],
                r["id"],
                fmt_bytes(r["bytes"]),
                r["rows"],
                *(f"{fmt_time(r[v]['p50'])} / {fmt_time(r[v]['p99'])}" for v in VARIANTS),
                f"{r['before']['p50'] / r['after']['p50']:.1f}x",
                f"{r['after']['p50'] / r['sklearn']['p50']:.2f}x",
                "yes" if r["agree"] else "NO",
            ]
        )
    return "\n\n".join(
        [
            f"Machine: {machine_summary()}; load average at start "
            f"{load_avg[0]:.2f} {load_avg[1]:.2f} {load_avg[2]:.2f} (a VM shared with other "
            f"work); busy = {args.busy} spinning processes; {args.samples} calls per variant, "
            f"each after a {GAP * 1e3:.0f} ms sleep, interleaved.",
            markdown_table(
                [
                    "load",
                    "model",
                    "image",
                    "rows",
                    *(f"{v} p50 / p99" for v in VARIANTS),
                    "before/after p50",
                    "after/sklearn p50",
                    "agree",
                ],
                rows,
            ),
            "The product alone, 1000 rows, three ways (p50 / p99): `X @ coef.T` on scikit-learn's "
            "C-ordered coef_ (what modelshelf did), `X @ W` on the weights stored transposed "
            "(n_features x n_outputs, C order), and the blocked product modelshelf now makes:",
            markdown_table(["load", "weights", *(f"{v} p50 / p99" for v in LAYOUTS)], layout_rows),
            f"Whole run: {elapsed:.0f} s.",
        ]
    )


if __name__ == "__main__":
    main()
