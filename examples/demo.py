"""modelshelf demo: compile models of several families, then compare the cost of getting a first
answer from each, joblib (unpickle) vs modelshelf (map an image).

    ./scripts/demo.sh                 # sets up .venv once, then runs this file
    .venv/bin/python examples/demo.py [--runs 5] [--out DIR]

Every model is fitted, saved with joblib and compiled into an image. Then ``--runs`` fresh worker
processes, each having already imported numpy, joblib, scikit-learn (with the estimator modules)
and modelshelf, and warmed up both libraries on a throwaway model, time for every model:

    joblib.load(path)     + first predict_proba (predict for regressors) on one row
    modelshelf.load(path) + first predict_proba (predict for regressors) on one row

The table shows the median over the workers, and whether both gave the same answers on the
held-out rows. Importing the frameworks in a fresh process is timed apart, below the table.
A family whose converter is not there yet is skipped with a note.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# What the worker imports before timing anything, so that neither library pays for it.
SKLEARN_MODULES = [
    "sklearn.decomposition",
    "sklearn.linear_model",
    "sklearn.naive_bayes",
    "sklearn.neural_network",
    "sklearn.pipeline",
    "sklearn.preprocessing",
]


NEWTON = "newton-cg"


@dataclass(frozen=True)
class Demo:
    slug: str
    family: str
    dataset: str
    make: Callable[[], Any]


def _demos() -> list[Demo]:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return [
        # newton-cg: lbfgs needs thousands of iterations on unscaled pixels (slow, same model)
        Demo("logreg", "LogisticRegression", "digits", lambda: LogisticRegression(solver=NEWTON)),
        Demo(
            "pipeline",
            "Scaler+PCA+LogReg pipeline",
            "digits",
            lambda: make_pipeline(
                StandardScaler(),
                PCA(n_components=32, random_state=0),
                LogisticRegression(solver=NEWTON),
            ),
        ),
        Demo(
            "mlp",
            "MLPClassifier (64, 32)",
            "digits",
            lambda: MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=200, random_state=0),
        ),
        Demo("gnb", "GaussianNB", "digits", GaussianNB),
        Demo("ridge", "Ridge (regression)", "diabetes", Ridge),
    ]


def _dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    loader = {"digits": datasets.load_digits, "diabetes": datasets.load_diabetes}[name]
    X, y = loader(return_X_y=True)
    return np.asarray(X, dtype=np.float64), y


# -- parent: fit, save, compile, run the workers, print the table --------------------------------


def prepare(out: Path) -> list[dict[str, Any]]:
    """Fit, dump and compile every demo model into ``out``; return the jobs for the workers."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    import modelshelf

    jobs = []
    for demo in _demos():
        X, y = _dataset(demo.dataset)
        rng = np.random.default_rng(0)
        test = rng.choice(len(X), size=100, replace=False)
        train = np.setdiff1d(np.arange(len(X)), test)
        est = demo.make()
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings do not matter here
            est.fit(X[train], y[train])
        fit_s = time.perf_counter() - started
        try:
            image = modelshelf.compile(est, metadata={"name": demo.slug})
        except modelshelf.UnsupportedModelError as exc:
            print(f"  skipped {demo.family}: {str(exc).splitlines()[0][:110]}")
            continue
        pickle_path, image_path = out / f"{demo.slug}.joblib", out / f"{demo.slug}.msi"
        joblib.dump(est, pickle_path)
        image_path.write_bytes(image)
        np.save(out / f"{demo.slug}.X.npy", X[test])
        method = "predict_proba" if hasattr(est, "predict_proba") else "predict"
        print(f"  {demo.family:<28} fitted in {fit_s:5.2f} s, compiled to {len(image):>9,} bytes")
        jobs.append(
            {
                "slug": demo.slug,
                "family": demo.family,
                "method": method,
                "pickle": str(pickle_path),
                "image": str(image_path),
                "X": str(out / f"{demo.slug}.X.npy"),
                "pickle_bytes": pickle_path.stat().st_size,
                "image_bytes": len(image),
            }
        )
    # A throwaway model each worker loads first, so one-time costs (lazy imports inside each
    # library, numpy's first matmul) are not charged to whichever model is measured first.
    Xw, yw = np.random.default_rng(1).normal(size=(40, 3)), np.arange(40) % 2
    warm = LogisticRegression().fit(Xw, yw)
    joblib.dump(warm, out / "warmup.joblib")
    (out / "warmup.msi").write_bytes(modelshelf.compile(warm))
    return jobs


def run_workers(out: Path, jobs: list[dict[str, Any]], runs: int) -> list[dict[str, Any]]:
    jobs_file = out / "jobs.json"
    jobs_file.write_text(json.dumps(jobs))
    results = []
    for run in range(runs):
        # Alternate which library goes first, so that neither always meets a colder cache.
        order = "joblib-first" if run % 2 == 0 else "modelshelf-first"
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--worker", str(jobs_file), order],
            check=True,
            capture_output=True,
            text=True,
        )
        results.append(json.loads(proc.stdout))
    return results


