"""Nearest neighbours: KNeighbors- and RadiusNeighbors- Classifier/Regressor, and
LocalOutlierFactor(novelty=True), over the training set stored in the image.

The image holds the fitted data itself (``fit_X``), so every process on a node shares one copy.
Whatever index scikit-learn built (brute, kd_tree, ball_tree), the neighbours are found by brute
force, in chunks of query rows that bound the distance block to ``_CHUNK_ELEMENTS``: distances
are computed on explicit differences, as the trees compute them, and the k nearest are taken in
order of (distance, training row), so ties go to the row fitted first. Weights, votes, means
and the LOF densities then follow scikit-learn's expressions in its order.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..errors import InputError, ManifestError
from ._base import Executor, Spec, register

# How distances are measured: minkowski takes the param ``p``; cosine's ``fit_X`` is stored
# normalized (sklearn.preprocessing.normalize), as cosine_distances normalizes it every call.
METRICS = ("euclidean", "manhattan", "chebyshev", "minkowski", "cosine")
WEIGHTS = ("uniform", "distance")
TASKS = ("classifier", "regressor")
# Elements of the (query rows x training rows [x features]) blocks computed at once.
_CHUNK_ELEMENTS = 1 << 22
MAX_NEIGHBORS = 1 << 20


class TrainingSet:
    """The stored training rows and the metric that measures distances to them.

    Euclidean searches screen with the fast ``|x|^2 - 2 x.y + |y|^2`` form (``fit_norms`` holds
    the |y|^2), keep every row within that form's rounding bound of the cut, and measure those
    candidates exactly; the other metrics measure every row exactly.
    """

    __slots__ = ("fit_X", "fit_norms", "metric", "p")

    def __init__(
        self, fit_X: np.ndarray, metric: str, p: float, fit_norms: np.ndarray | None = None
    ) -> None:
        self.fit_X = fit_X
        self.metric = metric
        self.p = p
        self.fit_norms = fit_norms

    @classmethod
    def from_spec(cls, spec: Spec) -> TrainingSet:
        fit_X = spec.array("fit_X", ndim=2)
        metric = spec.choice("metric", METRICS)
        p = float(spec.param("p", (int, float), 2))
        spec.check(fit_X.shape[0] >= 1 and fit_X.shape[1] >= 1, "fit_X holds no training rows")
        spec.check(metric != "minkowski" or p >= 1, f"minkowski needs p >= 1, found {p}")
        fit_norms = None
        if metric == "euclidean":
            fit_norms = spec.array("fit_norms", ndim=1)
            spec.check(fit_norms.shape == (len(fit_X),), "fit_norms needs one value per row")
        return cls(fit_X, metric, p, fit_norms)

    def chunks(self, X: np.ndarray) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
        """(rows, screening distances from X[rows] to every training row, their per-row error
        bound), a block of at most ``_CHUNK_ELEMENTS`` at a time. The screening distances are
        exact (bound 0) except for euclidean, where they are squared and approximate."""
        if X.shape[1] != self.fit_X.shape[1]:  # an image at odds with its own input width
            raise ManifestError(
                f"the training rows (fit_X) have {self.fit_X.shape[1]} columns, the model gives "
                f"them {X.shape[1]}"
            )
        exact = self.metric not in ("euclidean", "cosine")
        per_row = self.fit_X.size if exact else len(self.fit_X)
        step = max(1, _CHUNK_ELEMENTS // max(1, per_row))
        for start in range(0, len(X), step):
            rows = slice(start, start + step)
            block = X[rows]
            fit_norms = self.fit_norms  # set for euclidean only
            if fit_norms is None:
                yield rows, self.distances(block), np.zeros(len(block))
                continue
            norms = np.einsum("ij,ij->i", block, block)
            squared = -2.0 * (block @ self.fit_X.T)
            squared += norms[:, np.newaxis]
            squared += fit_norms
            # Each of the three terms is off by at most (n + 2) eps of |x|^2 + |y|^2; twice that
            # covers both a candidate's error and the error of the cut it is compared with.
            scale = norms + float(fit_norms.max())
            bound = 2 * 3 * (self.fit_X.shape[1] + 2) * np.finfo(np.float64).eps * scale
            yield rows, squared, bound

    def distances(self, X: np.ndarray) -> np.ndarray:
        """Exact distances from X to every training row (any metric but euclidean)."""
        if self.metric == "cosine":
            # sklearn.metrics.pairwise.cosine_distances, fit_X already normalized
            norms = np.sqrt(np.einsum("ij,ij->i", X, X))
            norms[norms == 0.0] = 1.0
            S = (X / norms[:, np.newaxis]) @ self.fit_X.T
            S *= -1
            S += 1
            return np.clip(S, 0, 2, out=S)
        diff = np.abs(X[:, np.newaxis, :] - self.fit_X)
        if self.metric == "chebyshev":
            return diff.max(axis=2)
        if self.metric == "manhattan":
            return diff.sum(axis=2)
        diff **= self.p
        return diff.sum(axis=2) ** (1.0 / self.p)

    def _measure(
        self, X: np.ndarray, screen: np.ndarray, row: np.ndarray, col: np.ndarray
    ) -> np.ndarray:
        """The distances of the (row, col) pairs: exact for euclidean candidates."""
        if self.metric != "euclidean":
            return screen[row, col]
        diff = X[row] - self.fit_X[col]
        diff *= diff
        return np.sqrt(diff.sum(axis=1))

    def kneighbors(self, X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest training rows of every sample, nearest first; equal distances in
        training order."""
        dist = np.empty((len(X), k))
        ind = np.empty((len(X), k), dtype=np.intp)
        for rows, screen, bound in self.chunks(X):
            if k < screen.shape[1]:
                cut = np.partition(screen, k - 1, axis=1)[:, k - 1] + bound
                row, col = np.nonzero(screen <= cut[:, np.newaxis])
            else:
                row, col = np.nonzero(np.ones(screen.shape, dtype=bool))
            if np.bincount(row, minlength=len(screen)).min() < k:  # NaN from a hostile image
                raise ManifestError("fit_X (or fit_norms) give distances that are not numbers")
            measured = self._measure(X[rows], screen, row, col)
            order = np.lexsort((col, measured, row))  # by sample, distance, training row
            first = np.searchsorted(row[order], np.arange(screen.shape[0]))
            take = order[first[:, np.newaxis] + np.arange(k)]
            dist[rows], ind[rows] = measured[take], col[take]
        return dist, ind

    def within(
        self, X: np.ndarray, radius: float
    ) -> Iterator[tuple[slice, np.ndarray, np.ndarray, np.ndarray]]:
        """Per block of samples: (rows, sample, training row, distance) of every pair at most
        ``radius`` apart, by sample then training row."""
        limit = radius * radius if self.metric == "euclidean" else radius
        for rows, screen, bound in self.chunks(X):
            row, col = np.nonzero(screen <= (limit + bound)[:, np.newaxis])
            measured = self._measure(X[rows], screen, row, col)
            keep = measured <= radius
            yield rows, row[keep], col[keep], measured[keep]


