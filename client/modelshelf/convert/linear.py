"""Linear models to ``linear_classifier`` / ``linear_regressor`` specs, and one-vs-rest.

Arrays keep scikit-learn's own layout (``coef_`` as (n_scores, n_features), or 1-D for a single
target; ``intercept_`` as stored): the kernel computes ``X @ coef.T + intercept`` exactly as
scikit-learn does, and the shapes decide whether a regressor returns (n,) or (n, n_targets).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import is_classifier, is_regressor
from sklearn.linear_model import (
    ElasticNet,
    ElasticNetCV,
    HuberRegressor,
    Lars,
    LarsCV,
    Lasso,
    LassoCV,
    LassoLars,
    LassoLarsCV,
    LassoLarsIC,
    LinearRegression,
    LogisticRegression,
    LogisticRegressionCV,
    MultiTaskElasticNet,
    MultiTaskElasticNetCV,
    MultiTaskLasso,
    MultiTaskLassoCV,
    OrthogonalMatchingPursuit,
    OrthogonalMatchingPursuitCV,
    PassiveAggressiveClassifier,
    PassiveAggressiveRegressor,
    Perceptron,
    Ridge,
    RidgeClassifier,
    RidgeClassifierCV,
    RidgeCV,
    SGDClassifier,
    SGDRegressor,
    TheilSenRegressor,
)
from sklearn.multiclass import OneVsRestClassifier, _ConstantPredictor
from sklearn.svm import LinearSVC, LinearSVR

from ._context import Context, converter, unsupported


def _dense_coef(est: Any) -> np.ndarray:
    coef = est.coef_
    if hasattr(coef, "toarray"):  # after sparsify(); the product is the same, summed densely
        coef = coef.toarray()
    coef = np.asarray(coef)
    if coef.dtype.kind != "f":
        raise unsupported(est, f"coef_ of dtype {coef.dtype}", "fit it on float64 or float32 data")
    return coef


def _intercept(est: Any, coef: np.ndarray) -> np.ndarray:
    """``intercept_`` in its fitted dtype: the sum in scikit-learn takes numpy's promotion of
    it (float32 scores plus a float64 intercept are float64). The Python float 0.0 of a model
    without an intercept is a weak scalar there, so it takes the coefficients' dtype."""
    value = est.intercept_
    if type(value) is float or type(value) is int:
        return np.asarray(value, dtype=coef.dtype)
    intercept = np.asarray(value)
    if intercept.dtype.kind != "f":
        raise unsupported(est, f"intercept_ of dtype {intercept.dtype}")
    return intercept


def _float32_params(coef: np.ndarray) -> dict[str, Any]:
    """``keeps_float32`` for a model fitted on float32: float32 input stays float32 in it."""
    return {"keeps_float32": True} if coef.dtype == np.float32 else {}


def _classifier_spec(
    est: Any, ctx: Context, path: str, proba: str, *, multilabel: bool = False
) -> dict[str, Any]:
    coef = _dense_coef(est)
    if coef.ndim == 1:
        coef = coef.reshape(1, -1)
    # intercept_ is the scalar 0.0 without fit_intercept; adding zeros changes no bit.
    intercept = np.broadcast_to(_intercept(est, coef), coef.shape[:1])
    params: dict[str, Any] = {"proba": proba, **_float32_params(coef)}
    if multilabel:
        params["multilabel"] = True
    return ctx.spec(
        "linear_classifier",
        path,
        arrays={"coef": coef, "intercept": intercept.copy()},
        params=params,
        labels=est.classes_,
    )