def import_costs(runs: int) -> dict[str, float]:
    """Median milliseconds to import each side's libraries in a fresh interpreter."""
    probes = {
        "scikit-learn + joblib": "import joblib, " + ", ".join(SKLEARN_MODULES),
        "modelshelf": "import modelshelf",
    }
    costs = {}
    for label, statement in probes.items():
        code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
        times = [
            float(
                subprocess.run(
                    [sys.executable, "-c", code], check=True, capture_output=True, text=True
                ).stdout
            )
            for _ in range(runs)
        ]
        costs[label] = 1000 * statistics.median(times)
    return costs


def report(jobs: list[dict[str, Any]], results: list[dict[str, Any]]) -> bool:
    header = (
        f"{'family':<28} {'pickle B':>10} {'image B':>10} {'joblib ms':>10} "
        f"{'modelshelf ms':>14} {'speed-up':>9}  same answers"
    )
    print(header)
    print("-" * len(header))
    all_agree = True
    for job in jobs:
        per_run = [r[job["slug"]] for r in results]
        joblib_ms = statistics.median(r["joblib_ms"] for r in per_run)
        shelf_ms = statistics.median(r["modelshelf_ms"] for r in per_run)
        agree = all(r["agree"] for r in per_run)
        all_agree &= agree
        verdict = "yes" if agree else f"NO (max diff {per_run[0]['max_diff']:.2e})"
        print(
            f"{job['family']:<28} {job['pickle_bytes']:>10,} {job['image_bytes']:>10,} "
            f"{joblib_ms:>10.2f} {shelf_ms:>14.3f} {joblib_ms / shelf_ms:>8.1f}x  {verdict}"
        )
    return all_agree


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="worker processes (median taken)")
    parser.add_argument("--out", type=Path, help="keep models and images here (default: temp)")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(Path(args.worker[0]), args.worker[1])
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    with tempfile.TemporaryDirectory(prefix="modelshelf-demo-") as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        print(f"Fitting, saving with joblib and compiling with modelshelf into {out}")
        jobs = prepare(out)
        if not jobs:
            print("no model could be compiled")
            return 1
        print(f"\nLoad + first prediction on one row, median of {args.runs} warm worker processes")
        print("(each has already imported numpy, joblib, scikit-learn and modelshelf):\n")
        agree = report(jobs, run_workers(out, jobs, args.runs))
        costs = import_costs(min(args.runs, 3))
        print(
            "\nNot counted above, what a fresh process pays first to import the libraries: "
            + ", ".join(f"{label} {ms:.0f} ms" for label, ms in costs.items())
        )
    if not agree:
        print("\nmodelshelf and scikit-learn DISAGREE on some model (see above)")
        return 1
    return 0


# -- worker: one process, already warm, timing every model once per library ---------------------


def worker(jobs_file: Path, order: str) -> int:
    import importlib

    import joblib
    import sklearn

    import modelshelf

    for name in SKLEARN_MODULES:
        importlib.import_module(name)
    del sklearn
    jobs = json.loads(jobs_file.read_text())
    folder = jobs_file.parent
    X_warm = np.zeros((1, 3))
    joblib.load(folder / "warmup.joblib").predict_proba(X_warm)
    modelshelf.load(folder / "warmup.msi").predict_proba(X_warm)

    def timed(load: Callable[[str], Any], path: str, method: str, row: np.ndarray) -> float:
        gc.collect()
        started = time.perf_counter()
        model = load(path)
        getattr(model, method)(row)
        return 1000 * (time.perf_counter() - started)

    out = {}
    for job in jobs:
        X = np.load(job["X"])
        method, row = job["method"], X[:1]
        loaders = [
            ("joblib", joblib.load, job["pickle"]),
            ("modelshelf", modelshelf.load, job["image"]),
        ]
        if order == "modelshelf-first":
            loaders.reverse()
        times = {f"{name}_ms": timed(load, path, method, row) for name, load, path in loaders}
        # Correctness, untimed: every held-out row, predict and the timed method.
        est, model = joblib.load(job["pickle"]), modelshelf.load(job["image"])
        agree, max_diff = True, 0.0
        for m in dict.fromkeys(["predict", method]):
            expected, actual = getattr(est, m)(X), getattr(model, m)(X)
            if expected.dtype.kind in "fc":
                max_diff = max(max_diff, float(np.max(np.abs(actual - expected))))
                agree &= bool(np.allclose(actual, expected, rtol=1e-7, atol=1e-9))
            else:
                agree &= bool(np.array_equal(actual, expected))
        out[job["slug"]] = {**times, "agree": agree, "max_diff": max_diff}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
