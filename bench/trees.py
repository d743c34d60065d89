"""Tree-ensemble benchmark: modelshelf against each library's own predict, in the same run.

    .venv/bin/python -m bench.trees            # writes bench/out/trees.md and PNG plots

Forests of 10, 200 and 1000 trees of depth 6, 12 and "unlimited", from scikit-learn
(RandomForestClassifier), XGBoost and LightGBM, fitted on one binary problem (2000 rows x 20
features). Measured in one worker process that has imported every library:

(a) single-row ``predict_proba`` latency and 1000-row throughput: scikit-learn
    ``predict_proba`` with its default ``n_jobs`` (None, which is one job), ``n_jobs=1`` and
    ``n_jobs=-1``; XGBoost ``Booster.inplace_predict`` and LightGBM ``Booster.predict`` with
    every core (their default) and with one thread; against ``modelshelf.Model.predict_proba``
    (one thread: numpy);
(b) load + first prediction (one row) of every 200-tree forest: ``joblib.load`` (and the
    library's native model file for XGBoost and LightGBM) against ``modelshelf.load`` (also
    timed without the prediction);
(c) image bytes against the essential node bytes: 20 B per split node (int32 feature, float64
    threshold, two int32 children) plus 8 B per leaf output value.

"Unlimited" depth: scikit-learn ``max_depth=None``; XGBoost ``max_depth=0`` with
``grow_policy="lossguide"`` and ``max_leaves=0`` (no limit); LightGBM ``max_depth=-1`` with
``num_leaves=512`` (more than 2000 rows at ``min_child_samples=5`` can fill).
"""

from __future__ import annotations

import json
import re
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

MODELS_DIR = OUT / "models_trees"
SIZES = (10, 200, 1000)
DEPTHS: tuple[int | None, ...] = (6, 12, None)
LIBS = ("sklearn", "xgboost", "lightgbm")


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=3000, n_features=20, n_informative=10, flip_y=0.05, random_state=0
    )
    return X[:2000], y[:2000], np.ascontiguousarray(X[2000:])


def _make(lib: str, n_trees: int, depth: int | None) -> Any:
    """An unfitted classifier; fitting uses both cores, prediction is measured at defaults."""
    if lib == "sklearn":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_trees, max_depth=depth, random_state=0, n_jobs=2)
    if lib == "xgboost":
        import xgboost

        shape: dict[str, Any] = (
            {"max_depth": depth}
            if depth
            else {"max_depth": 0, "grow_policy": "lossguide", "max_leaves": 0}
        )
        return xgboost.XGBClassifier(n_estimators=n_trees, n_jobs=2, random_state=0, **shape)
    import lightgbm

    return lightgbm.LGBMClassifier(
        n_estimators=n_trees,
        max_depth=depth or -1,
        num_leaves=2**depth if depth and depth < 9 else 512,
        min_child_samples=5,
        n_jobs=2,
        random_state=0,
        verbose=-1,
    )


def _nodes(lib: str, est: Any) -> tuple[int, int]:
    """(split nodes, leaves) as the library stores the fitted forest."""
    if lib == "sklearn":
        trees = [e.tree_ for e in est.estimators_]
        leaves = sum(int(t.n_leaves) for t in trees)
        return sum(int(t.node_count) for t in trees) - leaves, leaves
    if lib == "xgboost":
        learner = json.loads(bytes(est.get_booster().save_raw("json")))["learner"]
        splits = leaves = 0
        for tree in learner["gradient_booster"]["model"]["trees"]:
            n_leaves = sum(1 for c in tree["left_children"] if c < 0)
            leaves += n_leaves
            splits += len(tree["left_children"]) - n_leaves
        return splits, leaves
    text = est.booster_.model_to_string()
    counts = [int(n) for n in re.findall(r"^num_leaves=(\d+)$", text, flags=re.M)]
    return sum(c - 1 for c in counts), sum(counts)


