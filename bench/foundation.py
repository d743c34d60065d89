"""Foundation benchmark: load + first prediction, and steady latency, per model family.

    .venv/bin/python -m bench.foundation            # writes bench/out/foundation.md and PNGs

For every model, side by side in one run:
(a) warm process: a process that has already imported scikit-learn, joblib and modelshelf loads
    a model it has never used and predicts one row: ``joblib.load`` vs ``modelshelf.load``; and
    the physical floor: mapping the image file and reading each of its bytes once;
(b) fresh process: the same, with the imports included (interpreter start excluded);
(c) steady latency of one row and of 1000 rows, modelshelf vs the estimator's own method.
"""

from __future__ import annotations

import argparse
import json
import shutil
import warnings
from collections.abc import Callable
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
    run_worker,
)

MODELS_DIR = OUT / "models"


def _data(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    rng = np.random.default_rng(0)
    if name == "digits":
        return datasets.load_digits(return_X_y=True)  # type: ignore[no-any-return]
    if name == "breast_cancer":
        return datasets.load_breast_cancer(return_X_y=True)  # type: ignore[no-any-return]
    if name == "diabetes":
        return datasets.load_diabetes(return_X_y=True)  # type: ignore[no-any-return]
    if name.startswith("wide"):  # wide-<features>-<classes>
        _, d, k = name.split("-")
        X = rng.normal(size=(600, int(d)))
        return X, rng.integers(0, int(k), size=600)
    if name == "counts":
        X = rng.poisson(2.0, size=(500, 300)).astype(float)
        return X, rng.integers(0, 5, size=500)
    if name == "mixed":
        X = rng.normal(size=(500, 10))
        X[:, :3] = rng.integers(0, 6, size=(500, 3))
        return X, (X[:, 3] + X[:, 0] > 1).astype(int)
    raise KeyError(name)


def _models() -> list[tuple[str, str, Callable[[], Any], str]]:
    """(family, id, make, dataset)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
    from sklearn.naive_bayes import GaussianNB, MultinomialNB
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def mlp(hidden: tuple[int, ...], iters: int) -> Callable[[], Any]:
        return lambda: MLPClassifier(hidden, max_iter=iters, random_state=0)

    return [
        ("linear", "logreg-digits", lambda: LogisticRegression(max_iter=200), "digits"),
        ("linear", "logreg-2000x50", lambda: LogisticRegression(max_iter=30), "wide-2000-50"),
        ("linear", "sgd-hinge", lambda: SGDClassifier(random_state=0), "breast_cancer"),
        ("linear", "ridge-diabetes", lambda: Ridge(), "diabetes"),
        ("mlp", "mlp-digits-100", mlp((100,), 200), "digits"),
        ("mlp", "mlp-784-1024x2", mlp((1024, 1024), 2), "wide-784-10"),
        ("mlp", "mlp-2048-2048x2", mlp((2048, 2048), 1), "wide-2048-10"),
        ("naive_bayes", "gaussian-nb", GaussianNB, "digits"),
        ("naive_bayes", "multinomial-nb", MultinomialNB, "counts"),
        (
            "pipeline",
            "scaler-pca-logreg",
            lambda: make_pipeline(StandardScaler(), PCA(30), LogisticRegression(max_iter=300)),
            "digits",
        ),
        (
            "pipeline",
            "onehot-columns-logreg",
            lambda: make_pipeline(
                ColumnTransformer(
                    [
                        ("cat", OneHotEncoder(handle_unknown="ignore"), [0, 1, 2]),
                        ("num", StandardScaler(), list(range(3, 10))),
                    ]
                ),
                LogisticRegression(),
            ),
            "mixed",
        ),
    ]


def build(only: str | None) -> list[dict[str, Any]]:
    import joblib

    import modelshelf

    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    built = []
    for family, model_id, make, data in _models():
        if only and only not in model_id:
            continue
        X, y = _data(data)
        est = make()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X, y)
        try:
            image = modelshelf.compile(est)
        except modelshelf.UnsupportedModelError as exc:
            print(f"skip {model_id}: {exc}")
            continue
        joblib_path = MODELS_DIR / f"{model_id}.joblib"
        image_path = MODELS_DIR / f"{model_id}.msi"
        joblib.dump(est, joblib_path)
        image_path.write_bytes(image)
        np.save(MODELS_DIR / f"{model_id}.rows.npy", np.ascontiguousarray(X[:1000]))
        built.append(
            {
                "family": family,
                "id": model_id,
                "joblib": str(joblib_path),
                "image": str(image_path),
                "rows": str(MODELS_DIR / f"{model_id}.rows.npy"),
                "image_bytes": image_path.stat().st_size,
                "joblib_bytes": joblib_path.stat().st_size,
            }
        )
    return built


# The warm worker: libraries imported once, then every model loaded as if for the first time.
WARM = """
import json, mmap, shutil, statistics, sys, time, warnings
import numpy as np, joblib, sklearn, modelshelf
import sklearn.linear_model, sklearn.neural_network, sklearn.naive_bayes, sklearn.pipeline
import sklearn.preprocessing, sklearn.decomposition, sklearn.compose
warnings.simplefilter("ignore")
models = json.loads(%(models)r)
REPEAT = %(repeat)d
def method(m):
    return "predict_proba" if hasattr(m, "predict_proba") else "predict"
def floor(path):
    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    a = np.frombuffer(mm, dtype=np.uint8)
    n = len(a) // 8 * 8
    np.bitwise_or.reduce(a[:n].view(np.uint64)); np.bitwise_or.reduce(a[n:])
    del a; mm.close()
def med(fn, repeat):
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter(); fn(); out.append(time.perf_counter() - t0)
    return statistics.median(out)
results = []
for spec in models:
    rows = np.load(spec["rows"])
    one = rows[:1]
    # Fresh copies so that no in-process cache can help either library; page cache is warm.
    # The floor reads its own fresh copies too: same page-cache and CPU-cache state as the
    # copies modelshelf loads, so that the comparison is like for like.
    copies = []
    for i in range(REPEAT):
        for kind, src in (("joblib", spec["joblib"]), ("image", spec["image"]),
                          ("floor", spec["image"])):
            dst = src + f".{kind}{i}"
            shutil.copyfile(src, dst)
            copies.append(dst)
    jl = iter([spec["joblib"] + f".joblib{i}" for i in range(REPEAT)])
    ms = iter([spec["image"] + f".image{i}" for i in range(REPEAT)])
    fl = iter([spec["image"] + f".floor{i}" for i in range(REPEAT)])
    keep = []
    def joblib_first():
        m = joblib.load(next(jl)); getattr(m, method(m))(one); keep.append(m)
    def shelf_first():
        m = modelshelf.load(next(ms)); getattr(m, method(m))(one); keep.append(m)
    t_joblib = med(joblib_first, REPEAT)
    t_shelf = med(shelf_first, REPEAT)
    t_floor = med(lambda: floor(next(fl)), REPEAT)
    keep.clear()
    est = joblib.load(spec["joblib"]); mod = modelshelf.load(spec["image"])
    name = method(est)
    sk, sh = getattr(est, name), getattr(mod, name)
    big = rows[:1000] if len(rows) >= 1000 else np.resize(rows, (1000, rows.shape[1]))
    n1 = 200
    t_sk1 = med(lambda: [sk(one) for _ in range(n1)], 7) / n1
    t_sh1 = med(lambda: [sh(one) for _ in range(n1)], 7) / n1
    t_sk1000 = med(lambda: sk(big), 15)
    t_sh1000 = med(lambda: sh(big), 15)
    agree = bool(np.allclose(np.asarray(sk(big), dtype=float), np.asarray(sh(big), dtype=float),
                             rtol=1e-6, atol=1e-9))
    results.append(dict(id=spec["id"], joblib=t_joblib, shelf=t_shelf, floor=t_floor,
                        sk1=t_sk1, sh1=t_sh1, sk1000=t_sk1000, sh1000=t_sh1000, method=name,
                        agree=agree))
    import os
    for c in copies:
        os.remove(c)
print(json.dumps(results))
"""

FRESH = """
import time
t0 = time.perf_counter()
import warnings; warnings.simplefilter("ignore")
import numpy as np
one = np.load(%(rows)r)[:1]
%(body)s
print(time.perf_counter() - t0)
"""
FRESH_JOBLIB = """import joblib
m = joblib.load(%(path)r)
(m.predict_proba if hasattr(m, "predict_proba") else m.predict)(one)"""
FRESH_SHELF = """import modelshelf
m = modelshelf.load(%(path)r)
(m.predict_proba if hasattr(m, "predict_proba") else m.predict)(one)"""


def fresh(spec: dict[str, Any], repeat: int) -> tuple[float, float]:
    import statistics
    import subprocess
    import sys

    def one(body: str) -> float:
        code = FRESH % {"rows": spec["rows"], "body": body}
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
        )
        return float(out.stdout.strip().splitlines()[-1])

    jl = statistics.median(one(FRESH_JOBLIB % {"path": spec["joblib"]}) for _ in range(repeat))
    ms = statistics.median(one(FRESH_SHELF % {"path": spec["image"]}) for _ in range(repeat))
    return jl, ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=9, help="runs per measurement (median)")
    parser.add_argument("--fresh-repeat", type=int, default=5, help="fresh processes per model")
    parser.add_argument("--only", help="only models whose id contains this")
    args = parser.parse_args()

    built = build(args.only)
    warm = run_worker(WARM % {"models": json.dumps(built), "repeat": args.repeat})
    rows, fresh_rows, latency_rows = [], [], []
    for spec, w in zip(built, warm, strict=True):
        fj, fm = fresh(spec, args.fresh_repeat)
        spec.update(w, fresh_joblib=fj, fresh_shelf=fm)
        small = spec["image_bytes"] < 1_000_000
        goal = (
            f"{spec['joblib'] / spec['shelf']:.0f}x (goal 10x)"
            if small
            else f"{spec['shelf'] / spec['floor']:.2f}x floor (goal <= 1.5x)"
        )
        rows.append(
            [
                spec["family"],
                spec["id"],
                fmt_bytes(spec["image_bytes"]),
                fmt_time(spec["joblib"]),
                fmt_time(spec["shelf"]),
                fmt_time(spec["floor"]),
                goal,
            ]
        )
        fresh_rows.append([spec["id"], fmt_time(fj), fmt_time(fm), f"{fj / fm:.1f}x (goal 5x)"])
        latency_rows.append(
            [
                spec["id"],
                spec["method"],
                fmt_time(spec["sk1"]),
                fmt_time(spec["sh1"]),
                f"{spec['sk1'] / spec['sh1']:.1f}x",
                fmt_time(spec["sk1000"]),
                fmt_time(spec["sh1000"]),
                f"{spec['sh1000'] / spec['sk1000']:.2f}x (goal <= 1.5x)",
                "yes" if spec["agree"] else "NO",
            ]
        )
    report = "\n\n".join(
        [
            f"Machine: {machine_summary()}",
            "(a) Load + first prediction (one row), warm process:",
            markdown_table(
                ["family", "model", "image", "joblib.load", "modelshelf.load", "floor", "result"],
                rows,
            ),
            "(b) Load + first prediction, fresh process, imports included:",
            markdown_table(["model", "joblib", "modelshelf", "speed-up"], fresh_rows),
            "(c) Steady latency, modelshelf vs the estimator's own method:",
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
                    "agree",
                ],
                latency_rows,
            ),
        ]
    )
    print(report)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "foundation.md").write_text(report + "\n")
    labels = [s["id"] for s in built]
    bar_plot(
        OUT / "foundation_load_warm.png",
        "Load + first prediction, warm process",
        labels,
        {
            "joblib.load": [s["joblib"] * 1e3 for s in built],
            "modelshelf.load": [s["shelf"] * 1e3 for s in built],
            "floor (map + read)": [s["floor"] * 1e3 for s in built],
        },
        "milliseconds (log)",
    )
    bar_plot(
        OUT / "foundation_load_fresh.png",
        "Load + first prediction, fresh process (imports included)",
        labels,
        {
            "joblib": [s["fresh_joblib"] * 1e3 for s in built],
            "modelshelf": [s["fresh_shelf"] * 1e3 for s in built],
        },
        "milliseconds (log)",
    )
    bar_plot(
        OUT / "foundation_latency.png",
        "Steady latency: 1 row and 1000 rows",
        labels,
        {
            "sklearn 1 row": [s["sk1"] * 1e6 for s in built],
            "modelshelf 1 row": [s["sh1"] * 1e6 for s in built],
            "sklearn 1000 rows": [s["sk1000"] * 1e6 for s in built],
            "modelshelf 1000 rows": [s["sh1000"] * 1e6 for s in built],
        },
        "microseconds (log)",
    )
    shutil.rmtree(MODELS_DIR, ignore_errors=True)
    print(f"\nwrote {OUT / 'foundation.md'} and PNG plots in {OUT}")


if __name__ == "__main__":
    main()
