"""Preprocessing transformers: scalers, normalizer, imputer, PCA (encoders: encoders.py).

Each kernel repeats scikit-learn's transform operation for operation, in the same order, so
results agree to the last bit wherever the arithmetic is the same. Kernels return new arrays:
they never write into their input (the caller's X, often a read-only view) nor into the image.
Every executor knows its input width and checks it, because inside a pipeline or a column
transformer nobody else does.
"""

from __future__ import annotations

import numpy as np

from ..errors import FeatureCountError, InputTypeError
from ._base import Executor, Spec, register
from ._math import matmul
from ._sparse import CSRMatrix

_TRANSFORM = frozenset({"transform"})
_EPS = float(np.finfo(np.float64).eps)


def check_width(X: np.ndarray, expected: int, who: str) -> None:
    """Raise FeatureCountError unless X has ``expected`` columns."""
    if X.shape[1] != expected:
        raise FeatureCountError(f"{who} expects {expected} features per sample, got {X.shape[1]}")


def _vector(spec: Spec, role: str, n: int, *, kind: str = "f") -> np.ndarray:
    arr: np.ndarray = spec.array(role, ndim=1, kind=kind)
    spec.check(arr.shape == (n,), f"array {role!r} must hold {n} values, found {arr.shape}")
    return arr


def _maybe_vector(spec: Spec, role: str, n: int) -> np.ndarray | None:
    arr = spec.array(role, ndim=1, optional=True)
    spec.check(arr is None or arr.shape == (n,), f"array {role!r} must hold {n} values")
    return arr


@register
class Scaler(Executor):
    """The per-feature affine maps: ``((X - center) / scale) * factor + offset``, then clip.

    StandardScaler and RobustScaler use center and scale, MaxAbsScaler scale (clip to [-1, 1]),
    MinMaxScaler factor and offset (clip to its feature_range). An absent array is a skipped
    operation, exactly as scikit-learn skips the steps an option disables.

    ``float32`` says how float32 input stays float32, as in scikit-learn: ``"cast"`` (the
    arrays cast to float32 first: StandardScaler) or ``"mixed"`` (float64 arrays applied in
    place); absent (images before it), input is float64.
    """

    kind = "scaler"
    methods = _TRANSFORM
    allow_nan = True  # scikit-learn's scalers let NaN through
    accepts_sparse = True  # scale and clip only (a text vectorizer's output); see _sparse

    def __init__(
        self,
        n_features: int,
        center: np.ndarray | None,
        scale: np.ndarray | None,
        factor: np.ndarray | None,
        offset: np.ndarray | None,
        clip: tuple[float, float] | None,
        float32: str | None = None,
    ) -> None:
        self.n_features = n_features
        self.float32 = float32
        self.keeps_float32 = float32 is not None
        self.center = center
        self.scale = scale
        self.factor = factor
        self.offset = offset
        self.clip = clip
        if center is not None or offset is not None:
            self.sparse_differs = (
                "a scaler that centers or shifts (StandardScaler with_mean, RobustScaler "
                "with_centering, MinMaxScaler): scikit-learn only scales a sparse matrix, or "
                "refuses it"
            )

    @classmethod
    def from_spec(cls, spec: Spec) -> Scaler:
        n = spec.count("n_features")
        clip = spec.param("clip", (list, type(None)), None)
        if clip is not None:
            spec.check(
                len(clip) == 2
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in clip)
                and clip[0] <= clip[1],
                f"clip must be [low, high] with low <= high, found {clip!r}",
            )
            clip = (float(clip[0]), float(clip[1]))
        center, scale, factor, offset = (
            _maybe_vector(spec, r, n) for r in ("center", "scale", "factor", "offset")
        )
        float32 = spec.param("float32", (str, type(None)), None)
        spec.check(float32 in (None, "cast", "mixed"), "float32 must be 'cast' or 'mixed'")
        return cls(n, center, scale, factor, offset, clip, float32)

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.n_features, "this scaler")
        if isinstance(X, CSRMatrix):
            return self._sparse(X)
        if self.center is not None and X.dtype == np.float64 and 0 not in X.strides:
            # the copy and the shift in one pass, into a new array of X's memory order: a
            # DataFrame's F-ordered block stays F-ordered, as scikit-learn's result does, and
            # the next step's X @ coef.T sums as scikit-learn's sums (C-ordered, it differed
            # in the last bit on a few rows in a hundred)
            out = np.subtract(X, self.center, order="K")
        else:  # a broadcast X (a stride of 0): a copy's layout, not the two operands' one
            out = X.copy(order="K")
            if self.center is not None:
                cast = out.dtype == np.float32 and self.float32 == "cast"
                out -= self.center.astype(np.float32) if cast else self.center
        cast = out.dtype == np.float32 and self.float32 == "cast"
        if self.scale is not None:
            out /= self.scale.astype(np.float32) if cast else self.scale
        if self.factor is not None:
            out *= self.factor
        if self.offset is not None:
            out += self.offset
        if self.clip is not None:
            np.clip(out, self.clip[0], self.clip[1], out=out)
        return out

    def _sparse(self, X: CSRMatrix) -> CSRMatrix:
        """scikit-learn's sparse path: multiply stored values by ``1 / scale`` per column
        (``inplace_column_scale``), then clip; centering or shifting would densify, and
        scikit-learn refuses sparse input for it."""
        if self.center is not None or self.factor is not None or self.offset is not None:
            raise InputTypeError(
                "this scaler centers or shifts features, which sparse input (a text "
                "vectorizer's output) cannot take; scikit-learn refuses it too"
            )
        data = X.data if X.data.dtype.kind == "f" else X.data.astype(np.float64)
        if self.scale is not None:
            data = (data * (1 / self.scale)[X.indices]).astype(data.dtype, copy=False)
        else:
            data = data.copy()
        if self.clip is not None:
            np.clip(data, self.clip[0], self.clip[1], out=data)
        return X.with_data(data)


