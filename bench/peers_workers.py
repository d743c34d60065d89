"""The contenders of the peer benchmark and the worker processes that run them.

Every contender is a loader (file -> object, at a thread count) and a predictor (object, rows ->
class probabilities as float64, n x k) over the file ``bench/peers_models.py`` wrote for it.
Inputs arrive as float64 rows, as an application has them; a contender that wants float32
converts inside its timed call (that conversion is part of its price).

Workers, one fresh interpreter each (``MODELSHELF_KERNELS=numpy`` in the environment of the
workers that measure "modelshelf (numpy)"; the variable is read at import):

- ``first``: imports the contender's library, then times load + first prediction of one row;
- ``steady``: holds every variant (contender x thread setting) of one model, answers the
  coordinator's commands one line each (so that the coordinator can interleave variants held
  by different processes: A B C A B C ...), and reports exactness against the estimator;
- ``memory``: PSS/USS before and after loading one model, lined up with its peers.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Contender:
    key: str
    label: str
    file: str  # the key of the model's file it loads
    threads: tuple[int, ...]  # the settings measured; (1,) where the library has no threads
    precision: str  # "float64" or "float32": the arithmetic it predicts in


def _proba(out: Any, classes: int) -> np.ndarray:
    """Any library's output as float64 probabilities, rows x classes."""
    a = np.asarray(out, dtype=np.float64)
    a = a.reshape(a.shape[0], -1)
    if a.shape[1] == 1 and classes == 2:
        a = np.hstack([1.0 - a, a])
    return a


# --- loaders: (path, threads, model id) -> predict function (rows -> probabilities) ------------


def _shelf(path: str, threads: int, model_id: str) -> Callable[[np.ndarray], Any]:
    import modelshelf

    return modelshelf.load(path).predict_proba  # type: ignore[no-any-return]


def _joblib(path: str, threads: int, model_id: str, mmap: bool = False) -> Any:
    import joblib

    est = joblib.load(path, mmap_mode="r" if mmap else None)
    if model_id in ("rf-200", "lgbm-500", "xgb-500"):
        est.set_params(n_jobs=threads)
    if model_id == "hgb-200" and threads == 1:
        return _one_openmp_thread(est.predict_proba)
    return est.predict_proba


_CONTROLLER: Any = None


