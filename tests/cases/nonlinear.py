"""Exactness cases: PowerTransformer, QuantileTransformer, SplineTransformer.

Ids start with the family: power, quantile, spline. Held-out rows reach beyond the training
range (``wider``) wherever the estimator extrapolates, and only there.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from sklearn.preprocessing import PowerTransformer, QuantileTransformer, SplineTransformer

from ._case import Case, dataset

Data = tuple[np.ndarray, np.ndarray | None, np.ndarray]


@functools.cache
def positive() -> Data:
    """random_reg's first 5 columns shifted to be strictly positive, held-out rows too."""
    X, y, X_test = dataset("random_reg")
    low = min(X[:, :5].min(), X_test[:, :5].min())
    return X[:, :5] - low + 0.1, y, X_test[:, :5] - low + 0.1


def wider(name: str = "random_reg", columns: int = 3, scale: float = 1.6) -> Callable[[], Data]:
    """``name``'s first columns, held-out rows stretched ``scale`` times away from the mean
    (a scale of 0 clips them to the training range instead)."""

    @functools.cache
    def make() -> Data:
        X, y, X_test = dataset(name)
        X = X[:, :columns]
        if scale == 0:
            return X, y, np.clip(X_test[:, :columns], X.min(axis=0), X.max(axis=0))
        centre = X.mean(axis=0)
        return X, y, centre + (X_test[:, :columns] - centre) * scale

    return make


def _spline(**kw: object) -> Callable[[], SplineTransformer]:
    return functools.partial(SplineTransformer, **kw)  # type: ignore[arg-type]


POWER: list[Case] = [
    Case("power-yeo-johnson-random_reg", PowerTransformer, "random_reg"),
    Case("power-yeo-johnson-diabetes", PowerTransformer, "diabetes"),
    Case(
        "power-yeo-johnson-nostd-wine",
        lambda: PowerTransformer(standardize=False),
        "wine",
    ),
    Case("power-yeo-johnson-nan", PowerTransformer, "random_nan"),
    Case("power-box-cox", lambda: PowerTransformer(method="box-cox"), positive),
    Case(
        "power-box-cox-nostd",
        lambda: PowerTransformer(method="box-cox", standardize=False),
        positive,
    ),
    Case("power-yeo-johnson-counts", PowerTransformer, "random_counts"),
]

QUANTILE: list[Case] = [
    Case("quantile-uniform-random_reg", QuantileTransformer, wider()),
    Case(
        "quantile-normal-random_reg",
        lambda: QuantileTransformer(output_distribution="normal"),
        wider(),
    ),
    Case("quantile-uniform-10-diabetes", lambda: QuantileTransformer(n_quantiles=10), "diabetes"),
    Case(
        "quantile-normal-50-breast_cancer",
        lambda: QuantileTransformer(n_quantiles=50, output_distribution="normal"),
        "breast_cancer",
    ),
    Case("quantile-uniform-ties-counts", QuantileTransformer, "random_counts"),
    Case(
        "quantile-normal-ties-counts",
        lambda: QuantileTransformer(n_quantiles=30, output_distribution="normal"),
        "random_counts",
    ),
    Case("quantile-uniform-nan", QuantileTransformer, "random_nan"),
    Case(
        "quantile-normal-nan",
        lambda: QuantileTransformer(output_distribution="normal"),
        "random_nan",
    ),
    Case(
        "quantile-subsample-digits",
        lambda: QuantileTransformer(n_quantiles=20, subsample=100, random_state=0),
        "digits",
    ),
]

SPLINE: list[Case] = [
    Case("spline-constant-random_reg", SplineTransformer, wider()),
    *[
        Case(f"spline-{mode}-degree-{d}", _spline(degree=d, extrapolation=mode), wider())
        for mode in ("constant", "linear", "continue", "periodic")
        for d in (0, 1, 2, 3, 5)
        # scikit-learn itself fails there (and periodic needs degree < n_knots = 5)
        if not (mode == "constant" and d == 0) and not (mode == "periodic" and d == 5)
    ],
    *[
        Case(f"spline-error-degree-{d}", _spline(degree=d, extrapolation="error"), wider(scale=0))
        for d in (1, 3)
    ],
    *[
        Case(
            f"spline-{mode}-quantile-knots", _spline(knots="quantile", extrapolation=mode), wider()
        )
        for mode in ("linear", "continue", "periodic")
    ],
    Case(
        "spline-given-knots",
        _spline(knots=np.array([[-8.0, -8, -8], [0, 0, 0], [1, 1, 1], [6, 6, 6]]), degree=2),
        wider(),
    ),
    Case("spline-nobias", _spline(include_bias=False, n_knots=4), wider()),
    Case(
        "spline-nobias-periodic",
        _spline(include_bias=False, extrapolation="periodic", n_knots=6, degree=2),
        wider(),
    ),
    Case(
        "spline-few-knots-periodic", _spline(extrapolation="periodic", n_knots=3, degree=2), wider()
    ),
    Case(
        "spline-missing-zeros-nan",
        _spline(handle_missing="zeros", extrapolation="linear"),
        "random_nan",
    ),
    Case(
        "spline-missing-zeros-continue-nan",
        _spline(handle_missing="zeros", extrapolation="continue"),
        "random_nan",
    ),
    Case("spline-order-F-diabetes", _spline(order="F", n_knots=7), "diabetes"),
]

CASES: list[Case] = [POWER[0], QUANTILE[0], SPLINE[0], *POWER[1:], *QUANTILE[1:], *SPLINE[1:]]
