"""Small kernels of their own: SGDOneClassSVM's linear outlier score and the identity
FunctionTransformer.

Estimators that compute what an existing kind computes (TheilSen's and RANSAC's linear
predictions, IncrementalPCA, the random projections, the univariate selectors) reuse that kind
and have no executor here.
"""

from __future__ import annotations

import numpy as np

from ._base import Executor, Spec, register
from ._delegate import count
from ._math import matmul
from .preprocessing import check_width


@register
class LinearOneClass(Executor):
    """``SGDOneClassSVM``: ``decision = X @ coef - offset``; ``score_samples`` adds the offset
    back to the decision, as scikit-learn does (not the bare product: the two round apart);
    inliers (1) have ``decision >= 0``, outliers are -1 (int32).

    arrays: ``coef`` f (n_features,). params: ``offset`` (a number).
    """

    kind = "linear_one_class"
    methods = frozenset({"predict", "decision_function", "score_samples"})

    def __init__(self, coef: np.ndarray, offset: float) -> None:
        self.coef = coef
        self.offset = offset

    @classmethod
    def from_spec(cls, spec: Spec) -> LinearOneClass:
        coef = spec.array("coef", ndim=1)
        spec.check(coef.shape[0] >= 1, "coef is empty")
        return cls(coef, float(spec.param("offset", (int, float))))

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.coef.shape[0], "this one-class SVM")
        return matmul(X, self.coef) - self.offset

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        return self.decision_function(X) + self.offset

    def predict(self, X: np.ndarray) -> np.ndarray:
        y = (self.decision_function(X) >= 0).astype(np.int32)
        y[y == 0] = -1
        return y


@register
class Identity(Executor):
    """``FunctionTransformer()`` without a function: X itself, as validated.

    params: ``n_features`` (the fitted width, or null when the transformer was fitted without
    validation and never learnt one), ``allow_nan`` (false when ``validate=True``: scikit-learn's
    check_array then rejects NaN).
    """

    kind = "identity"
    keeps_float32 = True
    float32_arithmetic = False  # X as it is
    methods = frozenset({"transform"})

    def __init__(self, n_features: int | None, allow_nan: bool) -> None:
        self.n_features = n_features
        self.allow_nan = allow_nan

    @classmethod
    def from_spec(cls, spec: Spec) -> Identity:
        allow_nan = spec.param("allow_nan", bool)
        if spec.param("n_features", (int, type(None)), None) is None:
            return cls(None, allow_nan)
        return cls(count(spec, "n_features", 1), allow_nan)

    def transform(self, X: np.ndarray) -> np.ndarray:
        if self.n_features is not None:
            check_width(X, self.n_features, "this FunctionTransformer")
        return X


@register
class FactorAnalysis(Executor):
    """``FactorAnalysis``: transform = ``((X - mean) @ weights.T) @ cov_z``; score_samples the
    Gaussian log-likelihood ``-0.5 * sum(Xr * (Xr @ precision)) - log_norm`` with Xr = X - mean.

    arrays: ``mean`` f (n,); ``weights`` f (c, n) (``components_ / noise_variance_``); ``cov_z``
    f (c, c); ``precision`` f (n, n) (``get_precision()``); ``log_norm`` f (1,), the normalising
    constant ``0.5 * (n log 2 pi - logdet(precision))``. All are computed at compile time by the
    operations scikit-learn repeats at every call.
    """

    kind = "factor_analysis"
    methods = frozenset({"transform", "score_samples"})

    def __init__(
        self,
        mean: np.ndarray,
        weights: np.ndarray,
        cov_z: np.ndarray,
        precision: np.ndarray,
        log_norm: float,
    ) -> None:
        self.mean = mean
        self.weights = weights
        self.cov_z = cov_z
        self.precision = precision
        self.log_norm = log_norm

    @classmethod
    def from_spec(cls, spec: Spec) -> FactorAnalysis:
        mean = spec.array("mean", ndim=1)
        weights = spec.array("weights", ndim=2)
        cov_z = spec.array("cov_z", ndim=2)
        precision = spec.array("precision", ndim=2)
        log_norm = spec.array("log_norm", ndim=1)
        n, c = mean.shape[0], weights.shape[0]
        spec.check(n >= 1 and weights.shape == (c, n), f"weights must be (components, {n})")
        spec.check(cov_z.shape == (c, c), f"cov_z must be ({c}, {c})")
        spec.check(precision.shape == (n, n), f"precision must be ({n}, {n})")
        spec.check(log_norm.shape == (1,), "log_norm holds one value")
        return cls(mean, weights, cov_z, precision, float(log_norm[0]))

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.mean.shape[0], "this FactorAnalysis")
        return matmul(matmul(X - self.mean, self.weights.T), self.cov_z)

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.mean.shape[0], "this FactorAnalysis")
        Xr = X - self.mean
        log_like = -0.5 * (Xr * matmul(Xr, self.precision)).sum(axis=1)
        log_like -= self.log_norm
        return log_like
