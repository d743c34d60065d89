"""Composition: Pipeline (and, with the preprocessing family, ColumnTransformer)."""

from __future__ import annotations

import numpy as np

from ._base import Executor, Spec, register
from ._input import check_finite


@register
class Pipeline(Executor):
    """Transform through every step but the last, then call the last step's method."""

    kind = "pipeline"

    def __init__(self, steps: list[Executor]) -> None:
        self.steps = steps
        self.final = steps[-1]
        self.methods = self.final.methods
        self.classes_ = self.final.classes_
        self.allow_nan = steps[0].allow_nan
        # Where a step rejects NaN that an earlier step may have passed through, check before it,
        # as scikit-learn's per-step input validation would.
        self._check_before = [
            i > 0 and not step.allow_nan and steps[i - 1].allow_nan for i, step in enumerate(steps)
        ]

    @classmethod
    def from_spec(cls, spec: Spec) -> Pipeline:
        steps = spec.children("steps")
        spec.check(len(steps) >= 1, "a pipeline needs at least one step")
        for i, step in enumerate(steps[:-1]):
            spec.check(step.supports("transform"), f"step {i} ({step.kind}) cannot transform")
        return cls(steps)

    def _through(self, X: np.ndarray, steps: list[Executor]) -> np.ndarray:
        for i, step in enumerate(steps):
            if self._check_before[i]:
                check_finite(X, allow_nan=False)
            X = step.transform(X)  # type: ignore[attr-defined]
        return X

    def _final(self, method: str, X: np.ndarray) -> np.ndarray:
        X = self._through(X, self.steps[:-1])
        if self._check_before[-1]:
            check_finite(X, allow_nan=False)
        return getattr(self.final, method)(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._final("predict", X)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self._final("predict_proba", X)

    def predict_log_proba(self, X: np.ndarray) -> np.ndarray:
        return self._final("predict_log_proba", X)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self._final("decision_function", X)

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        return self._final("score_samples", X)

    def transform(self, X: np.ndarray) -> np.ndarray:
        return self._final("transform", X)
