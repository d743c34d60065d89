"""Preprocessing transformers: scalers, normalizer, imputer, PCA, one-hot encoding."""

from __future__ import annotations

import numpy as np

from ._base import Executor, Spec, register


@register
class StandardScaler(Executor):
    kind = "standard_scaler"
    methods = frozenset({"transform"})
    allow_nan = True  # scikit-learn's scalers pass NaN through

    def __init__(self, mean: np.ndarray | None, scale: np.ndarray | None) -> None:
        self.mean = mean
        self.scale = scale

    @classmethod
    def from_spec(cls, spec: Spec) -> StandardScaler:
        return cls(
            spec.array("mean", ndim=1, optional=True), spec.array("scale", ndim=1, optional=True)
        )

    def transform(self, X: np.ndarray) -> np.ndarray:
        out = X.copy()
        if self.mean is not None:
            out -= self.mean
        if self.scale is not None:
            out /= self.scale
        return out
