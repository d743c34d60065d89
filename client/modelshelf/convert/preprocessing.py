"""Preprocessing transformers to specs: scalers, Normalizer, SimpleImputer, PCA (encoders:
encoders.py).

Whatever scikit-learn would recompute at every transform (PCA's centred offset, whitening
scale and precision matrix) is computed here once, with scikit-learn's own operations, and
stored ready for the kernel.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import (
    MaxAbsScaler,
    MinMaxScaler,
    Normalizer,
    RobustScaler,
    StandardScaler,
)

from ._context import Context, converter, unsupported


def _f64(value: Any) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.float64)


def _scaler(
    est: Any,
    ctx: Context,
    path: str,
    *,
    center: Any = None,
    scale: Any = None,
    factor: Any = None,
    offset: Any = None,
    clip: tuple[float, float] | None = None,
    float32: str = "mixed",
) -> dict[str, Any]:
    arrays = {"center": center, "scale": scale, "factor": factor, "offset": offset}
    # float32 input keeps its dtype; StandardScaler casts its arrays to it first.
    params: dict[str, Any] = {"n_features": int(est.n_features_in_), "float32": float32}
    if clip is not None:
        params["clip"] = [float(clip[0]), float(clip[1])]
    return ctx.spec("scaler", path, arrays={k: _f64(v) for k, v in arrays.items()}, params=params)


@converter(StandardScaler)
def _standard_scaler(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    # mean_ is fitted even with with_mean=False; transform uses it only when with_mean is set.
    return _scaler(
        est,
        ctx,
        path,
        center=est.mean_ if est.with_mean else None,
        scale=est.scale_ if est.with_std else None,
        float32="cast",
    )


@converter(RobustScaler)
def _robust_scaler(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    return _scaler(
        est,
        ctx,
        path,
        center=est.center_ if est.with_centering else None,
        scale=est.scale_ if est.with_scaling else None,
    )


@converter(MaxAbsScaler)
def _max_abs_scaler(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    clip = (-1.0, 1.0) if getattr(est, "clip", False) else None
    return _scaler(est, ctx, path, scale=est.scale_, clip=clip)


@converter(MinMaxScaler)
def _min_max_scaler(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    clip = (est.feature_range[0], est.feature_range[1]) if est.clip else None
    return _scaler(est, ctx, path, factor=est.scale_, offset=est.min_, clip=clip)


@converter(Normalizer)
def _normalizer(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    if est.norm not in ("l1", "l2", "max"):
        raise unsupported(est, f"norm={est.norm!r}", "use 'l1', 'l2' or 'max'")
    return ctx.spec(
        "normalizer", path, params={"n_features": int(est.n_features_in_), "norm": est.norm}
    )


@converter(SimpleImputer)
def _simple_imputer(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    marker = est.missing_values
    fill_dtype = np.dtype(getattr(est, "_fill_dtype", np.float64))
    statistics = np.asarray(est.statistics_)
    if fill_dtype.kind == "O":
        return _string_imputer(est, ctx, path, statistics)
    if isinstance(marker, float) and math.isnan(marker):
        missing = None
    elif (
        isinstance(marker, numbers.Real)
        and not isinstance(marker, bool)
        and math.isfinite(float(marker))
    ):
        missing = float(marker)
    else:
        raise unsupported(
            est, f"missing_values={marker!r}", "mark missing values with NaN or a finite number"
        )
    if fill_dtype.kind not in "iuf":
        raise unsupported(
            est, f"imputing data of dtype {fill_dtype}", "fit it on numbers or strings"
        )
    try:
        as_float = statistics.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise unsupported(
            est, f"fill values {statistics[:5]!r}", "fill numeric columns with numbers"
        ) from exc
    # Columns scikit-learn saw no value in have a NaN statistic: dropped unless kept as empty.
    keep = None
    valid = np.ones(len(statistics), dtype=bool)
    if not est.keep_empty_features:
        valid = ~np.isnan(as_float)
        if not valid.all():
            keep = np.flatnonzero(valid).astype(np.int64)
    # scikit-learn casts the fill values to the fitted input's dtype (ints truncate).
    fill = statistics[valid].astype(fill_dtype).astype(np.float64)
    indicator = None
    if est.add_indicator and est.indicator_ is not None:
        indicator = np.asarray(est.indicator_.features_, dtype=np.int64)
    return ctx.spec(
        "simple_imputer",
        path,
        arrays={"fill": fill, "keep": keep, "indicator": indicator},
        params={"n_features": int(est.n_features_in_), "missing_values": missing},
    )


def _string_imputer(est: Any, ctx: Context, path: str, statistics: np.ndarray) -> dict[str, Any]:
    """SimpleImputer fitted on objects (strings): fill values are JSON strings or numbers."""
    marker = est.missing_values
    if not (isinstance(marker, float) and math.isnan(marker)):
        raise unsupported(
            est, f"missing_values={est.missing_values!r} on strings", "mark them with NaN"
        )
    # As transform: a statistic that is NaN (a column without any value) drops the column.
    values = statistics.tolist()
    valid = np.array([not (isinstance(v, float) and math.isnan(v)) for v in values], dtype=bool)
    if est.keep_empty_features:
        valid[:] = True
    fill = [values[j] for j in np.flatnonzero(valid)]
    for value in fill:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise unsupported(est, f"the fill value {value!r}", "fill with strings or numbers")
        if isinstance(value, float) and not math.isfinite(value):
            raise unsupported(est, f"the fill value {value!r}", "fill with a finite value")
    keep = None if valid.all() else np.flatnonzero(valid).astype(np.int64)
    ctx.takes_strings = True
    indicator = None
    if est.add_indicator and est.indicator_ is not None:
        indicator = np.asarray(est.indicator_.features_, dtype=np.int64)
    return ctx.spec(
        "simple_imputer",
        path,
        arrays={"keep": keep, "indicator": indicator},
        params={
            "n_features": int(est.n_features_in_),
            "missing_values": None,
            "fill_values": [v if isinstance(v, str) else float(v) for v in fill],
        },
    )


@converter(PCA)
def _pca(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    from sklearn.utils.extmath import fast_logdet

    # The same operations, on the same arrays, as PCA._transform and PCA.score_samples.
    offset = np.reshape(est.mean_, (1, -1)) @ est.components_.T
    scale = None
    if est.whiten:
        scale = np.sqrt(est.explained_variance_)
        min_scale = np.finfo(scale.dtype).eps
        scale[scale < min_scale] = min_scale
    arrays: dict[str, Any] = {
        "components": _f64(est.components_),
        "offset": _f64(offset.reshape(-1)),
        "scale": _f64(scale),
    }
    try:
        with warnings.catch_warnings():
            # An ill-conditioned inverse warns; the image holds the very same matrix.
            warnings.simplefilter("ignore")
            precision = est.get_precision()
    except np.linalg.LinAlgError:
        precision = None  # singular covariance: scikit-learn's score_samples raises too
    if precision is not None:
        n_features = est.components_.shape[1]
        log_norm = 0.5 * (n_features * math.log(2.0 * np.pi) - fast_logdet(precision))
        arrays |= {
            "mean": _f64(est.mean_),
            "precision": _f64(precision),
            "log_norm": np.array([log_norm], dtype=np.float64),
        }
    return ctx.spec("pca", path, arrays=arrays)
