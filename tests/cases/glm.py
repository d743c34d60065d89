"""Exactness cases: GLMs (Poisson, Gamma, Tweedie), Bayesian and quantile regressors, isotonic.

Ids start with the family: glm, bayes, ard, quantile, isotonic. The isotonic cases fit one
column and predict on held-out values partly beyond the training range (except "raise",
which would raise on them; tests/unit/runtime/test_glm.py checks that it does).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import (
    ARDRegression,
    BayesianRidge,
    GammaRegressor,
    PoissonRegressor,
    QuantileRegressor,
    TweedieRegressor,
)

from ._case import Case, dataset

Data = tuple[np.ndarray, np.ndarray, np.ndarray]


@functools.cache
def counts() -> Data:
    """diabetes with a Poisson count target of mean exp(linear predictor)."""
    X, _, X_test = dataset("diabetes")
    rng = np.random.default_rng(3)
    y = rng.poisson(np.exp(1 + X @ rng.normal(size=X.shape[1]))).astype(np.float64)
    return X, y, X_test


def one_column(
    *, decreasing: bool = False, inside: bool = False, dtype: type = np.float64
) -> Callable[[], Data]:
    """Column 0 of random_reg against a noisy monotone target; held-out rows reach beyond the
    training range on both sides unless ``inside``."""

    @functools.cache
    def make() -> Data:
        X, _, X_test = dataset("random_reg")
        rng = np.random.default_rng(5)
        x = X[:, :1]
        y = np.tanh(x[:, 0] / 3) + rng.normal(scale=0.3, size=len(x))
        y = -y if decreasing else y
        test = np.concatenate([X_test[:, :1], [[x.min() - 1], [x.max() + 2], [x.min()]]])
        if inside:
            test = np.clip(test, x.min(), x.max())
        return x.astype(dtype), y.astype(dtype), test.astype(dtype)

    return make


def constant_fit() -> Data:
    """One distinct training value: the fit is a constant (scikit-learn's single-y branch)."""
    x = np.full((10, 1), 2.0)
    return x, np.arange(10.0), np.array([[0.0], [2.0], [7.0]])


GLM: list[Case] = [
    Case("glm-poisson-counts", PoissonRegressor, counts),
    Case("glm-poisson-alpha0-counts", lambda: PoissonRegressor(alpha=0.0), counts),
    Case("glm-poisson-nointercept-counts", lambda: PoissonRegressor(fit_intercept=False), counts),
    Case(
        "glm-poisson-newton-cholesky-counts",
        lambda: PoissonRegressor(solver="newton-cholesky"),
        counts,
    ),
    Case("glm-gamma-diabetes", GammaRegressor, "diabetes"),
    Case("glm-gamma-alpha-diabetes", lambda: GammaRegressor(alpha=0.01), "diabetes"),
    *[
        Case(
            f"glm-tweedie-{power}-{link}-diabetes",
            functools.partial(TweedieRegressor, power=power, link=link, max_iter=300),
            "diabetes",
        )
        for power, link in [
            (0, "auto"),
            (0, "identity"),
            (0, "log"),
            (1, "auto"),
            (1, "log"),
            (1.5, "auto"),
            (2, "log"),
            (3, "auto"),
        ]
    ],
    Case(
        "glm-tweedie-1.5-identity-diabetes",
        lambda: TweedieRegressor(power=1.5, link="identity", alpha=0.0, max_iter=300),
        "diabetes",
    ),
    Case("glm-tweedie-1.2-counts", lambda: TweedieRegressor(power=1.2), counts),
    Case(
        "glm-tweedie-neg-log-diabetes",
        lambda: TweedieRegressor(power=-1, link="log", max_iter=300),
        "diabetes",
    ),
]

BAYES: list[Case] = [
    Case("bayes-ridge-diabetes", BayesianRidge, "diabetes"),
    Case("bayes-ridge-random_reg", BayesianRidge, "random_reg"),
    Case(
        "bayes-ridge-nointercept-random_reg",
        lambda: BayesianRidge(fit_intercept=False, compute_score=True),
        "random_reg",
    ),
    Case("ard-diabetes", ARDRegression, "diabetes"),
    Case("ard-threshold-random_reg", lambda: ARDRegression(threshold_lambda=100.0), "random_reg"),
    Case("quantile-median-diabetes", lambda: QuantileRegressor(alpha=0.0), "diabetes"),
    Case(
        "quantile-q90-random_reg",
        lambda: QuantileRegressor(quantile=0.9, alpha=0.01, solver="highs"),
        "random_reg",
    ),
    Case(
        "quantile-nointercept-random_reg",
        lambda: QuantileRegressor(quantile=0.2, alpha=0.1, fit_intercept=False),
        "random_reg",
    ),
]

ISOTONIC: list[Case] = [
    Case("isotonic-nan", IsotonicRegression, one_column()),
    Case("isotonic-clip", lambda: IsotonicRegression(out_of_bounds="clip"), one_column()),
    Case(
        "isotonic-raise-inside",
        lambda: IsotonicRegression(out_of_bounds="raise"),
        one_column(inside=True),
    ),
    Case(
        "isotonic-auto-decreasing",
        lambda: IsotonicRegression(increasing="auto", out_of_bounds="clip"),
        one_column(decreasing=True),
    ),
    Case("isotonic-auto-increasing", lambda: IsotonicRegression(increasing="auto"), one_column()),
    Case(
        "isotonic-false",
        lambda: IsotonicRegression(increasing=False),
        one_column(decreasing=True),
    ),
    Case(
        "isotonic-bounded-y",
        lambda: IsotonicRegression(y_min=-0.5, y_max=0.4, out_of_bounds="clip"),
        one_column(),
    ),
    Case(
        "isotonic-float32",
        lambda: IsotonicRegression(out_of_bounds="clip"),
        one_column(dtype=np.float32),
        rtol=1e-6,
    ),
    Case("isotonic-float32-nan", IsotonicRegression, one_column(dtype=np.float32), rtol=1e-6),
    Case("isotonic-constant", IsotonicRegression, constant_fit),
]

CASES: list[Case] = [*GLM[:1], ISOTONIC[0], *GLM[1:], *BAYES, *ISOTONIC[1:]]
