"""Feature transformers: polynomial expansion, binarizer, missing-value indicator, projection
(TruncatedSVD), bin discretizer and target encoder.

Kernels repeat scikit-learn's transform operation for operation (the polynomial expansion's
column products in its order, ``np.searchsorted`` on the same inner bin edges) and return new
arrays. Every count an output's width is derived from is bounded and checked at load, before a
transform allocates from it.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import NonFiniteInputError
from ._base import Executor, Spec, register
from ._sparse import CSRMatrix, from_dense
from .preprocessing import _TRANSFORM, _indices, _is_nan, check_width

# Polynomial expansions: highest degree, and most output columns, an image may ask for.
MAX_DEGREE = 64
MAX_OUTPUT_COLUMNS = 1 << 24
ENCODINGS = ("onehot", "onehot-dense", "ordinal")
DTYPES = ("float64", "float32", None)


def _n_features(spec: Spec) -> int:
    n = spec.param("n_features", int)
    spec.check(0 < n <= MAX_OUTPUT_COLUMNS, f"n_features must be in 1..{MAX_OUTPUT_COLUMNS}")
    return int(n)


def polynomial_width(
    n: int, min_degree: int, max_degree: int, interaction_only: bool, include_bias: bool
) -> int:
    """Output columns of a polynomial expansion (``PolynomialFeatures._num_combinations``)."""
    if interaction_only:
        width = sum(math.comb(n, i) for i in range(max(1, min_degree), min(max_degree, n) + 1))
    else:
        width = math.comb(n + max_degree, max_degree) - 1
        if min_degree > 0:
            width -= math.comb(n + min_degree - 1, min_degree - 1) - 1
    return width + int(include_bias)


@register
class PolynomialFeatures(Executor):
    """Products of features up to ``max_degree`` (from ``min_degree``), as scikit-learn's dense
    transform builds them: each degree's columns are the previous degree's times one feature."""

    kind = "polynomial_features"
    methods = _TRANSFORM
    keeps_float32 = True  # the products are computed in the input's dtype

    def __init__(
        self, n: int, min_degree: int, max_degree: int, interaction_only: bool, bias: bool
    ) -> None:
        self.n_features = n
        self.min_degree = min_degree
        self.max_degree = max_degree
        self.interaction_only = interaction_only
        self.include_bias = bias
        self.n_full = polynomial_width(n, 0, max_degree, interaction_only, bias)
        self.n_out = polynomial_width(n, min_degree, max_degree, interaction_only, bias)

    @classmethod
    def from_spec(cls, spec: Spec) -> PolynomialFeatures:
        n = _n_features(spec)
        lo, hi = spec.param("min_degree", int), spec.param("max_degree", int)
        spec.check(0 <= lo <= hi <= MAX_DEGREE, f"degrees must be 0 <= min <= max <= {MAX_DEGREE}")
        only, bias = spec.param("interaction_only", bool), spec.param("include_bias", bool)
        width = polynomial_width(n, 0, hi, only, bias)
        spec.check(
            0 < width <= MAX_OUTPUT_COLUMNS,
            f"the expansion has {width} columns, more than {MAX_OUTPUT_COLUMNS} or none",
        )
        return cls(n, lo, hi, only, bias)

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.n_features, "this polynomial expansion")
        n_features = self.n_features
        XP = np.empty((len(X), self.n_full), dtype=X.dtype)
        col = 0
        if self.include_bias:
            XP[:, 0] = 1
            col = 1
        if self.max_degree == 0:
            return XP
        XP[:, col : col + n_features] = X
        index = [*range(col, col + n_features), col + n_features]
        col += n_features
        for _ in range(2, self.max_degree + 1):
            new_index = []
            end = index[-1]
            for feature in range(n_features):
                start = index[feature]
                new_index.append(col)
                if self.interaction_only:
                    start += index[feature + 1] - index[feature]
                stop = col + end - start
                if stop <= col:
                    break
                # columns start:end are the previous degree's terms from this feature on
                np.multiply(XP[:, start:end], X[:, feature : feature + 1], out=XP[:, col:stop])
                col = stop
            new_index.append(col)
            index = new_index
        if self.min_degree <= 1:
            return XP
        if not self.include_bias:
            return XP[:, self.n_full - self.n_out :].copy()
        out = np.empty((len(X), self.n_out), dtype=XP.dtype)
        out[:, 0] = 1
        out[:, 1:] = XP[:, self.n_full - self.n_out + 1 :]
        return out


@register
class Binarizer(Executor):
    """1 where a value exceeds ``threshold``, else 0, in the input's dtype."""

    kind = "binarizer"
    methods = _TRANSFORM
    keeps_float32 = True

    def __init__(self, n_features: int, threshold: float) -> None:
        self.n_features = n_features
        self.threshold = threshold

    @classmethod
    def from_spec(cls, spec: Spec) -> Binarizer:
        return cls(_n_features(spec), float(spec.param("threshold", (int, float))))

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.n_features, "this binarizer")
        return np.greater(X, self.threshold).astype(X.dtype)


