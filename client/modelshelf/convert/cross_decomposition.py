"""PLSRegression, PLSCanonical, CCA and PLSSVD to ``pls`` specs: the centring and scaling of
X, its rotations and (for the regressors) ``coef_`` and ``intercept_``."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.cross_decomposition import CCA, PLSSVD, PLSCanonical, PLSRegression

from ._context import Context, converter


@converter(PLSRegression, PLSCanonical, CCA, PLSSVD)
def _pls(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    f64 = np.float64
    arrays: dict[str, Any] = {
        "x_mean": np.asarray(est._x_mean, f64),
        "x_std": np.asarray(est._x_std, f64),
    }
    params: dict[str, Any] = {}
    if isinstance(est, PLSSVD):  # PLSSVD.transform projects on x_weights_ and cannot predict
        arrays["rotations"] = np.asarray(est.x_weights_, f64)
    else:
        arrays |= {
            "rotations": np.asarray(est.x_rotations_, f64),
            "coef": np.asarray(est.coef_, f64),
            "intercept": np.asarray(est.intercept_, f64).reshape(-1),
        }
        params["predict_1d"] = bool(est._predict_1d)
    return ctx.spec("pls", path, arrays=arrays, params=params)
