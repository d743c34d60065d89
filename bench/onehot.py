"""One-hot pipelines over many categories: predict time and peak memory of a 1000-row batch,
scikit-learn against modelshelf (this tree, and a baseline ref where given).

    .venv/bin/python -m bench.onehot --baseline 0f10fb2     # a table, also in bench/out/

Models, each fitted on 40,000 rows, two categorical columns of ``--cardinality`` values each
and four numeric ones:

- ``onehot -> logistic``: ``make_pipeline(OneHotEncoder(handle_unknown="ignore"),
  LogisticRegression())`` on the two categorical columns;
- ``columns -> logistic``: a ColumnTransformer (one-hot on the categorical columns,
  StandardScaler on the numeric ones; sparse output, as scikit-learn decides at fit) then
  LogisticRegression.

Each (model, runtime) runs in a fresh worker process (the baseline's from ``git archive REF``):
the model loaded, one call to warm up, then the median of ``--repeat`` calls of
``predict_proba`` on 1000 rows and on 1 row, and the peak of memory the 1000-row call
allocates (``tracemalloc``: numpy reports its buffers to it). Exactness: whether
``decision_function`` equals scikit-learn's bit for bit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench._util import OUT, ROOT, baseline_kernels, extract, markdown_table

WORKER = r"""
import json, statistics, sys, time, tracemalloc
import numpy as np
a = json.loads(sys.argv[1])
data = np.load(a["rows"])
X = data[:1000]
if a["kind"] == "sklearn":
    import joblib
    model = joblib.load(a["joblib"])
    where = "sklearn"
else:
    import modelshelf
    model = modelshelf.load(a["image"])
    where = modelshelf.__file__
def median(fn, repeat):
    fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter(); fn(); out.append(time.perf_counter() - t0)
    return statistics.median(out)
t1000 = median(lambda: model.predict_proba(X), a["repeat"])
t1 = median(lambda: model.predict_proba(X[:1]), a["repeat"] * 10)
tracemalloc.start()
model.predict_proba(X)
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
scores = model.decision_function(X)
np.save(a["scores"], scores)
print(json.dumps({"t1000": t1000, "t1": t1, "peak": peak, "module": where}))
"""


def _models(cardinality: int, into: Path) -> list[dict[str, Any]]:
    import joblib
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    import modelshelf

    rng = np.random.default_rng(0)
    cats = rng.integers(0, cardinality, size=(40_000, 2)).astype(np.float64)
    nums = rng.normal(size=(40_000, 4))
    X = np.hstack([cats, nums])
    y = ((cats[:, 0] % 3 == 0) ^ (nums[:, 0] > 0.5)).astype(int)
    columns = ColumnTransformer(
        [
            ("c", OneHotEncoder(handle_unknown="ignore"), [0, 1]),
            ("n", StandardScaler(), [2, 3, 4, 5]),
        ]
    )
    specs = [
        ("onehot -> logistic", make_pipeline(OneHotEncoder(handle_unknown="ignore"),
                                             LogisticRegression(max_iter=300)), cats),
        ("columns -> logistic", make_pipeline(columns, LogisticRegression(max_iter=300)), X),
    ]  # fmt: skip
    out = []
    for i, (label, est, data) in enumerate(specs):
        est.fit(data, y)
        base = into / f"m{cardinality}-{i}"
        np.save(f"{base}.rows.npy", data[-1000:])
        joblib.dump(est, f"{base}.joblib")
        Path(f"{base}.msi").write_bytes(modelshelf.compile(est))
        width = est[:-1].transform(data[:1]).shape[1]
        out.append({"label": label, "base": str(base), "width": int(width)})
    return out


def _run(kind: str, model: dict[str, Any], env: dict[str, str], repeat: int) -> dict[str, Any]:
    base = model["base"]
    args = {
        "kind": kind,
        "rows": f"{base}.rows.npy",
        "joblib": f"{base}.joblib",
        "image": f"{base}.msi",
        "scores": f"{base}.{kind.replace(' ', '_')}.scores.npy",
        "repeat": repeat,
    }
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, json.dumps(args)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"{kind} on {model['label']} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["scores"] = args["scores"]
    return result


def main() -> None:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", help="a git ref to compare against")
    parser.add_argument("--cardinality", default="100,10000,100000")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--out", type=Path, default=OUT / "onehot.md")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSHELF_")}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runtimes = {"modelshelf (this)": {**env, "PYTHONPATH": str(ROOT / "client")}}
        if args.baseline:
            base = extract(args.baseline, Path(tmp) / "base", ("client/modelshelf",))
            baseline_kernels(args.baseline, base)
            runtimes[f"modelshelf ({args.baseline})"] = {
                **env, "PYTHONPATH": str(base / "client")
            }  # fmt: skip
        for cardinality in (int(c) for c in args.cardinality.split(",")):
            for model in _models(cardinality, Path(tmp)):
                sk = _run("sklearn", model, env, args.repeat)
                expected = np.load(sk["scores"])
                for name, renv in [("scikit-learn", env), *runtimes.items()]:
                    got = sk if name == "scikit-learn" else _run("modelshelf", model, renv,
                                                                  args.repeat)  # fmt: skip
                    exact = np.array_equal(np.load(got["scores"]), expected)
                    label = f"{model['label']}, 2 x {cardinality:,} values"
                    rows.append(
                        [
                            f"{label} ({model['width']:,} columns)",
                            name,
                            f"{got['t1'] * 1e6:.1f} us",
                            f"{got['t1000'] * 1e3:.2f} ms",
                            f"{got['peak'] / 2**20:.1f} MiB",
                            f"{got['t1000'] / sk['t1000']:.2f}x",
                            "yes" if exact else "no",
                        ]
                    )
                print(f"measured {model['label']} at {cardinality}", file=sys.stderr)
    table = markdown_table(
        ["model", "runtime", "1 row", "1000 rows", "peak memory, 1000 rows",
         "1000 rows / scikit-learn", "decision_function bit-equal"],
        rows,
    )  # fmt: skip
    text = f"{table}\n\n(`{' '.join(sys.argv)}`)\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
