"""Cross decomposition (PLSRegression, PLSCanonical, CCA, PLSSVD): the X side of the fitted
model, as ``_PLS.transform`` / ``PLSSVD.transform`` and ``_PLS.predict`` compute it."""

from __future__ import annotations

import numpy as np

from ._base import Executor, Spec, register
from ._math import matmul
from .preprocessing import check_width


@register
class PLS(Executor):
    """transform = ``((X - x_mean) / x_std) @ rotations``; predict (when ``coef`` is stored)
    = ``(X - x_mean) @ coef.T + intercept``, raveled for a 1-D training target.

    arrays: ``x_mean``, ``x_std`` f (n,); ``rotations`` f (n, c) (``x_rotations_``, PLSSVD's
    ``x_weights_``); ``coef`` f (t, n) and ``intercept`` f (t,), optional together.
    params: ``predict_1d`` bool.
    """

    kind = "pls"
    # scikit-learn centres and scales float32 input in place, in float32, whatever the fit
    float32_differs = "a PLS model (scikit-learn centres it in place, in float32)"

    def __init__(
        self,
        mean: np.ndarray,
        std: np.ndarray,
        rotations: np.ndarray,
        coef: np.ndarray | None,
        intercept: np.ndarray | None,
        predict_1d: bool,
    ) -> None:
        self.mean = mean
        self.std = std
        self.rotations = rotations
        self.coef = coef
        self.intercept = intercept
        self.predict_1d = predict_1d
        self.methods = frozenset({"transform"} if coef is None else {"transform", "predict"})

    @classmethod
    def from_spec(cls, spec: Spec) -> PLS:
        rotations = spec.array("rotations", ndim=2)
        n = rotations.shape[0]
        mean = spec.array("x_mean", ndim=1)
        std = spec.array("x_std", ndim=1)
        spec.check(n >= 1 and mean.shape == std.shape == (n,), f"x_mean and x_std need {n} values")
        coef = spec.array("coef", ndim=2, optional=True)
        intercept = spec.array("intercept", ndim=1, optional=True)
        spec.check((coef is None) == (intercept is None), "coef and intercept come together")
        if coef is not None:
            spec.check(
                coef.shape[1] == n and intercept.shape == coef.shape[:1],
                f"coef must be (targets, {n}) with one intercept per target",
            )
        return cls(mean, std, rotations, coef, intercept, spec.param("predict_1d", bool, False))

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.mean.shape[0], "this cross decomposition")
        return matmul((X - self.mean) / self.std, self.rotations)

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.mean.shape[0], "this cross decomposition")
        y_pred = matmul(X - self.mean, self.coef.T) + self.intercept  # type: ignore[union-attr]
        return y_pred.ravel() if self.predict_1d else y_pred
