"""Non-linear feature maps to specs: PowerTransformer, QuantileTransformer, SplineTransformer.

PowerTransformer keeps its fitted lambdas and its inner scaler's mean and scale;
QuantileTransformer its quantiles and references, and the clip bounds of its normal output
(computed here by SciPy, as scikit-learn computes them at every transform); SplineTransformer
its knots and, for constant or linear extrapolation, the basis values and slopes at the
boundary knots, evaluated here with the fitted ``BSpline`` objects themselves.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.preprocessing import PowerTransformer, QuantileTransformer, SplineTransformer

from ..runtime.splines import edge_degrees
from ._context import Context, converter, unsupported


def _f64(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


@converter(PowerTransformer)
def _power(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    scaler = est._scaler if est.standardize else None
    return ctx.spec(
        "power_transformer",
        path,
        arrays={
            "lambdas": _f64(est.lambdas_),
            "mean": None if scaler is None else _f64(scaler.mean_),
            "scale": None if scaler is None else _f64(scaler.scale_),
        },
        params={"method": est.method},
    )


@converter(QuantileTransformer)
def _quantile(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    from scipy import stats
    from sklearn.preprocessing._data import BOUNDS_THRESHOLD

    # QuantileTransformer._transform_col's clip of the normal output, in scikit-learn's words.
    clip_min = stats.norm.ppf(BOUNDS_THRESHOLD - np.spacing(1))
    clip_max = stats.norm.ppf(1 - (BOUNDS_THRESHOLD - np.spacing(1)))
    return ctx.spec(
        "quantile_transformer",
        path,
        arrays={"quantiles": _f64(est.quantiles_), "references": _f64(est.references_)},
        params={
            "distribution": est.output_distribution,
            "clip": [float(clip_min), float(clip_max)],
        },
    )


@converter(SplineTransformer)
def _spline(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    if est.sparse_output:
        raise unsupported(est, "sparse_output=True (compile it with sparse_output=False)")
    splines = est.bsplines_
    degree = int(est.degree)
    arrays: dict[str, Any] = {"knots": np.stack([_f64(spl.t) for spl in splines])}
    if est.extrapolation in ("constant", "linear"):
        edges = edge_degrees(degree, len(splines), est.extrapolation)
        ends = [(spl, spl.t[d], spl.t[-d - 1]) for spl, d in zip(splines, edges, strict=True)]
        arrays["f_min"] = np.stack([spl(lo) for spl, lo, _ in ends])
        arrays["f_max"] = np.stack([spl(hi) for spl, _, hi in ends])
        if est.extrapolation == "linear":
            arrays["fp_min"] = np.stack([spl(lo, nu=1) for spl, lo, _ in ends])
            arrays["fp_max"] = np.stack([spl(hi, nu=1) for spl, _, hi in ends])
    return ctx.spec(
        "spline_transformer",
        path,
        arrays={role: _f64(value) for role, value in arrays.items()},
        params={
            "degree": degree,
            "n_splines": int(splines[0].c.shape[1]),
            "extrapolation": est.extrapolation,
            "include_bias": bool(est.include_bias),
            "zeros_for_missing": est.handle_missing == "zeros",
        },
    )
