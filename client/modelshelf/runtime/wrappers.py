"""Dummy estimators and TransformedTargetRegressor.

``dummy_classifier`` answers one stored label and one stored probability row for every sample
(the deterministic strategies of DummyClassifier); ``dummy_regressor`` one stored row of
constants. ``transformed_target`` predicts with its regressor, then applies the inverse of the
target transformer, stored as elementwise steps in scikit-learn's order: subtract, divide,
multiply, add (each optional).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ManifestError
from ._base import Executor, Spec, register
from ._delegate import call, hand_on_objects

_INVERSE_STEPS = ("sub", "div", "mul", "add")


@register
class DummyClassifier(Executor):
    """arrays: ``proba`` f (k,), labels (k,); params: ``label`` (a one-label list, the
    prediction, encoded as labels are)."""

    kind = "dummy_classifier"
    methods = frozenset({"predict", "predict_proba", "predict_log_proba"})
    allow_nan = True  # DummyClassifier never looks at X's values

    def __init__(self, classes: np.ndarray, proba: np.ndarray, label: np.ndarray) -> None:
        self.classes_ = classes
        self.proba = proba
        self.label = label

    @classmethod
    def from_spec(cls, spec: Spec) -> DummyClassifier:
        classes = spec.labels()
        proba = spec.array("proba", ndim=1)
        label = spec.labels("label")
        spec.check(len(classes) >= 1 and proba.shape == (len(classes),), "one proba per class")
        spec.check(label.shape == (1,), "label must hold one value")
        return cls(classes, proba, label)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.tile(self.label, len(X))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.ones((len(X), 1)) * self.proba

    def predict_log_proba(self, X: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))


@register
class DummyRegressor(Executor):
    """arrays: ``constant`` (1, k); params: ``ravel`` bool (one output: predict is 1-D)."""

    kind = "dummy_regressor"
    methods = frozenset({"predict"})
    allow_nan = True

    def __init__(self, constant: np.ndarray, ravel: bool) -> None:
        self.constant = constant
        self.ravel = ravel

    @classmethod
    def from_spec(cls, spec: Spec) -> DummyRegressor:
        constant = spec.array("constant", ndim=2, kind="biuf")
        ravel = spec.param("ravel", bool)
        spec.check(constant.shape[0] == 1 and constant.shape[1] >= 1, "constant must be (1, k)")
        spec.check(not ravel or constant.shape[1] == 1, "only one output can be raveled")
        return cls(constant, ravel)

    def predict(self, X: np.ndarray) -> np.ndarray:
        y = np.full((len(X), self.constant.shape[1]), self.constant, dtype=self.constant.dtype)
        return np.ravel(y) if self.ravel else y


@register
class TransformedTarget(Executor):
    """params: ``regressor`` (a component), ``squeeze`` bool (the target was 1-D at fit);
    arrays: ``sub``, ``div``, ``mul``, ``add`` f (targets,), each optional."""

    kind = "transformed_target"
    methods = frozenset({"predict"})

    def __init__(self, regressor: Executor, steps: list[tuple[str, np.ndarray]], squeeze: bool):
        self.regressor = regressor
        self.steps = steps
        self.squeeze = squeeze
        self.allow_nan = regressor.allow_nan
        hand_on_objects(self, [regressor])

    @classmethod
    def from_spec(cls, spec: Spec) -> TransformedTarget:
        regressor = spec.child("regressor")
        spec.check(regressor.supports("predict"), f"regressor ({regressor.kind}) cannot predict")
        squeeze = spec.param("squeeze", bool)
        steps = []
        for name in _INVERSE_STEPS:
            arr = spec.array(name, ndim=1, optional=True)
            if arr is not None:
                steps.append((name, arr))
        widths = {len(arr) for _, arr in steps}
        spec.check(len(widths) <= 1, "the inverse steps must have one width")
        return cls(regressor, steps, squeeze)

    def predict(self, X: np.ndarray) -> Any:
        pred = np.asarray(call(self.regressor, "predict", X))
        Y = pred.reshape(-1, 1) if pred.ndim == 1 else pred
        Y = np.array(Y, dtype=np.float64)  # inverse_transform works on a float copy
        for name, arr in self.steps:
            if Y.shape[1] != len(arr):
                raise ManifestError(f"the regressor gives {Y.shape[1]} targets, not {len(arr)}")
            if name == "sub":
                Y -= arr
            elif name == "div":
                Y /= arr
            elif name == "mul":
                Y *= arr
            else:
                Y += arr
        if self.squeeze and Y.ndim == 2 and Y.shape[1] == 1:
            Y = Y.squeeze(axis=1)
        return Y
