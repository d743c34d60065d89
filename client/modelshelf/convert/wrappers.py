"""Meta-estimators that wrap one fitted estimator or a few: FeatureUnion, the hyper-parameter
searches, FrozenEstimator, TransformedTargetRegressor, DummyClassifier and DummyRegressor."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.compose import TransformedTargetRegressor
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import (
    GridSearchCV,
    HalvingGridSearchCV,
    HalvingRandomSearchCV,
    RandomizedSearchCV,
)
from sklearn.pipeline import FeatureUnion
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    RobustScaler,
    StandardScaler,
)

from ._context import Context, converter, encode_labels
from ._delegate import refuse

try:  # scikit-learn >= 1.6
    from sklearn.frozen import FrozenEstimator
except ImportError:  # pragma: no cover
    FROZEN: tuple[type, ...] = ()
else:
    FROZEN = (FrozenEstimator,)


def _is(step: Any, word: str) -> bool:
    return isinstance(step, str) and step == word


@converter(FeatureUnion)
def _feature_union(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    """A column transformer whose every part takes all columns."""
    n = getattr(est, "n_features_in_", None)
    if n is None:
        raise refuse(
            est, "a union without a fixed input width (every transformer 'drop')", "keep one"
        )
    n = int(n)
    weights = est.transformer_weights or {}
    parts: list[dict[str, Any]] = []
    arrays: dict[str, np.ndarray] = {}
    for name, trans in est.transformer_list:
        if trans is None or _is(trans, "drop"):
            continue
        i = len(parts)
        child = None if _identity(trans) else ctx.convert(trans, f"{path}/{i}")
        weight = weights.get(name)
        parts.append({"name": name, "transformer": child, "weight": _weight(weight)})
        arrays[f"columns_{i}"] = np.arange(n, dtype=np.int64)
    # a union stacks sparsely whenever one part's output is sparse (decided at each transform)
    params = {"n_features": n, "parts": parts, "stack": "sparse_if_any"}
    return ctx.spec("column_transformer", path, arrays=arrays, params=params)


def _identity(trans: Any) -> bool:
    """'passthrough', which a fitted union holds as a FunctionTransformer without func."""
    if _is(trans, "passthrough"):
        return True
    return type(trans) is FunctionTransformer and trans.func is None


def _weight(value: Any) -> float | None:
    return None if value is None else float(value)


@converter(GridSearchCV, RandomizedSearchCV, HalvingGridSearchCV, HalvingRandomSearchCV)
def _search(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    if not hasattr(est, "best_estimator_"):
        raise refuse(
            est,
            f"refit={est.refit!r} (there is no best_estimator_ to compile)",
            "fit it with refit=True, or compile best_estimator_ itself: an estimator fitted "
            "with best_params_",
        )
    return ctx.convert(est.best_estimator_, path)


@converter(*FROZEN)
def _frozen(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    return ctx.convert(est.estimator, path)


@converter(TransformedTargetRegressor)
def _transformed_target(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    if est.func is not None or est.inverse_func is not None:
        raise refuse(
            est,
            f"func={est.func!r} / inverse_func={est.inverse_func!r} (a Python function "
            "cannot be compiled)",
            "use transformer=StandardScaler(), MinMaxScaler(), MaxAbsScaler() or "
            "RobustScaler() instead, or transform the target before fitting",
        )
    regressor = ctx.convert(est.regressor_, f"{path}/regressor")
    return ctx.spec(
        "transformed_target",
        path,
        arrays=_inverse_steps(est, est.transformer_),
        params={"regressor": regressor, "squeeze": est._training_dim == 1},
    )


def _inverse_steps(est: Any, t: Any) -> dict[str, Any]:
    """The elementwise steps of ``t.inverse_transform`` (subtract, divide, multiply, add)."""
    f64 = np.float64
    if type(t) is StandardScaler:
        return {
            "mul": np.asarray(t.scale_, f64) if t.with_std else None,
            "add": np.asarray(t.mean_, f64) if t.with_mean else None,
        }
    if type(t) is RobustScaler:
        return {
            "mul": np.asarray(t.scale_, f64) if t.with_scaling else None,
            "add": np.asarray(t.center_, f64) if t.with_centering else None,
        }
    if type(t) is MinMaxScaler:
        return {"sub": np.asarray(t.min_, f64), "div": np.asarray(t.scale_, f64)}
    if type(t) is MaxAbsScaler:
        return {"mul": np.asarray(t.scale_, f64)}
    if type(t) is FunctionTransformer and t.func is None and t.inverse_func is None:
        return {}  # the identity scikit-learn uses when no transformer is given
    raise refuse(
        est,
        f"transformer={type(t).__name__} (its inverse_transform is not compiled)",
        "use StandardScaler, MinMaxScaler, MaxAbsScaler or RobustScaler",
    )


@converter(DummyClassifier)
def _dummy_classifier(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    strategy = est._strategy
    if strategy in ("stratified", "uniform"):
        raise refuse(
            est,
            f"strategy={strategy!r} (it draws random labels at every predict)",
            "use strategy='prior', 'most_frequent' or 'constant'",
        )
    if est.n_outputs_ != 1 or est.sparse_output_:
        raise refuse(est, "a multi-output or sparse target", "fit one per target")
    classes = np.asarray(est.classes_)
    prior = np.asarray(est.class_prior_, dtype=np.float64)
    if strategy == "prior":
        proba, label = prior, classes[[prior.argmax()]]
    elif strategy == "most_frequent":
        proba, label = np.zeros(len(classes)), classes[[prior.argmax()]]
        proba[prior.argmax()] = 1.0
    else:  # constant
        proba = (classes == est.constant).astype(np.float64)
        label = np.asarray([est.constant])
    # The predicted label is stored as labels are: an array, or a list of strings.
    encoded = encode_labels(label)
    arrays: dict[str, Any] = {"proba": proba}
    params: dict[str, Any] = {}
    if isinstance(encoded, np.ndarray):
        arrays["label"] = encoded
    else:
        params["label"] = encoded
    return ctx.spec("dummy_classifier", path, arrays=arrays, params=params, labels=classes)


@converter(DummyRegressor)
def _dummy_regressor(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    constant = np.asarray(est.constant_)
    if constant.dtype.kind not in "biuf":
        raise refuse(est, f"a constant of dtype {constant.dtype}", "use a numeric constant")
    return ctx.spec(
        "dummy_regressor",
        path,
        arrays={"constant": constant.reshape(1, -1)},
        params={"ravel": est.n_outputs_ == 1},
    )
