"""Generalized linear models, Bayesian and quantile regressors, and isotonic regression to specs.

BayesianRidge, ARDRegression and QuantileRegressor predict ``X @ coef_ + intercept_`` like any
linear regressor: they reuse the ``linear_regressor`` kind through its own converter. Poisson,
Gamma and Tweedie regressors add their link's inverse (``glm_regressor``). IsotonicRegression
keeps its thresholds and the interpolation scikit-learn's ``interp1d`` picks for their dtype.

``predict(X, return_std=True)`` of the Bayesian regressors is a second signature a Model does
not have (its methods take X alone); ``predict(X)`` is exact.
"""

from __future__ import annotations

from typing import Any

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

from . import linear
from ._context import Context, converter, unsupported

converter(BayesianRidge, ARDRegression, QuantileRegressor)(linear._regressor)

# scikit-learn's link classes (sklearn._loss.link) by the name images give their inverse.
_LINKS = {"IdentityLink": "identity", "LogLink": "log"}


@converter(PoissonRegressor, GammaRegressor, TweedieRegressor)
def _glm(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    link = _LINKS.get(type(est._base_loss.link).__name__)
    if link is None:
        raise unsupported(est, f"the link {type(est._base_loss.link).__name__}")
    coef = np.asarray(est.coef_)
    if coef.ndim != 1 or coef.dtype.kind != "f":
        raise unsupported(est, f"coef_ of shape {coef.shape} and dtype {coef.dtype}")
    intercept = np.asarray(est.intercept_, dtype=coef.dtype).reshape(1)
    return ctx.spec(
        "glm_regressor", path, arrays={"coef": coef, "intercept": intercept}, params={"link": link}
    )


@converter(IsotonicRegression)
def _isotonic(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    x, y = np.asarray(est.X_thresholds_), np.asarray(est.y_thresholds_)
    if x.dtype not in (np.float32, np.float64) or y.dtype != x.dtype:
        raise unsupported(est, f"thresholds of dtype {x.dtype} and {y.dtype}")
    return ctx.spec(
        "isotonic",
        path,
        arrays={"x": x, "y": y},
        params={
            "n_features": 1,
            "out_of_bounds": est.out_of_bounds,
            # the training range clip mode clips to (X_min_, X_max_, in the thresholds' dtype)
            "bounds": [float(est.X_min_), float(est.X_max_)],
        },
    )
