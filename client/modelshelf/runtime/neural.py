"""Neural networks: MLPClassifier and MLPRegressor forward passes.

A spec stores one ``coef_<i>`` (n_in, n_out) and one ``intercept_<i>`` (n_out,) per layer, in
the fitted dtype and C order: the layout ``activation @ coef`` wants, so a layer is BLAS over the
image's bytes (in row blocks that BLAS keeps on the calling thread, ``_math.matmul``). Hidden layers
share one activation; the output activation follows from the target (classifiers) or the loss
(regressors), as in scikit-learn.

Where the compiled kernels are built, the whole forward pass with the output activation runs in
one call of the dense kernel (modelshelf/_kernels/dense.c), which performs these very operations
through numpy's own loops and so gives these results to the bit; it answers None for what it
does not take (a CSR input, another dtype, a floating-point warning to raise), and this code
serves.

A network fitted on float32 (every layer float32) keeps float32 input float32 and computes in
float32 as scikit-learn does (its logistic through the C library's expf, as SciPy's float loop);
any other input is widened to float64, which numpy's promotion does to it there too.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import _kernels
from ._base import Executor, Spec, register
from ._math import MIN_BLOCK_ROWS, SINGLE_THREAD_CELLS, expit_keeping, matmul, softmax

#: hidden-layer activations, applied in place to a fresh pre-activation array.
HIDDEN: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda a: a,
    "logistic": expit_keeping,
    "tanh": lambda a: np.tanh(a, out=a),
    "relu": lambda a: np.maximum(a, 0, out=a),
}
#: how a classifier's target type maps to its output layer (LabelBinarizer's y_type_).
TARGETS = ("binary", "multiclass", "multilabel")
REGRESSOR_OUTPUTS = ("identity", "exp")  # squared_error, poisson
MAX_LAYERS = 1024
#: the dense kernel's link (_kernels.LINKS) for each hidden activation
HIDDEN_LINKS = {"identity": "none", "logistic": "expit", "tanh": "tanh", "relu": "relu"}


def _compiled(
    layers: list[tuple[np.ndarray, np.ndarray]], hidden: str, output: str
) -> _kernels.DenseCall | None:
    return _kernels.dense_forward(
        layers, HIDDEN_LINKS[hidden], output, SINGLE_THREAD_CELLS, MIN_BLOCK_ROWS
    )


def _layers(spec: Spec) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every (coef, intercept) pair, checked to chain: layer i's outputs feed layer i + 1."""
    n_layers = spec.param("n_layers", int)
    if not 1 <= n_layers <= MAX_LAYERS:
        spec.fail(f"n_layers must be 1..{MAX_LAYERS}, not {n_layers}")
    layers = []
    width = None
    for i in range(n_layers):
        coef = spec.array(f"coef_{i}", ndim=2)
        intercept = spec.array(f"intercept_{i}", ndim=1)
        if width is not None and coef.shape[0] != width:
            spec.fail(f"coef_{i} has {coef.shape[0]} rows but layer {i - 1} has {width} outputs")
        if intercept.shape[0] != coef.shape[1]:
            spec.fail(
                f"intercept_{i} has {intercept.shape[0]} values, coef_{i} has "
                f"{coef.shape[1]} columns"
            )
        layers.append((coef, intercept))
        width = coef.shape[1]
    return layers


def _all_float32(layers: list[tuple[np.ndarray, np.ndarray]]) -> bool:
    """Whether the network was fitted on float32: then float32 input stays float32."""
    return all(c.dtype == np.float32 and b.dtype == np.float32 for c, b in layers)


def _forward(layers: list[tuple[np.ndarray, np.ndarray]], hidden: str, X: np.ndarray) -> np.ndarray:
    """The last layer's pre-activation, as ``BaseMultilayerPerceptron._forward_pass_fast``."""
    activation = X
    last = len(layers) - 1
    for i, (coef, intercept) in enumerate(layers):
        activation = matmul(activation, coef)  # new: X and the weights are never written
        activation += intercept
        if i != last:
            activation = HIDDEN[hidden](activation)
    return activation