def _one_openmp_thread(fn: Callable[[np.ndarray], Any]) -> Callable[[np.ndarray], Any]:
    """HistGradientBoosting predicts on every OpenMP thread; its 1-thread setting is an
    OpenMP limit around the call (threadpoolctl; the controller, built once, costs ms)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()

    def predict(X: np.ndarray) -> Any:
        with _CONTROLLER.limit(limits=1, user_api="openmp"):
            return fn(X)

    return predict


def _joblib_mmap(path: str, threads: int, model_id: str) -> Any:
    return _joblib(path, threads, model_id, mmap=True)


def _onnxruntime(path: str, threads: int, model_id: str) -> Callable[[np.ndarray], Any]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    out = [names.index("probabilities") if "probabilities" in names else len(names) - 1]
    wanted = [names[out[0]]]
    name = sess.get_inputs()[0].name

    def predict(X: np.ndarray) -> Any:
        return sess.run(wanted, {name: X.astype(np.float32)})[0]

    return predict


def _tl2cgen(path: str, threads: int, model_id: str) -> Callable[[np.ndarray], Any]:
    import tl2cgen

    pred = tl2cgen.Predictor(path, nthread=threads)
    dtype = pred.threshold_type

    def predict(X: np.ndarray) -> Any:
        # numpy 2: tl2cgen's DMatrix refuses to copy, so the rows arrive in its dtype
        return pred.predict(tl2cgen.DMatrix(np.ascontiguousarray(X, dtype=dtype), dtype=dtype))

    return predict


def _lleaves(path: str, threads: int, model_id: str) -> Callable[[np.ndarray], Any]:
    import lleaves

    native, cache = path.split("|")  # lleaves parses the model text, then loads its object file
    model = lleaves.Model(model_file=native)
    model.compile(cache=cache)
    return lambda X: model.predict(X, n_jobs=threads)


def _native(path: str, threads: int, model_id: str) -> Callable[[np.ndarray], Any]:
    if model_id == "xgb-500":
        import xgboost

        booster = xgboost.Booster(model_file=path)
        booster.set_param({"nthread": threads})
        return lambda X: booster.inplace_predict(X)
    import lightgbm

    lgb = lightgbm.Booster(model_file=path)
    return lambda X: lgb.predict(X, num_threads=threads)


CONTENDERS = (
    Contender("ms-numpy", "modelshelf (numpy)", "image", (1,), "float64"),
    Contender("ms-compiled", "modelshelf (compiled)", "image", (1, 2), "float64"),
    Contender("joblib", "joblib", "joblib", (1, 2), "float64"),
    Contender("joblib-mmap", "joblib mmap_mode=r", "joblib", (1, 2), "float64"),
    Contender("onnxruntime", "ONNX Runtime", "onnx", (1, 2), "float32"),
    Contender("tl2cgen", "tl2cgen", "tl2cgen", (1, 2), "float64"),
    Contender("lleaves", "lleaves", "lleaves", (1, 2), "float64"),
    Contender("native", "library's own loader", "native", (1, 2), "float64"),
)
BY_KEY = {c.key: c for c in CONTENDERS}
LOADERS: dict[str, Callable[[str, int, str], Callable[[np.ndarray], Any]]] = {
    "ms-numpy": _shelf,
    "ms-compiled": _shelf,
    "joblib": _joblib,
    "joblib-mmap": _joblib_mmap,
    "onnxruntime": _onnxruntime,
    "tl2cgen": _tl2cgen,
    "lleaves": _lleaves,
    "native": _native,
}
#: what a worker imports before its clock starts ("has already imported its library")
IMPORTS = {
    "ms-numpy": "modelshelf",
    "ms-compiled": "modelshelf",
    "joblib": "joblib sklearn.pipeline sklearn.linear_model sklearn.neural_network "
    "sklearn.ensemble sklearn.preprocessing lightgbm xgboost",
    "onnxruntime": "onnxruntime",
    "tl2cgen": "tl2cgen",
    "lleaves": "lleaves",
    "native": "lightgbm xgboost",
}
IMPORTS["joblib-mmap"] = IMPORTS["joblib"]


TREE_IDS = ("rf-200", "hgb-200", "lgbm-500", "xgb-500")


def threads_for(contender: Contender, model_id: str) -> tuple[int, ...]:
    """scikit-learn's linear models and MLP have no thread setting of their own (BLAS's), nor
    has modelshelf for the MLP (its threads split a compiled tree kernel's rows and a linear
    model's row blocks; an MLP's layers stay on one thread)."""
    if contender.key in ("joblib", "joblib-mmap") and model_id not in TREE_IDS:
        return (1,)
    if contender.key == "ms-compiled" and model_id == "mlp-1mb":
        return (1,)
    return contender.threads


def precision_for(contender: Contender, model_id: str) -> str:
    """float32 where the contender or the model computes in float32 (XGBoost's thresholds and
    margins are float32 in every contender that reads them)."""
    return "float32" if model_id == "xgb-500" else contender.precision


def _import(key: str) -> None:
    import importlib
    import warnings

    warnings.simplefilter("ignore")
    for name in IMPORTS[key].split():
        importlib.import_module(name)


def _check_kernels(key: str) -> None:
    """The compiled contender must run the compiled core, the numpy one must not (the
    kernels module of this checkout: not one an editable install of another finds)."""
    if not key.startswith("ms-"):
        return
    import modelshelf
    from modelshelf import _kernels

    mode = _kernels.mode()  # type: ignore[attr-defined]
    want = "compiled" if key == "ms-compiled" else "numpy"
    if mode != want or not _kernels.__file__.startswith(modelshelf.__path__[0]):
        raise RuntimeError(f"{key}: kernels {mode} from {_kernels.__file__}, expected {want}")


# --- workers -----------------------------------------------------------------------------------


def first(args_json: str) -> None:
    """Load + first prediction (one row) in this fresh process, the library already imported.
    ``socket``: through the daemon (``Client.model``), the connection made before the clock."""
    args = json.loads(args_json)
    key, model_id = args["contender"], args["model"]
    _import(key)
    _check_kernels(key)
    one = np.load(args["rows"])[:1]
    if args.get("socket"):
        from modelshelf.client import Client

        client = Client(args["socket"])
        client._connect()  # once per process, not per model
        t0 = time.perf_counter()
        client.model(args["ref"]).predict_proba(one)
    else:
        t0 = time.perf_counter()
        LOADERS[key](args["path"], 1, model_id)(one)
    print(json.dumps({"t": time.perf_counter() - t0}))


def _exactness(predict: Callable[[np.ndarray], Any], rows: np.ndarray, expected: np.ndarray,
               precision: str) -> dict[str, Any]:  # fmt: skip
    got = _proba(predict(rows), expected.shape[1])
    if got.shape != expected.shape:
        return {"max_abs": float("inf"), "ok": False, "labels": 0.0}
    diff = float(np.max(np.abs(got - expected)))
    tol = 1e-9 if precision == "float64" else 1e-5
    labels = float(np.mean(got.argmax(1) == expected.argmax(1)))
    return {"max_abs": diff, "ok": diff <= tol, "labels": labels, "tol": tol}


def _setting(key: str, threads: int) -> Callable[[], None]:
    """What a variant needs set in its process before it is timed: modelshelf's threads are a
    process setting (``modelshelf.set_threads``), and one worker holds both settings."""
    if key != "ms-compiled":
        return lambda: None
    import modelshelf

    return lambda: modelshelf.set_threads(threads)


def steady(args_json: str) -> None:
    """Hold every variant of one model; then answer commands, one JSON line each:
    ``{"v": variant, "rows": n, "budget": s}``: the mean time of enough calls to fill ``budget``
    seconds (sized once per variant and size); ``{"v", "rows", "gap": s}``: sleep ``gap``, then
    the time of one call; ``{"quit": true}``."""
    args = json.loads(args_json)
    model_id = args["model"]
    rows = np.load(args["rows"])
    expected = np.load(args["expected"])
    variants: dict[str, Callable[[np.ndarray], Any]] = {}
    before: dict[str, Callable[[], None]] = {}
    exact: dict[str, Any] = {}
    for key, path in args["contenders"].items():
        _import(key)
        _check_kernels(key)
        c = BY_KEY[key]
        for n in threads_for(c, model_id):
            variants[f"{key}@{n}"] = LOADERS[key](path, n, model_id)
            before[f"{key}@{n}"] = _setting(key, n)
        before[f"{key}@1"]()
        exact[key] = _exactness(variants[f"{key}@1"], rows, expected, precision_for(c, model_id))
    inputs = {1: np.ascontiguousarray(rows[:1]), 1000: rows}
    for variant, fn in variants.items():  # warm: first-call costs are not steady latency
        before[variant]()
        fn(inputs[1])
        fn(inputs[1000])
    print(json.dumps({"variants": list(variants), "exact": exact}), flush=True)
    number: dict[tuple[str, int], int] = {}
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd.get("quit"):
            break
        fn, X = variants[cmd["v"]], inputs[cmd["rows"]]
        before[cmd["v"]]()
        if "gap" in cmd:
            time.sleep(cmd["gap"])
            t0 = time.perf_counter()
            fn(X)
            print(json.dumps({"t": time.perf_counter() - t0}), flush=True)
            continue
        k = (cmd["v"], cmd["rows"])
        if k not in number:
            t0 = time.perf_counter()
            fn(X)
            number[k] = max(1, min(2000, int(cmd["budget"] / max(time.perf_counter() - t0, 1e-7))))
        t0 = time.perf_counter()
        for _ in range(number[k]):
            fn(X)
        print(json.dumps({"t": (time.perf_counter() - t0) / number[k]}), flush=True)


def _step(name: str) -> None:
    print(f"STEP {name}", flush=True)
    sys.stdin.readline()


def _mem() -> dict[str, int]:
    import psutil

    info = psutil.Process().memory_full_info()
    return {"pss": int(info.pss), "uss": int(info.uss)}


def memory(args_json: str) -> None:
    """Hold one model (one row predicted, so its pages are touched), PSS/USS before and after;
    the parent lines the N processes up at both measurements."""
    args = json.loads(args_json)
    key, model_id = args["contender"], args["model"]
    _import(key)
    one = np.load(args["rows"])[:1]
    client = None
    if args.get("socket"):
        from modelshelf.client import Client

        client = Client(args["socket"])
        client._connect()
    gc.collect()
    _step("baseline")
    before = _mem()
    if client is not None:
        predict = client.model(args["ref"]).predict_proba
    else:
        predict = LOADERS[key](args["path"], 1, model_id)
    predict(one)
    gc.collect()
    _step("holding")
    after = _mem()
    print(json.dumps({"before": before, "after": after, "pid": os.getpid()}), flush=True)
    sys.stdin.readline()  # stay alive until every peer has measured
