"""Feature selectors to ``feature_selection`` specs: the fitted support mask as column indices,
and for RFE and RFECV the estimator fitted on the selected columns."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.feature_selection import (
    RFE,
    RFECV,
    GenericUnivariateSelect,
    SelectFdr,
    SelectFpr,
    SelectFromModel,
    SelectFwe,
    SelectKBest,
    SelectPercentile,
    SequentialFeatureSelector,
    VarianceThreshold,
)

from ._context import Context, converter
from ._delegate import allow_nan, methods_of


@converter(
    GenericUnivariateSelect,
    SelectKBest,
    SelectPercentile,
    SelectFpr,
    SelectFdr,
    SelectFwe,
    VarianceThreshold,
    SelectFromModel,
    SequentialFeatureSelector,
    RFE,
    RFECV,
)
def _selector(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    support = np.asarray(est.get_support(), dtype=bool)
    params: dict[str, Any] = {
        "n_features": int(support.shape[0]),
        "allow_nan": allow_nan(est),
        "methods": [],
    }
    if isinstance(est, RFE):  # RFECV too: both predict through estimator_
        params["estimator"] = ctx.convert(est.estimator_, f"{path}/estimator")
        params["methods"] = methods_of(est)
    cols = np.flatnonzero(support).astype(np.int64)
    return ctx.spec("feature_selection", path, arrays={"columns": cols}, params=params)
