"""Non-linear per-feature maps fitted to the data's distribution: PowerTransformer and
QuantileTransformer.

``PowerTransformer`` applies SciPy's Yeo-Johnson transform (``scipy.stats.yeojohnson``, numpy
operation for numpy operation) or Box-Cox (``scipy.special.boxcox``, its C code with the C
library's log and expm1) with each feature's fitted lambda, then standardizes as its inner
StandardScaler does.
``QuantileTransformer`` interpolates between the fitted quantiles and their references forward
and backward and averages both, as scikit-learn does for repeated quantiles; the normal output
goes through the Cephes inverse normal CDF (``_ndtri``). Both let NaN through, and both keep
float32 input float32 as scikit-learn does: the values are computed in float64 and stored into
the input's dtype.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import NonFiniteInputError, UnknownCategoryError
from ._base import Executor, Spec, register
from ._ndtri import norm_ppf
from .preprocessing import _TRANSFORM, _maybe_vector, _vector, check_width

_EPS = float(np.finfo(np.float64).eps)
POWER_METHODS = ("yeo-johnson", "box-cox")
DISTRIBUTIONS = ("uniform", "normal")
BOUNDS_THRESHOLD = 1e-7  # sklearn.preprocessing._data.BOUNDS_THRESHOLD


def yeo_johnson(x: np.ndarray, lmbda: np.float64) -> np.ndarray:
    """``scipy.stats.yeojohnson(x, lmbda)``: float64 out, ``log1p`` in x's own precision."""
    out = np.zeros_like(x, dtype=np.float64)
    pos = x >= 0
    if abs(lmbda) < _EPS:
        out[pos] = np.log1p(x[pos])
    else:
        out[pos] = np.expm1(lmbda * np.log1p(x[pos])) / lmbda
    if abs(lmbda - 2) > _EPS:
        out[~pos] = -np.expm1((2 - lmbda) * np.log1p(-x[~pos])) / (2 - lmbda)
    else:
        out[~pos] = -np.log1p(-x[~pos])
    return out


def _box_cox_one(x: float, lmbda: float) -> float:
    """``scipy.special.boxcox`` of one value, its C code with the C library's functions
    (``math``'s are libm's; numpy's log and expm1 differ from them in the last bit)."""
    if math.fabs(lmbda) < 1e-19:
        return math.log(x)
    scaled = lmbda * math.log(x)
    if scaled < 709.78:
        return math.expm1(scaled) / lmbda
    try:  # NaN comes here too, as in C
        grown = math.exp(scaled - math.log(math.fabs(lmbda)))
    except OverflowError:
        grown = math.inf
    return math.copysign(1.0, lmbda) * grown - 1 / lmbda


def box_cox(x: np.ndarray, lmbda: np.float64) -> np.ndarray:
    """``scipy.special.boxcox(x, lmbda)`` for positive x (NaN stays NaN), in float64 as the
    ufunc's double loop computes it, value by value with libm (about 0.2 us a value)."""
    values = x.astype(np.float64, copy=False).tolist()
    lmbda_ = float(lmbda)
    return np.fromiter((_box_cox_one(v, lmbda_) for v in values), np.float64, len(values))


