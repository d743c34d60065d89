"""Linear models: scores = X @ coef.T + intercept, then the family's link; and one-vs-rest.

One classifier executor covers LogisticRegression(CV), SGDClassifier, LinearSVC, Perceptron,
PassiveAggressiveClassifier and RidgeClassifier(CV); they differ only in how scores become
probabilities (``proba``) and, for ridge, in multilabel prediction. One regressor executor covers
every linear regressor. ``OneVsRest`` composes any binary child executors, as scikit-learn's
``OneVsRestClassifier`` does, and ``ConstantBinary`` stands for the constant predictor it fits for
a label that is the same in every training row.

Kernels compute what scikit-learn does (``X @ coef.T`` on the stored ``coef`` layout, the same
normalisations), so that results agree to the last bits or within rounding: the product runs in
row blocks that BLAS keeps on the calling thread (``_math.matmul``). They never write into model
arrays.

Where the compiled kernels are built, the affine map and the softmax or binary logistic link run
in one call of the dense kernel (modelshelf/_kernels/dense.c), which performs these very
operations through numpy's own loops and so gives these results to the bit; it answers None for
what it does not take (a CSR input, another dtype, a floating-point warning to raise), and this
code serves.

A model fitted on float32 data keeps float32 coefficients, and its image says so
(``keeps_float32``): float32 input then stays float32, as scikit-learn keeps it, and numpy's
promotion does the rest as it does there (``X @ coef.T`` in float32, plus an intercept in its
fitted dtype: float32, or float64 where the estimator keeps one, SGD and Perceptron). Any other
input is widened to float64 first, which is what numpy does to it against float32 coefficients.
Images without the param (compiled before it) read float32 input as float64, as they did.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _kernels
from ._base import Executor, Spec, computes_float32, method_set, register
from ._delegate import hand_on_objects
from ._math import MIN_BLOCK_ROWS, SINGLE_THREAD_CELLS, expit_keeping, matmul, softmax
from ._sparse import CSRMatrix

# How a linear classifier turns scores into probabilities.
#   none           no predict_proba (hinge losses, ridge, perceptron, passive-aggressive)
#   logistic       binary: sigmoid; multi-class: softmax (LogisticRegression since sklearn 1.8)
#   softmax        softmax, binary over [-score, score] (multinomial LogisticRegression < 1.8)
#   ovr            per-class sigmoid normalised over classes (liblinear, SGD log_loss)
#   modified_huber SGDClassifier(loss="modified_huber")
PROBA_MODES = ("none", "logistic", "softmax", "ovr", "modified_huber")


def compiled_affine(kernel: Any, X: Any, link: int, width: int) -> np.ndarray | None:
    """``X @ W + b`` through ``link`` by the compiled kernel (dense rows, or a CSRMatrix's
    sparse ones, summed in index order), or None where the numpy path serves (no kernel, an
    input it does not take, a floating-point error; a CSR of another width, which numpy
    refuses with the reason)."""
    if kernel is None:
        return None
    if isinstance(X, CSRMatrix):
        if X.shape[1] != width:
            return None
        return kernel.sparse(X.data, X.indices, X.indptr, link)
    return kernel.affine(X, link, _kernels.get_threads())


@register
class LinearClassifier(Executor):
    """A linear classifier: decision function, then the link the estimator used."""

    kind = "linear_classifier"
    accepts_sparse = True  # X @ coef.T works on a text vectorizer's CSR (runtime._sparse)

    def __init__(
        self,
        coef: np.ndarray,
        intercept: np.ndarray,
        classes: np.ndarray,
        proba: str,
        multilabel: bool = False,
        keeps_float32: bool = False,
    ) -> None:
        self.coef = coef
        self.intercept = intercept
        self.classes_ = classes
        self.proba = proba
        self.multilabel = multilabel
        self.keeps_float32 = self.float32_fitted = keeps_float32 and coef.dtype == np.float32
        self.narrows_small = self.keeps_float32
        self.product_casts = "numeric"  # validated as "numeric": numpy casts X in the product
        methods = {"predict", "decision_function"}
        if proba != "none":
            methods |= {"predict_proba", "predict_log_proba"}
        self.methods = method_set(methods)
        # The compiled affine map (or None), and the link of predict_proba it can fuse: softmax
        # over 2-D scores, the binary sigmoid; the other links take its scores.
        self.kernel: Any = _kernels.dense(coef.T, intercept, SINGLE_THREAD_CELLS, MIN_BLOCK_ROWS)
        self.link = 0
        if proba in ("softmax", "logistic") and coef.shape[0] > 1:
            self.link = _kernels.LINKS["softmax"]
        elif proba == "logistic" and coef.shape[0] == 1:
            self.link = _kernels.LINKS["sigmoid2"]

    @classmethod
    def from_spec(cls, spec: Spec) -> LinearClassifier:
        coef = spec.array("coef", ndim=2)
        intercept = spec.array("intercept", ndim=1)
        classes = spec.labels()
        proba = spec.choice("proba", PROBA_MODES)
        multilabel = spec.param("multilabel", bool, False)
        keeps_float32 = spec.param("keeps_float32", bool, False)
        n_scores = coef.shape[0]
        spec.check(intercept.shape == (n_scores,), "intercept must have one value per score row")
        if multilabel:
            # RidgeClassifier on an indicator matrix: one score column per label.
            spec.check(len(classes) >= 1 and n_scores == len(classes), "one coef row per label")
            spec.check(proba == "none", "a multilabel linear classifier has no probabilities")
        else:
            need = 1 if len(classes) == 2 else len(classes)
            spec.check(
                len(classes) >= 2, f"a linear classifier needs 2 classes or more, found {classes!r}"
            )
            if n_scores != need:
                spec.fail(f"{len(classes)} classes need {need} coef rows, found {n_scores}")
        return cls(coef, intercept, classes, proba, multilabel, keeps_float32)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        scores = compiled_affine(self.kernel, X, 0, self.coef.shape[1])
        if scores is None:
            scores = matmul(X, self.coef.T) + self.intercept
        return scores.reshape(-1) if scores.shape[1] == 1 else scores

    def predict(self, X: np.ndarray) -> np.ndarray:
        scores = self.decision_function(X)
        if self.multilabel:
            # sklearn thresholds at 0 and returns the 0/1 indicator matrix (LabelBinarizer).
            return (scores.reshape(len(X), -1) > 0).astype(np.intp)
        indices = (scores > 0).astype(np.intp) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_.take(indices, axis=0)  # type: ignore[union-attr]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self.link:
            fused = compiled_affine(self.kernel, X, self.link, self.coef.shape[1])
            if fused is not None:
                return fused
        scores = self.decision_function(X)
        if self.proba == "modified_huber":
            return _modified_huber_proba(scores)
        if self.proba == "softmax" or (self.proba == "logistic" and scores.ndim == 2):
            if scores.ndim == 1:
                scores = np.c_[-scores, scores]
            return softmax(scores)
        prob = expit_keeping(scores)  # scipy's: its exact 0 below -709.78 gives log(0) = -inf
        if prob.ndim == 1:
            return np.stack([1 - prob, prob], axis=1)
        return _normalize_uniform(prob)

    def predict_log_proba(self, X: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))


def _normalize_uniform(prob: np.ndarray) -> np.ndarray:
    """Normalise rows in place; a row where every class scored zero becomes uniform (liblinear's
    ``predict_probability``, sklearn's ``_predict_proba_lr`` and modified-Huber SGD)."""
    total = prob.sum(axis=1)
    zero = total == 0
    if zero.any():
        prob[zero, :] = 1
        total[zero] = prob.shape[1]
    prob /= total.reshape(-1, 1)
    return prob


def _modified_huber_proba(scores: np.ndarray) -> np.ndarray:
    """SGDClassifier's modified-Huber probabilities: (clip(score, -1, 1) + 1) / 2 (binary: in
    float64 whatever the scores' dtype, as scikit-learn fills a float64 array)."""
    prob = np.clip(scores, -1, 1)
    if prob.ndim == 1:
        prob = prob.astype(np.float64)
    prob += 1.0
    prob /= 2.0
    if prob.ndim == 1:
        return np.stack([1 - prob, prob], axis=1)
    return _normalize_uniform(prob)


@register
class LinearRegressor(Executor):
    """``X @ coef.T + intercept``; coef and intercept keep scikit-learn's shapes, which decide
    whether predict returns (n,) or (n, n_targets)."""

    kind = "linear_regressor"
    accepts_sparse = True
    methods = frozenset({"predict"})

    def __init__(
        self, coef: np.ndarray, intercept: np.ndarray, keeps_float32: bool = False
    ) -> None:
        self.coef = coef
        self.intercept = intercept
        self.keeps_float32 = self.float32_fitted = keeps_float32 and coef.dtype == np.float32
        self.narrows_small = self.keeps_float32
        self.product_casts = "numeric"  # validated as "numeric": numpy casts X in the product
        self.kernel: Any = _kernels.dense(coef.T, intercept, SINGLE_THREAD_CELLS, MIN_BLOCK_ROWS)

    @classmethod
    def from_spec(cls, spec: Spec) -> LinearRegressor:
        coef = spec.array("coef", ndim=(1, 2))
        intercept = spec.array("intercept", ndim=(0, 1))
        n_targets = 1 if coef.ndim == 1 else coef.shape[0]
        spec.check(intercept.size in (1, n_targets), "intercept must have one value per target")
        return cls(coef, intercept, spec.param("keeps_float32", bool, False))

    def predict(self, X: np.ndarray) -> np.ndarray:
        out = compiled_affine(self.kernel, X, 0, self.coef.shape[-1])
        return matmul(X, self.coef.T) + self.intercept if out is None else out


# What a child of OneVsRest contributes as its score (sklearn.multiclass._predict_binary).
SCORE_METHODS = ("decision_function", "predict_proba", "predict")
TARGETS = ("binary", "multiclass", "multilabel")


@register
class OneVsRest(Executor):
    """scikit-learn's ``OneVsRestClassifier`` over any binary child executors.

    ``target`` is the type of y it was fitted on: "multiclass" predicts the class of the highest
    score; "binary" and "multilabel" threshold each score at ``threshold`` (0 for classifier
    decision functions, 0.5 otherwise, chosen by the first child as sklearn does).
    """

    kind = "one_vs_rest"

    def __init__(
        self,
        children: list[Executor],
        scores: list[str],
        classes: np.ndarray,
        target: str,
        threshold: float,
    ) -> None:
        self.children = children
        self.scores = scores
        self.classes_ = classes
        self.target = target
        self.threshold = threshold
        methods = {"predict"}
        for method in ("decision_function", "predict_proba"):
            if all(child.supports(method) for child in children):
                methods.add(method)
        self.methods = method_set(methods)
        # The children validate their own input in sklearn: NaN passes only if all accept it.
        self.allow_nan = all(child.allow_nan for child in children)
        self.accepts_sparse = all(getattr(c, "accepts_sparse", False) for c in children)
        # Children fitted on float32 keep float32 input in sklearn, and so does their stack.
        self.keeps_float32 = all(getattr(c, "keeps_float32", False) for c in children)
        self.float32_arithmetic = any(computes_float32(c) for c in children)
        self.narrows_small = all(c.narrows_small for c in children)
        casts = {c.product_casts for c in children}
        self.product_casts = casts.pop() if len(casts) == 1 else ""
        hand_on_objects(self, children)

    @classmethod
    def from_spec(cls, spec: Spec) -> OneVsRest:
        children = spec.children("estimators")
        scores = spec.param("scores", list)
        classes = spec.labels()
        target = spec.choice("target", TARGETS)
        threshold = spec.param("threshold", float)
        spec.check(len(scores) == len(children), "one score method per estimator")
        for i, (child, method) in enumerate(zip(children, scores, strict=True)):
            spec.check(
                method in SCORE_METHODS and child.supports(method),
                f"estimator {i} ({child.kind}) cannot score by {method!r}",
            )
        if target == "binary":
            spec.check(len(classes) == 2 and len(children) == 1, "binary needs 2 classes, 1 model")
        else:
            spec.check(
                len(classes) >= 2 and len(children) == len(classes),
                f"{len(classes)} classes need as many estimators, found {len(children)}",
            )
        return cls(children, scores, classes, target, threshold)

    def _binary_scores(self, X: np.ndarray) -> list[np.ndarray]:
        out = []
        for child, method in zip(self.children, self.scores, strict=True):
            score = _call(child, method, X)
            out.append(score[:, 1] if method == "predict_proba" else np.ravel(score))
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        scores = self._binary_scores(X)
        if self.target == "multiclass":
            # sklearn keeps a running maximum over the children and the first index reaching
            # it wins ties: that is argmax over the stacked scores.
            indices = np.argmax(np.column_stack(scores), axis=1)
            return self.classes_.take(indices, axis=0)  # type: ignore[union-attr]
        above = np.column_stack([s > self.threshold for s in scores]).astype(int)
        if self.target == "binary":
            return self.classes_.take(above[:, 0], axis=0)  # type: ignore[union-attr]
        return above

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        if len(self.children) == 1:
            return _call(self.children[0], "decision_function", X)
        return np.array([np.ravel(_call(c, "decision_function", X)) for c in self.children]).T

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        Y = np.array([_call(c, "predict_proba", X)[:, 1] for c in self.children]).T
        if len(self.children) == 1:
            Y = np.concatenate((1 - Y, Y), axis=1)
        if self.target != "multilabel":
            # Unlike liblinear, a row whose probabilities are all zero stays all zero.
            row_sums = np.sum(Y, axis=1)[:, np.newaxis]
            np.divide(Y, row_sums, out=Y, where=row_sums != 0)
        return Y


def _call(child: Executor, method: str, X: np.ndarray) -> np.ndarray:
    result: np.ndarray = getattr(child, method)(X)
    return result


@register
class ConstantBinary(Executor):
    """The predictor OneVsRestClassifier fits for a label that is constant in training: it
    answers that label (0 or 1) for every sample, as its score and as its probability."""

    kind = "constant_binary"
    accepts_sparse = True
    methods = frozenset({"predict", "decision_function", "predict_proba"})
    allow_nan = True  # sklearn's _ConstantPredictor validates with ensure_all_finite=False

    def __init__(self, value: int) -> None:
        self.value = value

    @classmethod
    def from_spec(cls, spec: Spec) -> ConstantBinary:
        value = spec.param("value", int)
        spec.check(value in (0, 1), f"value must be 0 or 1, found {value}")
        return cls(value)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), self.value, dtype=np.int64)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), self.value, dtype=np.int64)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        row = np.array([1.0 - self.value, float(self.value)])
        return np.tile(row, (len(X), 1))