@register
class MLPClassifier(Executor):
    """A multi-layer perceptron classifier: dense layers, then the output activation."""

    kind = "mlp_classifier"
    accepts_sparse = True  # the first layer's X @ coef works on CSR (runtime._sparse)
    methods = frozenset({"predict", "predict_proba", "predict_log_proba"})

    def __init__(
        self,
        layers: list[tuple[np.ndarray, np.ndarray]],
        activation: str,
        target: str,
        classes: np.ndarray,
    ) -> None:
        self.layers = layers
        self.activation = activation
        self.target = target
        self.classes_ = classes
        output = "softmax" if target == "multiclass" else "expit"
        self.kernel = _compiled(layers, activation, output)
        self.keeps_float32 = self.float32_fitted = _all_float32(layers)
        self.narrows_small = self.keeps_float32

    @classmethod
    def from_spec(cls, spec: Spec) -> MLPClassifier:
        layers = _layers(spec)
        activation = spec.choice("activation", tuple(HIDDEN))
        target = spec.choice("target", TARGETS)
        classes = spec.labels()
        n_out = layers[-1][0].shape[1]
        if target == "binary":
            if not (n_out == 1 and len(classes) in (1, 2)):
                spec.fail(
                    f"a binary MLP has 1 output and 1 or 2 classes, found {n_out} and "
                    f"{len(classes)}"
                )
        elif not n_out == len(classes) >= 2:
            spec.fail(
                f"a {target} MLP needs one output per class (at least 2), found {n_out} outputs "
                f"for {len(classes)} classes"
            )
        return cls(layers, activation, target, classes)

    def _output(self, X: np.ndarray) -> np.ndarray:
        if self.kernel is not None and (fused := self.kernel(X)) is not None:
            return fused
        out = _forward(self.layers, self.activation, X)
        if self.target == "multiclass":
            return softmax(out)
        # numpy's exp may differ from scipy's expit in the last bit, but near p = 1 that bit is
        # absorbed by 1 + exp(-z), so p and scikit-learn's log(1 - p) still agree there.
        return expit_keeping(out)

    def predict(self, X: np.ndarray) -> np.ndarray:
        out = self._output(X)
        classes: np.ndarray = self.classes_  # type: ignore[assignment]
        if self.target == "multiclass":
            return classes.take(out.argmax(axis=1), axis=0)
        if self.target == "multilabel":
            # LabelBinarizer.inverse_transform: an indicator matrix of intp.
            return (out > 0.5).astype(np.intp)
        if len(classes) == 1:
            return np.repeat(classes, out.shape[0])
        return classes.take((out[:, 0] > 0.5).astype(np.intp), axis=0)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        binary = self.target == "binary"
        if binary and self.kernel is not None and (pair := self.kernel(X, True)) is not None:
            return pair  # [1 - p, p] from the kernel: the same values, C-ordered
        out = self._output(X)
        if binary:
            p = out[:, 0]
            return np.vstack([1 - p, p]).T
        return out

    def predict_log_proba(self, X: np.ndarray) -> np.ndarray:
        prob = self.predict_proba(X)
        with np.errstate(divide="ignore"):  # a probability of exactly 0, as scikit-learn gives
            return np.log(prob, out=prob)


@register
class MLPRegressor(Executor):
    """A multi-layer perceptron regressor: dense layers with an identity output."""

    kind = "mlp_regressor"
    accepts_sparse = True
    methods = frozenset({"predict"})

    def __init__(
        self, layers: list[tuple[np.ndarray, np.ndarray]], activation: str, output: str
    ) -> None:
        self.layers = layers
        self.activation = activation
        self.output = output
        self.kernel = _compiled(layers, activation, "exp" if output == "exp" else "none")
        self.keeps_float32 = self.float32_fitted = _all_float32(layers)
        self.narrows_small = self.keeps_float32

    @classmethod
    def from_spec(cls, spec: Spec) -> MLPRegressor:
        return cls(
            _layers(spec),
            spec.choice("activation", tuple(HIDDEN)),
            spec.choice("output", REGRESSOR_OUTPUTS),
        )

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.kernel is not None and (fused := self.kernel(X)) is not None:
            out = fused
        else:
            out = _forward(self.layers, self.activation, X)
            if self.output == "exp":
                np.exp(out, out=out)
        return out.ravel() if out.shape[1] == 1 else out
