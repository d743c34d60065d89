"""Tree ensembles: scikit-learn trees and forests, gradient boosting (scikit-learn, XGBoost,
LightGBM) and isolation forests, as executors over one ``Forest`` (runtime/trees_forest.py).

Every executor here sums leaf outputs over trees with ``Forest.raw`` and then does what its
library does with the sums: average class probabilities (forests), apply a link (boosting),
turn path lengths into anomaly scores (isolation forest). Labels follow each library's own rule,
ties included (``raw >= 0`` for GradientBoosting, ``raw > 0`` for HistGradientBoosting,
``p > 0.5`` for XGBoost, the margin itself for its ``binary:logitraw``, argmax of ``[1 - p, p]``
for LightGBM, the int32 index of the largest margin for XGBoost's ``multi:softmax``). The
boosted kinds read raw scores from any ``Margins``: a ``Forest`` here, XGBoost's linear booster
in runtime/boosted_linear.py.
"""

from __future__ import annotations

import itertools
from typing import Any, Protocol

import numpy as np

from .. import _kernels
from ._base import METHODS, Executor, Spec, register
from ._math import exp_libm, expf_libm, expit, softmax, softmax_libm
from .trees_forest import Forest

# "exp" and "softmax" are numpy's (scikit-learn's links); "libm_exp" and "libm_softmax" the C
# library's exp (LightGBM's); "sigmoid" and "ovr_sigmoid" in float64 are scipy's expit or
# LightGBM's, both libm's exp.
LINKS = (
    "identity", "exp", "sigmoid", "softmax", "ovr_sigmoid", "argmax", "scipy_softmax",
    "libm_exp", "libm_softmax",
)  # fmt: skip
LABEL_RULES = ("raw_ge_0", "raw_gt_0", "proba_gt_half", "argmax_proba", "argmax_raw")
# XGBClassifier's multi:softmax: predict gives the argmax's index as int32 (classes 0..K-1).
INDEX_RULE = "argmax_raw_int32"


def _methods(spec: Spec, supported: frozenset[str]) -> frozenset[str]:
    """The methods the compiled estimator had (its converter lists them), within ``supported``."""
    names = spec.param("methods", list)
    spec.check(all(isinstance(m, str) and m in METHODS for m in names), f"bad methods {names}")
    unknown = set(names) - supported
    spec.check(not unknown, f"this executor cannot provide {sorted(unknown)}")
    return frozenset(names)


