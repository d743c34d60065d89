"""Linear models: scores = X @ coef.T + intercept, then the family's link.

One classifier executor covers LogisticRegression, SGDClassifier, LinearSVC, Perceptron,
PassiveAggressiveClassifier and RidgeClassifier; they differ only in how scores become
probabilities (``proba``). One regressor executor covers every linear regressor.
"""

from __future__ import annotations

import numpy as np

from ._base import Executor, Spec, register
from ._math import expit, softmax

# How a linear classifier turns scores into probabilities.
#   none           no predict_proba (hinge losses, ridge, perceptron)
#   logistic       binary: sigmoid; multi-class: softmax (LogisticRegression)
#   ovr            per-class sigmoid normalised over classes (liblinear, SGD log_loss)
#   modified_huber SGDClassifier(loss="modified_huber")
PROBA_MODES = ("none", "logistic", "ovr", "modified_huber")


@register
class LinearClassifier(Executor):
    kind = "linear_classifier"

    def __init__(self, coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray, proba: str):
        self.coef = coef
        self.intercept = intercept
        self.classes_ = classes
        self.proba = proba
        methods = {"predict", "decision_function"}
        if proba != "none":
            methods |= {"predict_proba", "predict_log_proba"}
        self.methods = frozenset(methods)

    @classmethod
    def from_spec(cls, spec: Spec) -> LinearClassifier:
        coef = spec.array("coef", ndim=2)
        intercept = spec.array("intercept", ndim=1)
        classes = spec.labels()
        n_scores = coef.shape[0]
        spec.check(intercept.shape == (n_scores,), "intercept must have one value per score row")
        spec.check(
            len(classes) >= 2 and n_scores == (1 if len(classes) == 2 else len(classes)),
            f"{len(classes)} classes need {1 if len(classes) == 2 else len(classes)} coef rows, "
            f"found {n_scores}",
        )
        return cls(coef, intercept, classes, spec.choice("proba", PROBA_MODES))

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        scores = X @ self.coef.T + self.intercept
        return scores.reshape(-1) if scores.shape[1] == 1 else scores

    def predict(self, X: np.ndarray) -> np.ndarray:
        scores = self.decision_function(X)
        indices = (scores > 0).astype(np.intp) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_.take(indices, axis=0)  # type: ignore[union-attr]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        scores = self.decision_function(X)
        if self.proba == "logistic" and scores.ndim == 2:
            return softmax(scores)
        if self.proba in ("logistic", "ovr"):
            prob = expit(scores)
            if prob.ndim == 1:
                return np.stack([1 - prob, prob], axis=1)
            return _normalize_rows(prob)
        return _modified_huber_proba(scores)

    def predict_log_proba(self, X: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))


def _normalize_rows(prob: np.ndarray) -> np.ndarray:
    """OvR normalisation, uniform where every class scored zero (as liblinear does)."""
    total = prob.sum(axis=1)
    zero = total == 0
    if zero.any():
        prob[zero, :] = 1
        total[zero] = prob.shape[1]
    prob /= total.reshape(-1, 1)
    return prob


def _modified_huber_proba(scores: np.ndarray) -> np.ndarray:
    """SGDClassifier's modified-Huber probabilities: (clip(score, -1, 1) + 1) / 2."""
    binary = scores.ndim == 1
    prob = np.clip(scores, -1, 1)
    prob += 1.0
    prob /= 2.0
    if binary:
        return np.stack([1 - prob, prob], axis=1)
    total = prob.sum(axis=1)
    zero = total == 0
    prob[zero, :] = 1.0
    total[zero] = prob.shape[1]
    prob /= total.reshape(-1, 1)
    return prob


@register
class LinearRegressor(Executor):
    kind = "linear_regressor"
    methods = frozenset({"predict"})

    def __init__(self, coef: np.ndarray, intercept: np.ndarray) -> None:
        self.coef = coef
        self.intercept = intercept

    @classmethod
    def from_spec(cls, spec: Spec) -> LinearRegressor:
        coef = spec.array("coef", ndim=(1, 2))
        intercept = spec.array("intercept", ndim=(0, 1))
        n_targets = 1 if coef.ndim == 1 else coef.shape[0]
        spec.check(intercept.size in (1, n_targets), "intercept must have one value per target")
        return cls(coef, intercept)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return X @ self.coef.T + self.intercept