def build(only: str | None) -> list[dict[str, Any]]:
    import warnings

    import joblib

    import modelshelf

    X, y, X_test = _data()
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    rows_path = MODELS_DIR / "rows.npy"
    np.save(rows_path, X_test)
    built = []
    for lib in LIBS:
        for n_trees in SIZES:
            for depth in DEPTHS:
                model_id = f"{lib}-{n_trees}-{depth or 'inf'}"
                if only and only not in model_id:
                    continue
                est = _make(lib, n_trees, depth)
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    est.fit(X, y)
                fit_time = time.perf_counter() - t0
                est.set_params(n_jobs=None)  # saved at the library's default
                image = modelshelf.compile(est)
                base = MODELS_DIR / model_id
                paths = {"joblib": f"{base}.joblib", "image": f"{base}.msi"}
                joblib.dump(est, paths["joblib"])
                (base.with_suffix(".msi")).write_bytes(image)
                if lib == "xgboost":
                    paths["native"] = f"{base}.ubj"
                    est.get_booster().save_model(paths["native"])
                elif lib == "lightgbm":
                    paths["native"] = f"{base}.txt"
                    est.booster_.save_model(paths["native"])
                splits, leaves = _nodes(lib, est)
                forest = modelshelf.load(image).image.manifest["model"]["params"]
                width = 2 if lib == "sklearn" else 1  # leaf outputs: class fractions, or a margin
                built.append(
                    {
                        "id": model_id,
                        "lib": lib,
                        "trees": n_trees,
                        "depth": depth,
                        "fit": fit_time,
                        "rows": str(rows_path),
                        **paths,
                        "image_bytes": len(image),
                        "joblib_bytes": (base.with_suffix(".joblib")).stat().st_size,
                        "essential_bytes": 20 * splits + 8 * width * leaves,
                        "nodes": splits + leaves,
                        "leaves": leaves,
                        "n_trees": forest["groups"][-1],
                        "walk": forest["depth"],
                    }
                )
                print(f"built {model_id}: fit {fit_time:.1f} s, {len(image)} image bytes")
    return built


