"""Feature selection: a fitted support mask as a column selection, optionally followed by the
estimator that was fitted on the selected columns (RFE, RFECV).

Every selector of ``sklearn.feature_selection`` compiles to one ``feature_selection`` component:
the univariate filters, VarianceThreshold, SelectFromModel, SequentialFeatureSelector transform
only; RFE and RFECV also predict through their ``estimator_``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._base import Executor, Spec, computes_float32, method_set, register
from ._delegate import PREDICTING, call, columns, count, methods_param
from .preprocessing import check_width


@register
class FeatureSelection(Executor):
    """``X[:, columns]``; with an ``estimator``, its methods on the selected columns.

    params: ``n_features`` (input width), ``allow_nan`` (the selector's own tag), ``methods``
    (those the compiled selector had besides transform), ``estimator`` (a component, optional).
    arrays: ``columns`` i/u (selected,): the kept columns, ascending; may be empty.
    """

    kind = "feature_selection"
    keeps_float32 = True  # the kept columns, as they are

    def __init__(self, n_features: int, cols: np.ndarray, estimator: Executor | None) -> None:
        self.n_features = n_features
        self.columns = cols
        self.estimator = estimator
        # the columns are handed on as they are: float32 computes only in the estimator
        self.float32_arithmetic = estimator is not None and computes_float32(estimator)
        if estimator is not None:
            self.classes_ = estimator.classes_

    @classmethod
    def from_spec(cls, spec: Spec) -> FeatureSelection:
        n = count(spec, "n_features", 1)
        cols = columns(spec, "columns", n, empty=True)
        raw = spec.param("estimator", (dict, type(None)), None)
        estimator = None if raw is None else spec.child("estimator")
        methods = methods_param(spec, PREDICTING, [] if estimator is None else [estimator])
        if estimator is None and methods:
            spec.fail(f"methods {methods} need an estimator")
        out = cls(n, cols, estimator)
        out.methods = method_set({"transform", *methods})
        out.allow_nan = spec.param("allow_nan", bool) and (estimator is None or estimator.allow_nan)
        return out

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.n_features, "this feature selector")
        return X[:, self.columns]

    def _delegate(self, method: str, X: np.ndarray) -> Any:
        return call(self.estimator, method, self.transform(X))  # type: ignore[arg-type]

    def predict(self, X: np.ndarray) -> Any:
        return self._delegate("predict", X)

    def predict_proba(self, X: np.ndarray) -> Any:
        return self._delegate("predict_proba", X)

    def predict_log_proba(self, X: np.ndarray) -> Any:
        return self._delegate("predict_log_proba", X)

    def decision_function(self, X: np.ndarray) -> Any:
        return self._delegate("decision_function", X)
