"""Clustering and mixtures: KMeans / MiniBatchKMeans (``kmeans``) and GaussianMixture
(``gaussian_mixture``, every covariance type).

KMeans assigns each sample to the centre of least ``|c|^2 - 2 x.c`` (the Lloyd kernel's
distances, first minimum on ties) and transforms to ``euclidean_distances``. A Gaussian
mixture scores each component as ``_estimate_log_gaussian_prob`` does, with the terms that do
not depend on X (``mu @ prec_chol``, the diagonal and spherical constants) formed by the
converter with scikit-learn's own expressions; ``score_samples`` and the responsibilities use
scikit-learn's ``_logsumexp``.
"""

from __future__ import annotations

import math

import numpy as np

from ._base import Executor, Spec, register

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def euclidean_distances(X: np.ndarray, Y: np.ndarray, Y_norm_squared: np.ndarray) -> np.ndarray:
    """``sklearn.metrics.pairwise.euclidean_distances(X, Y)`` for float64 dense input."""
    XX = np.einsum("ij,ij->i", X, X)[:, np.newaxis]
    distances = -2 * (X @ Y.T)
    distances += XX
    distances += Y_norm_squared[np.newaxis, :]
    np.maximum(distances, 0, out=distances)
    return np.sqrt(distances, out=distances)


def sklearn_logsumexp(x: np.ndarray) -> np.ndarray:
    """Row-wise ``sklearn.utils._array_api._logsumexp(x, axis=1)``: ties of the row maximum
    counted, the rest summed through ``log1p``."""
    peak = x.max(axis=1, keepdims=True)
    at_peak = x == peak
    rest = x.copy()
    rest[at_peak] = -np.inf
    ties = at_peak.sum(axis=1, keepdims=True, dtype=np.float64)
    shift = np.where(np.isfinite(peak), peak, 0)
    with np.errstate(invalid="ignore", divide="ignore", under="ignore"):
        total = np.exp(rest - shift).sum(axis=1, keepdims=True, dtype=np.float64)
        total = np.where(total == 0, total, total / ties)
        return (np.log1p(total) + np.log(ties) + peak)[:, 0]


@register
class KMeans(Executor):
    """KMeans and MiniBatchKMeans: the nearest centre (predict), distances to all (transform)."""

    kind = "kmeans"
    methods = frozenset({"predict", "transform"})

    def __init__(self, centers: np.ndarray, center_norms: np.ndarray) -> None:
        self.centers = centers
        self.center_norms = center_norms

    @classmethod
    def from_spec(cls, spec: Spec) -> KMeans:
        centers = spec.array("centers", ndim=2)
        center_norms = spec.array("center_norms", ndim=1)
        k = centers.shape[0]
        spec.check(k >= 1 and center_norms.shape == (k,), f"center_norms needs {k} values")
        return cls(centers, center_norms)

    def predict(self, X: np.ndarray) -> np.ndarray:
        distances = -2.0 * (X @ self.centers.T)
        distances += self.center_norms
        return distances.argmin(axis=1).astype(np.int32)

    def transform(self, X: np.ndarray) -> np.ndarray:
        return euclidean_distances(X, self.centers, self.center_norms)


