"""Nearest-neighbour models to ``kneighbors`` / ``radius_neighbors`` / ``local_outlier_factor``
/ ``nearest_centroid`` specs.

The training set goes into the image as ``fit_X`` (that is the point: the shelf shares it
between processes); whatever index scikit-learn built, the runtime searches it by brute force
with the same result. Callable metrics and weights, and metrics beyond the Minkowski family and
cosine, are refused by name.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.neighbors import (
    KNeighborsClassifier,
    KNeighborsRegressor,
    LocalOutlierFactor,
    NearestCentroid,
    RadiusNeighborsClassifier,
    RadiusNeighborsRegressor,
)

from ._context import Context, converter, unsupported

# scikit-learn's effective metric names -> the runtime's.
_METRICS = {
    "euclidean": "euclidean",
    "l2": "euclidean",
    "manhattan": "manhattan",
    "cityblock": "manhattan",
    "l1": "manhattan",
    "chebyshev": "chebyshev",
    "infinity": "chebyshev",
    "minkowski": "minkowski",
    "cosine": "cosine",
}


def _training_set(est: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(arrays, params) describing ``_fit_X`` and the metric."""
    metric = est.effective_metric_
    name = _METRICS.get(metric) if isinstance(metric, str) else None
    extra = {k: v for k, v in (est.effective_metric_params_ or {}).items() if v is not None}
    p = extra.pop("p", 2)
    if name is None or extra or p < 1:
        raise unsupported(
            est,
            f"metric={metric!r} with p={p} and metric_params={est.metric_params!r} (supported: "
            "minkowski with p >= 1 and no weights, euclidean, manhattan, chebyshev, cosine; "
            "for another metric, transform the features first)",
        )
    fit_X = est._fit_X
    if not isinstance(fit_X, np.ndarray):
        raise unsupported(est, "a model fitted on a sparse matrix (fit it on a dense array)")
    fit_X = np.asarray(fit_X, dtype=np.float64)
    if name == "cosine":  # cosine_distances normalizes both sides; the training side once here
        from sklearn.preprocessing import normalize

        fit_X = normalize(fit_X)
    params: dict[str, Any] = {"metric": name}
    arrays = {"fit_X": fit_X}
    if name == "minkowski":
        params["p"] = float(p)
    if name == "euclidean":  # the |y|^2 of the runtime's screening form
        arrays["fit_norms"] = np.einsum("ij,ij->i", fit_X, fit_X)
    return arrays, params


def _weights(est: Any) -> str:
    if est.weights not in ("uniform", "distance", None):
        raise unsupported(
            est, f"weights={est.weights!r} (use 'uniform' or 'distance', or weight the data)"
        )
    return est.weights or "uniform"


def _classifier_targets(est: Any) -> np.ndarray:
    if est.outputs_2d_:
        raise unsupported(est, "a multi-output y (fit one classifier per output)")
    return np.asarray(est._y, dtype=np.int64)


@converter(KNeighborsClassifier, KNeighborsRegressor)
def _kneighbors(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    arrays, params = _training_set(est)
    if est.n_neighbors > est.n_samples_fit_:
        raise unsupported(
            est,
            f"n_neighbors={est.n_neighbors} over {est.n_samples_fit_} training rows (scikit-learn "
            "cannot predict with it either; lower n_neighbors)",
        )
    params.update(n_neighbors=int(est.n_neighbors), weights=_weights(est))
    if isinstance(est, KNeighborsClassifier):
        arrays["y"] = _classifier_targets(est)
        params["task"] = "classifier"
        return ctx.spec("kneighbors", path, arrays=arrays, params=params, labels=est.classes_)
    arrays["y"] = np.asarray(est._y, dtype=np.float64)
    params["task"] = "regressor"
    return ctx.spec("kneighbors", path, arrays=arrays, params=params)


@converter(RadiusNeighborsClassifier, RadiusNeighborsRegressor)
def _radius_neighbors(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    arrays, params = _training_set(est)
    params.update(radius=float(est.radius), weights=_weights(est))
    if isinstance(est, RadiusNeighborsRegressor):
        arrays["y"] = np.asarray(est._y, dtype=np.float64)
        params["task"] = "regressor"
        return ctx.spec("radius_neighbors", path, arrays=arrays, params=params)
    arrays["y"] = _classifier_targets(est)
    classes = est.classes_
    params.update(task="classifier", n_classes=len(classes), outlier=None)
    labels = classes
    if est.outlier_label_ is not None:
        label = est.outlier_label_[0]
        at = np.flatnonzero(classes == label)
        if at.size:
            params["outlier"] = int(at[0])
        else:  # a label outside classes_: stored after them
            labels = np.append(classes, label)
            params["outlier"] = len(classes)
    return ctx.spec("radius_neighbors", path, arrays=arrays, params=params, labels=labels)


@converter(LocalOutlierFactor)
def _local_outlier_factor(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    if not est.novelty:
        raise unsupported(
            est,
            "novelty=False (such a model only scores its own training data, in "
            "negative_outlier_factor_; fit it with novelty=True to score new data)",
        )
    arrays, params = _training_set(est)
    k = int(est.n_neighbors_)
    arrays["k_distance"] = np.ascontiguousarray(est._distances_fit_X_[:, k - 1], dtype=np.float64)
    arrays["lrd"] = np.asarray(est._lrd, dtype=np.float64)
    params.update(n_neighbors=k, offset=float(est.offset_))
    return ctx.spec("local_outlier_factor", path, arrays=arrays, params=params)


@converter(NearestCentroid)
def _nearest_centroid(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    centroids = np.asarray(est.centroids_, dtype=np.float64)
    std = np.asarray(est.within_class_std_dev_, dtype=np.float64)
    mask = std != 0
    # NearestCentroid._decision_function divides by the deviations where they are not 0.
    scale = np.where(mask, std, 1.0)
    scaled = centroids.copy()
    scaled[:, mask] /= std[mask]
    with np.errstate(divide="ignore"):
        log_prior2 = np.array([2.0 * np.log(p) for p in est.class_prior_], dtype=np.float64)
    return ctx.spec(
        "nearest_centroid",
        path,
        arrays={
            "centroids": centroids,
            "scaled_centroids": scaled,
            "scale": scale,
            "log_prior2": log_prior2,
        },
        params={
            "metric": est.metric,
            "nearest": bool(np.isclose(est.class_prior_, 1 / len(est.classes_)).all()),
        },
        labels=est.classes_,
    )
