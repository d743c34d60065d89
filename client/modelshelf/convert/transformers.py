"""Feature transformers to specs: PolynomialFeatures, Binarizer, MissingIndicator, TruncatedSVD,
KBinsDiscretizer, TargetEncoder and KNNImputer.

What a transformer learned at fit time is all its image holds: the expansion's degrees, the
bin edges (KBinsDiscretizer's strategy only decided where they are), the per-category
encodings (TargetEncoder's cross-fitted ``fit_transform`` is training-time only; ``transform``
uses ``encodings_``), KNNImputer's fitted rows, NMF's and MiniBatchNMF's components and
solver settings (their transform runs the solver on each batch).
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np
from sklearn.decomposition import NMF, MiniBatchNMF, TruncatedSVD
from sklearn.impute import KNNImputer, MissingIndicator
from sklearn.preprocessing import (
    Binarizer,
    KBinsDiscretizer,
    PolynomialFeatures,
    TargetEncoder,
)

from ._context import Context, converter, unsupported
from .encoders import _categories


def _n_features(est: Any) -> int:
    return int(est.n_features_in_)


@converter(PolynomialFeatures)
def _polynomial(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    return ctx.spec(
        "polynomial_features",
        path,
        params={
            "n_features": _n_features(est),
            "min_degree": int(est._min_degree),
            "max_degree": int(est._max_degree),
            "interaction_only": bool(est.interaction_only),
            "include_bias": bool(est.include_bias),
        },
    )


@converter(Binarizer)
def _binarizer(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    threshold = est.threshold
    if not isinstance(threshold, numbers.Real) or not math.isfinite(float(threshold)):
        raise unsupported(est, f"threshold={threshold!r} (only a finite number)")
    return ctx.spec(
        "binarizer",
        path,
        params={"n_features": _n_features(est), "threshold": float(threshold)},
    )


def missing_marker(est: Any) -> float | None:
    """``missing_values`` as a manifest value: null for NaN, else the finite number."""
    marker = est.missing_values
    if isinstance(marker, float) and math.isnan(marker):
        return None
    finite = isinstance(marker, numbers.Real) and not isinstance(marker, bool)
    if finite and math.isfinite(float(marker)):
        return float(marker)
    raise unsupported(est, f"missing_values={marker!r} (only NaN or a finite number)")


@converter(MissingIndicator)
def _missing_indicator(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    if est._precomputed:
        raise unsupported(est, "a precomputed mask as input (fit it on the data instead)")
    return ctx.spec(
        "missing_indicator",
        path,
        arrays={"features": np.asarray(est.features_, dtype=np.int64)},
        params={
            "n_features": _n_features(est),
            "missing_values": missing_marker(est),
            # In "all" mode features_ is every column and nothing is new.
            "error_on_new": bool(est.error_on_new and est.features == "missing-only"),
            "sparse": est.sparse is True,
        },
    )


@converter(TruncatedSVD)
def _truncated_svd(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    return ctx.spec("projection", path, arrays={"components": np.asarray(est.components_)})


@converter(NMF, MiniBatchNMF)
def _nmf(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    from sklearn.decomposition._nmf import _beta_loss_to_float

    minibatch = isinstance(est, MiniBatchNMF)
    seed = None
    if not minibatch and est.solver == "cd" and est.shuffle:
        if not isinstance(est.random_state, numbers.Integral):
            raise unsupported(
                est,
                f"shuffle=True with random_state={est.random_state!r} (each transform would "
                "draw from a changing random state); set an integer random_state",
            )
        seed = int(est.random_state)
    # _BaseNMF._compute_regularization for W: fixed by the number of features.
    n_features = est.components_.shape[1]
    l1_reg = n_features * est.alpha_W * est.l1_ratio
    l2_reg = n_features * est.alpha_W * (1.0 - est.l1_ratio)
    return ctx.spec(
        "nmf",
        path,
        arrays={"components": np.asarray(est.components_, dtype=np.float64)},
        params={
            "solver": "minibatch" if minibatch else est.solver,
            "beta": float(_beta_loss_to_float(est.beta_loss)),
            "tol": float(est.tol),
            "max_iter": int(est._transform_max_iter if minibatch else est.max_iter),
            "l1_reg": float(l1_reg),
            "l2_reg": float(l2_reg),
            "shuffle_seed": seed,
        },
    )


@converter(KBinsDiscretizer)
def _kbins(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    inner = [np.asarray(edges, dtype=np.float64)[1:-1] for edges in est.bin_edges_]
    dtype = None if est.dtype is None else np.dtype(est.dtype)
    if dtype not in (None, np.float32, np.float64):
        raise unsupported(est, f"dtype={est.dtype!r}")
    return ctx.spec(
        "kbins_discretizer",
        path,
        arrays={
            "edges": np.concatenate(inner),
            "offsets": np.cumsum([0, *map(len, inner)]).astype(np.int64),
        },
        params={
            "encode": est.encode,
            # null keeps the input's float dtype (float32 stays float32), as scikit-learn does
            "dtype": None if dtype is None else dtype.name,
        },
    )


@converter(TargetEncoder)
def _target_encoder(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    n_features = len(est.categories_)
    n_columns = len(est.classes_) if est.target_type_ == "multiclass" else 1
    # numbers or strings per column, as the other encoders store them
    arrays, strings, integers = _categories(est, ctx, path)
    # encodings_ lists feature 0's columns (one per class when multiclass), then feature 1's...
    encodings = [
        np.column_stack([est.encodings_[i * n_columns + c] for c in range(n_columns)])
        for i in range(n_features)
    ]
    arrays |= {
        "encodings": np.concatenate(encodings).astype(np.float64),
        "unknown": np.asarray(est.target_mean_, dtype=np.float64).reshape(n_columns),
    }
    return ctx.spec(
        "target_encoder",
        path,
        arrays=arrays,
        params={"strings": strings, "integer_columns": integers} if strings or integers else None,
        labels=est.classes_,  # None for a continuous target
    )


@converter(KNNImputer)
def _knn_imputer(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    if est.metric != "nan_euclidean":
        raise unsupported(est, f"metric={est.metric!r} (only 'nan_euclidean'; images hold no code)")
    if est.weights not in ("uniform", "distance"):
        raise unsupported(est, "a callable weights (images hold no code)")
    fit_X = np.asarray(est._fit_X, dtype=np.float64)
    mask = np.asarray(est._mask_fit_X)
    # The column means scikit-learn gives a row no fitted row compares with, as it computes
    # them (a masked mean) at every transform.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a column never present has a masked mean: NaN
        means = np.array(
            [np.ma.array(fit_X[:, c], mask=mask[:, c]).mean() for c in range(fit_X.shape[1])],
            dtype=np.float64,
        )
    indicator = None
    if est.add_indicator and est.indicator_ is not None:
        indicator = np.asarray(est.indicator_.features_, dtype=np.int64)
    return ctx.spec(
        "knn_imputer",
        path,
        arrays={
            "fit_X": fit_X,
            "means": means,
            "valid": np.flatnonzero(est._valid_mask).astype(np.int64),
            "indicator": indicator,
        },
        params={
            "missing_values": missing_marker(est),
            "n_neighbors": int(est.n_neighbors),
            "weights": est.weights,
            "keep_empty_features": bool(est.keep_empty_features),
        },
    )