@register
class MissingIndicator(Executor):
    """The boolean mask of missing values (NaN, or ``missing_values``) of the ``features``
    columns; with ``error_on_new``, missing values in any other column raise."""

    kind = "missing_indicator"
    methods = _TRANSFORM

    def __init__(
        self,
        n_features: int,
        missing: float | None,
        features: np.ndarray,
        error_on_new: bool,
        sparse: bool,
    ) -> None:
        self.n_features = n_features
        self.missing = missing
        self.features = features
        self.error_on_new = error_on_new
        self.sparse = sparse
        self.allow_nan = missing is None  # with a number as marker scikit-learn rejects NaN
        # Fitted on strings or numbers alike (scikit-learn keeps no dtype): with NaN as the
        # marker, strings reach it as they are and only float NaN is missing (``X != X``).
        self.accepts_objects = missing is None

    @classmethod
    def from_spec(cls, spec: Spec) -> MissingIndicator:
        n = _n_features(spec)
        missing = spec.param("missing_values", (int, float, type(None)))
        features = _indices(spec, "features", n)
        if features is None:
            spec.fail("missing array 'features'")
        return cls(
            n,
            None if missing is None else float(missing),
            features,
            spec.param("error_on_new", bool),
            spec.param("sparse", bool),
        )

    def transform(self, X: np.ndarray) -> np.ndarray | CSRMatrix:
        check_width(X, self.n_features, "this missing-value indicator")
        if X.dtype.kind == "O":
            mask = _is_nan(X).astype(bool)
        else:
            mask = np.isnan(X) if self.missing is None else np.equal(X, self.missing)
        if self.error_on_new:
            seen = np.zeros(self.n_features, dtype=bool)
            seen[self.features] = True
            new = np.flatnonzero(mask.any(axis=0) & ~seen)
            if new.size:
                raise NonFiniteInputError(
                    f"The features {new} have missing values in transform but have no missing "
                    "values in fit (the indicator was fitted with error_on_new=True)"
                )
        if len(self.features) < self.n_features:
            mask = mask[:, self.features]
        return from_dense(mask) if self.sparse else mask


@register
class Projection(Executor):
    """``X @ components.T`` (TruncatedSVD), on dense or sparse input."""

    kind = "projection"
    methods = _TRANSFORM
    accepts_sparse = True

    def __init__(self, components: np.ndarray) -> None:
        self.components = components
        self.n_features = components.shape[1]

    @classmethod
    def from_spec(cls, spec: Spec) -> Projection:
        return cls(spec.array("components", ndim=2))

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.n_features, "this projection")
        return X @ self.components.T


def _offsets(spec: Spec, total: int, *, strict: bool) -> np.ndarray:
    """``offsets`` (n + 1 values rising from 0 to ``total``; strictly if ``strict``)."""
    offsets = spec.array("offsets", ndim=1, kind="iu")
    spec.check(1 < len(offsets) <= MAX_OUTPUT_COLUMNS, "offsets must hold n_features + 1 values")
    steps = np.diff(offsets.astype(np.int64))
    spec.check(
        int(offsets[0]) == 0
        and int(offsets[-1]) == total
        and bool(np.all(steps > 0) if strict else np.all(steps >= 0)),
        f"offsets must rise from 0 to {total}",
    )
    return offsets


@register
class KBinsDiscretizer(Executor):
    """Bin indices from ``np.searchsorted`` on each feature's inner edges (the fitted
    ``bin_edges_`` without the first and last), as ordinals or one-hot columns.

    Feature ``i``'s inner edges are ``edges[offsets[i]:offsets[i + 1]]``; it has one bin more.
    """

    kind = "kbins_discretizer"
    methods = _TRANSFORM
    keeps_float32 = True  # bins in the input's dtype unless the image fixes one
    widens_float16 = True  # scikit-learn reads float16 as float64 here

    def __init__(
        self, edges: np.ndarray, offsets: np.ndarray, encode: str, dtype: str | None
    ) -> None:
        self.edges = edges
        self.offsets = offsets
        self.encode = encode
        self.dtype = None if dtype is None else np.dtype(dtype)
        self.n_features = len(offsets) - 1
        #: first one-hot column of each feature; the last value is the output width
        self.columns = offsets + np.arange(len(offsets))

    @classmethod
    def from_spec(cls, spec: Spec) -> KBinsDiscretizer:
        edges = spec.array("edges", ndim=1)
        offsets = _offsets(spec, len(edges), strict=False)
        dtype = spec.param("dtype", (str, type(None)))
        spec.check(dtype in DTYPES, f"dtype must be one of {DTYPES}, found {dtype!r}")
        return cls(edges, offsets, spec.choice("encode", ENCODINGS), dtype)

    def transform(self, X: np.ndarray) -> np.ndarray | CSRMatrix:
        check_width(X, self.n_features, "this discretizer")
        # scikit-learn's dtype option casts the input first; without one, float32 stays
        dtype = self.dtype or (X.dtype if X.dtype == np.float32 else np.dtype(np.float64))
        Xt = X.astype(dtype, copy=False)
        # X's memory order, as scikit-learn's copy of X it writes the bins into: a linear model
        # after it sums in that order (C-ordered, a few rows in 300 differed in the last bits)
        bins = np.empty_like(X, dtype=np.int64)
        for j in range(self.n_features):
            inner = self.edges[int(self.offsets[j]) : int(self.offsets[j + 1])]
            bins[:, j] = np.searchsorted(inner, Xt[:, j], side="right")
        if self.encode == "ordinal":
            return bins.astype(dtype)
        cols = bins + self.columns[:-1]
        n = len(X)
        if self.encode == "onehot-dense":
            out = np.zeros((n, int(self.columns[-1])), dtype=dtype)
            out[np.arange(n)[:, None], cols] = 1
            return out
        indptr = np.arange(0, n * self.n_features + 1, self.n_features, dtype=np.int64)
        data = np.ones(n * self.n_features, dtype=dtype)
        return CSRMatrix(data, cols.reshape(-1).astype(np.int32), indptr, (n, self.columns[-1]))
