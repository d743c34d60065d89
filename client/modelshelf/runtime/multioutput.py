"""Several outputs from child executors: MultiOutputClassifier/Regressor, ClassifierChain,
RegressorChain, and OneVsOneClassifier.

``multi_output`` predicts every output with its own child. ``chain`` feeds each child the
input and the earlier children's answers (by ``feature_method``) and puts the outputs back
in ``order``. ``one_vs_one`` combines pairwise votes and confidences by scikit-learn's
``_ovr_decision_function``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._base import Executor, Spec, method_set, register
from ._delegate import (
    PREDICTING,
    all_allow_nan,
    call,
    count,
    hand_on_objects,
    methods_param,
    response,
    same_shape,
)
from .preprocessing import check_width

_SCORES = ("decision_function", "predict_proba", "predict")


@register
class MultiOutput(Executor):
    """params: ``estimators`` (one per output), ``classifier`` bool, ``methods`` (predict,
    and predict_proba for a classifier: a list with one array per output)."""

    kind = "multi_output"

    def __init__(self, children: list[Executor]) -> None:
        self.children = children
        self.allow_nan = all_allow_nan(children)
        hand_on_objects(self, children)

    @classmethod
    def from_spec(cls, spec: Spec) -> MultiOutput:
        children = spec.children("estimators")
        spec.check(len(children) >= 1, "no estimator")
        classifier = spec.param("classifier", bool)
        allowed = ("predict", "predict_proba") if classifier else ("predict",)
        methods = methods_param(spec, allowed, children)
        spec.check("predict" in methods, "a multi-output estimator predicts")
        out = cls(children)
        if classifier:
            labels = [child.classes_ for child in children]
            if not all(isinstance(c, np.ndarray) for c in labels):
                spec.fail("every estimator of a classifier must have classes")
            out.classes_ = labels  # type: ignore[assignment]
        out.methods = method_set(methods)
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        outputs = [call(child, "predict", X) for child in self.children]
        return np.asarray(same_shape(outputs, len(X), "multi-output estimator", "predict")).T

    def predict_proba(self, X: np.ndarray) -> list[np.ndarray]:
        return [call(child, "predict_proba", X) for child in self.children]


@register
class Chain(Executor):
    """params: ``estimators`` (in chain order), ``n_features``, ``feature_method`` (what each
    child hands on: predict, predict_proba or decision_function), ``methods``,
    ``classifier`` bool; arrays ``order`` i/u (outputs,): the output each child answers."""

    kind = "chain"

    def __init__(
        self, children: list[Executor], n_features: int, feature_method: str, order: np.ndarray
    ) -> None:
        self.children = children
        self.n_features = n_features
        self.feature_method = feature_method
        self.inverse = np.empty(len(order), dtype=np.intp)
        self.inverse[order] = np.arange(len(order))

    @classmethod
    def from_spec(cls, spec: Spec) -> Chain:
        children = spec.children("estimators")
        m = len(children)
        spec.check(m >= 1, "no estimator")
        n = count(spec, "n_features", 1)
        feature_method = spec.choice("feature_method", _SCORES)
        order = spec.array("order", ndim=1, kind="iu")
        spec.check(
            order.shape == (m,) and bool(np.array_equal(np.sort(order), np.arange(m))),
            f"order must be a permutation of 0..{m - 1}",
        )
        classifier = spec.param("classifier", bool)
        methods = methods_param(spec, PREDICTING if classifier else ("predict",), [])
        for i, child in enumerate(children):
            for name in {feature_method, "predict", *methods} - {"predict_log_proba"}:
                spec.check(child.supports(name), f"estimator {i} ({child.kind}) has no {name}")
        out = cls(children, n, feature_method, order)
        if classifier:
            labels = [child.classes_ for child in children]
            if not all(isinstance(c, np.ndarray) for c in labels):
                spec.fail("every estimator of a classifier chain must have classes")
            out.classes_ = labels  # type: ignore[assignment]
        out.methods = method_set(methods)
        return out

    def _outputs(self, X: np.ndarray, method: str) -> np.ndarray:
        check_width(X, self.n_features, "this chain")
        m = len(self.children)
        outputs = np.zeros((len(X), m))
        features = np.zeros((len(X), m))
        for i, child in enumerate(self.children):
            X_aug = np.hstack((X, features[:, :i]))
            features[:, i] = response(child, self.feature_method, X_aug)
            outputs[:, i] = response(child, method, X_aug)
        return outputs[:, self.inverse]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._outputs(X, "predict")

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self._outputs(X, "predict_proba")

    def predict_log_proba(self, X: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self._outputs(X, "decision_function")


@register
class OneVsOne(Executor):
    """params: ``estimators`` (one per pair of classes, (0, 1), (0, 2), ..., (k-2, k-1)),
    ``scores`` (each one's confidence: decision_function, predict_proba or predict),
    ``threshold`` (binary predict); labels."""

    kind = "one_vs_one"
    methods = frozenset({"predict", "decision_function"})

    def __init__(
        self, children: list[Executor], scores: list[str], classes: np.ndarray, threshold: float
    ) -> None:
        self.children = children
        self.scores = scores
        self.classes_ = self.labels = classes
        self.threshold = threshold
        self.allow_nan = all_allow_nan(children)
        # numbers only: scikit-learn's OneVsOneClassifier validates X as numbers itself

    @classmethod
    def from_spec(cls, spec: Spec) -> OneVsOne:
        classes = spec.labels()
        k = len(classes)
        children = spec.children("estimators")
        spec.check(k >= 2, "one-vs-one needs at least 2 classes")
        spec.check(
            len(children) == k * (k - 1) // 2,
            f"{k} classes need {k * (k - 1) // 2} estimators, found {len(children)}",
        )
        scores = spec.param("scores", list)
        spec.check(len(scores) == len(children), "one score method per estimator")
        for i, (child, method) in enumerate(zip(children, scores, strict=True)):
            spec.check(
                method in _SCORES and child.supports(method) and child.supports("predict"),
                f"estimator {i} ({child.kind}) cannot score by {method!r}",
            )
        threshold = float(spec.param("threshold", (int, float)))
        return cls(children, scores, classes, threshold)

    def _confidence(self, child: Executor, method: str, X: np.ndarray) -> np.ndarray:
        """sklearn.multiclass._predict_binary."""
        score = np.asarray(call(child, method, X))
        return score[:, 1] if method == "predict_proba" else np.ravel(score)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        pairs = list(zip(self.children, self.scores, strict=True))
        predictions = np.vstack([call(child, "predict", X) for child, _ in pairs]).T
        confidences = np.vstack([self._confidence(c, m, X) for c, m in pairs]).T
        Y = _ovr_decision_function(predictions, confidences, len(self.labels))
        if len(self.labels) == 2:
            return Y[:, 1]
        return Y

    def predict(self, X: np.ndarray) -> Any:
        Y = self.decision_function(X)
        if len(self.labels) == 2:
            return self.labels[(self.threshold < Y).astype(int)]
        return self.labels[Y.argmax(axis=1)]


def _ovr_decision_function(
    predictions: np.ndarray, confidences: np.ndarray, n_classes: int
) -> np.ndarray:
    """scikit-learn's ``utils.multiclass._ovr_decision_function``: votes, plus the summed
    confidences squashed into (-1/3, 1/3) to break ties without overturning a vote."""
    n_samples = predictions.shape[0]
    votes = np.zeros((n_samples, n_classes))
    sum_of_confidences = np.zeros((n_samples, n_classes))
    k = 0
    for i in range(n_classes):
        for j in range(i + 1, n_classes):
            sum_of_confidences[:, i] -= confidences[:, k]
            sum_of_confidences[:, j] += confidences[:, k]
            votes[predictions[:, k] == 0, i] += 1
            votes[predictions[:, k] == 1, j] += 1
            k += 1
    transformed = sum_of_confidences / (3 * (np.abs(sum_of_confidences) + 1))
    return votes + transformed
