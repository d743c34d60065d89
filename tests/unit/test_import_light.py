"""``import modelshelf`` (and loading and predicting) pulls in numpy and the standard library,
nothing else: application processes must not pay for scikit-learn, scipy or joblib."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import modelshelf

FORBIDDEN = ("sklearn", "scipy", "joblib", "safetensors", "pandas", "xgboost", "lightgbm")

# Runs in a fresh interpreter; prints the top-level modules that appeared after the baseline
# (the interpreter's own start-up, e.g. site hooks of the editable install, is not ours).
PROBE = """
import json, sys
before = set(sys.modules)
import modelshelf
after_import = set(sys.modules)
model = None
if len(sys.argv) > 1:
    import numpy as np
    model = modelshelf.load(sys.argv[1])
    X = np.linspace(4.0, 7.0, 12).reshape(3, 4)
    model.predict_proba(X)
    model.predict(X.tolist())
after_predict = set(sys.modules)
top = lambda names: sorted({n.split(".")[0] for n in names})
print(json.dumps({
    "import": top(after_import - before),
    "predict": top(after_predict - before),
    "all": top(sys.modules),
    "kind": model.kind if model is not None else None,
}))
"""


def _probe(*args: str) -> dict[str, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], check=True, capture_output=True, text=True
    )
    result: dict[str, list[str]] = json.loads(out.stdout)
    return result


def _foreign(modules: list[str]) -> list[str]:
    allowed = set(sys.stdlib_module_names) | {"numpy", "modelshelf"}
    return [m for m in modules if m not in allowed]


def _check(modules: list[str]) -> None:
    assert _foreign(modules) == []
    for name in FORBIDDEN:
        assert name not in modules, name


def test_import_is_light() -> None:
    result = _probe()
    assert "modelshelf" in result["import"] and "numpy" in result["import"]
    _check(result["import"])
    for name in FORBIDDEN:
        assert name not in result["all"], name


def test_load_and_predict_stay_light(tmp_path: Path) -> None:
    X, y = load_iris(return_X_y=True)
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    path = tmp_path / "pipeline.msi"
    path.write_bytes(modelshelf.compile(est))
    result = _probe(str(path))
    assert result["kind"] == modelshelf.load(path).kind  # the probe did load and predict
    _check(result["predict"])
    for name in FORBIDDEN:
        assert name not in result["all"], name


def test_the_check_detects_a_foreign_module() -> None:
    # The probe's verdict must be able to fail: a third-party import is reported.
    assert _foreign(["numpy", "json", "sklearn", "_io", "_cffi_backend"]) == [
        "sklearn",
        "_cffi_backend",
    ]
