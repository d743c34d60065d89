"""Linear models to ``linear_classifier`` / ``linear_regressor`` specs."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from ._context import Context, converter


@converter(LogisticRegression)
def _logistic(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    # scikit-learn < 1.8 had multi_class; "ovr" (or liblinear under "auto") normalises sigmoids.
    multi = getattr(est, "multi_class", "auto")
    ovr = multi == "ovr" or (multi == "auto" and est.solver == "liblinear")
    return ctx.spec(
        "linear_classifier",
        path,
        arrays={"coef": est.coef_, "intercept": np.asarray(est.intercept_, dtype=np.float64)},
        params={"proba": "ovr" if ovr else "logistic"},
        labels=est.classes_,
    )
