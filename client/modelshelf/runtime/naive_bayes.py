"""Naive Bayes: GaussianNB, MultinomialNB, BernoulliNB, ComplementNB.

Every variant computes a joint log-likelihood per class (``jll``); predict takes its argmax and
the probabilities normalise it with scikit-learn's own log-sum-exp. The discrete variants are all
``X' @ weights.T + bias`` once the converter has folded each estimator's algebra into
``weights`` and ``bias`` with the very operations scikit-learn runs at predict time, so the
results agree to the last bit rather than within rounding.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from ..errors import InputError, UnknownCategoryError
from ._base import Executor, Spec, register
from ._math import log_normalize, matmul
from ._sparse import CSRMatrix

_METHODS = frozenset({"predict", "predict_proba", "predict_log_proba"})


class _NaiveBayes(Executor):
    """predict / predict_proba / predict_log_proba from a subclass's ``jll``."""

    methods = _METHODS

    @abstractmethod
    def jll(self, X: np.ndarray) -> np.ndarray:
        """The joint log-likelihood of every class, (n_samples, n_classes)."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_.take(self.jll(X).argmax(axis=1), axis=0)  # type: ignore[union-attr]

    def predict_log_proba(self, X: np.ndarray) -> np.ndarray:
        return log_normalize(self.jll(X))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        out = self.predict_log_proba(X)
        return np.exp(out, out=out)


@register
class GaussianNB(_NaiveBayes):
    """Gaussian naive Bayes: per-class means and variances, every class in one numpy pass."""

    kind = "gaussian_nb"

    def __init__(
        self,
        theta: np.ndarray,
        var: np.ndarray,
        log_prior: np.ndarray,
        log_norm: np.ndarray,
        classes: np.ndarray,
    ) -> None:
        self.theta = theta
        self.var = var
        self.log_prior = log_prior
        self.log_norm = log_norm
        self.classes_ = classes

    @classmethod
    def from_spec(cls, spec: Spec) -> GaussianNB:
        theta = spec.array("theta", ndim=2)
        var = spec.array("var", ndim=2)
        log_prior = spec.array("log_prior", ndim=1)
        log_norm = spec.array("log_norm", ndim=1)
        classes = spec.labels()
        k = len(classes)
        spec.check(theta.shape == var.shape, f"theta {theta.shape} and var {var.shape} differ")
        spec.check(
            theta.shape[0] == k and log_prior.shape == (k,) and log_norm.shape == (k,),
            f"theta, log_prior and log_norm need one row per class ({k})",
        )
        return cls(theta, var, log_prior, log_norm, classes)

    def jll(self, X: np.ndarray) -> np.ndarray:
        # scikit-learn's expression, evaluated for every class at once: the same elementwise
        # operations, each (sample, class) row summed over contiguous features as its per-class
        # np.sum(axis=1) does; only log(prior) and -0.5 * sum(log(2 pi var)) come precomputed.
        # (One numpy pass instead of six calls per class: a single row costs ~10 us, not ~60.)
        squared = X[:, None, :] - self.theta
        squared **= 2
        squared /= self.var
        n_ij = self.log_norm - 0.5 * squared.sum(axis=2)
        return self.log_prior + n_ij


@register
class DiscreteNB(_NaiveBayes):
    """MultinomialNB, ComplementNB and BernoulliNB: ``jll = X' @ weights.T + bias`` where X' is
    X, or X binarized at ``binarize`` (BernoulliNB)."""

    kind = "discrete_nb"
    accepts_sparse = True

    def __init__(
        self,
        weights: np.ndarray,
        bias: np.ndarray | None,
        binarize: float | None,
        nonnegative: bool,
        classes: np.ndarray,
    ) -> None:
        self.weights = weights
        self.bias = bias
        self.binarize = binarize
        self.nonnegative = nonnegative
        self.classes_ = classes

    @classmethod
    def from_spec(cls, spec: Spec) -> DiscreteNB:
        weights = spec.array("weights", ndim=2)
        bias = spec.array("bias", ndim=1, optional=True)
        binarize = spec.param("binarize", (int, float, type(None)), None)
        nonnegative = spec.param("nonnegative", bool, False)
        classes = spec.labels()
        k = len(classes)
        spec.check(weights.shape[0] == k, f"weights need one row per class ({k})")
        spec.check(bias is None or bias.shape == (k,), f"bias needs one value per class ({k})")
        return cls(
            weights, bias, None if binarize is None else float(binarize), nonnegative, classes
        )

    def jll(self, X: np.ndarray) -> np.ndarray:
        if isinstance(X, CSRMatrix):
            return self._sparse_jll(X)
        if self.nonnegative and (X < 0).any():
            row, col = np.argwhere(X < 0)[0]
            raise InputError(
                "this naive Bayes model (multinomial or complement) takes counts or frequencies: "
                f"negative values are not allowed, found X[{row}, {col}] = {float(X[row, col])}"
            )
        if self.binarize is not None:
            X = (self.binarize < X).astype(np.float64)  # sklearn.preprocessing.binarize
        jll = matmul(X, self.weights.T)
        if self.bias is not None:
            jll += self.bias
        return jll

    def _sparse_jll(self, X: CSRMatrix) -> np.ndarray:
        """The same on a vectorizer's sparse output, touching only the stored entries."""
        if self.nonnegative and X.nnz and X.data.min() < 0:
            at = int(np.argmax(X.data < 0))
            row = int(np.searchsorted(X.indptr, at, side="right")) - 1
            raise InputError(
                "this naive Bayes model (multinomial or complement) takes counts or frequencies: "
                f"negative values are not allowed, found X[{row}, {X.indices[at]}] = "
                f"{float(X.data[at])}"
            )
        if self.binarize is not None:
            if self.binarize < 0:  # every absent zero would become 1: sklearn refuses too
                raise InputError(
                    f"cannot binarize sparse input at a negative threshold ({self.binarize})"
                )
            X = X.with_data((self.binarize < X.data).astype(np.float64))
        jll = X @ self.weights.T
        if self.bias is not None:
            jll += self.bias
        return jll