def _log(proba: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(proba)


@register
class TreeClassifier(Executor):
    """scikit-learn's decision trees and forests of them: the mean of per-tree class
    probabilities (leaf rows hold each output's class fractions side by side)."""

    kind = "tree_classifier"

    def __init__(self, forest: Forest, classes: list[np.ndarray], methods: frozenset[str]):
        self.forest = forest
        self.allow_nan = True
        self.methods = methods
        self.outputs = classes
        self.classes_ = classes[0] if len(classes) == 1 else classes
        bounds = np.cumsum([0] + [len(c) for c in classes]).tolist()
        self.slices = [slice(a, b) for a, b in itertools.pairwise(bounds)]

    @classmethod
    def from_spec(cls, spec: Spec) -> TreeClassifier:
        forest = Forest(spec)
        n_outputs = spec.param("n_outputs", int, 1)
        spec.check(1 <= n_outputs <= forest.n_outputs, f"n_outputs {n_outputs} is impossible")
        keys = ["classes"] if n_outputs == 1 else [f"classes_{k}" for k in range(n_outputs)]
        classes = [spec.labels(key) for key in keys]
        spec.check(
            all(len(c) >= 1 for c in classes) and forest.n_outputs == sum(len(c) for c in classes),
            f"leaves hold {forest.n_outputs} values, the classes need "
            f"{sum(len(c) for c in classes)}",
        )
        supported = frozenset({"predict", "predict_proba", "predict_log_proba"})
        executor = cls(forest, classes, _methods(spec, supported))
        executor.allow_nan = spec.param("allow_nan", bool)
        return executor

    def predict_proba(self, X: np.ndarray) -> Any:
        proba = self.forest.raw(X)
        if len(self.slices) == 1:
            return proba
        return [proba[:, s] for s in self.slices]

    def predict_log_proba(self, X: np.ndarray) -> Any:
        proba = self.predict_proba(X)
        return _log(proba) if isinstance(proba, np.ndarray) else [_log(p) for p in proba]

    def predict(self, X: np.ndarray) -> np.ndarray:
        proba = self.forest.raw(X)
        if len(self.slices) == 1:
            return self.outputs[0].take(np.argmax(proba, axis=1), axis=0)
        # scikit-learn gives every output the dtype of its y, which covers all their labels.
        dtype = np.result_type(*(c.dtype for c in self.outputs))
        out = np.empty((len(X), len(self.slices)), dtype=dtype)
        for k, (s, classes) in enumerate(zip(self.slices, self.outputs, strict=True)):
            out[:, k] = classes.take(np.argmax(proba[:, s], axis=1), axis=0)
        return out


@register
class TreeRegressor(Executor):
    """scikit-learn's regression trees and forests: the mean of per-tree leaf values."""

    kind = "tree_regressor"
    methods = frozenset({"predict"})

    def __init__(self, forest: Forest, allow_nan: bool) -> None:
        self.forest = forest
        self.allow_nan = allow_nan

    @classmethod
    def from_spec(cls, spec: Spec) -> TreeRegressor:
        return cls(Forest(spec), spec.param("allow_nan", bool))

    def predict(self, X: np.ndarray) -> np.ndarray:
        out = self.forest.raw(X)
        return out[:, 0] if out.shape[1] == 1 else out


def _apply_link(link: str, raw: np.ndarray, scale: float) -> np.ndarray:
    """The inverse link, in the sums' own precision (XGBoost works in float32)."""
    if link == "identity":
        return raw
    if link == "argmax":
        return np.argmax(raw, axis=1).astype(raw.dtype)
    if link == "scipy_softmax":  # scipy.special.softmax, numpy's exp in the sums' dtype
        return softmax(raw.copy())
    if raw.dtype == np.float32:
        return _link_float32(link, raw)
    if link == "softmax":
        return softmax(raw.copy())
    if link == "libm_softmax":
        return softmax_libm(raw)
    if link == "libm_exp":
        return exp_libm(raw)
    if link == "exp":
        with np.errstate(over="ignore"):
            return np.exp(raw)
    # 1 / (1 + exp(-x)) with libm's exp: scipy's expit and LightGBM's sigmoid alike
    return expit(raw if scale == 1 else raw * scale)


def _link_float32(link: str, raw: np.ndarray) -> np.ndarray:
    """XGBoost's transforms, operation for operation (common/math.h)."""
    one = np.float32(1)
    if link == "exp":
        return expf_libm(raw)
    if link == "softmax":  # expf(x - max), summed in double, divided in float
        e = expf_libm(raw - raw.max(axis=1, keepdims=True))
        total = np.add.reduce(e.T.astype(np.float64), axis=0).astype(np.float32)
        return e / total[:, None]
    return one / (one + expf_libm(-raw))  # sigmoid


class Margins(Protocol):
    """What the boosted kinds read raw scores from: a ``Forest``, or another booster's
    kernel (runtime/boosted_linear.py)."""

    n_outputs: int

    def raw(self, X: np.ndarray, *, divide: bool = True) -> np.ndarray: ...


class _Boosted(Executor):
    """Sums of boosted trees per class or target: raw margins, then a link."""

    def __init__(self, forest: Margins, link: str, scale: float, methods: frozenset[str]):
        self.forest = forest
        self.link = link
        self.scale = scale
        self.methods = methods
        self.allow_nan = True

    @classmethod
    def _margins(cls, spec: Spec) -> Margins:
        forest = Forest(spec)
        spec.check(forest.width == 1, "boosted trees have one output per leaf")
        return forest

    @classmethod
    def _parts(cls, spec: Spec, supported: frozenset[str]) -> tuple[Margins, str, float, Any]:
        forest = cls._margins(spec)
        link = spec.choice("link", LINKS)
        if link in ("libm_exp", "libm_softmax"):
            spec.check(getattr(forest, "dtype", None) == np.float64, f"link {link!r} needs float64")
        scale = spec.param("sigmoid_scale", (int, float), 1.0)
        return forest, link, float(scale), _methods(spec, supported)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        raw = self.forest.raw(X, divide=False)
        return raw[:, 0] if raw.shape[1] == 1 else raw


@register
class BoostedClassifier(_Boosted):
    """A boosted tree ensemble's raw scores turned into class probabilities."""

    kind = "boosted_classifier"

    @classmethod
    def from_spec(cls, spec: Spec) -> BoostedClassifier:
        supported = frozenset(
            {"predict", "predict_proba", "predict_log_proba", "decision_function"}
        )
        forest, link, scale, methods = cls._parts(spec, supported)
        classes = spec.labels()
        k = forest.n_outputs
        spec.check(
            len(classes) >= 2, f"a boosted classifier needs 2 classes or more, found {classes!r}"
        )
        spec.check(
            k == (1 if len(classes) == 2 else len(classes)),
            f"{len(classes)} classes need {1 if len(classes) == 2 else len(classes)} sums, "
            f"the trees give {k}",
        )
        links = (
            ("sigmoid", "identity")
            if k == 1
            else ("softmax", "ovr_sigmoid", "scipy_softmax", "libm_softmax")
        )
        spec.check(link in links, f"link {link!r} for {k} sums")
        executor = cls(forest, link, scale, methods)
        executor.classes_ = classes
        executor.rule = spec.choice(
            "label_rule", LABEL_RULES[:4] if k == 1 else ("argmax_proba", "argmax_raw", INDEX_RULE)
        )
        if executor.rule == INDEX_RULE:
            spec.check(
                np.array_equal(classes, np.arange(k)), f"{INDEX_RULE} needs classes 0..{k - 1}"
            )
        executor.allow_nan = spec.param("allow_nan", bool)
        executor.label_column = spec.param("label_column", bool, False)
        if k == 1 and link == "sigmoid" and scale == 1 and getattr(forest, "kernel", None):
            executor.sigmoid = _kernels.sigmoid()  # the forest's sums are contiguous floats
        return executor

    rule: str = "argmax_proba"
    label_column: bool = False  # predict gives an (n, 1) column (CatBoost's multiclass)
    # The compiled binary link (link.c), numpy's operations and exp to the bit, where built.
    sigmoid: Any = None

    def _proba(self, raw: np.ndarray) -> np.ndarray:
        if self.sigmoid is not None:
            out = np.empty((len(raw), 2), dtype=raw.dtype)
            self.sigmoid(raw, out)
            return out
        prob = _apply_link(self.link, raw, self.scale)
        if raw.shape[1] > 1:
            return prob
        out = np.empty((len(raw), 2), dtype=prob.dtype)
        out[:, 1] = prob[:, 0]
        out[:, 0] = 1 - out[:, 1]
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self._proba(self.forest.raw(X))

    def predict_log_proba(self, X: np.ndarray) -> np.ndarray:
        return _log(self.predict_proba(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        raw = self.forest.raw(X)
        rule = self.rule
        if rule == "raw_ge_0":
            index = (raw[:, 0] >= 0).astype(np.intp)
        elif rule == "raw_gt_0":
            index = (raw[:, 0] > 0).astype(np.intp)
        elif rule == "argmax_raw":
            index = np.argmax(raw, axis=1)
        elif rule == INDEX_RULE:
            return np.argmax(raw, axis=1).astype(np.int32)
        elif rule == "proba_gt_half":
            index = (self._proba(raw)[:, 1] > 0.5).astype(np.intp)
        else:
            index = np.argmax(self._proba(raw), axis=1)
        labels = self.classes_.take(index, axis=0)  # type: ignore[union-attr]
        return labels[:, None] if self.label_column else labels


@register
class BoostedRegressor(_Boosted):
    """Boosted regressors, and the native boosters of XGBoost and LightGBM: ``predict`` gives
    what the library's predict gives; ``decision_function``, where offered, the raw margins."""

    kind = "boosted_regressor"

    @classmethod
    def from_spec(cls, spec: Spec) -> BoostedRegressor:
        forest, link, scale, methods = cls._parts(spec, frozenset({"predict", "decision_function"}))
        executor = cls(forest, link, scale, methods)
        executor.allow_nan = spec.param("allow_nan", bool)
        return executor

    def predict(self, X: np.ndarray) -> np.ndarray:
        out = _apply_link(self.link, self.forest.raw(X), self.scale)
        return out[:, 0] if out.ndim == 2 and out.shape[1] == 1 else out


@register
class IsolationForest(Executor):
    """scikit-learn's IsolationForest: leaves hold ``path length + c(leaf size) - 1``; the
    score is ``-2 ** -(mean path length / c(max_samples))``."""

    kind = "isolation_forest"
    methods = frozenset({"predict", "decision_function", "score_samples"})
    allow_nan = True

    def __init__(self, forest: Forest, denominator: float, offset: float) -> None:
        self.forest = forest
        self.denominator = denominator
        self.offset = offset

    @classmethod
    def from_spec(cls, spec: Spec) -> IsolationForest:
        forest = Forest(spec)
        spec.check(forest.n_outputs == 1, "an isolation forest has one value per leaf")
        denominator = float(spec.param("denominator", (int, float)))
        return cls(forest, denominator, float(spec.param("offset", (int, float))))

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        depths = self.forest.raw(X)[:, 0]
        ratio = np.ones_like(depths)
        if self.denominator != 0:  # a single training sample: sklearn scores 2 ** -1
            ratio = depths / self.denominator
        return -(2 ** (-ratio))

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.score_samples(X) - self.offset

    def predict(self, X: np.ndarray) -> np.ndarray:
        decision = self.decision_function(X)
        inlier = np.ones_like(decision, dtype=int)
        inlier[decision < 0] = -1
        return inlier
