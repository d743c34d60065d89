"""Kernel support vector machines: SVC, NuSVC, SVR, NuSVR and OneClassSVM (libsvm models).

The arrays are libsvm's own model as scikit-learn keeps it: support vectors grouped by class,
``dual_coef`` (libsvm's ``sv_coef``, (k - 1, n_sv)), ``intercept`` (= -rho, one per class pair)
and the Platt parameters ``prob_a``/``prob_b``. The kernels follow libsvm's ``k_function`` (RBF
on explicit differences, ``powi`` for the polynomial), the decision values its
``svm_predict_values`` (pair (i, j) sums class i's coefficients from row j - 1 and class j's from
row i), the labels its one-vs-one vote, and the probabilities its ``svm_predict_probability``
(pairwise sigmoids clipped to [1e-7, 1 - 1e-7], coupled by ``multiclass_probability``'s
iterative method, run per sample with the same stopping rule, two classes included as
scikit-learn's libsvm does).
"""

from __future__ import annotations

import numpy as np

from ..errors import ManifestError
from ._base import Executor, Spec, method_set, register
from ._math import exp_libm

KERNELS = ("linear", "poly", "rbf", "sigmoid")
TYPES = ("classifier", "regressor", "one_class")
# libsvm's clip of each pairwise probability (svm_predict_probability's min_prob).
_MIN_PROB = 1e-7
# Kernel rows are computed in chunks of at most this many elements (rows x vectors x features).
_CHUNK_ELEMENTS = 1 << 22
MAX_DEGREE = 1 << 16


def powi(base: np.ndarray, times: int) -> np.ndarray:
    """libsvm's ``powi``: ``base ** times`` by repeated squaring, in its order of products."""
    tmp = base.copy()
    out = np.ones_like(base)
    t = times
    while t > 0:
        if t % 2 == 1:
            out *= tmp
        tmp *= tmp
        t //= 2
    return out