@register
class Normalizer(Executor):
    """Scale each row to unit l1, l2 or max norm; rows of (near) zero norm are left as they are."""

    kind = "normalizer"
    keeps_float32 = True  # norms computed in the input's dtype, as row_norms does
    methods = _TRANSFORM
    accepts_sparse = True

    def __init__(self, n_features: int, norm: str) -> None:
        self.n_features = n_features
        self.norm = norm

    @classmethod
    def from_spec(cls, spec: Spec) -> Normalizer:
        return cls(spec.count("n_features"), spec.choice("norm", ("l1", "l2", "max")))

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.n_features, "this normalizer")
        if isinstance(X, CSRMatrix):  # sklearn's sparse path: only exact zero norms kept
            return X.normalize_rows(self.norm)
        if self.norm == "l1":
            norms = np.sum(np.abs(X), axis=1)
        elif self.norm == "l2":
            norms = np.sqrt(np.einsum("ij,ij->i", X, X))  # sklearn's row_norms
        else:
            norms = np.max(np.abs(X), axis=1)
        norms[norms < 10 * _EPS] = 1.0  # sklearn's _handle_zeros_in_scale
        return X / norms[:, None]


@register
class SimpleImputer(Executor):
    """Replace missing values per column by a value fixed at fit time.

    ``fill`` holds one value per kept column; ``keep`` (absent: all) lists the input columns
    kept (scikit-learn drops columns it saw no value in); ``indicator`` (absent: none) lists the
    columns whose missing-value masks are appended as 0/1 features. ``missing_values`` is a
    number, or null for NaN.

    An imputer fitted on strings has ``fill_values`` (a JSON list of strings and numbers, one
    per kept column) instead of ``fill``: it takes objects, marks as missing the float NaN
    values (not None, as scikit-learn's ``X != X``) and returns objects for the encoders.
    """

    kind = "simple_imputer"
    keeps_float32 = True  # the fill values cast to the input's dtype
    methods = _TRANSFORM

    def __init__(
        self,
        n_features: int,
        missing: float | None,
        fill: np.ndarray,
        keep: np.ndarray | None,
        indicator: np.ndarray | None,
    ) -> None:
        self.n_features = n_features
        self.missing = missing
        self.fill = fill
        self.keep = keep
        self.indicator = indicator
        # Only a NaN marker lets NaN in; with a number as marker scikit-learn rejects NaN.
        self.allow_nan = missing is None
        self.accepts_objects = fill.dtype.kind == "O"

    @classmethod
    def from_spec(cls, spec: Spec) -> SimpleImputer:
        n = spec.count("n_features")
        missing = spec.param("missing_values", (int, float, type(None)))
        keep = _indices(spec, "keep", n)
        width = n if keep is None else len(keep)
        values = spec.param("fill_values", (list, type(None)), None)
        if values is None:
            fill = _vector(spec, "fill", width)
        else:
            spec.check(
                missing is None
                and len(values) == width
                and all(
                    isinstance(v, str | int | float) and not isinstance(v, bool) for v in values
                ),
                f"fill_values must list {width} strings or numbers, with NaN as the marker",
            )
            fill = np.empty(width, dtype=object)
            fill[:] = values
        return cls(
            n,
            None if missing is None else float(missing),
            fill,
            keep,
            _indices(spec, "indicator", n),
        )

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.n_features, "this imputer")
        if self.accepts_objects:
            X = X if X.dtype.kind == "O" else X.astype(object)
            mask = _is_nan(X).astype(bool)
        else:
            mask = np.isnan(X) if self.missing is None else np.equal(X, self.missing)
        if self.keep is None:
            out, kept_mask = X.copy(order="K"), mask  # X's order, as scikit-learn's copy
        else:
            out, kept_mask = X[:, self.keep], mask[:, self.keep]
        np.copyto(out, self.fill, where=kept_mask)
        if self.indicator is not None:
            out = np.hstack([out, mask[:, self.indicator]])
        return out


