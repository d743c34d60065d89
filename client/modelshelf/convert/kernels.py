"""KernelRidge and Nystroem to ``kernel_ridge`` / ``nystroem`` specs: the basis rows and the
kernel's parameters as scikit-learn's kernel functions resolve them (``runtime/kernels.py``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.kernel_approximation import Nystroem
from sklearn.kernel_ridge import KernelRidge
from sklearn.metrics.pairwise import KERNEL_PARAMS
from sklearn.preprocessing import normalize
from sklearn.utils.extmath import row_norms

from ._context import Context, converter
from ._delegate import refuse

_KERNELS = ("linear", "poly", "polynomial", "rbf", "sigmoid", "laplacian", "cosine", "chi2")


def _kernel(est: Any, ctx: Context, path: str, basis: Any, given: dict[str, Any]) -> dict[str, Any]:
    """The kernel's params and arrays; ``given`` holds the parameters the estimator passes to
    ``pairwise_kernels`` (absent or None: the kernel function's default)."""
    name = est.kernel
    if callable(name) or name not in _KERNELS:
        raise refuse(
            est,
            f"kernel={name!r} (a callable or precomputed kernel cannot be compiled)",
            f"use one of {', '.join(_KERNELS)}",
        )
    if hasattr(basis, "toarray"):
        basis = basis.toarray()
    basis = np.asarray(basis, dtype=np.float64)
    given = {k: v for k, v in given.items() if k in KERNEL_PARAMS[name] and v is not None}
    # The defaults of sklearn.metrics.pairwise's kernel functions.
    default_gamma = 1.0 if name == "chi2" else 1.0 / basis.shape[1]
    degree = given.get("degree", 3)
    params = {
        "kernel": name,
        "gamma": float(given.get("gamma", default_gamma)),
        # ``K **= degree``: an int exponent and a float one may round apart.
        "degree": int(degree) if isinstance(degree, (int, np.integer)) else float(degree),
        "coef0": float(given.get("coef0", 1)),
    }
    arrays: dict[str, Any] = {"basis": basis}
    if name == "rbf":
        arrays["basis_norms"] = row_norms(basis, squared=True)
    if name == "cosine":
        arrays["basis"] = normalize(basis, copy=True)
    return {"arrays": arrays, "params": params}


@converter(KernelRidge)
def _kernel_ridge(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    given = {"gamma": est.gamma, "degree": est.degree, "coef0": est.coef0}
    kernel = _kernel(est, ctx, path, est.X_fit_, given)
    dual_coef = np.asarray(est.dual_coef_, dtype=np.float64)
    return ctx.spec(
        "kernel_ridge",
        path,
        arrays={**kernel["arrays"], "dual_coef": dual_coef},
        params=kernel["params"],
    )


@converter(Nystroem)
def _nystroem(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    given = dict(est.kernel_params or {})
    given.update(
        {k: getattr(est, k) for k in ("gamma", "degree", "coef0") if getattr(est, k) is not None}
    )
    kernel = _kernel(est, ctx, path, est.components_, given)
    normalization = np.asarray(est.normalization_, dtype=np.float64)
    return ctx.spec(
        "nystroem",
        path,
        arrays={**kernel["arrays"], "normalization": normalization},
        params=kernel["params"],
    )
