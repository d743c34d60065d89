"""Naive Bayes classifiers to ``gaussian_nb`` / ``discrete_nb`` specs.

Whatever scikit-learn derives from fitted attributes at every predict call (log priors,
Bernoulli's log(1 - p) terms) is computed here once, with the same numpy expressions in the
same order, so the runtime's results match scikit-learn's bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.naive_bayes import BernoulliNB, CategoricalNB, ComplementNB, GaussianNB, MultinomialNB

from ._context import Context, converter, unsupported


@converter(GaussianNB)
def _gaussian(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    theta = np.asarray(est.theta_, dtype=np.float64)
    var = np.asarray(est.var_, dtype=np.float64)
    prior = np.asarray(est.class_prior_, dtype=np.float64)
    # GaussianNB._joint_log_likelihood's per-class constants, one class at a time as it does.
    with np.errstate(divide="ignore"):  # a prior of 0 gives log 0 = -inf, as in scikit-learn
        log_prior = np.array([np.log(prior[i]) for i in range(len(prior))], dtype=np.float64)
    log_norm = np.array(
        [-0.5 * np.sum(np.log(2.0 * np.pi * var[i, :])) for i in range(len(var))],
        dtype=np.float64,
    )
    return ctx.spec(
        "gaussian_nb",
        path,
        arrays={"theta": theta, "var": var, "log_prior": log_prior, "log_norm": log_norm},
        labels=est.classes_,
    )


def _discrete(
    est: Any,
    ctx: Context,
    path: str,
    weights: np.ndarray,
    bias: np.ndarray | None,
    *,
    binarize: float | None = None,
    nonnegative: bool = False,
) -> dict[str, Any]:
    return ctx.spec(
        "discrete_nb",
        path,
        arrays={"weights": np.asarray(weights, dtype=np.float64), "bias": bias},
        params={"binarize": binarize, "nonnegative": nonnegative},
        labels=est.classes_,
    )


@converter(MultinomialNB)
def _multinomial(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    bias = np.asarray(est.class_log_prior_, dtype=np.float64)
    # scikit-learn checks X >= 0 only in fit; the runtime also refuses negative input at
    # predict time, where a negative "count" would give a meaningless likelihood.
    return _discrete(est, ctx, path, est.feature_log_prob_, bias, nonnegative=True)


@converter(ComplementNB)
def _complement(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    # ComplementNB adds the class prior only in its single-class edge case.
    bias = np.asarray(est.class_log_prior_, dtype=np.float64) if len(est.classes_) == 1 else None
    return _discrete(est, ctx, path, est.feature_log_prob_, bias, nonnegative=True)


@converter(BernoulliNB)
def _bernoulli(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    threshold = est.binarize
    if threshold is not None and not isinstance(threshold, int | float | np.number):
        raise unsupported(est, f"binarize={threshold!r}")
    flp = np.asarray(est.feature_log_prob_, dtype=np.float64)
    # p = 1 (alpha = 0) gives log 0 = -inf; p > 1 (binarize=None on counts above 1) gives NaN.
    # Both are scikit-learn's own results for such a model, reproduced rather than refused.
    with np.errstate(divide="ignore", invalid="ignore"):
        neg_prob = np.log(1 - np.exp(flp))
    weights = flp - neg_prob
    bias = est.class_log_prior_ + neg_prob.sum(axis=1)
    return _discrete(
        est,
        ctx,
        path,
        weights,
        np.asarray(bias, dtype=np.float64),
        binarize=None if threshold is None else float(threshold),
    )


@converter(CategoricalNB)
def _categorical(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    tables = [np.asarray(t, dtype=np.float64) for t in est.feature_log_prob_]
    offsets = np.cumsum([0, *(t.shape[1] for t in tables)]).astype(np.int64)
    return ctx.spec(
        "categorical_nb",
        path,
        arrays={
            "log_prob": np.concatenate(tables, axis=1),
            "offsets": offsets,
            "log_prior": np.asarray(est.class_log_prior_, dtype=np.float64),
        },
        labels=est.classes_,
    )