@converter(LogisticRegression, LogisticRegressionCV)
def _logistic(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    return _classifier_spec(est, ctx, path, _logistic_proba(est))


def _logistic_proba(est: Any) -> str:
    """LogisticRegression.predict_proba's link, for this and older scikit-learn versions."""
    multi = getattr(est, "multi_class", None)
    if multi is None:
        # scikit-learn >= 1.8 has no multi_class: binary is a sigmoid, multi-class a softmax.
        return "logistic"
    # scikit-learn < 1.8: "ovr" (and "auto" for binary or liblinear) normalises sigmoids;
    # multinomial is a softmax, over [-score, score] for binary problems.
    binary = len(est.classes_) <= 2
    ovr = multi in ("ovr", "warn") or (
        multi in ("auto", "deprecated") and (binary or est.solver == "liblinear")
    )
    return "ovr" if ovr else "softmax"


@converter(SGDClassifier, Perceptron, PassiveAggressiveClassifier)
def _sgd_classifier(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    # sklearn offers predict_proba only for these two losses (SGDClassifier._check_proba).
    proba = {"log_loss": "ovr", "modified_huber": "modified_huber"}.get(est.loss, "none")
    return _classifier_spec(est, ctx, path, proba)


@converter(LinearSVC)
def _linear_svc(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    return _classifier_spec(est, ctx, path, "none")


@converter(RidgeClassifier, RidgeClassifierCV)
def _ridge_classifier(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    binarizer = est._label_binarizer
    if getattr(binarizer, "sparse_input_", False):
        raise unsupported(
            est, "a sparse y (predict would return a sparse matrix)", "fit it on a dense y"
        )
    multilabel = binarizer.y_type_.startswith("multilabel")
    return _classifier_spec(est, ctx, path, "none", multilabel=multilabel)


@converter(
    LinearRegression,
    Ridge,
    RidgeCV,
    Lasso,
    LassoCV,
    ElasticNet,
    ElasticNetCV,
    MultiTaskLasso,
    MultiTaskLassoCV,
    MultiTaskElasticNet,
    MultiTaskElasticNetCV,
    Lars,
    LarsCV,
    LassoLars,
    LassoLarsCV,
    LassoLarsIC,
    OrthogonalMatchingPursuit,
    OrthogonalMatchingPursuitCV,
    HuberRegressor,
    SGDRegressor,
    LinearSVR,
    PassiveAggressiveRegressor,
    TheilSenRegressor,
)
def _regressor(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    coef = _dense_coef(est)
    intercept = _intercept(est, coef)
    if coef.ndim not in (1, 2) or intercept.ndim > 1:
        raise unsupported(est, f"coef_ of shape {coef.shape} with intercept_ {intercept.shape}")
    return ctx.spec(
        "linear_regressor",
        path,
        arrays={"coef": coef, "intercept": intercept},
        params=_float32_params(coef),
    )


_TARGETS = {"binary": "binary", "multiclass": "multiclass", "multilabel-indicator": "multilabel"}


@converter(OneVsRestClassifier)
def _one_vs_rest(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    binarizer = est.label_binarizer_
    target = _TARGETS.get(binarizer.y_type_)
    if target is None:
        raise unsupported(
            est,
            f"a target of type {binarizer.y_type_!r}",
            "fit it on binary, multiclass or multilabel y",
        )
    if getattr(binarizer, "sparse_input_", False):
        raise unsupported(
            est, "a sparse y (predict would return a sparse matrix)", "fit it on a dense y"
        )
    children = [ctx.convert(child, f"{path}/{i}") for i, child in enumerate(est.estimators_)]
    first = est.estimators_[0]
    # sklearn.multiclass._threshold_for_binary_predict: the first estimator decides for all.
    threshold = 0.0 if hasattr(first, "decision_function") and is_classifier(first) else 0.5
    return ctx.spec(
        "one_vs_rest",
        path,
        params={
            "estimators": children,
            "scores": [_binary_score(child) for child in est.estimators_],
            "target": target,
            "threshold": threshold,
        },
        labels=est.classes_,
    )


def _binary_score(est: Any) -> str:
    """The method sklearn.multiclass._predict_binary takes a child's score from."""
    if is_regressor(est):
        return "predict"
    if hasattr(est, "decision_function"):
        return "decision_function"
    return "predict_proba"


@converter(_ConstantPredictor)
def _constant(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    values = np.asarray(est.y_).ravel()
    if values.shape != (1,) or values[0] not in (0, 1):
        raise unsupported(est, f"a constant label {values!r} other than 0 or 1")
    return ctx.spec("constant_binary", path, params={"value": int(values[0])})