@register
class PowerTransformer(Executor):
    """Per-feature Yeo-Johnson or Box-Cox with fitted ``lambdas``, then ``(x - mean) / scale``
    when standardizing (``mean`` and ``scale`` present)."""

    kind = "power_transformer"
    methods = _TRANSFORM
    allow_nan = True
    keeps_float32 = True  # the transform's float64 values are stored into float32 input

    def __init__(
        self,
        method: str,
        lambdas: np.ndarray,
        mean: np.ndarray | None,
        scale: np.ndarray | None,
    ) -> None:
        self.method = method
        self.lambdas = lambdas
        self.mean = mean
        self.scale = scale
        self.n_features = len(lambdas)

    @classmethod
    def from_spec(cls, spec: Spec) -> PowerTransformer:
        lambdas = spec.array("lambdas", ndim=1)
        n = len(lambdas)
        mean, scale = _maybe_vector(spec, "mean", n), _maybe_vector(spec, "scale", n)
        spec.check((mean is None) == (scale is None), "mean and scale go together")
        return cls(spec.choice("method", POWER_METHODS), lambdas, mean, scale)

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.n_features, "this power transformer")
        if self.method == "box-cox" and np.any(X <= 0):
            raise UnknownCategoryError(
                "The Box-Cox transformation can only be applied to strictly positive data "
                "(this power transformer was fitted with method='box-cox')"
            )
        fn = box_cox if self.method == "box-cox" else yeo_johnson
        out = np.empty_like(X)
        with np.errstate(invalid="ignore", over="ignore"):  # NaN; expm1 past 709.78 is replaced
            for i in range(self.n_features):
                # a float64 lambda (not a Python float) decides the precision, as in SciPy
                out[:, i] = fn(X[:, i], np.float64(self.lambdas[i]))
        mean, scale = self.mean, self.scale
        if mean is not None and scale is not None:
            if np.isinf(out).any():  # scikit-learn's standardization refuses it too
                row, column = (int(k[0]) for k in np.nonzero(np.isinf(out)))
                raise NonFiniteInputError(
                    f"the {self.method} transform of column {column} overflows to infinity "
                    f"for the value {float(X[row, column])!r} in row {row} (lambda "
                    f"{float(self.lambdas[column]):.6g}): it is beyond what this power "
                    "transformer can standardize, as in scikit-learn"
                )
            # the inner StandardScaler casts its arrays to the data's dtype first
            out -= mean.astype(out.dtype, copy=False)
            out /= scale.astype(out.dtype, copy=False)
        return out


@register
class QuantileTransformer(Executor):
    """Each feature mapped through its fitted ``quantiles`` (q, n) onto ``references`` (q,),
    then, for a normal output, through the inverse normal CDF clipped to ``clip``."""

    kind = "quantile_transformer"
    methods = _TRANSFORM
    sparse_differs = "a QuantileTransformer maps a sparse matrix's stored entries only"
    allow_nan = True
    keeps_float32 = True  # interpolated in float64, stored into a copy of float32 input

    def __init__(
        self,
        quantiles: np.ndarray,
        references: np.ndarray,
        distribution: str,
        clip: tuple[float, float],
    ) -> None:
        self.quantiles = quantiles
        self.references = references
        self.distribution = distribution
        self.clip = clip
        self.n_features = quantiles.shape[1]

    @classmethod
    def from_spec(cls, spec: Spec) -> QuantileTransformer:
        quantiles = spec.array("quantiles", ndim=2)
        spec.check(len(quantiles) >= 1, "quantiles must hold at least one row")
        references = _vector(spec, "references", len(quantiles))
        clip = spec.param("clip", list)
        spec.check(
            len(clip) == 2 and all(isinstance(v, float) for v in clip) and clip[0] <= clip[1],
            f"clip must be [low, high] floats with low <= high, found {clip!r}",
        )
        distribution = spec.choice("distribution", DISTRIBUTIONS)
        return cls(quantiles, references, distribution, (clip[0], clip[1]))

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.n_features, "this quantile transformer")
        out = np.empty_like(X)
        refs = self.references
        for i in range(self.n_features):
            out[:, i] = self._column(X[:, i], self.quantiles[:, i], refs)
        return out

    def _column(self, x: np.ndarray, quantiles: np.ndarray, refs: np.ndarray) -> np.ndarray:
        """``QuantileTransformer._transform_col`` (forward), on a copy of one column."""
        x = x.copy()
        with np.errstate(invalid="ignore"):
            if self.distribution == "normal":
                lower = x - BOUNDS_THRESHOLD < quantiles[0]
                upper = x + BOUNDS_THRESHOLD > quantiles[-1]
            else:
                lower = x == quantiles[0]
                upper = x == quantiles[-1]
        finite = ~np.isnan(x)
        xf = x[finite]
        # interpolating both ways and averaging maps a run of equal quantiles to its middle
        x[finite] = 0.5 * (
            np.interp(xf, quantiles, refs) - np.interp(-xf, -quantiles[::-1], -refs[::-1])
        )
        x[upper] = 1
        x[lower] = 0
        if self.distribution == "normal":
            x = np.clip(norm_ppf(x), self.clip[0], self.clip[1])
        return x
