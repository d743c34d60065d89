"""Estimators that reuse existing kinds or take small kernels of their own: RANSAC and
self-training through their fitted ``estimator_``, SGDOneClassSVM, IncrementalPCA as ``pca``,
the random projections as ``projection``, the kernel approximations and the identity
FunctionTransformer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.decomposition import FactorAnalysis, IncrementalPCA
from sklearn.kernel_approximation import AdditiveChi2Sampler, RBFSampler, SkewedChi2Sampler
from sklearn.linear_model import RANSACRegressor, SGDOneClassSVM
from sklearn.preprocessing import FunctionTransformer
from sklearn.random_projection import GaussianRandomProjection, SparseRandomProjection
from sklearn.semi_supervised import SelfTrainingClassifier

from ._context import Context, converter
from ._delegate import refuse


@converter(RANSACRegressor, SelfTrainingClassifier)
def _through_estimator(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    # Both predict (and score) by their final estimator_, fitted on the inliers or on the
    # labelled and pseudo-labelled rows; their methods are exactly that estimator's.
    return ctx.convert(est.estimator_, path)


@converter(SGDOneClassSVM)
def _sgd_one_class(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    coef = np.asarray(est.coef_, dtype=np.float64).reshape(-1)
    offset = float(np.asarray(est.offset_).reshape(-1)[0])
    return ctx.spec("linear_one_class", path, arrays={"coef": coef}, params={"offset": offset})


@converter(IncrementalPCA)
def _incremental_pca(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    # _BasePCA._transform, as for PCA; IncrementalPCA has no score_samples.
    scale = None
    if est.whiten:
        scale = np.sqrt(est.explained_variance_)
        scale[scale < np.finfo(scale.dtype).eps] = np.finfo(scale.dtype).eps
    offset = np.reshape(est.mean_, (1, -1)) @ est.components_.T
    arrays = {"components": est.components_, "offset": offset.reshape(-1), "scale": scale}
    return ctx.spec("pca", path, arrays={k: _f64(v) for k, v in arrays.items()})


@converter(GaussianRandomProjection, SparseRandomProjection)
def _random_projection(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    # X @ components_.T, TruncatedSVD's projection; a sparse components_ is stored dense.
    components = est.components_
    if hasattr(components, "toarray"):
        components = components.toarray()
    return ctx.spec("projection", path, arrays={"components": _f64(components)})


@converter(RBFSampler, SkewedChi2Sampler)
def _random_features(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    # The factor as each transform computes it: (2 / n) ** 0.5 and sqrt(2) / sqrt(n) round apart.
    if isinstance(est, RBFSampler):
        scale, skewedness = (2.0 / est.n_components) ** 0.5, None
    else:
        scale, skewedness = float(np.sqrt(2.0) / np.sqrt(est.n_components)), float(est.skewedness)
    return ctx.spec(
        "random_features",
        path,
        arrays={"weights": _f64(est.random_weights_), "offset": _f64(est.random_offset_)},
        params={"scale": scale, "skewedness": skewedness},
    )


# AdditiveChi2Sampler.transform's defaults for sample_interval=None.
_CHI2_INTERVALS = {1: 0.8, 2: 0.5, 3: 0.4}


@converter(AdditiveChi2Sampler)
def _additive_chi2(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    interval = est.sample_interval
    if interval is None:
        interval = _CHI2_INTERVALS.get(est.sample_steps)
        if interval is None:
            raise refuse(
                est,
                f"sample_steps={est.sample_steps} without sample_interval (transform raises)",
                "set sample_interval, or use sample_steps 1, 2 or 3",
            )
    return ctx.spec(
        "additive_chi2",
        path,
        params={
            "n_features": int(est.n_features_in_),
            "sample_steps": int(est.sample_steps),
            "sample_interval": float(interval),
        },
    )


@converter(FunctionTransformer)
def _function_transformer(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    if est.func is not None:
        raise refuse(
            est,
            f"func={est.func!r} (a Python function cannot be compiled)",
            "express the function with scikit-learn transformers (scalers, "
            "PolynomialFeatures, SplineTransformer, PowerTransformer...), or apply it before "
            "calling the model",
        )
    n_features = getattr(est, "n_features_in_", None)
    return ctx.spec(
        "identity",
        path,
        params={
            "n_features": None if n_features is None else int(n_features),
            "allow_nan": not est.validate,
        },
    )


@converter(FactorAnalysis)
def _factor_analysis(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    from scipy import linalg
    from sklearn.utils.extmath import fast_logdet

    # FactorAnalysis.transform's and score_samples' matrices, by the same operations.
    weights = est.components_ / est.noise_variance_
    cov_z = linalg.inv(np.eye(len(est.components_)) + np.dot(weights, est.components_.T))
    precision = est.get_precision()
    n_features = est.components_.shape[1]
    log_norm = 0.5 * (n_features * math.log(2.0 * np.pi) - fast_logdet(precision))
    arrays = {
        "mean": est.mean_,
        "weights": weights,
        "cov_z": cov_z,
        "precision": precision,
        "log_norm": np.array([log_norm]),
    }
    return ctx.spec("factor_analysis", path, arrays={k: _f64(v) for k, v in arrays.items()})


def _f64(value: Any) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.float64)
