"""Kernel, neighbour and mixture benchmark: load + first prediction, and steady latency.

    .venv/bin/python -m bench.kernel           # writes bench/out/kernel.md, kernel.json, PNGs

Three models whose images are dominated by data rather than parameters (issue 10, point 7):

- ``knn-100k``: KNeighborsClassifier(10) over 100,000 training rows x 20 features (the
  training set is in the image; scikit-learn builds a kd-tree);
- ``svc-5k``: SVC(rbf) with about 5,000 support vectors (noisy labels, 20 features);
- ``gmm-1m``: GaussianMixture(100 components, "full") over 100 features: 100 x 100 x 100
  precision factors, 1M parameters.

Measured in one worker process that has imported scikit-learn, joblib and modelshelf: (a) load
+ first prediction of one row, ``joblib.load`` vs ``modelshelf.load`` of a fresh copy of the
file; (b) steady latency of one row and of 1000 rows, the estimator's own method vs the Model's,
with a check that both agree.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bench._util import (
    OUT,
    bar_plot,
    fmt_bytes,
    fmt_time,
    machine_summary,
    markdown_table,
    suite_main,
)

MODELS_DIR = OUT / "models_kernel"


def _models() -> list[tuple[str, str, Any, np.ndarray, np.ndarray | None]]:
    """(id, method, unfitted estimator, X, y)."""
    from sklearn.datasets import make_classification
    from sklearn.mixture import GaussianMixture
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC

    X_knn, y_knn = make_classification(100_000, 20, n_informative=10, random_state=0)
    X_svc, y_svc = make_classification(6_000, 20, n_informative=5, flip_y=0.6, random_state=0)
    rng = np.random.default_rng(0)
    X_gmm = rng.normal(size=(5_000, 100)) + rng.integers(0, 4, size=(5_000, 1))
    gmm = GaussianMixture(
        100, covariance_type="full", max_iter=2, init_params="random_from_data", random_state=0
    )
    return [
        ("knn-100k", "predict_proba", KNeighborsClassifier(10), X_knn, y_knn),
        ("svc-5k", "decision_function", SVC(), X_svc, y_svc),
        ("gmm-1m", "predict_proba", gmm, X_gmm, None),
    ]


def build(only: str | None) -> list[dict[str, Any]]:
    import warnings

    import joblib

    import modelshelf

    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    built = []
    for model_id, method, est, X, y in _models():
        if only and only not in model_id:
            continue
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X, y) if y is not None else est.fit(X)
        fit_time = time.perf_counter() - t0
        image = modelshelf.compile(est)
        base = MODELS_DIR / model_id
        joblib.dump(est, f"{base}.joblib")
        base.with_suffix(".msi").write_bytes(image)
        rows = MODELS_DIR / f"{model_id}.rows.npy"
        np.save(rows, np.ascontiguousarray(X[-1000:]))
        size = getattr(est, "support_vectors_", None)
        built.append(
            {
                "id": model_id,
                "method": method,
                "fit": fit_time,
                "joblib": f"{base}.joblib",
                "image": f"{base}.msi",
                "rows": str(rows),
                "image_bytes": len(image),
                "joblib_bytes": base.with_suffix(".joblib").stat().st_size,
                "support_vectors": None if size is None else len(size),
            }
        )
        print(f"built {model_id}: fit {fit_time:.1f} s, {len(image)} image bytes")
    return built


# The worker: libraries imported once, then each model loaded as if for the first time.
WORKER = """
import json, os, shutil, statistics, time, warnings
import numpy as np, joblib, sklearn, sklearn.neighbors, sklearn.svm, sklearn.mixture, modelshelf
warnings.simplefilter("ignore")
models = json.loads(%(models)r)
REPEAT, LOAD_REPEAT = %(repeat)d, %(load_repeat)d

from bench._util import budget_time

