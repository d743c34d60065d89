"""The compiled dense kernel against the numpy runtime, on the same images (issue 13, point 2).

    .venv/bin/python -m bench.kernels_dense      # prints a table, writes bench/out/kernels_dense.md

``LogisticRegression`` on digits (64 features, 10 classes), ``StandardScaler`` +
``LogisticRegression`` on digits, and an ``MLPClassifier`` 784-160-2 (~1 MB of float64 weights,
on random 784-feature data), ``predict_proba`` on 1, 16 and 1000 rows. Each image is loaded twice,
once per kernel (``modelshelf._kernels.use``); the two kernels alternate within every repetition
(their order flips each time); medians over repetitions of wall and process CPU time per call,
and the 25th-75th percentile of the ratios. Both kernels' outputs are checked equal to the bit
first. The last column is the slowest 1000-row call of each kernel over its median (a stall
shows as a large ratio: the compiled kernel keeps _math.matmul's blocks, so BLAS stays on the
calling thread as on the numpy path).
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import numpy as np

from bench._util import OUT, markdown_table
from bench.kernels import _cells, _per_call


def _models() -> dict[str, tuple[Any, np.ndarray]]:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    X = np.ascontiguousarray(X)
    rng = np.random.default_rng(0)
    Xm = rng.normal(size=(2000, 784))
    ym = (Xm[:, :10].sum(axis=1) > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "logreg-digits": (LogisticRegression(max_iter=200).fit(X, y), X),
            "scaler+logreg-digits": (
                make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)).fit(X, y),
                X,
            ),
            "mlp-784-160-2": (MLPClassifier((160,), max_iter=5).fit(Xm, ym), Xm),
        }


def _tile(X: np.ndarray, rows: int) -> np.ndarray:
    return np.ascontiguousarray(np.resize(X, (rows, X.shape[1])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=21, help="interleaved repetitions")
    args = parser.parse_args()

    import modelshelf
    from modelshelf import _kernels

    if _kernels.BUILT is None:
        raise SystemExit("the compiled kernels are not built (pip install -e .)")
    batches = {1: 2000, 16: 500, 1000: 20}
    table = []
    for name, (est, X) in _models().items():
        image = modelshelf.compile(est)
        loaded = {}
        for kernel in ("numpy", "compiled"):
            _kernels.use(kernel)
            loaded[kernel] = modelshelf.load(image).predict_proba
        _kernels.use("compiled")
        for rows, calls in batches.items():
            Xb = _tile(X, rows)
            assert loaded["compiled"](Xb).tobytes() == loaded["numpy"](Xb).tobytes(), "disagree"
            times: dict[str, list[tuple[float, float]]] = {"numpy": [], "compiled": []}
            worst: dict[str, list[float]] = {"numpy": [], "compiled": []}
            for rep in range(args.reps):
                order = ("numpy", "compiled") if rep % 2 else ("compiled", "numpy")
                for kernel in order:
                    fn = loaded[kernel]
                    times[kernel].append(_per_call(lambda f=fn, x=Xb: f(x), calls))
                    if rows == 1000:  # each call alone: a stall is one slow call
                        for _ in range(5):
                            start = time.perf_counter()
                            fn(Xb)
                            worst[kernel].append(time.perf_counter() - start)
            t_np, t_c = np.array(times["numpy"]), np.array(times["compiled"])
            row = [name, str(rows)]
            row += [*_cells(t_np[:, 0], t_c[:, 0]), *_cells(t_np[:, 1], t_c[:, 1])]
            if rows == 1000:
                row.append(
                    " / ".join(
                        f"{max(worst[k]) / np.median(worst[k]):.1f}x" for k in ("numpy", "compiled")
                    )
                )
            else:
                row.append("")
            table.append(row)
            print(" | ".join(row), flush=True)
    header = ["model", "rows", "numpy", "compiled", "numpy / compiled (IQR)"]
    header += ["numpy CPU", "compiled CPU", "CPU ratio (IQR)", "slowest / median (np / c)"]
    text = markdown_table(header, table)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "kernels_dense.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
