"""The models of the peer benchmark (``bench/peers.py``) and every contender's file of each.

Each model is fitted once and written in every form a contender loads: the modelshelf image
(also published to a ``file://`` store for the daemon), a joblib pickle, an ONNX graph
(skl2onnx; onnxmltools for LightGBM and XGBoost), a tl2cgen shared library compiled with gcc
from the treelite model, lleaves' cached object file (LightGBM) and the library's own model
file (XGBoost UBJSON, LightGBM text). A conversion that fails is recorded with its reason and
the contender is skipped for that model: the report says so, it never hides it.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: (id, label, dataset): the models of issue 13, in the order of its table.
MODELS = (
    ("logreg", "LogisticRegression (digits)", "digits"),
    ("scaler-logreg", "StandardScaler + LogisticRegression", "digits"),
    ("mlp-1mb", "MLP ~1 MB (784-160-2)", "wide"),
    ("rf-200", "RandomForest 200 trees", "trees"),
    ("hgb-200", "HistGradientBoosting 200", "trees"),
    ("lgbm-500", "LightGBM 500 trees", "trees"),
    ("xgb-500", "XGBoost 500 trees", "trees"),
)
TREES = ("rf-200", "hgb-200", "lgbm-500", "xgb-500")


def _data(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X_fit, y_fit, 1000 rows to predict), float64 C order."""
    from sklearn import datasets

    if name == "digits":
        X, y = datasets.load_digits(return_X_y=True)
        return X, y, np.ascontiguousarray(np.resize(X, (1000, X.shape[1])))
    if name == "wide":
        rng = np.random.default_rng(0)
        X = rng.normal(size=(2000, 784))
        y = (X @ rng.normal(size=784) > 0).astype(int)
        return X[:1000], y[:1000], np.ascontiguousarray(X[1000:])
    X, y = datasets.make_classification(
        n_samples=3000, n_features=20, n_informative=10, flip_y=0.05, random_state=0
    )
    return X[:2000], y[:2000], np.ascontiguousarray(X[2000:])


