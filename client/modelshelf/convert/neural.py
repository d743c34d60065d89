"""MLPClassifier and MLPRegressor to ``mlp_classifier`` / ``mlp_regressor`` specs.

Weights are stored in their fitted dtype (float64, or float32 for a model fitted on float32) and
the layout the forward pass multiplies by: scikit-learn's ``coefs_[i]`` (n_in, n_out), C order.
A float32 model keeps float32 input float32 (the runtime's ``keeps_float32``) and widens the
rest, as numpy's promotion does in scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.neural_network import MLPClassifier, MLPRegressor

from ..runtime.neural import HIDDEN, REGRESSOR_OUTPUTS
from ._context import Context, converter, unsupported

# LabelBinarizer.y_type_ -> the target kinds the runtime knows, and their output activation.
_TARGETS = {"binary": "binary", "multiclass": "multiclass", "multilabel-indicator": "multilabel"}
_OUTPUT = {"binary": "logistic", "multiclass": "softmax", "multilabel": "logistic"}
_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


def _layers(est: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    if est.activation not in HIDDEN:
        raise unsupported(est, f"activation={est.activation!r}")
    arrays: dict[str, np.ndarray] = {}
    for i, (coef, intercept) in enumerate(zip(est.coefs_, est.intercepts_, strict=True)):
        coef, intercept = np.asarray(coef), np.asarray(intercept)
        if coef.dtype not in _DTYPES or intercept.dtype != coef.dtype:
            raise unsupported(
                est,
                f"layer {i} of dtypes {coef.dtype} and {intercept.dtype}",
                "fit it on float64 or float32 data",
            )
        arrays[f"coef_{i}"] = np.ascontiguousarray(coef)
        arrays[f"intercept_{i}"] = intercept
    return arrays, {"n_layers": len(est.coefs_), "activation": est.activation}


@converter(MLPClassifier)
def _mlp_classifier(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    binarizer = est._label_binarizer
    target = _TARGETS.get(binarizer.y_type_)
    if target is None:
        raise unsupported(est, f"target type {binarizer.y_type_!r}")
    if getattr(binarizer, "sparse_input_", False):
        raise unsupported(est, "a sparse multilabel target", "fit it on a dense y")
    if (binarizer.neg_label, binarizer.pos_label) != (0, 1):
        raise unsupported(
            est, f"label binarizer with labels {binarizer.neg_label, binarizer.pos_label}"
        )
    if est.out_activation_ != _OUTPUT[target]:
        raise unsupported(est, f"out_activation_={est.out_activation_!r} for a {target} target")
    arrays, params = _layers(est)
    return ctx.spec(
        "mlp_classifier",
        path,
        arrays=arrays,
        params={**params, "target": target},
        labels=est.classes_,
    )


@converter(MLPRegressor)
def _mlp_regressor(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    if est.out_activation_ not in REGRESSOR_OUTPUTS:
        raise unsupported(est, f"out_activation_={est.out_activation_!r}")
    arrays, params = _layers(est)
    return ctx.spec(
        "mlp_regressor", path, arrays=arrays, params={**params, "output": est.out_activation_}
    )
