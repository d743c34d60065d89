"""B-spline bases (SplineTransformer), evaluated as SciPy's ``BSpline`` does.

Each feature has its own knot vector ``t`` (all of one length) and degree ``k``; its basis has
``n_coef = len(t) - k - 1`` functions, folded onto ``n_splines`` output columns (periodic
splines fold their last ``k`` functions onto the first ``k``). A value's interval is found as
SciPy's ``find_interval`` finds it and its ``k + 1`` non-zero basis values come from the
Cox-de Boor recurrence of ``_deBoor_D``, in the same order; vectorised over samples.

Extrapolation beyond the base knots follows scikit-learn: ``continue`` and ``periodic`` (after
mapping x into one period) evaluate the polynomial pieces outside; ``error`` raises;
``constant`` and ``linear`` use the boundary values and slopes computed at fit time
(``f_min``, ``f_max``, ``fp_min``, ``fp_max``, each (n_features, n_splines)). Where those
boundaries lie follows ``edge_degrees``, scikit-learn's own loop included.
"""

from __future__ import annotations

import numpy as np

from ..errors import UnknownCategoryError
from ._base import Executor, Spec, register
from .preprocessing import _TRANSFORM, check_width

EXTRAPOLATIONS = ("error", "constant", "linear", "continue", "periodic")
MAX_DEGREE = 64
MAX_OUTPUT_COLUMNS = 1 << 24


def edge_degrees(degree: int, n_features: int, extrapolation: str) -> list[int]:
    """The degree ``d`` whose knots ``t[d]`` and ``t[-d - 1]`` bound each feature's inside.

    It is the spline degree, except that with linear extrapolation scikit-learn's transform
    raises its loop variable ``degree`` from 0 or 1 by one at each feature until it is 2, so that
    later features of a degree-0 or degree-1 transformer use inner knots; images do the same.
    """
    out = []
    d = degree
    for _ in range(n_features):
        out.append(d)
        if extrapolation == "linear" and d <= 1:
            d += 1
    return out


def basis(t: np.ndarray, k: int, x: np.ndarray, extrapolate: bool) -> tuple[np.ndarray, np.ndarray]:
    """(first basis index (s,), the k + 1 non-zero basis values (s, k + 1)) at each x; rows
    SciPy would leave NaN (x is NaN, or outside the base interval without ``extrapolate``)
    have index -1."""
    x = x.astype(np.float64, copy=False)  # BSpline evaluates in float64
    n = len(t) - k - 1
    interval = np.clip(np.searchsorted(t, x, side="right") - 1, k, n - 1)
    outside = np.isnan(x)
    if not extrapolate:
        outside |= (x < t[k]) | (x > t[n])
    interval[outside] = k  # any valid interval: those rows are discarded
    h = np.zeros((len(x), k + 1))
    h[:, 0] = 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        for j in range(1, k + 1):
            hh = h[:, :j].copy()
            h[:, 0] = 0.0
            for m in range(1, j + 1):
                xb = t[interval + m]
                xa = t[interval + m - j]
                same = xb == xa
                w = hh[:, m - 1] / (xb - xa)
                h[:, m - 1] = np.where(same, h[:, m - 1], h[:, m - 1] + w * (xb - x))
                h[:, m] = np.where(same, 0.0, w * (x - xa))
    first = interval - k
    first[outside] = -1
    return first, h