@register
class GaussianMixture(Executor):
    """A Gaussian mixture: log-density of every component plus its log weight.

    A BayesianGaussianMixture adds ``dof_term`` and ``lambda_term`` (k,), optional together:
    its ``_estimate_log_prob`` subtracts ``0.5 n log(degrees_of_freedom_)`` from the Gaussian
    log-density and adds ``0.5 (log_lambda - n / mean_precision_)``, in that order; its
    ``log_weights`` are the digamma expectations of ``_estimate_log_weights``.
    """

    kind = "gaussian_mixture"
    methods = frozenset({"predict", "predict_proba", "score_samples"})

    def __init__(
        self,
        covariance_type: str,
        factor: np.ndarray,
        offset: np.ndarray,
        const: np.ndarray | None,
        log_det: np.ndarray,
        log_weights: np.ndarray,
        bayes_terms: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.covariance_type = covariance_type
        self.bayes_terms = bayes_terms
        self.factor = factor
        self.offset = offset
        self.const = const
        self.log_det = log_det
        self.log_weights = log_weights

    @classmethod
    def from_spec(cls, spec: Spec) -> GaussianMixture:
        covariance_type = spec.choice("covariance_type", COVARIANCE_TYPES)
        log_det = spec.array("log_det", ndim=1)
        log_weights = spec.array("log_weights", ndim=1)
        k = log_det.shape[0]
        spec.check(k >= 1 and log_weights.shape == (k,), f"log_weights needs {k} values")
        # full: factor = precisions_cholesky (k, n, n), offset = mu @ prec_chol (k, n)
        # tied: factor = precisions_cholesky (n, n), offset = mu @ prec_chol (k, n)
        # diag: factor = precisions.T (n, k), offset = (means * precisions).T (n, k), const (k,)
        # spherical: factor = precisions (k,), offset = means.T (n, k), const (k,)
        ndim = {"full": 3, "tied": 2, "diag": 2, "spherical": 1}[covariance_type]
        factor = spec.array("factor", ndim=ndim)
        offset = spec.array("offset", ndim=2)
        const = None
        if covariance_type in ("full", "tied"):
            n = offset.shape[1]
            square: tuple[int, ...] = (k, n, n) if covariance_type == "full" else (n, n)
            spec.check(
                offset.shape[0] == k and factor.shape == square,
                f"{k} components need offset (k, n) and factor {square}",
            )
        else:
            const = spec.array("const", ndim=1)
            shape = (offset.shape[0], k) if covariance_type == "diag" else (k,)
            spec.check(
                offset.shape[1] == k and factor.shape == shape and const.shape == (k,),
                f"{k} components need offset (n, k), factor {shape} and const (k,)",
            )
        dof_term = spec.array("dof_term", ndim=1, optional=True)
        lambda_term = spec.array("lambda_term", ndim=1, optional=True)
        bayes_terms = None
        if dof_term is not None or lambda_term is not None:
            spec.check(
                dof_term is not None
                and lambda_term is not None
                and dof_term.shape == lambda_term.shape == (k,),
                f"dof_term and lambda_term come together, {k} values each",
            )
            bayes_terms = (dof_term, lambda_term)
        return cls(covariance_type, factor, offset, const, log_det, log_weights, bayes_terms)

    def weighted_log_prob(self, X: np.ndarray) -> np.ndarray:
        n_samples, n_features = X.shape
        k = len(self.log_det)
        if self.covariance_type in ("full", "tied"):
            log_prob = np.empty((n_samples, k))
            projected = X @ self.factor if self.covariance_type == "tied" else None
            for i in range(k):
                y = (projected if projected is not None else X @ self.factor[i]) - self.offset[i]
                log_prob[:, i] = np.sum(np.square(y), axis=1)
        elif self.covariance_type == "diag":
            log_prob = self.const - 2.0 * (X @ self.offset) + (X**2 @ self.factor)
        else:
            norms = np.einsum("ij,ij->i", X, X)
            log_prob = (
                self.const - 2 * (X @ self.offset * self.factor) + np.outer(norms, self.factor)
            )
        log_gauss = -0.5 * (n_features * math.log(2 * math.pi) + log_prob) + self.log_det
        if self.bayes_terms is not None:
            dof_term, lambda_term = self.bayes_terms
            log_gauss = log_gauss - dof_term + lambda_term
        return log_gauss + self.log_weights

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.weighted_log_prob(X).argmax(axis=1)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        weighted = self.weighted_log_prob(X)
        log_resp = weighted - sklearn_logsumexp(weighted)[:, np.newaxis]
        with np.errstate(under="ignore"):
            return np.exp(log_resp)

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        return sklearn_logsumexp(self.weighted_log_prob(X))
