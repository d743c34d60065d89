"""Ensembles of child executors: voting, stacking, bagging and AdaBoost.

Each combines its children's outputs in the order and with the operations scikit-learn uses
(``np.average`` with the same weights, sums started from zero, AdaBoost's SAMME terms), so that
results agree to the last bits. Children of a voting or stacking classifier were fitted on the
label-encoded target: they answer class indices, which the ensemble maps to its labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._base import Executor, Spec, method_set, register
from ._delegate import (
    PREDICTING,
    all_allow_nan,
    call,
    columns,
    count,
    hand_on_objects,
    methods_param,
    same_shape,
)
from ._math import softmax


def _weights(spec: Spec, n: int) -> list[float] | None:
    raw = spec.param("weights", (list, type(None)), None)
    if raw is None:
        return None
    if len(raw) != n or not all(
        isinstance(w, int | float) and not isinstance(w, bool) for w in raw
    ):
        spec.fail(f"weights must hold {n} numbers")
    return [float(w) for w in raw]


def _encoded(spec: Spec, children: list[Executor], k: int, *, exact: bool) -> None:
    """Check that children are classifiers over class indices 0..k-1 (``exact``: all k)."""
    for i, child in enumerate(children):
        classes = child.classes_
        if not isinstance(classes, np.ndarray) or classes.dtype.kind not in "iu":
            ok = False
        elif exact:
            ok = classes.size == k and bool(np.all(classes == np.arange(k)))
        else:
            ok = classes.size > 0 and int(classes.min()) >= 0 and int(classes.max()) < k
        if not ok:
            spec.fail(f"estimator {i} ({child.kind}) must predict class indices in [0, {k})")


@register
class VotingClassifier(Executor):
    """params: ``estimators``, ``voting`` (hard or soft), ``weights`` (numbers or null),
    ``flatten`` bool (soft transform); labels."""

    kind = "voting_classifier"

    def __init__(
        self,
        children: list[Executor],
        classes: np.ndarray,
        soft: bool,
        weights: list[float] | None,
        flatten: bool,
    ) -> None:
        self.children = children
        self.classes_ = self.labels = classes
        self.soft = soft
        self.weights = weights
        self.flatten = flatten
        names = {"predict", "transform", "predict_proba"} if soft else {"predict", "transform"}
        self.methods = method_set(names)
        self.allow_nan = all_allow_nan(children)
        hand_on_objects(self, children)

    @classmethod
    def from_spec(cls, spec: Spec) -> VotingClassifier:
        children = spec.children("estimators")
        classes = spec.labels()
        soft = spec.choice("voting", ("hard", "soft")) == "soft"
        spec.check(len(children) >= 1 and len(classes) >= 1, "no estimator or no class")
        need = "predict_proba" if soft else "predict"
        for i, child in enumerate(children):
            spec.check(child.supports(need), f"estimator {i} ({child.kind}) has no {need}")
        _encoded(spec, children, len(classes), exact=soft)
        weights = _weights(spec, len(children))
        return cls(children, classes, soft, weights, spec.param("flatten", bool, True))

    def _labels(self, X: np.ndarray) -> np.ndarray:
        return np.asarray([call(child, "predict", X) for child in self.children]).T

    def _probas(self, X: np.ndarray) -> np.ndarray:
        return np.asarray([call(child, "predict_proba", X) for child in self.children])

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.soft:
            indices = np.argmax(self.predict_proba(X), axis=1)
        else:
            # Row by row, scikit-learn takes argmax(bincount(labels, weights)): the same sums
            # in the same order, all rows at once.
            labels = self._labels(X)
            counts = np.zeros((len(X), len(self.labels)))
            rows = np.arange(len(X))
            for j in range(labels.shape[1]):
                counts[rows, labels[:, j]] += 1.0 if self.weights is None else self.weights[j]
            indices = np.argmax(counts, axis=1)
        return self.labels.take(indices, axis=0)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.average(self._probas(X), axis=0, weights=self.weights)

    def transform(self, X: np.ndarray) -> np.ndarray:
        if not self.soft:
            return self._labels(X)
        probas = self._probas(X)
        return np.hstack(list(probas)) if self.flatten else probas


@register
class VotingRegressor(Executor):
    """params: ``estimators``, ``weights`` (numbers or null)."""

    kind = "voting_regressor"
    methods = frozenset({"predict", "transform"})

    def __init__(self, children: list[Executor], weights: list[float] | None) -> None:
        self.children = children
        self.weights = weights
        self.allow_nan = all_allow_nan(children)
        hand_on_objects(self, children)

    @classmethod
    def from_spec(cls, spec: Spec) -> VotingRegressor:
        children = spec.children("estimators")
        spec.check(len(children) >= 1, "no estimator")
        for i, child in enumerate(children):
            spec.check(child.supports("predict"), f"estimator {i} ({child.kind}) cannot predict")
        return cls(children, _weights(spec, len(children)))

    def transform(self, X: np.ndarray) -> np.ndarray:
        outputs = [call(child, "predict", X) for child in self.children]
        return np.asarray(same_shape(outputs, len(X), "voting regressor", "predict")).T

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.average(self.transform(X), axis=1, weights=self.weights)


@register
class Stacking(Executor):
    """params: ``estimators``, ``stack_methods`` (one of predict_proba, decision_function,
    predict per estimator), ``final`` (a component), ``passthrough`` bool, ``drop_first``
    bool (binary classification: a predict_proba loses its first column), ``methods`` (the
    final estimator's, besides transform), ``classifier`` bool; labels for a classifier (its
    final estimator predicts class indices)."""

    kind = "stacking"

    def __init__(
        self,
        children: list[Executor],
        stack_methods: list[str],
        final: Executor,
        passthrough: bool,
        drop_first: bool,
        classes: np.ndarray | None,
    ) -> None:
        self.children = children
        self.stack_methods = stack_methods
        self.final = final
        self.passthrough = passthrough
        self.drop_first = drop_first
        self.classes_ = self.labels = classes
        self.allow_nan = all_allow_nan(children) and (not passthrough or final.allow_nan)
        if not passthrough:  # passthrough stacks X itself beside the predictions: numbers
            hand_on_objects(self, children)

    @classmethod
    def from_spec(cls, spec: Spec) -> Stacking:
        children = spec.children("estimators")
        stack_methods = spec.param("stack_methods", list)
        spec.check(len(children) >= 1, "no estimator")
        spec.check(len(stack_methods) == len(children), "one stack method per estimator")
        for i, (child, method) in enumerate(zip(children, stack_methods, strict=True)):
            spec.check(
                method in ("predict_proba", "decision_function", "predict")
                and child.supports(method),
                f"estimator {i} ({child.kind}) cannot stack by {method!r}",
            )
        final = spec.child("final")
        methods = methods_param(spec, PREDICTING, [final])
        classes = spec.labels() if spec.param("classifier", bool) else None
        if classes is not None and "predict" in methods:
            _encoded(spec, [final], len(classes), exact=False)
        out = cls(
            children,
            stack_methods,
            final,
            spec.param("passthrough", bool),
            spec.param("drop_first", bool),
            classes,
        )
        out.methods = method_set({"transform", *methods})
        return out

    def transform(self, X: np.ndarray) -> np.ndarray:
        blocks = []
        for child, method in zip(self.children, self.stack_methods, strict=True):
            pred = np.asarray(call(child, method, X))
            if pred.ndim == 1:
                pred = pred.reshape(-1, 1)
            elif method == "predict_proba" and self.drop_first:
                pred = pred[:, 1:]
            blocks.append(pred)
        if self.passthrough:
            blocks.append(X)
        return np.hstack(blocks)

    def predict(self, X: np.ndarray) -> Any:
        pred = call(self.final, "predict", self.transform(X))
        if self.labels is None:
            return pred
        return self.labels.take(np.asarray(pred, dtype=np.intp), axis=0)

    def predict_proba(self, X: np.ndarray) -> Any:
        return call(self.final, "predict_proba", self.transform(X))

    def predict_log_proba(self, X: np.ndarray) -> Any:
        return call(self.final, "predict_log_proba", self.transform(X))

    def decision_function(self, X: np.ndarray) -> Any:
        return call(self.final, "decision_function", self.transform(X))


@register
class Bagging(Executor):
    """params: ``estimators``, ``n_features``, ``classifier`` bool (then labels), ``methods``,
    ``log_proba`` bool (the base estimator has predict_log_proba); arrays ``features_<i>``
    i/u: the columns estimator i takes. A classifier's children predict class indices; those
    without predict_proba vote."""

    kind = "bagging"

    def __init__(
        self,
        children: list[Executor],
        features: list[np.ndarray],
        n_features: int,
        classes: np.ndarray | None,
        log_proba: bool,
    ) -> None:
        self.children = children
        self.features = features
        self.n_features = n_features
        self.classes_ = self.labels = classes
        self.log_proba = log_proba
        self.n_classes = 0 if classes is None else len(classes)
        self.allow_nan = all_allow_nan(children)

    @classmethod
    def from_spec(cls, spec: Spec) -> Bagging:
        children = spec.children("estimators")
        n = count(spec, "n_features", 1)
        spec.check(len(children) >= 1, "no estimator")
        features = [columns(spec, f"features_{i}", n) for i in range(len(children))]
        classifier = spec.param("classifier", bool)
        classes = spec.labels() if classifier else None
        if classes is not None:
            _encoded(spec, children, len(classes), exact=False)
            allowed: tuple[str, ...] = PREDICTING
        else:
            allowed = ("predict",)
        methods = methods_param(spec, allowed, [])
        log_proba = spec.param("log_proba", bool)
        need = {"predict"}
        if "decision_function" in methods:
            need.add("decision_function")
        if log_proba and "predict_log_proba" in methods:
            need.add("predict_log_proba")
        for i, child in enumerate(children):
            missing = need - child.methods
            spec.check(not missing, f"estimator {i} ({child.kind}) lacks {sorted(missing)}")
        out = cls(children, features, n, classes, log_proba)
        out.methods = method_set(methods)
        return out

    def _parts(self) -> Any:
        return zip(self.children, self.features, strict=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.labels is None:
            outputs = [call(child, "predict", X[:, f]) for child, f in self._parts()]
            total = sum(same_shape(outputs, len(X), "bagging", "predict"))
            return total / len(self.children)
        indices = np.argmax(self.predict_proba(X), axis=1)
        return self.labels.take(indices, axis=0)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        k = self.n_classes
        proba = np.zeros((len(X), k))
        rows = np.arange(len(X))
        for child, f in self._parts():
            Xf = X[:, f]
            cls_ = np.asarray(child.classes_)
            if child.supports("predict_proba"):
                p = call(child, "predict_proba", Xf)
                if len(cls_) == k:
                    proba += p
                else:
                    proba[:, cls_] += p[:, range(len(cls_))]
            else:  # scikit-learn resorts to voting
                proba[rows, np.asarray(call(child, "predict", Xf), dtype=np.intp)] += 1
        return proba / len(self.children)

    def predict_log_proba(self, X: np.ndarray) -> np.ndarray:
        if not self.log_proba:
            with np.errstate(divide="ignore"):
                return np.log(self.predict_proba(X))
        k = self.n_classes
        log_proba = np.full((len(X), k), -np.inf)
        for child, f in self._parts():
            lp = call(child, "predict_log_proba", X[:, f])
            cls_ = np.asarray(child.classes_)
            if len(cls_) == k:
                log_proba = np.logaddexp(log_proba, lp)
            else:
                log_proba[:, cls_] = np.logaddexp(log_proba[:, cls_], lp[:, range(len(cls_))])
        log_proba -= np.log(len(self.children))
        return log_proba

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        total = sum(call(child, "decision_function", X[:, f]) for child, f in self._parts())
        return total / len(self.children)


@register
class AdaBoostClassifier(Executor):
    """SAMME: params ``estimators``; arrays ``weights`` f (at least one per estimator: the
    fitted ``estimator_weights_``, whose sum normalises); labels."""

    kind = "adaboost_classifier"
    methods = frozenset(PREDICTING)

    def __init__(self, children: list[Executor], weights: np.ndarray, classes: np.ndarray):
        self.children = children
        self.weights = weights
        self.classes_ = self.labels = classes
        self.allow_nan = False  # scikit-learn's AdaBoost validates X itself: never NaN

    @classmethod
    def from_spec(cls, spec: Spec) -> AdaBoostClassifier:
        children = spec.children("estimators")
        weights = spec.array("weights", ndim=1)
        classes = spec.labels()
        spec.check(len(classes) >= 2, "AdaBoost needs at least 2 classes")
        spec.check(1 <= len(children) <= len(weights), "one weight per estimator, at least")
        for i, child in enumerate(children):
            spec.check(child.supports("predict"), f"estimator {i} ({child.kind}) cannot predict")
        return cls(children, weights, classes)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        k = len(self.labels)
        classes = self.labels[:, np.newaxis]
        pred: Any = 0
        for child, w in zip(self.children, self.weights, strict=False):
            pred = pred + np.where((call(child, "predict", X) == classes).T, w, -1 / (k - 1) * w)
        pred /= self.weights.sum()
        if k == 2:
            pred[:, 0] *= -1
            return pred.sum(axis=1)
        return pred

    def predict(self, X: np.ndarray) -> np.ndarray:
        pred = self.decision_function(X)
        if len(self.labels) == 2:
            return self.labels.take(pred > 0, axis=0)
        return self.labels.take(np.argmax(pred, axis=1), axis=0)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        k = len(self.labels)
        decision = self.decision_function(X)
        if k == 2:
            decision = np.vstack([-decision, decision]).T / 2
        else:
            decision /= k - 1
        return softmax(decision)

    def predict_log_proba(self, X: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))


@register
class AdaBoostRegressor(Executor):
    """The weighted median of the estimators' predictions: params ``estimators``; arrays
    ``weights`` f (at least one per estimator)."""

    kind = "adaboost_regressor"
    methods = frozenset({"predict"})

    def __init__(self, children: list[Executor], weights: np.ndarray) -> None:
        self.children = children
        self.weights = weights
        self.allow_nan = False  # scikit-learn's AdaBoost validates X itself: never NaN

    @classmethod
    def from_spec(cls, spec: Spec) -> AdaBoostRegressor:
        children = spec.children("estimators")
        weights = spec.array("weights", ndim=1)
        spec.check(1 <= len(children) <= len(weights), "one weight per estimator, at least")
        for i, child in enumerate(children):
            spec.check(child.supports("predict"), f"estimator {i} ({child.kind}) cannot predict")
        return cls(children, weights)

    def predict(self, X: np.ndarray) -> np.ndarray:
        outputs = [call(child, "predict", X) for child in self.children]
        predictions = np.array(same_shape(outputs, len(X), "AdaBoost", "predict")).T
        sorted_idx = np.argsort(predictions, axis=1)
        weight_cdf = np.cumsum(self.weights[sorted_idx], axis=1)
        median_or_above = weight_cdf >= 0.5 * weight_cdf[:, -1][:, np.newaxis]
        median_idx = median_or_above.argmax(axis=1)
        rows = np.arange(len(X))
        return predictions[rows, sorted_idx[rows, median_idx]]