@register
class SplineTransformer(Executor):
    """One block of ``n_splines`` B-spline columns per feature (the last column of each block
    dropped without ``include_bias``); dense output in the input's float dtype."""

    kind = "spline_transformer"
    methods = _TRANSFORM
    keeps_float32 = True  # evaluated in float64, stored in the input's dtype

    def __init__(
        self,
        knots: np.ndarray,
        degree: int,
        n_splines: int,
        extrapolation: str,
        include_bias: bool,
        zeros_for_missing: bool,
        bounds: dict[str, np.ndarray],
    ) -> None:
        self.knots = knots
        self.degree = degree
        self.n_splines = n_splines
        self.extrapolation = extrapolation
        self.include_bias = include_bias
        self.allow_nan = zeros_for_missing  # scikit-learn's handle_missing="zeros"
        self.bounds = bounds
        self.n_features = len(knots)
        self.edges = edge_degrees(degree, self.n_features, extrapolation)

    @classmethod
    def from_spec(cls, spec: Spec) -> SplineTransformer:
        knots = spec.array("knots", ndim=2)
        degree = spec.param("degree", int)
        spec.check(0 <= degree <= MAX_DEGREE, f"degree must be in 0..{MAX_DEGREE}")
        n_splines = spec.param("n_splines", int)
        extrapolation = spec.choice("extrapolation", EXTRAPOLATIONS)
        n_features, n_knots = knots.shape
        n_coef = n_knots - degree - 1
        expected = n_splines + degree if extrapolation == "periodic" else n_splines
        spec.check(
            n_features >= 1 and n_splines >= 1 and n_coef == expected,
            f"{n_knots} knots of degree {degree} give {n_coef} basis functions, which "
            f"{extrapolation!r} extrapolation cannot fold onto {n_splines} splines",
        )
        spec.check(
            n_features * n_splines <= MAX_OUTPUT_COLUMNS,
            f"more than {MAX_OUTPUT_COLUMNS} output columns",
        )
        bounds = {}
        if extrapolation in ("constant", "linear"):
            roles = ("f_min", "f_max") + (("fp_min", "fp_max") if extrapolation == "linear" else ())
            for role in roles:
                arr = spec.array(role, ndim=2)
                spec.check(
                    arr.shape == (n_features, n_splines), f"{role} must be one row per feature"
                )
                bounds[role] = arr
        return cls(
            knots,
            degree,
            n_splines,
            extrapolation,
            spec.param("include_bias", bool),
            spec.param("zeros_for_missing", bool),
            bounds,
        )

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.n_features, "this spline transformer")
        n_samples, n = len(X), self.n_splines
        out = np.zeros((n_samples, self.n_features * n), dtype=X.dtype)
        for i in range(self.n_features):
            block = out[:, i * n : (i + 1) * n]
            self._feature(X[:, i], self.knots[i], i, block)
        if self.include_bias:
            return out
        keep = np.arange(out.shape[1]) % n != n - 1
        return out[:, keep]

    def _feature(self, x: np.ndarray, t: np.ndarray, i: int, block: np.ndarray) -> None:
        k = self.degree
        mode = self.extrapolation
        if mode in ("constant", "linear"):
            d = self.edges[i]
            lo, hi = t[d], t[-d - 1]
            with np.errstate(invalid="ignore"):
                inside = (lo <= x) & (x <= hi)
            self._fill(block, inside, x[inside], t, extrapolate=False)
            self._beyond(block, x, lo, hi, i)
            return
        if mode == "periodic":
            period = t[len(t) - k - 1] - t[k]
            with np.errstate(invalid="ignore"):  # NaN stays NaN
                x = t[k] + (x - t[k]) % period if period > 0 else np.zeros_like(x)
        everywhere = np.ones(len(x), dtype=bool)
        nan_rows = self._fill(block, everywhere, x, t, extrapolate=mode != "error")
        if mode == "error" and nan_rows.any():
            raise UnknownCategoryError(
                f"`X` contains values beyond the limits of the knots (feature {i}; this spline "
                "transformer was fitted with extrapolation='error')"
            )

    def _fill(
        self, block: np.ndarray, rows: np.ndarray, x: np.ndarray, t: np.ndarray, extrapolate: bool
    ) -> np.ndarray:
        """Write the basis at ``x`` into ``block[rows]``; return which of those rows SciPy
        leaves NaN beyond the knots (NaN input rows are zeros, as with handle_missing)."""
        k, n = self.degree, self.n_splines
        first, h = basis(t, k, x, extrapolate)
        values = np.zeros((len(x), n))
        valid = first >= 0
        r = np.flatnonzero(valid)
        for a in range(k + 1):  # the order SciPy sums c[interval + a - k] * work[a] in
            col = (first[valid] + a) % n
            values[r, col] += h[valid, a]
        beyond = ~valid & ~np.isnan(x)
        values[beyond] = np.nan
        block[rows] = values
        return beyond

    def _beyond(self, block: np.ndarray, x: np.ndarray, lo: float, hi: float, i: int) -> None:
        k, n = self.degree, self.n_splines
        below, above = x < lo, x > hi
        f_min, f_max = self.bounds["f_min"][i], self.bounds["f_max"][i]
        if self.extrapolation == "constant":
            if below.any():
                block[below, :k] = f_min[:k]
            if above.any():
                block[above, n - k :] = f_max[n - k :]
            return
        fp_min, fp_max = self.bounds["fp_min"][i], self.bounds["fp_max"][i]
        d = self.edges[i]
        for j in range(d + 1 if d <= 1 else d):  # degree 1 also continues its 2nd spline
            if below.any():
                block[below, j] = f_min[j] + (x[below] - lo) * fp_min[j]
            if above.any():
                c = n - 1 - j
                block[above, c] = f_max[c] + (x[above] - hi) * fp_max[c]