def first(load, path, method, one):
    times = []
    for i in range(LOAD_REPEAT):
        copy = f"{path}.copy{i}"
        shutil.copyfile(path, copy)
        t0 = time.perf_counter()
        model = load(copy)
        getattr(model, method)(one)
        times.append(time.perf_counter() - t0)
        del model
        os.remove(copy)
    return statistics.median(times)

results = []
for spec in models:
    rows = np.load(spec["rows"])
    one, method = rows[:1], spec["method"]
    t_joblib = first(joblib.load, spec["joblib"], method, one)
    t_shelf = first(modelshelf.load, spec["image"], method, one)
    est, mod = joblib.load(spec["joblib"]), modelshelf.load(spec["image"])
    sk, sh = getattr(est, method), getattr(mod, method)
    agree = bool(np.allclose(sk(rows), sh(rows), rtol=1e-9, atol=1e-12))
    results.append(dict(
        joblib_first=t_joblib, shelf_first=t_shelf,
        sk1=budget_time(lambda: sk(one), repeat=REPEAT),
        sh1=budget_time(lambda: sh(one), repeat=REPEAT),
        sk1000=budget_time(lambda: sk(rows), repeat=REPEAT, budget=0.5),
        sh1000=budget_time(lambda: sh(rows), repeat=REPEAT, budget=0.5),
        agree=agree,
    ))
print(json.dumps(results))
"""


def report(built: list[dict[str, Any]]) -> str:
    load_rows = [
        [
            s["id"],
            fmt_bytes(s["image_bytes"]),
            fmt_bytes(s["joblib_bytes"]),
            fmt_time(s["joblib_first"]),
            fmt_time(s["shelf_first"]),
            f"{s['joblib_first'] / s['shelf_first']:.1f}x",
        ]
        for s in built
    ]
    latency_rows = [
        [
            s["id"],
            s["method"],
            fmt_time(s["sk1"]),
            fmt_time(s["sh1"]),
            f"{s['sk1'] / s['sh1']:.1f}x",
            fmt_time(s["sk1000"]),
            fmt_time(s["sh1000"]),
            f"{s['sh1000'] / s['sk1000']:.2f}x",
            "yes" if s["agree"] else "NO",
        ]
        for s in built
    ]
    return "\n\n".join(
        [
            f"Machine: {machine_summary()}",
            "(a) Load + first prediction (one row), warm process:",
            markdown_table(
                ["model", "image", "joblib file", "joblib.load", "modelshelf.load", "speed-up"],
                load_rows,
            ),
            "(b) Steady latency, the estimator's own method vs the Model's:",
            markdown_table(
                [
                    "model",
                    "method",
                    "sklearn 1 row",
                    "modelshelf 1 row",
                    "1-row speed-up",
                    "sklearn 1000 rows",
                    "modelshelf 1000 rows",
                    "1000-row ratio",
                    "agree (1e-9)",
                ],
                latency_rows,
            ),
        ]
    )


def plots(built: list[dict[str, Any]]) -> None:
    labels = [s["id"] for s in built]
    bar_plot(
        OUT / "kernel_load.png",
        "Load + first prediction, warm process",
        labels,
        {
            "joblib.load": [s["joblib_first"] * 1e3 for s in built],
            "modelshelf.load": [s["shelf_first"] * 1e3 for s in built],
        },
        "milliseconds (log)",
    )
    bar_plot(
        OUT / "kernel_latency.png",
        "Steady latency: 1 row and 1000 rows",
        labels,
        {
            "sklearn 1 row": [s["sk1"] * 1e3 for s in built],
            "modelshelf 1 row": [s["sh1"] * 1e3 for s in built],
            "sklearn 1000 rows": [s["sk1000"] * 1e3 for s in built],
            "modelshelf 1000 rows": [s["sh1000"] * 1e3 for s in built],
        },
        "milliseconds (log)",
    )


def main() -> None:
    suite_main("kernel", __doc__, build, WORKER, report, plots, MODELS_DIR)


if __name__ == "__main__":
    main()