# The worker: every library imported once; models measured one after another.
WORKER = """
import json, os, shutil, statistics, time, warnings
import numpy as np, joblib, sklearn, sklearn.ensemble, xgboost, lightgbm, modelshelf
warnings.simplefilter("ignore")
models = json.loads(%(models)r)
REPEAT, LOAD_REPEAT = %(repeat)d, %(load_repeat)d

from bench._util import budget_time

def timed(fn, repeat=REPEAT, budget=0.05):
    return budget_time(fn, repeat=repeat, budget=budget)

def library(spec, est):
    # {setting: (setup run before timing it, fn giving the probability of class 1)}
    if spec["lib"] == "sklearn":
        fn = lambda X: est.predict_proba(X)[:, 1]
        at = lambda n_jobs: (lambda: est.set_params(n_jobs=n_jobs), fn)
        return {"default": at(None), "1 thread": at(1), "n_jobs=-1": at(-1)}
    if spec["lib"] == "xgboost":
        booster = est.get_booster()
        fn = lambda X: booster.inplace_predict(X)
        at = lambda n: (lambda: booster.set_param({"nthread": n}), fn)
        return {"default": at(os.cpu_count()), "1 thread": at(1)}
    booster = est.booster_
    return {"default": (lambda: None, lambda X: booster.predict(X)),
            "1 thread": (lambda: None, lambda X: booster.predict(X, num_threads=1))}

rows = np.load(models[0]["rows"]) if models else None
one = rows[:1] if models else None
results = []
for spec in models:
    out = {"id": spec["id"]}
    est = joblib.load(spec["joblib"])
    mod = modelshelf.load(spec["image"])
    fns = library(spec, est)
    fns["default"][0]()
    out["agree"] = bool(np.allclose(fns["default"][1](rows), mod.predict_proba(rows)[:, 1],
                                    rtol=1e-6, atol=1e-9))
    for name, (setup, fn) in fns.items():
        setup()
        out["lib1_" + name] = timed(lambda: fn(one))
        out["lib1000_" + name] = timed(lambda: fn(rows))
    out["shelf1"] = timed(lambda: mod.predict_proba(one))
    out["shelf1000"] = timed(lambda: mod.predict_proba(rows))
    del est, mod, fns
    if spec["trees"] == 200:
        # Fresh copies so that no in-process cache helps anyone; the page cache is warm.
        sources = {"joblib": "joblib", "image": "image", "image_only": "image"}
        if "native" in spec:
            sources["native"] = "native"
        copies = {k: [spec[src] + f".{k}{i}" for i in range(LOAD_REPEAT + 1)]
                  for k, src in sources.items()}
        for k, src in sources.items():
            for c in copies[k]:
                shutil.copyfile(spec[src], c)
        keep = []
        def first(kind, load, predict):
            paths = iter(copies[kind])
            def fn():
                m = load(next(paths)); predict(m, one); keep.append(m)
            return fn
        def sk_predict(m, X):
            return m.predict_proba(X)
        loads = {
            "joblib": first("joblib", joblib.load, sk_predict),
            "image": first("image", modelshelf.load, sk_predict),
            "image_only": first("image_only", modelshelf.load, lambda m, X: None),
        }
        if spec["lib"] == "xgboost":
            loads["native"] = first("native", lambda p: xgboost.Booster(model_file=p),
                                    lambda m, X: m.inplace_predict(X))
        elif spec["lib"] == "lightgbm":
            loads["native"] = first("native", lambda p: lightgbm.Booster(model_file=p),
                                    lambda m, X: m.predict(X))
        for kind, fn in loads.items():
            out["load_" + kind] = timed(fn, repeat=LOAD_REPEAT, budget=0)
            keep.clear()
        for paths in copies.values():
            for c in paths:
                os.remove(c)
    results.append(out)
    print(spec["id"], flush=True)
print(json.dumps(results))
"""


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x"


