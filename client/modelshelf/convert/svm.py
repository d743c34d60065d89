"""Kernel SVMs (SVC, NuSVC, SVR, NuSVR, OneClassSVM) to ``svm`` specs.

The image keeps libsvm's model exactly as scikit-learn hands it to libsvm at predict time
(``_dual_coef_``, ``_intercept_``, ``_n_support``, ``_probA``/``_probB``, the fitted ``_gamma``),
so the runtime repeats libsvm's arithmetic rather than scikit-learn's public, sign-flipped view.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.svm import SVC, SVR, NuSVC, NuSVR, OneClassSVM

from ._context import Context, converter, unsupported

_KERNELS = ("linear", "poly", "rbf", "sigmoid")


def _libsvm_arrays(est: Any) -> dict[str, Any]:
    if not isinstance(est.kernel, str) or est.kernel not in _KERNELS:
        raise unsupported(
            est,
            f"kernel={est.kernel!r} (the kernel must be one of {', '.join(_KERNELS)}; for a "
            "precomputed or callable kernel, compile a model on explicit features instead)",
        )
    if est._sparse:
        raise unsupported(est, "a model fitted on a sparse matrix (fit it on a dense array)")
    return {
        "support_vectors": np.asarray(est.support_vectors_, dtype=np.float64),
        "dual_coef": np.asarray(est._dual_coef_, dtype=np.float64),
        "intercept": np.asarray(est._intercept_, dtype=np.float64),
    }


def _kernel_params(est: Any, svm_type: str) -> dict[str, Any]:
    return {
        "svm_type": svm_type,
        "kernel": est.kernel,
        "gamma": float(est._gamma),
        "coef0": float(est.coef0),
        "degree": int(est.degree),
    }


@converter(SVC, NuSVC)
def _classifier(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    arrays = _libsvm_arrays(est)
    arrays["n_support"] = np.asarray(est._n_support, dtype=np.int64)
    if est.break_ties and est.decision_function_shape == "ovo":
        raise unsupported(
            est,
            "break_ties=True with decision_function_shape='ovo' (scikit-learn cannot predict "
            "with it either; use decision_function_shape='ovr')",
        )
    if hasattr(est, "predict_proba") and est._probA.size:
        arrays["prob_a"] = np.asarray(est._probA, dtype=np.float64)
        arrays["prob_b"] = np.asarray(est._probB, dtype=np.float64)
    params = _kernel_params(est, "classifier")
    params["decision_shape"] = est.decision_function_shape
    params["break_ties"] = bool(est.break_ties)
    return ctx.spec("svm", path, arrays=arrays, params=params, labels=est.classes_)


@converter(SVR, NuSVR)
def _regressor(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    return ctx.spec(
        "svm", path, arrays=_libsvm_arrays(est), params=_kernel_params(est, "regressor")
    )


@converter(OneClassSVM)
def _one_class(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    params = _kernel_params(est, "one_class")
    params["offset"] = float(np.asarray(est.offset_).reshape(-1)[0])
    return ctx.spec("svm", path, arrays=_libsvm_arrays(est), params=params)
