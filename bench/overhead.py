"""Per-call overhead of a prediction (issue 13, point 5): this tree against a baseline commit.

    .venv/bin/python -m bench.overhead --baseline REF    # a table, also in bench/out/overhead.md

The models of the peer benchmark (bench/peers_models.py: LogisticRegression and
StandardScaler + LogisticRegression on digits, RandomForest 200, HistGradientBoosting 200,
LightGBM 500 and XGBoost 500 on a 20-feature problem) are compiled once and each image is loaded
by this tree's modelshelf and by the baseline's (``git archive REF client/modelshelf``,
imported as the package ``modelshelf_base`` with this tree's compiled extension, so that only
the Python path differs: REF's Python must call nothing this extension lacks, so take the
commit this tree branched from, not a newer main), under each kernel (numpy, compiled).
``predict_proba`` is timed on 1 row and on 1000 rows of float64 C-ordered input (``--inputs
all`` adds float32, a pandas DataFrame and a list of one row). Within every repetition the
contenders run in a shuffled order, each for a batch of calls; the table gives medians over
repetitions of the process CPU time per call (``time.process_time``), and of the
per-repetition ratio baseline / this tree.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from bench._util import OUT, ROOT, extract, markdown_table
from bench.peers_models import MODELS, _data, _fit

_SKIP = ("mlp-1mb",)  # the kernel dominates; its overhead is LogisticRegression's


def _baseline(ref: str, into: Path) -> ModuleType:
    """The client package at ``ref`` imported as ``modelshelf_base``."""
    extract(ref, into, ("client/modelshelf",))
    package = into / "client" / "modelshelf"
    for so in (ROOT / "client" / "modelshelf" / "_kernels").glob("_native*.so"):
        shutil.copy(so, package / "_kernels" / so.name)
    spec = importlib.util.spec_from_file_location(
        "modelshelf_base", package / "__init__.py", submodule_search_locations=[str(package)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["modelshelf_base"] = module
    spec.loader.exec_module(module)
    return module


def _inputs(X: np.ndarray, which: str) -> dict[str, Any]:
    out: dict[str, Any] = {"1 row": X[:1].copy(), "1000 rows": X[:1000].copy()}
    if which == "all":
        import pandas as pd

        out["1 row float32"] = X[:1].astype(np.float32)
        out["1 row DataFrame"] = pd.DataFrame(X[:1])
        out["1 row list"] = X[:1].tolist()
    return out


def _per_call(fn: Callable[[], Any], calls: int) -> float:
    cpu = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - cpu) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main", help="git ref of the baseline (main)")
    parser.add_argument("--reps", type=int, default=15, help="interleaved repetitions")
    parser.add_argument("--models", default="", help="comma-separated ids (default: all)")
    parser.add_argument("--inputs", choices=("float64", "all"), default="float64")
    parser.add_argument("--budget", type=float, default=0.02, help="seconds per batch of calls")
    args = parser.parse_args()

    import modelshelf
    from modelshelf import _kernels

    if _kernels.BUILT is None:
        raise SystemExit("the compiled kernels are not built (setup.py build_ext --inplace)")
    wanted = set(args.models.split(",")) if args.models else None
    rng = random.Random(0)
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        base = _baseline(args.baseline, Path(tmp))
        packages = {"base": base, "this": modelshelf}
        for model_id, label, dataset in MODELS:
            if model_id in _SKIP or (wanted is not None and model_id not in wanted):
                continue
            X_fit, y_fit, X_test = _data(dataset)
            image = modelshelf.compile(_fit(model_id, X_fit, y_fit))
            loaded: dict[tuple[str, str], Any] = {}
            for kernel in ("numpy", "compiled"):
                for name, package in packages.items():
                    package._kernels.use(kernel)
                    loaded[name, kernel] = package.load(image)
            for batch, X in _inputs(X_test, args.inputs).items():
                expected = loaded["base", "numpy"].predict_proba(X)
                calls = {}
                for key, model in loaded.items():
                    got = model.predict_proba(X)
                    assert got.tobytes() == expected.tobytes(), f"{key} disagrees on {batch}"
                    t0 = time.perf_counter()
                    model.predict_proba(X)
                    calls[key] = max(1, int(args.budget / max(time.perf_counter() - t0, 1e-7)))
                times: dict[tuple[str, str], list[float]] = {key: [] for key in loaded}
                for _ in range(args.reps):
                    keys = list(loaded)
                    rng.shuffle(keys)
                    for key in keys:
                        model = loaded[key]
                        times[key].append(
                            _per_call(lambda m=model, X=X: m.predict_proba(X), calls[key])
                        )
                for kernel in ("numpy", "compiled"):
                    before = np.array(times["base", kernel])
                    after = np.array(times["this", kernel])
                    ratio = before / after
                    q1, q3 = np.percentile(ratio, [25, 75])
                    table.append(
                        [
                            label,
                            batch,
                            kernel,
                            _us(np.median(before)),
                            _us(np.median(after)),
                            f"{np.median(ratio):.2f}x ({q1:.2f}-{q3:.2f})",
                        ]
                    )
                    print(" | ".join(table[-1]), flush=True)
    header = ["model", "input", "kernels", "before (CPU)", "after (CPU)", "before / after (IQR)"]
    text = markdown_table(header, table)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "overhead.md").write_text(text + "\n")
    print(text)


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


if __name__ == "__main__":
    main()