def _fit(model_id: str, X: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    make: dict[str, Callable[[], Any]] = {
        "logreg": lambda: LogisticRegression(max_iter=300),
        "scaler-logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)),
        "mlp-1mb": lambda: MLPClassifier((160,), max_iter=5, random_state=0),
        "rf-200": lambda: RandomForestClassifier(200, max_depth=12, random_state=0, n_jobs=2),
        "hgb-200": lambda: HistGradientBoostingClassifier(
            max_iter=200, early_stopping=False, random_state=0
        ),
    }
    if model_id == "lgbm-500":
        import lightgbm

        est = lightgbm.LGBMClassifier(
            n_estimators=500, num_leaves=31, n_jobs=2, random_state=0, verbose=-1
        )
    elif model_id == "xgb-500":
        import xgboost

        est = xgboost.XGBClassifier(n_estimators=500, max_depth=6, n_jobs=2, random_state=0)
    else:
        est = make[model_id]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: few MLP iterations on purpose
        est.fit(X, y)
    if model_id in ("rf-200", "lgbm-500", "xgb-500"):
        est.set_params(n_jobs=None)  # saved at the library's default
    return est


def _onnx(model_id: str, est: Any, n_features: int) -> bytes:
    if model_id in ("lgbm-500", "xgb-500"):
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType as MLFloat

        types = [("input", MLFloat([None, n_features]))]
        if model_id == "lgbm-500":
            onx = onnxmltools.convert_lightgbm(est, initial_types=types, zipmap=False)
        else:
            onx = onnxmltools.convert_xgboost(est, initial_types=types)
        return bytes(onx.SerializeToString())
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    types = [("input", FloatTensorType([None, n_features]))]
    options = {id(est): {"zipmap": False}}
    if hasattr(est, "steps"):
        options = {id(est.steps[-1][1]): {"zipmap": False}}
    onx = to_onnx(est, initial_types=types, options=options, target_opset=17)
    return bytes(onx.SerializeToString())


def _treelite(model_id: str, est: Any, native: str | None) -> Any:
    import treelite

    if model_id in ("rf-200", "hgb-200"):
        return treelite.sklearn.import_model(est)
    if model_id == "lgbm-500":
        return treelite.frontend.load_lightgbm_model(native)
    return treelite.frontend.load_xgboost_model(native)


def _tl2cgen(model_id: str, est: Any, native: str | None, path: Path) -> str:
    import tl2cgen

    model = _treelite(model_id, est, native)
    tl2cgen.export_lib(
        model, toolchain="gcc", libpath=str(path), params={"parallel_comp": 8}, verbose=False
    )
    return str(path)


def _lleaves(native: str, path: Path) -> str:
    import lleaves

    lleaves.Model(model_file=native).compile(cache=str(path))
    return str(path)


def _convert(model_id: str, est: Any, base: Path, native: str | None, n_features: int,
             files: dict[str, str], skipped: dict[str, str]) -> None:  # fmt: skip
    """Write the ONNX graph, the tl2cgen library and lleaves' object file that apply; a failed
    conversion is recorded in ``skipped`` with its reason."""
    kinds = ["onnx"] + (["tl2cgen"] if model_id in TREES else [])
    kinds += ["lleaves"] if model_id == "lgbm-500" else []
    for kind in kinds:
        t0 = time.perf_counter()
        try:
            if kind == "onnx":
                Path(f"{base}.onnx").write_bytes(_onnx(model_id, est, n_features))
                files[kind] = f"{base}.onnx"
            elif kind == "tl2cgen":
                so = base.with_name(f"{model_id}.tl2cgen.so")
                files[kind] = _tl2cgen(model_id, est, native, so)
            else:
                files[kind] = _lleaves(native or "", base.with_name(f"{model_id}.lleaves.o"))
        except Exception as exc:  # one failed conversion skips one contender, with its reason
            skipped[kind] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            print(f"  {model_id}: no {kind} ({skipped[kind]})", flush=True)
            continue
        print(f"  {model_id}: {kind} in {time.perf_counter() - t0:.1f} s", flush=True)


def build(only: list[str] | None, out: Path, store: Any) -> list[dict[str, Any]]:
    """Fit, convert and write every model; publish each image to ``store`` as ``peers/<id>``."""
    import joblib

    import modelshelf

    out.mkdir(parents=True, exist_ok=True)
    built = []
    for model_id, label, dataset in MODELS:
        if only and model_id not in only:
            continue
        X, y, rows = _data(dataset)
        est = _fit(model_id, X, y)
        base = out / model_id
        spec: dict[str, Any] = {"id": model_id, "label": label, "tree": model_id in TREES}
        files: dict[str, str] = {}
        skipped: dict[str, str] = {}
        np.save(f"{base}.rows.npy", rows)
        spec["rows"] = f"{base}.rows.npy"
        expected = np.asarray(est.predict_proba(rows), dtype=np.float64)
        np.save(f"{base}.expected.npy", expected)
        spec["expected"] = f"{base}.expected.npy"
        image = modelshelf.compile(est)
        Path(f"{base}.msi").write_bytes(image)
        files["image"] = f"{base}.msi"
        store.publish("peers", model_id, image)
        spec["ref"] = f"peers/{model_id}"
        joblib.dump(est, f"{base}.joblib")
        files["joblib"] = f"{base}.joblib"
        native = None
        if model_id == "xgb-500":
            native = f"{base}.ubj"
            est.get_booster().save_model(native)
            files["native"] = native
        elif model_id == "lgbm-500":
            native = f"{base}.txt"
            est.booster_.save_model(native)
            files["native"] = native
        _convert(model_id, est, base, native, rows.shape[1], files, skipped)
        spec.update(files=files, skipped=skipped, image_bytes=len(image))
        spec["bytes"] = {k: Path(v).stat().st_size for k, v in files.items()}
        built.append(spec)
        print(f"built {model_id}", flush=True)
    return built