def distance_weights(dist: np.ndarray) -> np.ndarray:
    """``sklearn.neighbors._base._get_weights(dist, "distance")`` for a k-neighbours block: a row
    with a zero distance weighs those neighbours 1 and the others 0."""
    with np.errstate(divide="ignore"):
        weights = 1.0 / dist
    inf_mask = np.isinf(weights)
    inf_row = np.any(inf_mask, axis=1)
    weights[inf_row] = inf_mask[inf_row]
    return weights


def _targets(spec: Spec, task: str, n_train: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(training targets, class labels): class indices for a classifier, values otherwise."""
    if task == "classifier":
        classes = spec.labels()
        y = spec.array("y", ndim=1, kind="iu")
        spec.check(len(classes) >= 1, "a classifier needs at least one class")
        if y.shape != (n_train,) or (n_train and not 0 <= y.min() <= y.max() < len(classes)):
            spec.fail(f"y needs one class index in [0, {len(classes)}) per training row")
        # indices combine with intp arithmetic (a uint64 one would make them floats); the
        # writer stores int64, so this is a view but for an odd image
        return y.astype(np.intp, copy=False), classes
    y = spec.array("y", ndim=(1, 2))
    spec.check(y.shape[0] == n_train, f"y needs one row per training row ({n_train})")
    return y, None


@register
class KNeighbors(Executor):
    """KNeighborsClassifier and KNeighborsRegressor: a vote (classifier) or a mean (regressor)
    of the k nearest training rows, uniform or weighted by inverse distance."""

    kind = "kneighbors"

    def __init__(
        self,
        train: TrainingSet,
        y: np.ndarray,
        n_neighbors: int,
        weights: str,
        classes: np.ndarray | None,
    ) -> None:
        self.train = train
        self.y = y
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.classes_ = classes
        if classes is None:
            self.methods = frozenset({"predict"})
        else:
            self.methods = frozenset({"predict", "predict_proba"})

    @classmethod
    def from_spec(cls, spec: Spec) -> KNeighbors:
        train = TrainingSet.from_spec(spec)
        task = spec.choice("task", TASKS)
        y, classes = _targets(spec, task, len(train.fit_X))
        k = spec.param("n_neighbors", int)
        n_train = len(train.fit_X)
        spec.check(1 <= k <= min(n_train, MAX_NEIGHBORS), f"n_neighbors {k} not in [1, {n_train}]")
        return cls(train, y, k, spec.choice("weights", WEIGHTS), classes)

    def _neighbors(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        dist, ind = self.train.kneighbors(X, self.n_neighbors)
        return ind, distance_weights(dist) if self.weights == "distance" else None

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        ind, weights = self._neighbors(X)
        if weights is None:
            weights = np.ones_like(ind)
        labels = self.y[ind]
        proba = np.zeros((len(X), len(self.classes_)))  # type: ignore[arg-type]
        rows = np.arange(len(X))
        for i, idx in enumerate(labels.T):
            proba[rows, idx] += weights[:, i]
        proba /= proba.sum(axis=1)[:, np.newaxis]
        return proba

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.classes_ is not None:
            return self.classes_.take(self.predict_proba(X).argmax(axis=1), axis=0)  # type: ignore[union-attr]
        ind, weights = self._neighbors(X)
        y = self.y.reshape(len(self.y), -1)
        if weights is None:
            pred = np.mean(y[ind], axis=1)
        else:
            pred = np.empty((len(X), y.shape[1]))
            denom = np.sum(weights, axis=1)
            for j in range(y.shape[1]):
                pred[:, j] = np.sum(y[ind, j] * weights, axis=1) / denom
        return pred.ravel() if self.y.ndim == 1 else pred


@register
class RadiusNeighbors(Executor):
    """RadiusNeighborsClassifier and RadiusNeighborsRegressor: every training row within
    ``radius`` (inclusive) votes or averages; a sample with none gets the outlier label
    (classifier; an error without one) or NaN (regressor), as in scikit-learn."""

    kind = "radius_neighbors"

    def __init__(
        self,
        train: TrainingSet,
        y: np.ndarray,
        radius: float,
        weights: str,
        classes: np.ndarray | None,
        labels: np.ndarray | None = None,
        outlier: int | None = None,
    ) -> None:
        self.train = train
        self.y = y
        self.radius = radius
        self.weights = weights
        self.classes_ = classes
        self.labels = labels
        self.outlier = outlier
        if classes is None:
            self.methods = frozenset({"predict"})
        else:
            self.methods = frozenset({"predict", "predict_proba"})

    @classmethod
    def from_spec(cls, spec: Spec) -> RadiusNeighbors:
        train = TrainingSet.from_spec(spec)
        task = spec.choice("task", TASKS)
        radius = float(spec.param("radius", (int, float)))
        weights = spec.choice("weights", WEIGHTS)
        y, labels = _targets(spec, task, len(train.fit_X))
        if labels is None:
            return cls(train, y, radius, weights, None)
        # ``labels`` is classes_, then the outlier label when it is not one of them.
        k = spec.param("n_classes", int)
        outlier = spec.param("outlier", (int, type(None)), None)
        spec.check(1 <= k <= len(labels) <= k + 1, f"n_classes {k} does not fit the labels")
        spec.check(y.max() < k, f"y needs class indices in [0, {k})")
        spec.check(outlier is None or 0 <= outlier < len(labels), "outlier is not a label index")
        return cls(train, y, radius, weights, labels[:k], labels, outlier)

    def _weighted_sums(self, X: np.ndarray, width: int) -> tuple[np.ndarray, ...]:
        """Per sample, over its neighbours in training order, as np.bincount adds them: the
        weights summed per class (classifier) or the weighted sums of each target column
        (regressor), the sum of the weights, and the number of neighbours."""
        n = len(X)
        sums = np.empty((n, width))
        totals = np.empty(n)
        counts = np.empty(n, dtype=np.intp)
        for rows, row, col, dist in self.train.within(X, self.radius):
            m = len(X[rows])
            counts[rows] = np.bincount(row, minlength=m)
            if self.weights == "uniform":
                weights = np.ones(len(row))
            else:
                at_zero = np.bincount(row[dist == 0.0], minlength=m) > 0
                with np.errstate(divide="ignore"):
                    weights = np.where(at_zero[row], dist == 0.0, 1.0 / dist)
            totals[rows] = np.bincount(row, weights, minlength=m)
            if self.classes_ is not None:
                cells = np.bincount(row * width + self.y[col], weights, minlength=m * width)
                sums[rows] = cells.reshape(m, width)
            else:
                y = self.y.reshape(len(self.y), -1)
                for j in range(width):
                    sums[rows, j] = np.bincount(row, weights * y[col, j], minlength=m)
        return sums, totals, counts

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        k = len(self.classes_)  # type: ignore[arg-type]
        proba, _, counts = self._weighted_sums(X, k)
        outliers = counts == 0
        if outliers.any():
            if self.outlier is None:
                raise InputError(
                    f"no training rows within radius {self.radius} of samples "
                    f"{np.flatnonzero(outliers).tolist()}, and this model has no outlier label"
                )
            proba[outliers] = 0.0
            if self.outlier < k:
                proba[outliers, self.outlier] = 1.0
        normalizer = proba.sum(axis=1)[:, np.newaxis]
        normalizer[normalizer == 0.0] = 1.0
        proba /= normalizer
        return proba

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.classes_ is not None:
            proba = self.predict_proba(X)
            pred = self.classes_.take(proba.argmax(axis=1), axis=0)  # type: ignore[union-attr]
            unlabelled = (proba == 0).all(axis=1)
            if unlabelled.any():
                pred[unlabelled] = self.labels[self.outlier]  # type: ignore[index]
            return pred
        width = 1 if self.y.ndim == 1 else self.y.shape[1]
        sums, totals, counts = self._weighted_sums(X, width)
        with np.errstate(invalid="ignore", divide="ignore"):
            pred = sums / totals[:, np.newaxis]
        pred[counts == 0] = np.nan
        return pred.ravel() if self.y.ndim == 1 else pred


@register
class LocalOutlierFactor(Executor):
    """LocalOutlierFactor(novelty=True): the opposite of the local outlier factor of new samples
    against the training rows' stored k-distances and reachability densities."""

    kind = "local_outlier_factor"
    methods = frozenset({"predict", "decision_function", "score_samples"})

    def __init__(
        self,
        train: TrainingSet,
        k_distance: np.ndarray,
        lrd: np.ndarray,
        n_neighbors: int,
        offset: float,
    ) -> None:
        self.train = train
        self.k_distance = k_distance
        self.lrd = lrd
        self.n_neighbors = n_neighbors
        self.offset = offset

    @classmethod
    def from_spec(cls, spec: Spec) -> LocalOutlierFactor:
        train = TrainingSet.from_spec(spec)
        n_train = len(train.fit_X)
        k_distance = spec.array("k_distance", ndim=1)
        lrd = spec.array("lrd", ndim=1)
        k = spec.param("n_neighbors", int)
        spec.check(1 <= k <= min(n_train, MAX_NEIGHBORS), f"n_neighbors {k} not in [1, {n_train}]")
        spec.check(
            k_distance.shape == lrd.shape == (n_train,),
            f"k_distance and lrd need one value per training row ({n_train})",
        )
        offset = float(spec.param("offset", (int, float)))
        return cls(train, k_distance, lrd, k, offset)

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        dist, ind = self.train.kneighbors(X, self.n_neighbors)
        reach_dist = np.maximum(dist, self.k_distance[ind])
        X_lrd = 1.0 / (np.mean(reach_dist, axis=1) + 1e-10)
        return -np.mean(self.lrd[ind] / X_lrd[:, np.newaxis], axis=1)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.score_samples(X) - self.offset

    def predict(self, X: np.ndarray) -> np.ndarray:
        is_inlier = np.ones(len(X), dtype=int)
        is_inlier[self.decision_function(X) < 0] = -1
        return is_inlier
