"""MultiOutputClassifier/Regressor, ClassifierChain, RegressorChain and OneVsOneClassifier to
specs whose children are the fitted per-output (or per-pair) estimators."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import is_classifier
from sklearn.multiclass import OneVsOneClassifier
from sklearn.multioutput import (
    ClassifierChain,
    MultiOutputClassifier,
    MultiOutputRegressor,
    RegressorChain,
)

from ._context import Context, converter
from ._delegate import methods_of, refuse
from .linear import _binary_score


def _children(ctx: Context, path: str, estimators: list[Any]) -> list[dict[str, Any]]:
    return [ctx.convert(child, f"{path}/{i}") for i, child in enumerate(estimators)]


@converter(MultiOutputClassifier, MultiOutputRegressor)
def _multi_output(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    classifier = isinstance(est, MultiOutputClassifier)
    return ctx.spec(
        "multi_output",
        path,
        params={
            "estimators": _children(ctx, path, est.estimators_),
            "classifier": classifier,
            "methods": methods_of(est, ("predict", "predict_proba")),
        },
    )


@converter(ClassifierChain, RegressorChain)
def _chain(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    classifier = isinstance(est, ClassifierChain)
    if classifier and any(len(c) > 2 for c in est.classes_):
        raise refuse(
            est, "a label with more than 2 classes", "use MultiOutputClassifier for such labels"
        )
    methods = methods_of(est)
    if "predict_proba" not in methods and "predict_log_proba" in methods:
        methods.remove("predict_log_proba")  # scikit-learn has it, but it cannot answer
    return ctx.spec(
        "chain",
        path,
        arrays={"order": np.asarray(est.order_, dtype=np.int64)},
        params={
            "estimators": _children(ctx, path, est.estimators_),
            "n_features": int(est.n_features_in_),
            "feature_method": getattr(est, "chain_method_", "predict"),
            "classifier": classifier,
            "methods": methods,
        },
    )


@converter(OneVsOneClassifier)
def _one_vs_one(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    if est.pairwise_indices_ is not None:
        raise refuse(
            est, "a pairwise (precomputed kernel) estimator", "use an estimator on features"
        )
    first = est.estimators_[0]
    # sklearn.multiclass._threshold_for_binary_predict: the first estimator decides.
    threshold = 0.0 if hasattr(first, "decision_function") and is_classifier(first) else 0.5
    return ctx.spec(
        "one_vs_one",
        path,
        params={
            "estimators": _children(ctx, path, est.estimators_),
            "scores": [_binary_score(child) for child in est.estimators_],
            "threshold": threshold,
        },
        labels=est.classes_,
    )
