"""The probability links with the C library's exp (scipy's expit, LightGBM's and XGBoost's):
what they cost against numpy's own exp, on the numpy runtime and compiled.

    .venv/bin/python -m bench.links

Best of 5 runs of repeated calls, on 1000 values or rows. It never asserts: it reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

import modelshelf
from modelshelf import _kernels
from modelshelf.runtime import _math


def best_us(f: Callable[[], object], n: int = 200) -> float:
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            f()
        runs.append((time.perf_counter() - start) / n)
    return min(runs) * 1e6


def main() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 20))
    y = (X[:, 0] > 0).astype(int)
    x = rng.normal(size=1000) * 5
    numpy_exp = best_us(lambda: 1.0 / (1.0 + np.exp(-x)))
    libm_exp = best_us(lambda: _math.expit(x))
    print(f"numpy runtime, expit of 1000 values: libm's exp {libm_exp:.1f} us, "
          f"numpy's exp (before) {numpy_exp:.1f} us")  # fmt: skip
    sigmoid = _kernels.sigmoid()
    if sigmoid is not None:
        raw, out = x.reshape(-1, 1), np.empty((1000, 2))
        print(f"compiled sigmoid link, 1000 rows: {best_us(lambda: sigmoid(raw, out)):.1f} us")
    for est in (
        HistGradientBoostingClassifier(max_iter=100).fit(X, y),
        LogisticRegression().fit(X, y),
    ):
        model = modelshelf.load(modelshelf.compile(est))
        proba = best_us(lambda m=model: m.predict_proba(X), 50)
        labels = best_us(lambda m=model: m.predict(X), 50)
        print(f"{type(est).__name__}, 1000 rows ({_kernels.mode()}): predict_proba {proba:.0f} us, "
              f"predict {labels:.0f} us")  # fmt: skip


if __name__ == "__main__":
    main()
