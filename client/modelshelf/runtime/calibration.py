"""Probability calibration and decision thresholds over a child classifier.

``calibrated_classifier`` is CalibratedClassifierCV: each member is a fitted classifier whose
scores (decision_function, else predict_proba) go through one calibrator per class, sigmoid
(``expit(-(a * s + b))``) or isotonic (clipped linear interpolation); binary members fill the
positive class and its complement, multiclass members are normalised as scikit-learn does
(uniform where every calibrator answered zero); the members' probabilities are averaged.

``threshold_classifier`` is FixedThresholdClassifier and TunedThresholdClassifierCV: the
positive class's score against a stored threshold; other methods are the child's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ManifestError
from ._base import Executor, Spec, build, method_set, register
from ._delegate import call, hand_on_objects, methods_param
from ._math import expit

_RESPONSES = ("decision_function", "predict_proba")


@dataclass(frozen=True)
class _Member:
    """One calibrated classifier: the child, where its calibrators write, and them."""

    estimator: Executor
    response: str
    binary_scores: bool  # predict_proba of a 2-class child: the positive column only
    targets: np.ndarray  # class index each calibrator fills
    sigmoid: tuple[np.ndarray, np.ndarray] | None  # a, b
    isotonic: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None  # x, y, offsets, bounds


def _member(spec: Spec, i: int, raw: Any, k: int) -> _Member:
    if not isinstance(raw, dict):
        spec.fail(f"members[{i}] must be an object")
    estimator = build(raw.get("estimator"), spec.arrays, f"{spec.path}.members[{i}].estimator")
    spec.built.append(estimator)
    response = raw.get("response")
    method = raw.get("method")
    if response not in _RESPONSES or not estimator.supports(response):
        spec.fail(f"members[{i}]: cannot score by {response!r} ({estimator.kind})")
    targets = spec.array(f"targets_{i}", ndim=1, kind="iu")
    n = len(targets)
    if n == 0 or int(targets.min()) < 0 or int(targets.max()) >= k:
        spec.fail(f"members[{i}]: calibrators must target classes in [0, {k})")
    child_classes = estimator.classes_
    binary_scores = (
        response == "predict_proba"
        and isinstance(child_classes, np.ndarray)
        and len(child_classes) == 2
    )
    if method == "sigmoid":
        a = spec.array(f"a_{i}", ndim=1)
        b = spec.array(f"b_{i}", ndim=1)
        spec.check(a.shape == b.shape == (n,), f"members[{i}]: one a and b per calibrator")
        return _Member(estimator, response, binary_scores, targets, (a, b), None)
    if method == "isotonic":
        x = spec.array(f"x_{i}", ndim=1)
        y = spec.array(f"y_{i}", ndim=1)
        offsets = spec.array(f"offsets_{i}", ndim=1, kind="iu")
        bounds = spec.array(f"bounds_{i}", ndim=2)
        spec.check(x.shape == y.shape, f"members[{i}]: x and y must match")
        spec.check(bounds.shape == (n, 2), f"members[{i}]: one (min, max) per calibrator")
        spec.check(offsets.shape == (n + 1,), f"members[{i}]: offsets must hold {n + 1} values")
        steps = np.diff(offsets.astype(np.int64))
        spec.check(
            int(offsets[0]) == 0 and int(offsets[-1]) == len(x) and bool(np.all(steps >= 1)),
            f"members[{i}]: offsets must rise from 0 to {len(x)}",
        )
        return _Member(estimator, response, binary_scores, targets, None, (x, y, offsets, bounds))
    spec.fail(f"members[{i}]: method {method!r} is not sigmoid or isotonic")


def _isotonic(T: np.ndarray, x: np.ndarray, y: np.ndarray, low: float, high: float) -> Any:
    """IsotonicRegression(out_of_bounds="clip").predict: clip, then SciPy's interp1d, which
    delegates to np.interp (NaN outside the thresholds, which the clip prevents)."""
    T = np.clip(T, low, high)
    if len(y) == 1:
        return y.repeat(T.shape)
    out = np.interp(T, x, y)
    out[(x[0] > T) | (x[-1] < T)] = np.nan
    return out


@register
class CalibratedClassifier(Executor):
    """params: ``members``: list of ``{"estimator": component, "response": decision_function
    or predict_proba, "method": sigmoid or isotonic}``; labels. arrays per member i:
    ``targets_<i>`` i/u (calibrators,): the class each calibrator fills; sigmoid: ``a_<i>``,
    ``b_<i>`` f (calibrators,); isotonic: ``x_<i>``, ``y_<i>`` f (total,) the thresholds of all
    calibrators one after another, ``offsets_<i>`` i/u (calibrators + 1,) where each starts,
    ``bounds_<i>`` f (calibrators, 2) the clip range."""

    kind = "calibrated_classifier"
    methods = frozenset({"predict", "predict_proba"})

    def __init__(self, members: list[_Member], classes: np.ndarray) -> None:
        self.members = members
        self.classes_ = self.labels = classes
        self.allow_nan = all(m.estimator.allow_nan for m in members)
        hand_on_objects(self, [m.estimator for m in members])

    @classmethod
    def from_spec(cls, spec: Spec) -> CalibratedClassifier:
        classes = spec.labels()
        k = len(classes)
        spec.check(k >= 2, "calibration needs at least 2 classes")
        raw = spec.param("members", list)
        spec.check(len(raw) >= 1, "no member")
        return cls([_member(spec, i, r, k) for i, r in enumerate(raw)], classes)

    def _member_proba(self, m: _Member, X: np.ndarray) -> np.ndarray:
        scores = np.asarray(call(m.estimator, m.response, X))
        if m.binary_scores:
            scores = scores[:, -1]
        if scores.ndim == 1:
            scores = scores.reshape(-1, 1)
        k = len(self.labels)
        n_cal = len(m.targets)
        if scores.shape[1] < n_cal:
            raise ManifestError(f"{m.estimator.kind} gave {scores.shape[1]} scores, not {n_cal}")
        proba = np.zeros((len(X), k))
        for j in range(n_cal):
            column = scores[:, j]
            if m.sigmoid is not None:
                a, b = m.sigmoid
                proba[:, m.targets[j]] = expit(-(a[j] * column + b[j]))
            else:
                x, y, offsets, bounds = m.isotonic  # type: ignore[misc]
                part = slice(int(offsets[j]), int(offsets[j + 1]))
                proba[:, m.targets[j]] = _isotonic(
                    column, x[part], y[part], bounds[j, 0], bounds[j, 1]
                )
        if k == 2:
            proba[:, 0] = 1.0 - proba[:, 1]
        else:
            denominator = np.sum(proba, axis=1)[:, np.newaxis]
            uniform = np.full_like(proba, 1 / k)
            proba = np.divide(proba, denominator, out=uniform, where=denominator != 0)
        proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
        return proba

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        mean = np.zeros((len(X), len(self.labels)))
        for m in self.members:
            mean += self._member_proba(m, X)
        mean /= len(self.members)
        return mean

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.labels.take(np.argmax(self.predict_proba(X), axis=1), axis=0)


@register
class ThresholdClassifier(Executor):
    """params: ``estimator`` (a binary classifier), ``response`` (predict_proba or
    decision_function), ``column`` int (the positive class's predict_proba column),
    ``negate`` bool (the positive class is the child's first: its decision is negated),
    ``threshold`` number, ``map`` [negative, positive] class indices, ``methods`` (the
    child's methods the wrapper exposes, besides predict)."""

    kind = "threshold_classifier"

    def __init__(
        self,
        estimator: Executor,
        response: str,
        column: int,
        negate: bool,
        threshold: float,
        label_map: np.ndarray,
        classes: np.ndarray,
    ) -> None:
        self.estimator = estimator
        self.classes_ = self.labels = classes
        self.response = response
        self.column = column
        self.negate = negate
        self.threshold = threshold
        self.label_map = label_map
        self.allow_nan = estimator.allow_nan
        hand_on_objects(self, [estimator])

    @classmethod
    def from_spec(cls, spec: Spec) -> ThresholdClassifier:
        estimator = spec.child("estimator")
        classes = estimator.classes_
        if not isinstance(classes, np.ndarray) or len(classes) != 2:
            spec.fail(f"the estimator ({estimator.kind}) must be a binary classifier")
        response = spec.choice("response", _RESPONSES)
        spec.check(estimator.supports(response), f"the estimator has no {response}")
        column = spec.param("column", int)
        spec.check(column in (0, 1), f"column must be 0 or 1, found {column}")
        threshold = spec.param("threshold", (int, float))
        raw_map = spec.param("map", list)
        spec.check(
            len(raw_map) == 2 and all(type(v) is int and v in (0, 1) for v in raw_map),
            "map must hold two class indices",
        )
        methods = methods_param(
            spec, ("predict_proba", "predict_log_proba", "decision_function"), [estimator]
        )
        out = cls(
            estimator,
            response,
            column,
            spec.param("negate", bool),
            float(threshold),
            np.asarray(raw_map, dtype=np.intp),
            classes,
        )
        out.methods = method_set({"predict", *methods})
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        score = np.asarray(call(self.estimator, self.response, X))
        if self.response == "predict_proba":
            score = score[:, self.column]
        elif self.negate:
            score = -1 * score
        indices = self.label_map[(score >= self.threshold).astype(int)]
        return self.labels[indices]

    def predict_proba(self, X: np.ndarray) -> Any:
        return call(self.estimator, "predict_proba", X)

    def predict_log_proba(self, X: np.ndarray) -> Any:
        return call(self.estimator, "predict_log_proba", X)

    def decision_function(self, X: np.ndarray) -> Any:
        return call(self.estimator, "decision_function", X)
