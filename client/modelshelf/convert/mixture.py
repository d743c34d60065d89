"""KMeans, MiniBatchKMeans and GaussianMixture to ``kmeans`` / ``gaussian_mixture`` specs.

Every term of scikit-learn's predict-time arithmetic that does not depend on X is formed here
once, by the same expressions (``row_norms`` of the centres, ``mu @ prec_chol``, the diagonal
and spherical constants, ``_compute_log_det_cholesky``), so the runtime repeats only the rest.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.mixture import BayesianGaussianMixture, GaussianMixture
from sklearn.mixture._gaussian_mixture import _compute_log_det_cholesky
from sklearn.utils.extmath import row_norms

from ._context import Context, converter


@converter(KMeans, MiniBatchKMeans)
def _kmeans(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    # Centres fitted on float32 data are widened: the Model computes in float64.
    centers = np.asarray(est.cluster_centers_, dtype=np.float64)
    return ctx.spec(
        "kmeans",
        path,
        arrays={"centers": centers, "center_norms": row_norms(centers, squared=True)},
    )


@converter(GaussianMixture, BayesianGaussianMixture)
def _gaussian_mixture(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    kind = est.covariance_type
    means = np.asarray(est.means_, dtype=np.float64)
    prec_chol = np.asarray(est.precisions_cholesky_, dtype=np.float64)
    const = None
    if kind == "full":
        factor = prec_chol
        offset = np.stack([means[k, :] @ prec_chol[k, :, :] for k in range(len(means))])
    elif kind == "tied":
        factor = prec_chol
        offset = np.stack([means[k, :] @ prec_chol for k in range(len(means))])
    elif kind == "diag":
        precisions = prec_chol**2
        const = np.sum((means**2 * precisions), axis=1)
        offset = np.ascontiguousarray((means * precisions).T)
        factor = np.ascontiguousarray(precisions.T)
    else:
        precisions = prec_chol**2
        const = np.sum(means**2, axis=1) * precisions
        offset = np.ascontiguousarray(means.T)
        factor = precisions
    # One value per component; "tied" has one for all, repeated (adding it is the same).
    log_det = np.broadcast_to(
        np.asarray(_compute_log_det_cholesky(prec_chol, kind, means.shape[1]), dtype=np.float64),
        (len(means),),
    ).copy()
    arrays = {
        "factor": factor,
        "offset": offset,
        "const": const,
        "log_det": log_det,
        "log_weights": np.log(np.asarray(est.weights_, dtype=np.float64)),
    }
    if isinstance(est, BayesianGaussianMixture):
        arrays |= _bayesian_terms(est, means.shape[1])
    return ctx.spec(
        "gaussian_mixture",
        path,
        arrays=arrays,
        params={"covariance_type": kind},
    )


def _bayesian_terms(est: Any, n_features: int) -> dict[str, np.ndarray]:
    """The terms BayesianGaussianMixture._estimate_log_prob and _estimate_log_weights add to
    the Gaussian log-density, by scikit-learn's own expressions."""
    from scipy.special import digamma

    dof = np.asarray(est.degrees_of_freedom_, dtype=np.float64)
    log_lambda = n_features * np.log(2.0) + np.sum(
        digamma(0.5 * (dof - np.arange(0, n_features)[:, np.newaxis])), 0
    )
    lambda_term = 0.5 * (log_lambda - n_features / est.mean_precision_)
    # "tied" has one degrees_of_freedom_ for all components: repeated, it subtracts the same.
    dof_term = np.broadcast_to(0.5 * n_features * np.log(dof), lambda_term.shape).copy()
    return {
        "dof_term": dof_term,
        "lambda_term": lambda_term,
        "log_weights": np.asarray(est._estimate_log_weights(), dtype=np.float64),
    }