def report(built: list[dict[str, Any]]) -> str:
    latency, throughput, loads, sizes = [], [], [], []
    for s in built:
        depth = str(s["depth"] or "unlimited")
        lib_names = ["default", "1 thread"] + (["n_jobs=-1"] if s["lib"] == "sklearn" else [])
        best1 = min(s["lib1_" + n] for n in lib_names)
        latency.append(
            [
                s["lib"],
                s["trees"],
                depth,
                " / ".join(fmt_time(s["lib1_" + n]) for n in lib_names),
                fmt_time(s["shelf1"]),
                _ratio(s["lib1_default"], s["shelf1"]),
                "met" if s["shelf1"] <= best1 else "missed",
            ]
        )
        best1000 = min(s["lib1000_" + n] for n in lib_names)
        throughput.append(
            [
                s["lib"],
                s["trees"],
                depth,
                " / ".join(fmt_time(s["lib1000_" + n]) for n in lib_names),
                fmt_time(s["shelf1000"]),
                _ratio(s["shelf1000"], best1000),
                "met" if s["shelf1000"] <= 2 * best1000 else "missed",
                "yes" if s["agree"] else "NO",
            ]
        )
        if "load_image" in s:
            native = fmt_time(s["load_native"]) if "load_native" in s else "-"
            speedup = s["load_joblib"] / s["load_image"]
            loads.append(
                [
                    s["lib"],
                    depth,
                    fmt_bytes(s["image_bytes"]),
                    fmt_time(s["load_joblib"]),
                    native,
                    fmt_time(s["load_image"]),
                    fmt_time(s["load_image_only"]),
                    f"{speedup:.0f}x",
                    "met" if speedup >= 100 else "missed",
                ]
            )
        sizes.append(
            [
                s["lib"],
                s["trees"],
                depth,
                s["n_trees"],
                s["nodes"],
                f"{s['leaves'] / s['n_trees']:.0f}",
                s["walk"],
                f"{s['fit']:.1f} s",
                fmt_bytes(s["essential_bytes"]),
                fmt_bytes(s["image_bytes"]),
                _ratio(s["image_bytes"], s["essential_bytes"]),
                fmt_bytes(s["joblib_bytes"]),
            ]
        )
    return "\n\n".join(
        [
            f"Machine: {machine_summary()}",
            "(a) Single-row `predict_proba` latency. Library columns: default / 1 thread "
            "(scikit-learn: n_jobs=None / n_jobs=1 / n_jobs=-1). Goal: no slower than the "
            "library's fastest setting.",
            markdown_table(
                [
                    "library",
                    "trees",
                    "depth",
                    "library 1 row",
                    "modelshelf 1 row",
                    "speed-up vs default",
                    "goal",
                ],
                latency,
            ),
            "(b) 1000-row `predict_proba` throughput. Goal: within 2x of the library's fastest "
            "setting. `agree`: modelshelf's probabilities match the library's (rtol 1e-6).",
            markdown_table(
                [
                    "library",
                    "trees",
                    "depth",
                    "library 1000 rows",
                    "modelshelf 1000 rows",
                    "modelshelf / library",
                    "goal",
                    "agree",
                ],
                throughput,
            ),
            "(c) Load + first prediction (one row) of a 200-tree forest, in a process that has "
            "imported every library. Goal: modelshelf >= 100x faster than `joblib.load`.",
            markdown_table(
                [
                    "library",
                    "depth",
                    "image",
                    "joblib.load",
                    "native model file",
                    "modelshelf.load",
                    "(of which load alone)",
                    "speed-up vs joblib",
                    "goal",
                ],
                loads,
            ),
            "(d) Image bytes against essential node bytes (20 B per split node, 8 B per leaf "
            "output value) and the joblib pickle. Walk steps: the depth modelshelf's traversal "
            "runs (the deepest leaf's depth).",
            markdown_table(
                [
                    "library",
                    "trees",
                    "depth",
                    "trees fitted",
                    "nodes",
                    "leaves per tree",
                    "walk steps",
                    "fit time",
                    "essential",
                    "image",
                    "image / essential",
                    "joblib",
                ],
                sizes,
            ),
        ]
    )


def plots(built: list[dict[str, Any]]) -> None:
    labels = [s["id"] for s in built]

    def series(key: str) -> list[float]:
        return [s[key] * 1e6 for s in built]

    def fastest(prefix: str) -> list[float]:
        return [min(v for k, v in s.items() if k.startswith(prefix)) * 1e6 for s in built]

    bar_plot(
        OUT / "trees_latency.png",
        "Single-row predict_proba latency",
        labels,
        {
            "library (default setting)": series("lib1_default"),
            "library (fastest setting)": fastest("lib1_"),
            "modelshelf": series("shelf1"),
        },
        "microseconds (log)",
    )
    bar_plot(
        OUT / "trees_throughput.png",
        "1000-row predict_proba",
        labels,
        {
            "library (default setting)": series("lib1000_default"),
            "library (fastest setting)": fastest("lib1000_"),
            "modelshelf": series("shelf1000"),
        },
        "microseconds (log)",
    )
    loaded = [s for s in built if "load_image" in s]
    bar_plot(
        OUT / "trees_load.png",
        "Load + first prediction of a 200-tree forest, warm process",
        [s["id"] for s in loaded],
        {
            "joblib.load": [s["load_joblib"] * 1e3 for s in loaded],
            "native model file": [s.get("load_native", np.nan) * 1e3 for s in loaded],
            "modelshelf.load": [s["load_image"] * 1e3 for s in loaded],
        },
        "milliseconds (log)",
    )


def main() -> None:
    suite_main("trees", __doc__, build, WORKER, report, plots, MODELS_DIR)


if __name__ == "__main__":
    main()
