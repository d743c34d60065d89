"""Discriminant analysis: LinearDiscriminantAnalysis, QuadraticDiscriminantAnalysis, and
NearestCentroid, which scores classes the same way.

LDA is linear at predict time (``X @ coef.T + intercept``, scikit-learn's
``LinearClassifierMixin``), with an optional projection for ``transform``. QDA keeps, per class,
its mean, its whitening matrix ``rotation * scaling ** -0.5`` (formed by the converter with
scikit-learn's own expression) and the constant ``sum(log(scaling))``, and scores classes as
``QuadraticDiscriminantAnalysis._decision_function`` does. ``discriminant_log_proba`` is the
normalisation QDA shares with NearestCentroid (``DiscriminantAnalysisPredictionMixin``).
"""

from __future__ import annotations

import numpy as np

from ..errors import NonFiniteInputError
from ._base import Executor, Spec, method_set, register
from ._math import expit, softmax

_CLASSIFIER_METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function")


def discriminant_log_proba(scores: np.ndarray) -> np.ndarray:
    """``DiscriminantAnalysisPredictionMixin.predict_log_proba`` of per-class scores."""
    log_likelihood = scores - scores.max(axis=1)[:, np.newaxis]
    return log_likelihood - np.log(np.exp(log_likelihood).sum(axis=1)[:, np.newaxis])


def binary_or_all(scores: np.ndarray) -> np.ndarray:
    """The mixin's decision_function: column 1 minus column 0 for two classes, else all."""
    return scores[:, 1] - scores[:, 0] if scores.shape[1] == 2 else scores


@register
class LinearDiscriminant(Executor):
    """LinearDiscriminantAnalysis: linear scores; ``transform`` projects onto ``scalings``
    (after subtracting ``xbar``, solver "svd") when the solver has a transform."""

    kind = "lda"

    def __init__(
        self,
        coef: np.ndarray,
        intercept: np.ndarray,
        classes: np.ndarray,
        scalings: np.ndarray | None,
        xbar: np.ndarray | None,
    ) -> None:
        self.coef = coef
        self.intercept = intercept
        self.classes_ = classes
        self.scalings = scalings
        self.xbar = xbar
        methods = set(_CLASSIFIER_METHODS)
        if scalings is not None:
            methods.add("transform")
        self.methods = method_set(methods)

    @classmethod
    def from_spec(cls, spec: Spec) -> LinearDiscriminant:
        coef = spec.array("coef", ndim=2)
        intercept = spec.array("intercept", ndim=1)
        classes = spec.labels()
        k = len(classes)
        rows = 1 if k == 2 else k
        spec.check(
            k >= 2 and coef.shape[0] == rows and intercept.shape == (rows,),
            f"{k} classes need {rows} coef rows and intercepts",
        )
        scalings = spec.array("scalings", ndim=2, optional=True)
        xbar = spec.array("xbar", ndim=1, optional=True)
        n = coef.shape[1]
        spec.check(
            scalings is None or scalings.shape[0] == n, f"scalings need one row per feature ({n})"
        )
        spec.check(
            xbar is None or (scalings is not None and xbar.shape == (n,)),
            f"xbar comes with scalings, one value per feature ({n})",
        )
        return cls(coef, intercept, classes, scalings, xbar)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        scores = X @ self.coef.T + self.intercept
        return scores.reshape(-1) if scores.shape[1] == 1 else scores

    def predict(self, X: np.ndarray) -> np.ndarray:
        scores = self.decision_function(X)
        indices = (scores > 0).astype(np.intp) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_.take(indices, axis=0)  # type: ignore[union-attr]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        scores = self.decision_function(X)
        if scores.ndim == 1:
            prob = expit(scores)
            return np.stack([1 - prob, prob], axis=1)
        return softmax(scores)

    def predict_log_proba(self, X: np.ndarray) -> np.ndarray:
        prob = self.predict_proba(X)
        prob[prob == 0.0] += np.finfo(prob.dtype).smallest_normal
        return np.log(prob)

    def transform(self, X: np.ndarray) -> np.ndarray:
        if self.xbar is not None:
            X = X - self.xbar
        return X @ self.scalings


