"""Voting, stacking, bagging, AdaBoost to specs whose children are the fitted estimators."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import (
    AdaBoostClassifier,
    AdaBoostRegressor,
    BaggingClassifier,
    BaggingRegressor,
    StackingClassifier,
    StackingRegressor,
    VotingClassifier,
    VotingRegressor,
)

from ._context import Context, converter
from ._delegate import has, methods_of, refuse


def _children(ctx: Context, path: str, estimators: list[Any]) -> list[dict[str, Any]]:
    return [ctx.convert(child, f"{path}/{i}") for i, child in enumerate(estimators)]


def _kept_weights(est: Any) -> list[float] | None:
    """The weights of the estimators that are not 'drop' (VotingClassifier._weights_not_none)."""
    if est.weights is None:
        return None
    return [float(w) for (_, e), w in zip(est.estimators, est.weights, strict=True) if e != "drop"]


@converter(VotingClassifier)
def _voting_classifier(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    return ctx.spec(
        "voting_classifier",
        path,
        params={
            "estimators": _children(ctx, path, est.estimators_),
            "voting": est.voting,
            "weights": _kept_weights(est),
            "flatten": bool(est.flatten_transform),
        },
        labels=est.classes_,
    )


@converter(VotingRegressor)
def _voting_regressor(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    return ctx.spec(
        "voting_regressor",
        path,
        params={
            "estimators": _children(ctx, path, est.estimators_),
            "weights": _kept_weights(est),
        },
    )


@converter(StackingClassifier, StackingRegressor)
def _stacking(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    classifier = isinstance(est, StackingClassifier)
    if classifier and isinstance(est._label_encoder, list):
        raise refuse(est, "a multilabel target", "fit one StackingClassifier per label")
    # estimators_ holds only the fitted ones; stack_method_ has None where one was 'drop'.
    methods = [m for m in est.stack_method_ if m is not None]
    params: dict[str, Any] = {
        "estimators": _children(ctx, path, est.estimators_),
        "stack_methods": methods,
        "final": ctx.convert(est.final_estimator_, f"{path}/final"),
        "passthrough": bool(est.passthrough),
        "drop_first": classifier and len(est.classes_) == 2,
        "classifier": classifier,
        "methods": methods_of(est),
    }
    return ctx.spec("stacking", path, params=params, labels=est.classes_ if classifier else None)


@converter(BaggingClassifier, BaggingRegressor)
def _bagging(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    classifier = isinstance(est, BaggingClassifier)
    arrays = {
        f"features_{i}": np.asarray(f, dtype=np.int64)
        for i, f in enumerate(est.estimators_features_)
    }
    params: dict[str, Any] = {
        "estimators": _children(ctx, path, est.estimators_),
        "n_features": int(est.n_features_in_),
        "classifier": classifier,
        "methods": methods_of(est),
        "log_proba": classifier and has(est.estimator_, "predict_log_proba"),
    }
    return ctx.spec(
        "bagging", path, arrays=arrays, params=params, labels=est.classes_ if classifier else None
    )


@converter(AdaBoostClassifier)
def _adaboost_classifier(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    if est.n_classes_ < 2:
        raise refuse(est, "a target with a single class", "fit it on at least 2 classes")
    algorithm = getattr(est, "algorithm", "SAMME")
    if algorithm not in ("SAMME", "deprecated"):
        raise refuse(est, f"algorithm={algorithm!r}", "refit with algorithm='SAMME'")
    return ctx.spec(
        "adaboost_classifier",
        path,
        arrays={"weights": np.asarray(est.estimator_weights_, dtype=np.float64)},
        params={"estimators": _children(ctx, path, est.estimators_)},
        labels=est.classes_,
    )


@converter(AdaBoostRegressor)
def _adaboost_regressor(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    return ctx.spec(
        "adaboost_regressor",
        path,
        arrays={"weights": np.asarray(est.estimator_weights_, dtype=np.float64)},
        params={"estimators": _children(ctx, path, est.estimators_)},
    )
