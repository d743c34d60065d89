"""Discriminant analysis (LinearDiscriminantAnalysis, QuadraticDiscriminantAnalysis) to
``lda`` / ``qda`` specs.

QDA's per-class whitening matrices and log-determinants are formed here once with the very
expressions ``QuadraticDiscriminantAnalysis._decision_function`` evaluates at every call.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.discriminant_analysis import (
    LinearDiscriminantAnalysis,
    QuadraticDiscriminantAnalysis,
)

from ._context import Context, converter, unsupported


@converter(LinearDiscriminantAnalysis)
def _lda(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    coef = np.asarray(est.coef_, dtype=np.float64)
    intercept = np.asarray(est.intercept_, dtype=np.float64).reshape(-1)
    scalings = xbar = None
    if est.solver in ("svd", "eigen"):  # "lsqr" has no transform, in scikit-learn too
        scalings = np.ascontiguousarray(est.scalings_[:, : est._max_components], dtype=np.float64)
        if est.solver == "svd":
            xbar = np.asarray(est.xbar_, dtype=np.float64)
    return ctx.spec(
        "lda",
        path,
        arrays={"coef": coef, "intercept": intercept, "scalings": scalings, "xbar": xbar},
        labels=est.classes_,
    )


@converter(QuadraticDiscriminantAnalysis)
def _qda(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    shapes = {np.shape(r) for r in est.rotations_}
    if len(shapes) != 1:
        raise unsupported(est, f"classes of different ranks (rotations of shapes {sorted(shapes)})")
    whitening = np.stack(
        [R * (S ** (-0.5)) for R, S in zip(est.rotations_, est.scalings_, strict=True)]
    )
    log_det = np.asarray([np.sum(np.log(s)) for s in est.scalings_], dtype=np.float64)
    return ctx.spec(
        "qda",
        path,
        arrays={
            "means": np.asarray(est.means_, dtype=np.float64),
            "whitening": whitening.astype(np.float64),
            "log_det": log_det,
            "log_prior": np.log(np.asarray(est.priors_, dtype=np.float64)),
        },
        labels=est.classes_,
    )