@register
class QuadraticDiscriminant(Executor):
    """QuadraticDiscriminantAnalysis: per class, the squared norm of the whitened offset from
    the class mean, ``-0.5 * (norm2 + log_det) + log_prior``."""

    kind = "qda"
    methods = frozenset(_CLASSIFIER_METHODS)

    def __init__(
        self,
        means: np.ndarray,
        whitening: np.ndarray,
        log_det: np.ndarray,
        log_prior: np.ndarray,
        classes: np.ndarray,
    ) -> None:
        self.means = means
        self.whitening = whitening
        self.log_det = log_det
        self.log_prior = log_prior
        self.classes_ = classes

    @classmethod
    def from_spec(cls, spec: Spec) -> QuadraticDiscriminant:
        means = spec.array("means", ndim=2)
        whitening = spec.array("whitening", ndim=3)
        log_det = spec.array("log_det", ndim=1)
        log_prior = spec.array("log_prior", ndim=1)
        classes = spec.labels()
        k, n = len(classes), means.shape[1]
        spec.check(
            k >= 2
            and means.shape[0] == k
            and whitening.shape[:2] == (k, n)
            and log_det.shape == (k,)
            and log_prior.shape == (k,),
            f"{k} classes over {n} features need means (k, n), whitening (k, n, r), "
            "log_det (k,) and log_prior (k,)",
        )
        return cls(means, whitening, log_det, log_prior, classes)

    def scores(self, X: np.ndarray) -> np.ndarray:
        norm2 = np.empty((len(X), len(self.means)))
        for i in range(len(self.means)):
            X2 = np.dot(X - self.means[i], self.whitening[i])
            norm2[:, i] = np.sum(X2**2, axis=1)
        return -0.5 * (norm2 + self.log_det) + self.log_prior

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return binary_or_all(self.scores(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_.take(self.scores(X).argmax(axis=1), axis=0)  # type: ignore[union-attr]

    def predict_log_proba(self, X: np.ndarray) -> np.ndarray:
        return discriminant_log_proba(self.scores(X))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.exp(self.predict_log_proba(X))


@register
class NearestCentroid(Executor):
    """NearestCentroid: with uniform priors, the class of the nearest centroid; otherwise, and
    for the scores (euclidean only), ``-d^2 + 2 log(prior)`` in the space scaled by the
    within-class deviations (``scale``, 1 where a deviation is 0)."""

    kind = "nearest_centroid"

    def __init__(
        self,
        centroids: np.ndarray,
        scaled_centroids: np.ndarray,
        scale: np.ndarray,
        log_prior2: np.ndarray,
        classes: np.ndarray,
        metric: str,
        nearest: bool,
    ) -> None:
        self.centroids = centroids
        self.scaled_centroids = scaled_centroids
        self.scale = scale
        self.log_prior2 = log_prior2
        self.classes_ = classes
        self.metric = metric
        self.nearest = nearest
        self.defined = not np.isnan(scale).any()  # NaN: fitted with one row per class
        if metric == "euclidean":
            self.methods = method_set(_CLASSIFIER_METHODS)
        else:
            self.methods = method_set({"predict"})

    @classmethod
    def from_spec(cls, spec: Spec) -> NearestCentroid:
        centroids = spec.array("centroids", ndim=2)
        scaled = spec.array("scaled_centroids", ndim=2)
        scale = spec.array("scale", ndim=1)
        log_prior2 = spec.array("log_prior2", ndim=1)
        classes = spec.labels()
        k, n = len(classes), centroids.shape[1]
        spec.check(
            k >= 2
            and centroids.shape == scaled.shape == (k, n)
            and scale.shape == (n,)
            and log_prior2.shape == (k,),
            f"{k} classes over {n} features need centroids and scaled_centroids (k, n), "
            "scale (n,) and log_prior2 (k,)",
        )
        metric = spec.choice("metric", ("euclidean", "manhattan"))
        return cls(
            centroids, scaled, scale, log_prior2, classes, metric, spec.param("nearest", bool)
        )

    def scores(self, X: np.ndarray) -> np.ndarray:
        if not self.defined:
            raise NonFiniteInputError(
                "this NearestCentroid's within-class deviations are not numbers (it was fitted "
                "with one sample per class): its scores, probabilities and prior-weighted "
                "predictions are undefined, and scikit-learn refuses them too (Input contains "
                "NaN); predict() with uniform priors still answers"
            )
        X = X / self.scale
        distances = _euclidean(X, self.scaled_centroids)
        distances **= 2
        return -distances + self.log_prior2

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not self.nearest:
            index = self.scores(X).argmax(axis=1)
        elif self.metric == "euclidean":
            index = _euclidean(X, self.centroids).argmin(axis=1)
        else:
            index = np.abs(X[:, np.newaxis, :] - self.centroids).sum(axis=2).argmin(axis=1)
        return self.classes_.take(index, axis=0)  # type: ignore[union-attr]

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return binary_or_all(self.scores(X))

    def predict_log_proba(self, X: np.ndarray) -> np.ndarray:
        return discriminant_log_proba(self.scores(X))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.exp(self.predict_log_proba(X))


def _euclidean(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """``sklearn.metrics.pairwise.euclidean_distances(X, Y)`` for float64 dense input."""
    distances = -2 * (X @ Y.T)
    distances += np.einsum("ij,ij->i", X, X)[:, np.newaxis]
    distances += np.einsum("ij,ij->i", Y, Y)[np.newaxis, :]
    np.maximum(distances, 0, out=distances)
    return np.sqrt(distances, out=distances)
