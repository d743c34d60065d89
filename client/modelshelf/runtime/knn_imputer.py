"""KNNImputer: missing values filled from the nearest rows of the data it was fitted on.

The image keeps the fitted rows (``fit_X``, missing cells as they were) and each column's mean
over its present values. A transform repeats ``KNNImputer.transform``: ``nan_euclidean``
distances from every row with a missing value to every fitted row (the same products, sums and
corrections as ``sklearn.metrics.pairwise.nan_euclidean_distances``), then per column the
``n_neighbors`` nearest fitted rows that have the column (``np.argpartition`` on the same
distance matrix, so ties resolve identically), averaged uniformly or by inverse distance as
``np.ma.average`` does. A row with no comparable fitted row gets the column mean.
"""

from __future__ import annotations

import numpy as np

from ._base import Executor, Spec, register
from .preprocessing import _TRANSFORM, _indices, _vector, check_width

WEIGHTS = ("uniform", "distance")
# Rows of distances computed at once: scikit-learn's default working memory, 1 GiB.
WORKING_MEMORY = 1 << 30


def nan_euclidean(
    X: np.ndarray, Y: np.ndarray, missing_X: np.ndarray, missing_Y: np.ndarray
) -> np.ndarray:
    """``nan_euclidean_distances(X, Y)`` given both missing masks; X and Y are copies with
    their missing cells already zero."""
    XX = np.einsum("ij,ij->i", X, X)[:, None]  # sklearn's row_norms
    YY = np.einsum("ij,ij->i", Y, Y)[None, :]
    distances = -2 * (X @ Y.T)
    distances += XX
    distances += YY
    np.maximum(distances, 0, out=distances)
    distances -= np.dot(X * X, missing_Y.T)
    distances -= np.dot(missing_X, (Y * Y).T)
    np.clip(distances, 0, None, out=distances)
    present_count = np.dot(1 - missing_X, (~missing_Y).T)
    distances[present_count == 0] = np.nan
    np.maximum(1, present_count, out=present_count)
    distances /= present_count
    distances *= X.shape[1]
    np.sqrt(distances, out=distances)
    return distances


@register
class KNNImputer(Executor):
    """Fill missing cells (NaN, or ``missing_values``) from the nearest fitted rows.

    ``valid`` lists the columns with a present value at fit (others are dropped, or zeros
    with ``keep_empty``); ``indicator`` (absent: none) the columns whose missing masks are
    appended; ``means`` holds one mean per column (NaN for columns never present).
    """

    kind = "knn_imputer"
    methods = _TRANSFORM
    keeps_float32 = True  # distances and means as scikit-learn computes them on float32 rows

    def __init__(
        self,
        fit_X: np.ndarray,
        means: np.ndarray,
        valid: np.ndarray,
        indicator: np.ndarray | None,
        missing: float | None,
        n_neighbors: int,
        weights: str,
        keep_empty: bool,
    ) -> None:
        self.fit_X = fit_X
        self.means = means
        self.valid = valid
        self.indicator = indicator
        self.missing = missing
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.keep_empty = keep_empty
        self.n_features = fit_X.shape[1]
        self.allow_nan = missing is None

    @classmethod
    def from_spec(cls, spec: Spec) -> KNNImputer:
        fit_X = spec.array("fit_X", ndim=2)
        n_rows, n = fit_X.shape
        spec.check(n_rows >= 1 and n >= 1, "fit_X must hold at least one row and one column")
        valid = _indices(spec, "valid", n)
        if valid is None:
            spec.fail("missing array 'valid'")
        n_neighbors = spec.param("n_neighbors", int)
        spec.check(n_neighbors >= 1, f"n_neighbors must be positive, found {n_neighbors}")
        missing = spec.param("missing_values", (int, float, type(None)))
        return cls(
            fit_X,
            _vector(spec, "means", n),
            valid,
            _indices(spec, "indicator", n),
            None if missing is None else float(missing),
            n_neighbors,
            spec.choice("weights", WEIGHTS),
            spec.param("keep_empty_features", bool),
        )

    def _mask(self, X: np.ndarray) -> np.ndarray:
        return np.isnan(X) if self.missing is None else np.equal(X, self.missing)

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.n_features, "this KNN imputer")
        mask = self._mask(X)
        out = X.copy()
        valid = np.zeros(self.n_features, dtype=bool)
        valid[self.valid] = True
        rows = np.flatnonzero(mask[:, valid].any(axis=1))
        if rows.size:
            fit_mask = self._mask(self.fit_X)
            Y = np.where(fit_mask, 0.0, self.fit_X).astype(np.float64)
            step = max(1, WORKING_MEMORY // (8 * len(self.fit_X)))
            for start in range(0, len(rows), step):
                chunk = rows[start : start + step]
                # check_pairwise_arrays: float64 unless both sides are float32
                Xc = np.where(mask[chunk], 0.0, X[chunk].astype(Y.dtype))
                dist = nan_euclidean(Xc, Y, mask[chunk], fit_mask)
                self._impute(out, mask, chunk, dist, fit_mask, valid)
        if self.keep_empty:
            out[:, ~valid] = 0
        else:
            out = out[:, valid]
        if self.indicator is not None:
            out = np.hstack([out, mask[:, self.indicator]])
        return out

    def _impute(
        self,
        out: np.ndarray,
        mask: np.ndarray,
        chunk: np.ndarray,
        dist: np.ndarray,
        fit_mask: np.ndarray,
        valid: np.ndarray,
    ) -> None:
        """``KNNImputer.transform``'s ``process_chunk``: fill ``chunk``'s missing cells."""
        for col in np.flatnonzero(valid):
            col_mask = mask[chunk, col]
            if not col_mask.any():
                continue
            donors = np.flatnonzero(~fit_mask[:, col])
            receivers = np.flatnonzero(col_mask)
            subset = dist[receivers][:, donors]
            all_nan = np.isnan(subset).all(axis=1)
            if all_nan.any():
                out[chunk[receivers[all_nan]], col] = self.means[col]
                if all_nan.all():
                    continue
                receivers = receivers[~all_nan]
                subset = dist[receivers][:, donors]
            k = min(self.n_neighbors, len(donors))
            nearest = np.argpartition(subset, k - 1, axis=1)[:, :k]
            near_dist = subset[np.arange(len(nearest))[:, None], nearest]
            if self.weights == "distance":
                with np.errstate(divide="ignore"):
                    weight = 1.0 / near_dist
                inf_mask = np.isinf(weight)
                inf_row = np.any(inf_mask, axis=1)
                weight[inf_row] = inf_mask[inf_row]
                weight[np.isnan(weight)] = 0.0
            else:
                weight = np.ones_like(near_dist)
                weight[np.isnan(near_dist)] = 0.0
            values = self.fit_X[donors, col].take(nearest)
            scale = weight.sum(axis=1)
            out[chunk[receivers], col] = np.multiply(values, weight).sum(axis=1) / scale
