"""Exactness cases: neural networks (MLPClassifier, MLPRegressor).

Small networks and few iterations keep fitting fast; convergence does not matter for exactness.
"""

from __future__ import annotations

from typing import Any

from sklearn.neural_network import MLPClassifier, MLPRegressor

from ._case import Case


def _clf(hidden: tuple[int, ...] = (16,), **kw: Any) -> MLPClassifier:
    return MLPClassifier(hidden_layer_sizes=hidden, max_iter=60, random_state=0, **kw)


def _reg(hidden: tuple[int, ...] = (16,), **kw: Any) -> MLPRegressor:
    return MLPRegressor(hidden_layer_sizes=hidden, max_iter=60, random_state=0, **kw)


CASES: list[Case] = [
    Case("mlp-clf-relu-iris", lambda: _clf(), "iris"),
    Case("mlp-clf-logistic-wine", lambda: _clf(activation="logistic"), "wine"),
    Case("mlp-clf-tanh-breast_cancer", lambda: _clf(activation="tanh"), "breast_cancer"),
    Case("mlp-clf-identity-digits", lambda: _clf(activation="identity"), "digits"),
    Case("mlp-clf-relu-2layers-digits", lambda: _clf((24, 12)), "digits"),
    Case("mlp-clf-lbfgs-binary", lambda: _clf((8,), solver="lbfgs"), "random_clf"),
    Case("mlp-clf-tanh-binary", lambda: _clf((8, 8), activation="tanh"), "random_clf"),
    Case("mlp-clf-logistic-multi", lambda: _clf(activation="logistic"), "random_multi"),
    Case("mlp-clf-strlabels", lambda: _clf(), "random_strlabels"),
    Case("mlp-clf-identity-multilabel", lambda: _clf(activation="identity"), "random_multilabel"),
    Case("mlp-clf-relu-multilabel", lambda: _clf((12, 6)), "random_multilabel"),
    Case("mlp-clf-counts", lambda: _clf(solver="lbfgs"), "random_counts"),
    Case("mlp-clf-binaryfeatures", lambda: _clf(activation="tanh"), "random_binary"),
    Case("mlp-reg-relu-diabetes", lambda: _reg(), "diabetes"),
    Case("mlp-reg-identity-diabetes", lambda: _reg(activation="identity"), "diabetes"),
    Case("mlp-reg-logistic-random_reg", lambda: _reg(activation="logistic"), "random_reg"),
    Case("mlp-reg-tanh-random_reg", lambda: _reg((8, 8), activation="tanh"), "random_reg"),
    Case("mlp-reg-relu-multireg", lambda: _reg(), "random_multireg"),
    Case(
        "mlp-reg-tanh-multireg", lambda: _reg(activation="tanh", solver="lbfgs"), "random_multireg"
    ),
    Case("mlp-reg-poisson-counts", lambda: _reg(loss="poisson"), "random_counts"),
]