@register
class SupportVectorMachine(Executor):
    """A libsvm model: kernel values against the support vectors, then the decision values of
    every class pair (classifiers) or the single one (regressors, one-class)."""

    kind = "svm"

    def __init__(
        self,
        support_vectors: np.ndarray,
        dual_coef: np.ndarray,
        intercept: np.ndarray,
        n_support: np.ndarray,
        kernel: str,
        gamma: float,
        coef0: float,
        degree: int,
        svm_type: str,
        classes: np.ndarray | None = None,
        prob_a: np.ndarray | None = None,
        prob_b: np.ndarray | None = None,
        decision_shape: str = "ovo",
        break_ties: bool = False,
        offset: float = 0.0,
    ) -> None:
        self.support_vectors = support_vectors
        self.dual_coef = dual_coef
        self.intercept = intercept
        self.kernel = kernel
        self.gamma = gamma
        self.coef0 = coef0
        self.degree = degree
        self.svm_type = svm_type
        self.classes_ = classes
        self.prob_a = prob_a
        self.prob_b = prob_b
        self.decision_shape = decision_shape
        self.break_ties = break_ties
        self.offset = offset
        # [start, stop) of each class's support vectors.
        self.bounds = np.concatenate([[0], np.cumsum(n_support)]).astype(np.intp)
        if svm_type == "classifier":
            methods = {"predict", "decision_function"}
            if prob_a is not None:
                methods |= {"predict_proba", "predict_log_proba"}
        elif svm_type == "regressor":
            methods = {"predict"}
        else:
            methods = {"predict", "decision_function", "score_samples"}
        self.methods = method_set(methods)

    @classmethod
    def from_spec(cls, spec: Spec) -> SupportVectorMachine:
        sv = spec.array("support_vectors", ndim=2)
        spec.check(sv.shape[1] >= 1, "support_vectors have no columns")
        dual_coef = spec.array("dual_coef", ndim=2)
        intercept = spec.array("intercept", ndim=1)
        kernel = spec.choice("kernel", KERNELS)
        gamma = float(spec.param("gamma", (int, float)))
        coef0 = float(spec.param("coef0", (int, float)))
        degree = spec.param("degree", int)
        svm_type = spec.choice("svm_type", TYPES)
        spec.check(0 <= degree <= MAX_DEGREE, f"degree {degree} is not in [0, {MAX_DEGREE}]")
        n_sv = sv.shape[0]
        if svm_type != "classifier":
            spec.check(
                dual_coef.shape == (1, n_sv) and intercept.shape == (1,),
                f"a {svm_type} needs dual_coef (1, {n_sv}) and one intercept",
            )
            offset = float(spec.param("offset", (int, float), 0.0))
            n_all = np.array([n_sv])
            return cls(
                sv,
                dual_coef,
                intercept,
                n_all,
                kernel,
                gamma,
                coef0,
                degree,
                svm_type,
                offset=offset,
            )
        n_support = spec.array("n_support", ndim=1, kind="iu")
        spec.check(
            bool((n_support >= 0).all()) and int(n_support.sum()) == n_sv,
            f"n_support must be non-negative counts summing to the {n_sv} support vectors",
        )
        classes = spec.labels()
        k = len(classes)
        pairs = k * (k - 1) // 2
        spec.check(k >= 2 and n_support.shape == (k,), f"n_support needs one count per class ({k})")
        spec.check(
            dual_coef.shape == (k - 1, n_sv) and intercept.shape == (pairs,),
            f"{k} classes need dual_coef ({k - 1}, {n_sv}) and {pairs} intercepts",
        )
        prob_a = spec.array("prob_a", ndim=1, optional=True)
        prob_b = spec.array("prob_b", ndim=1, optional=True)
        spec.check(
            (prob_a is None) == (prob_b is None)
            and (prob_a is None or prob_a.shape == prob_b.shape == (pairs,)),
            f"prob_a and prob_b come together, one value per class pair ({pairs})",
        )
        return cls(
            sv,
            dual_coef,
            intercept,
            n_support,
            kernel,
            gamma,
            coef0,
            degree,
            svm_type,
            classes=classes,
            prob_a=prob_a,
            prob_b=prob_b,
            decision_shape=spec.choice("decision_shape", ("ovo", "ovr")),
            break_ties=spec.param("break_ties", bool, False),
        )

    def kernel_values(self, X: np.ndarray) -> np.ndarray:
        """K(X, support vectors), (n_samples, n_sv), as libsvm's ``k_function``."""
        sv = self.support_vectors
        if X.shape[1] != sv.shape[1]:  # an image at odds with its own input width
            raise ManifestError(
                f"the support vectors have {sv.shape[1]} columns, the model gives them {X.shape[1]}"
            )
        if self.kernel != "rbf":
            dot = X @ sv.T
            if self.kernel == "linear":
                return dot
            dot *= self.gamma
            dot += self.coef0
            return powi(dot, self.degree) if self.kernel == "poly" else np.tanh(dot, out=dot)
        out = np.empty((len(X), len(sv)))
        step = max(1, _CHUNK_ELEMENTS // max(1, sv.size))
        for start in range(0, len(X), step):
            diff = X[start : start + step, None, :] - sv
            diff *= diff
            out[start : start + step] = diff.sum(axis=2)
        out *= -self.gamma
        return np.exp(out, out=out)

    def libsvm_decision(self, X: np.ndarray) -> np.ndarray:
        """libsvm's decision values: one column per class pair (i < j), or one column.
        A kernel that overflows gives inf or NaN, as libsvm's C does, without numpy's
        warnings."""
        with np.errstate(over="ignore", invalid="ignore"):
            return self._decision(X)

    def _decision(self, X: np.ndarray) -> np.ndarray:
        K = self.kernel_values(X)
        if self.svm_type != "classifier":
            return (K @ self.dual_coef[0] + self.intercept[0]).reshape(-1, 1)
        k = len(self.bounds) - 1
        out = np.empty((len(X), k * (k - 1) // 2))
        p = 0
        for i in range(k):
            si, ei = self.bounds[i], self.bounds[i + 1]
            for j in range(i + 1, k):
                sj, ej = self.bounds[j], self.bounds[j + 1]
                out[:, p] = K[:, si:ei] @ self.dual_coef[j - 1, si:ei]
                out[:, p] += K[:, sj:ej] @ self.dual_coef[i, sj:ej]
                out[:, p] += self.intercept[p]
                p += 1
        return out

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        dec = self.libsvm_decision(X)
        if self.svm_type != "classifier":
            return dec[:, 0]
        k = len(self.classes_)  # type: ignore[arg-type]
        if k == 2:
            return -dec[:, 0]  # scikit-learn flips the binary sign
        if self.decision_shape == "ovr":
            return _ovr_decision(dec, k)
        return dec

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        return self.decision_function(X) + self.offset

    def predict(self, X: np.ndarray) -> np.ndarray:
        dec = self.libsvm_decision(X)
        if self.svm_type == "regressor":
            return dec[:, 0]
        if self.svm_type == "one_class":
            return np.where(dec[:, 0] > 0, 1, -1).astype(np.intp)
        k = len(self.classes_)  # type: ignore[arg-type]
        if self.break_ties and self.decision_shape == "ovr" and k > 2:
            index = _ovr_decision(dec, k).argmax(axis=1)
        else:
            index = _vote(dec, k)
        return self.classes_.take(index, axis=0)  # type: ignore[union-attr]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        dec = self.libsvm_decision(X)
        k = len(self.classes_)  # type: ignore[arg-type]
        pairwise = np.empty((len(X), k, k))
        p = 0
        for i in range(k):
            for j in range(i + 1, k):
                prob = _sigmoid_predict(dec[:, p], self.prob_a[p], self.prob_b[p])  # type: ignore[index]
                # libsvm's min(max(p, m), 1 - m), its templates x > y ? x : y and x < y ? x : y:
                # a NaN decision (an overflowing kernel) becomes m, not NaN
                prob = np.where(prob > _MIN_PROB, prob, _MIN_PROB)
                prob = np.where(prob < 1 - _MIN_PROB, prob, 1 - _MIN_PROB)
                pairwise[:, i, j] = prob
                pairwise[:, j, i] = 1 - prob
                p += 1
        return _multiclass_probability(pairwise)

    def predict_log_proba(self, X: np.ndarray) -> np.ndarray:
        return np.log(self.predict_proba(X))


def _vote(dec: np.ndarray, k: int) -> np.ndarray:
    """libsvm's one-vs-one vote: pair (i, j) votes i if its value is > 0, else j; the first
    class with the most votes wins."""
    votes = np.zeros((len(dec), k), dtype=np.intp)
    rows = np.arange(len(dec))
    p = 0
    for i in range(k):
        for j in range(i + 1, k):
            votes[rows, np.where(dec[:, p] > 0, i, j)] += 1
            p += 1
    return votes.argmax(axis=1)


def _ovr_decision(dec: np.ndarray, k: int) -> np.ndarray:
    """``sklearn.utils.multiclass._ovr_decision_function(dec < 0, -dec, k)``: the votes plus
    the summed confidences mapped into (-1/3, 1/3) by x / (3 (|x| + 1))."""
    n = len(dec)
    votes = np.zeros((n, k))
    confidences = np.zeros((n, k))
    p = 0
    for i in range(k):
        for j in range(i + 1, k):
            confidences[:, i] -= -dec[:, p]
            confidences[:, j] += -dec[:, p]
            losses = dec[:, p] < 0
            votes[~losses, i] += 1
            votes[losses, j] += 1
            p += 1
    return votes + confidences / (3 * (np.abs(confidences) + 1))


def _sigmoid_predict(dec: np.ndarray, a: float, b: float) -> np.ndarray:
    """libsvm's ``sigmoid_predict``: 1 / (1 + exp(dec * a + b)), in its two stable forms."""
    fapb = dec * a + b
    out = np.empty_like(fapb)
    pos = fapb >= 0
    e = exp_libm(-fapb[pos])  # libsvm's C calls libm's exp
    out[pos] = e / (1.0 + e)
    out[~pos] = 1.0 / (1 + exp_libm(fapb[~pos]))
    return out


def _multiclass_probability(r: np.ndarray) -> np.ndarray:
    """libsvm's ``multiclass_probability`` (Wu, Lin and Weng's method 2) for every sample at
    once: the same Gauss-Seidel sweeps and sums in the same order, each sample stopping at the
    first iteration whose error is below 0.005 / k (at most max(100, k) iterations)."""
    n, k = r.shape[:2]
    Q = np.zeros((n, k, k))
    for t in range(k):
        for j in range(t):
            Q[:, t, t] += r[:, j, t] * r[:, j, t]
            Q[:, t, j] = Q[:, j, t]
        for j in range(t + 1, k):
            Q[:, t, t] += r[:, j, t] * r[:, j, t]
            Q[:, t, j] = -r[:, j, t] * r[:, t, j]
    p = np.full((n, k), 1.0 / k)
    eps = 0.005 / k
    active = np.arange(n)
    for _ in range(max(100, k)):
        Qa, pa = Q[active], p[active]
        Qp = np.zeros((len(active), k))
        pQp = np.zeros(len(active))
        for t in range(k):
            for j in range(k):
                Qp[:, t] += Qa[:, t, j] * pa[:, j]
            pQp += pa[:, t] * Qp[:, t]
        error = np.abs(Qp - pQp[:, None]).max(axis=1)
        running = error >= eps
        active, Qa, pa, Qp, pQp = (a[running] for a in (active, Qa, pa, Qp, pQp))
        if not len(active):
            break
        for t in range(k):
            diff = (-Qp[:, t] + pQp) / Qa[:, t, t]
            pa[:, t] += diff
            pQp = (pQp + diff * (diff * Qa[:, t, t] + 2 * Qp[:, t])) / (1 + diff) / (1 + diff)
            for j in range(k):
                Qp[:, j] = (Qp[:, j] + diff * Qa[:, t, j]) / (1 + diff)
                pa[:, j] /= 1 + diff
        p[active] = pa
    return p