@register
class CategoricalNB(_NaiveBayes):
    """Categorical naive Bayes over integer category codes: ``jll`` adds, feature by feature,
    the log-probability of each row's category, then the class log prior.

    arrays: ``log_prob`` f (k, total): every feature's ``feature_log_prob_`` (k, categories)
    side by side; ``offsets`` i/u (n + 1,) rising strictly from 0 to total; ``log_prior`` f (k,);
    labels. Input is truncated to integers as scikit-learn's ``check_array(dtype="int")`` does;
    a negative code raises InputError, a code past a feature's categories UnknownCategoryError
    (scikit-learn fails on both).
    """

    kind = "categorical_nb"

    def __init__(
        self, log_prob: np.ndarray, offsets: np.ndarray, log_prior: np.ndarray, classes: np.ndarray
    ) -> None:
        self.log_prob = log_prob
        self.offsets = offsets
        self.sizes = np.diff(offsets)
        self.log_prior = log_prior
        self.classes_ = classes

    @classmethod
    def from_spec(cls, spec: Spec) -> CategoricalNB:
        classes = spec.labels()
        log_prob = spec.array("log_prob", ndim=2)
        log_prior = spec.array("log_prior", ndim=1)
        offsets = spec.array("offsets", ndim=1, kind="iu").astype(np.int64)
        k = len(classes)
        spec.check(k >= 1 and log_prob.shape[0] == k, f"log_prob needs one row per class ({k})")
        spec.check(log_prior.shape == (k,), f"log_prior needs one value per class ({k})")
        spec.check(
            len(offsets) >= 2
            and int(offsets[0]) == 0
            and int(offsets[-1]) == log_prob.shape[1]
            and bool(np.all(np.diff(offsets) > 0)),
            f"offsets must rise strictly from 0 to {log_prob.shape[1]}",
        )
        return cls(log_prob, offsets, log_prior, classes)

    def jll(self, X: np.ndarray) -> np.ndarray:
        n = len(self.sizes)
        if X.shape[1] != n:
            raise InputError(
                f"this CategoricalNB expects {n} features per sample, got {X.shape[1]}"
            )
        codes = X.astype(np.int64)
        if (codes < 0).any():
            raise InputError("Negative values in data passed to CategoricalNB (input X).")
        unseen = codes >= self.sizes
        if unseen.any():
            row, col = np.argwhere(unseen)[0]
            raise UnknownCategoryError(
                f"feature {col} has {self.sizes[col]} categories (codes 0..{self.sizes[col] - 1}), "
                f"found X[{row}, {col}] = {codes[row, col]}"
            )
        jll = np.zeros((X.shape[0], self.log_prob.shape[0]))
        for i in range(n):
            jll += self.log_prob[:, self.offsets[i] + codes[:, i]].T
        return jll + self.log_prior
