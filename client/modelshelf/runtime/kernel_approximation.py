"""Kernel approximations: random Fourier features (RBFSampler, SkewedChi2Sampler) and the
additive chi-squared feature map (AdditiveChi2Sampler), operation for operation as
``sklearn.kernel_approximation`` computes them."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ._base import Executor, Spec, register
from ._delegate import count
from ._math import matmul
from .preprocessing import check_width
from .transformers import MAX_OUTPUT_COLUMNS

_TRANSFORM = frozenset({"transform"})


@register
class RandomFeatures(Executor):
    """``cos(X @ weights + offset) * scale``; with ``skewedness`` (SkewedChi2Sampler), X is
    first mapped to ``log(X + skewedness)`` and entries ``<= -skewedness`` are refused.

    arrays: ``weights`` f (n_features, n_components), ``offset`` f (n_components,).
    params: ``scale`` (the factor scikit-learn computes, stored as computed), ``skewedness``
    (a number, or null for RBFSampler).
    """

    kind = "random_features"
    methods = _TRANSFORM

    def __init__(
        self, weights: np.ndarray, offset: np.ndarray, scale: float, skewedness: float | None
    ) -> None:
        self.weights = weights
        self.offset = offset
        self.scale = scale
        self.skewedness = skewedness

    @classmethod
    def from_spec(cls, spec: Spec) -> RandomFeatures:
        weights = spec.array("weights", ndim=2)
        offset = spec.array("offset", ndim=1)
        spec.check(offset.shape == weights.shape[1:], "offset needs one value per component")
        scale = float(spec.param("scale", (int, float)))
        skewedness = spec.param("skewedness", (int, float, type(None)), None)
        return cls(weights, offset, scale, None if skewedness is None else float(skewedness))

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.weights.shape[0], "this kernel approximation")
        if self.skewedness is not None:
            if (-self.skewedness >= X).any():
                raise InputError("X may not contain entries smaller than -skewedness.")
            X = np.log(X + self.skewedness)
        projection = matmul(X, self.weights)
        projection += self.offset
        np.cos(projection, projection)
        projection *= self.scale
        return projection


@register
class AdditiveChi2(Executor):
    """The stateless ``AdditiveChi2Sampler`` map of non-negative X: ``sample_steps`` blocks
    (sqrt, then a cosine and a sine block per step), zero where X is zero.

    params: ``n_features``, ``sample_steps`` (>= 1), ``sample_interval`` (> 0, resolved); at
    most ``MAX_OUTPUT_COLUMNS`` output columns.
    """

    kind = "additive_chi2"
    keeps_float32 = True
    methods = _TRANSFORM

    def __init__(self, n_features: int, steps: int, interval: float) -> None:
        self.n_features = n_features
        self.steps = steps
        self.interval = interval

    @classmethod
    def from_spec(cls, spec: Spec) -> AdditiveChi2:
        n = count(spec, "n_features", 1)
        steps = count(spec, "sample_steps", 1, 1024)
        interval = float(spec.param("sample_interval", (int, float)))
        spec.check(interval > 0, "sample_interval must be positive")
        spec.check(
            n * (2 * steps - 1) <= MAX_OUTPUT_COLUMNS,
            f"{n} features in {steps} steps exceed {MAX_OUTPUT_COLUMNS} output columns",
        )
        return cls(n, steps, interval)

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.n_features, "this AdditiveChi2Sampler")
        if (X < 0).any():
            raise InputError("Negative values in data passed to AdditiveChi2Sampler.transform")
        # AdditiveChi2Sampler._transform_dense
        non_zero = X != 0.0
        X_nz = X[non_zero]
        X_step = np.zeros_like(X)
        X_step[non_zero] = np.sqrt(X_nz * self.interval)
        X_new = [X_step]
        log_step_nz = self.interval * np.log(X_nz)
        step_nz = 2 * X_nz * self.interval
        for j in range(1, self.steps):
            factor_nz = np.sqrt(step_nz / np.cosh(np.pi * j * self.interval))
            X_step = np.zeros_like(X)
            X_step[non_zero] = factor_nz * np.cos(j * log_step_nz)
            X_new.append(X_step)
            X_step = np.zeros_like(X)
            X_step[non_zero] = factor_nz * np.sin(j * log_step_nz)
            X_new.append(X_step)
        return np.hstack(X_new)