# scikit-learn's ``_object_dtype_isnan`` (``X != X``): only float NaN is missing, not None.
_is_nan = np.frompyfunc(lambda v: isinstance(v, float | np.floating) and v != v, 1, 1)


def _indices(spec: Spec, role: str, bound: int) -> np.ndarray | None:
    """An optional 1-D array of column indices in [0, bound)."""
    arr = spec.array(role, ndim=1, kind="iu", optional=True)
    if arr is not None and arr.size:
        spec.check(
            int(arr.min()) >= 0 and int(arr.max()) < bound, f"{role} indices must be < {bound}"
        )
    return arr


@register
class PCA(Executor):
    """Projection on principal components, as ``PCA.transform`` and ``PCA.score_samples``.

    ``offset`` is ``mean @ components.T``, which scikit-learn subtracts after projecting; it is
    computed at compile time by the same operation. ``scale`` (whitening) is the clipped
    square root of the explained variances. ``precision`` and ``log_norm`` (the Gaussian's
    normalising constant) serve score_samples; they are absent when the fitted model's
    covariance cannot be inverted, and so is score_samples.
    """

    kind = "pca"

    def __init__(
        self,
        components: np.ndarray,
        offset: np.ndarray,
        scale: np.ndarray | None,
        mean: np.ndarray | None,
        precision: np.ndarray | None,
        log_norm: np.ndarray | None,
    ) -> None:
        self.components = components
        self.offset = offset
        self.scale = scale
        self.mean = mean
        self.precision = precision
        self.log_norm = log_norm
        self.n_features = components.shape[1]
        self.methods = _TRANSFORM if precision is None else _TRANSFORM | {"score_samples"}

    @classmethod
    def from_spec(cls, spec: Spec) -> PCA:
        components = spec.array("components", ndim=2)
        k, n = components.shape
        offset = _vector(spec, "offset", k)
        scale = _maybe_vector(spec, "scale", k)
        precision = spec.array("precision", ndim=2, optional=True)
        mean = log_norm = None
        if precision is not None:
            spec.check(precision.shape == (n, n), f"precision must be {n} x {n}")
            mean = _vector(spec, "mean", n)
            log_norm = _vector(spec, "log_norm", 1)
        return cls(components, offset, scale, mean, precision, log_norm)

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.n_features, "this PCA")
        out = matmul(X, self.components.T)
        out -= self.offset
        if self.scale is not None:
            out /= self.scale
        return out

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.n_features, "this PCA")
        Xr = X - self.mean
        log_like = -0.5 * np.sum(Xr * (Xr @ self.precision), axis=1)
        log_like -= self.log_norm[0]  # type: ignore[index]
        return log_like
