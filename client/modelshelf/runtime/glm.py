"""Generalized linear models and isotonic regression.

``GLMRegressor`` is scikit-learn's ``_GeneralizedLinearRegressor.predict``: the linear predictor
``X @ coef + intercept``, then the inverse of the link (identity or exp). ``Isotonic`` is
``IsotonicRegression.predict`` and ``transform``: linear interpolation between the fitted
thresholds with the out-of-bounds rule chosen at fit time, computed as the ``interp1d`` that
scikit-learn builds does it (``np.interp`` for float64 thresholds, its own slope formula in the
thresholds' precision otherwise).
"""

from __future__ import annotations

import numpy as np

from ..errors import UnknownCategoryError
from ._base import Executor, Spec, method_set, register
from .preprocessing import check_width

LINKS = ("identity", "log")
OUT_OF_BOUNDS = ("nan", "clip", "raise")


@register
class GLMRegressor(Executor):
    """Poisson, Gamma and Tweedie regressors: ``inverse_link(X @ coef + intercept)``."""

    kind = "glm_regressor"
    accepts_sparse = True
    product_casts = "float32"  # validated as float64 or float32: numpy casts float32 in X @ coef
    methods = frozenset({"predict"})

    def __init__(self, coef: np.ndarray, intercept: np.ndarray, link: str) -> None:
        self.coef = coef
        self.intercept = intercept
        self.link = link

    @classmethod
    def from_spec(cls, spec: Spec) -> GLMRegressor:
        coef = spec.array("coef", ndim=1)
        intercept = spec.array("intercept", ndim=1)
        spec.check(intercept.shape == (1,), "intercept must hold one value")
        return cls(coef, intercept, spec.choice("link", LINKS))

    def predict(self, X: np.ndarray) -> np.ndarray:
        raw = X @ self.coef + self.intercept[0]
        return np.exp(raw) if self.link == "log" else raw


@register
class Isotonic(Executor):
    """Piecewise-linear interpolation through increasing ``x`` thresholds and their ``y``."""

    kind = "isotonic"
    #: a 1-D vector is one feature, as IsotonicRegression's own predict and transform take it
    takes_vectors = True

    def __init__(self, x: np.ndarray, y: np.ndarray, out_of_bounds: str, bounds: list[float]):
        self.x = x
        self.y = y
        self.out_of_bounds = out_of_bounds
        self.bounds = bounds
        self.methods = method_set({"predict", "transform"})

    @classmethod
    def from_spec(cls, spec: Spec) -> Isotonic:
        x = spec.array("x", ndim=1)
        y = spec.array("y", ndim=1)
        spec.check(spec.param("n_features", int) == 1, "isotonic regression takes one feature")
        spec.check(
            len(x) >= 1 and y.shape == x.shape and x.dtype == y.dtype,
            "x and y must hold as many values (at least one) of one dtype",
        )
        spec.check(x.dtype.itemsize in (4, 8), f"thresholds of dtype {x.dtype}")
        bounds = spec.param("bounds", list)
        spec.check(
            len(bounds) == 2
            and all(isinstance(b, float) for b in bounds)
            and bool(bounds[0] <= bounds[1]),
            f"bounds must be [low, high] with low <= high, found {bounds!r}",
        )
        return cls(x, y, spec.choice("out_of_bounds", OUT_OF_BOUNDS), bounds)

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_width(X, 1, "this isotonic regression")
        x, y = self.x, self.y
        T = X[:, 0].astype(x.dtype)  # scikit-learn casts input to the thresholds' dtype
        if self.out_of_bounds == "clip":
            T = np.clip(T, self.bounds[0], self.bounds[1])
        if len(x) == 1:  # a constant fit: scikit-learn repeats y, bounds unchecked
            return y.repeat(len(T))
        below, above = np.less(T, x[0]), np.greater(T, x[-1])
        if self.out_of_bounds == "raise":
            for mask, side, edge in ((below, "below", "minimum"), (above, "above", "maximum")):
                if mask.any():
                    bound = x[0] if side == "below" else x[-1]
                    raise UnknownCategoryError(
                        f"A value ({T[np.argmax(mask)]}) in x_new is {side} the interpolation "
                        f"range's {edge} value ({bound}); this isotonic regression was fitted "
                        'with out_of_bounds="raise"'
                    )
        if x.dtype == np.float64:
            out = np.interp(T, x, y)
        else:  # scipy.interpolate.interp1d._call_linear, in the thresholds' precision
            hi = np.searchsorted(x, T).clip(1, len(x) - 1)
            lo = hi - 1
            slope = (y[hi] - y[lo]) / (x[hi] - x[lo])
            out = slope * (T - x[lo]) + y[lo]
        if self.out_of_bounds == "nan":
            out[below | above] = np.nan
        return out.astype(x.dtype, copy=False)

    transform = predict
