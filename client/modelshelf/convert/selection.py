"""Feature selectors to ``feature_selection`` specs: the fitted support mask as column indices,
and for RFE and RFECV the estimator fitted on the selected columns."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.feature_selection import (
    RFE,
    RFECV,
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

PREDICTING = ("predict", "predict_proba", "predict_log_proba", "decision_function")


def has(est: Any, method: str) -> bool:
    """``hasattr`` as scikit-learn's ``available_if`` answers it (False where it raises)."""
    try:
        return hasattr(est, method)
    except Exception:  # some availability checks raise other errors than AttributeError
        return False


def allow_nan(est: Any) -> bool:
    return bool(est.__sklearn_tags__().input_tags.allow_nan)


@converter(
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
        params["methods"] = [m for m in PREDICTING if has(est, m)]
    cols = np.flatnonzero(support).astype(np.int64)
    return ctx.spec("feature_selection", path, arrays={"columns": cols}, params=params)
