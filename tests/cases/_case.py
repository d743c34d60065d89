"""One entry of the exactness matrix, and the datasets cases are fitted on."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Case:
    """``make()`` returns an unfitted estimator; it is fitted on ``data`` and compared on its
    held-out rows. ``rtol`` is 1e-9 unless the model computes in float32 (then 1e-6).
    ``fit_params(X, y)``, if given, adds keyword arguments to ``fit`` (a ranker's groups)."""

    id: str
    make: Callable[[], Any]
    data: str
    rtol: float = 1e-9
    atol: float = 1e-12
    fit_params: Callable[[Any, Any], dict[str, Any]] | None = None

    def fit(self) -> tuple[Any, np.ndarray]:
        return fit_on(self.make(), self.data, self.fit_params)


def fit_on(
    est: Any,
    data: str | Callable[[], tuple[Any, Any, Any]],
    fit_params: Callable[[Any, Any], dict[str, Any]] | None = None,
) -> tuple[Any, Any]:
    """Fit ``est`` on a named dataset (or a data callable): (fitted estimator, X_test)."""
    X, y, X_test = dataset(data) if isinstance(data, str) else data()
    extra = fit_params(X, y) if fit_params is not None else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings do not matter for exactness
        est.fit(X, y, **extra) if y is not None else est.fit(X, **extra)
    return est, X_test


def library_output(est: Any, method: str, X: Any) -> np.ndarray:
    """``est.method(X)`` as an array, its warnings silenced (the oracle side of a comparison)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(getattr(est, method)(X))


def _split(X: np.ndarray, y: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    cut = int(len(X) * 0.75)
    train, test = order[:cut], order[cut:]
    return X[train], None if y is None else y[train], X[test]


@functools.cache
def dataset(name: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(X_train, y_train, X_test) for a named dataset; arrays are shared, never mutate them.

    Bundled with scikit-learn: iris, wine, breast_cancer, digits, diabetes.
    Random: random_clf (binary), random_multi (5 classes), random_reg, random_multireg
    (3 targets), random_multilabel (4 binary labels), random_counts (non-negative integers,
    3 classes), random_binary (0/1 features, 3 classes), random_strlabels (3 string classes),
    random_nan (random_clf with 10% NaN), random_cat (integer categories in columns 0-2),
    random_semi (3 classes, half the labels -1: unlabelled), random_codes (category codes
    0..1 to 0..7, 3 classes).
    """
    from sklearn import datasets

    loaders = {
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "breast_cancer": datasets.load_breast_cancer,
        "digits": datasets.load_digits,
        "diabetes": datasets.load_diabetes,
    }
    if name in loaders:
        X, y = loaders[name](return_X_y=True)
        return _split(np.asarray(X, dtype=np.float64), y)
    rng = np.random.default_rng(42)
    n, d = 400, 12
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 5, size=d) + rng.normal(size=d)
    w = rng.normal(size=(d, 5))
    if name == "random_clf":
        return _split(X, (X @ w[:, 0] + rng.normal(size=n) > 0).astype(np.int64))
    if name == "random_multi":
        return _split(X, np.argmax(X @ w + rng.normal(size=(n, 5)), axis=1))
    if name == "random_strlabels":
        labels = np.array(["ant", "bee", "cat"])
        return _split(X, labels[np.argmax(X @ w[:, :3] + rng.normal(size=(n, 3)), axis=1)])
    if name == "random_reg":
        return _split(X, X @ w[:, 0] + rng.normal(size=n))
    if name == "random_multireg":
        return _split(X, X @ w[:, :3] + rng.normal(size=(n, 3)))
    if name == "random_multilabel":
        return _split(X, (X @ w[:, :4] + rng.normal(size=(n, 4)) > 0).astype(np.int64))
    if name == "random_counts":
        C = rng.poisson(lam=rng.uniform(0.2, 4, size=d), size=(n, d)).astype(np.float64)
        return _split(C, np.argmax(C @ w[:, :3] + rng.normal(size=(n, 3)), axis=1))
    if name == "random_binary":
        B = (rng.uniform(size=(n, d)) < 0.4).astype(np.float64)
        return _split(B, np.argmax(B @ w[:, :3] + rng.normal(size=(n, 3)), axis=1))
    if name == "random_nan":
        Xn = X.copy()
        Xn[rng.uniform(size=X.shape) < 0.1] = np.nan
        return _split(Xn, (X @ w[:, 0] > 0).astype(np.int64))
    if name == "random_cat":
        Xc = X.copy()
        Xc[:, :3] = rng.integers(0, 4, size=(n, 3))
        return _split(Xc, (X @ w[:, 0] + Xc[:, 0] > 0).astype(np.int64))
    if name == "random_codes":
        K = rng.integers(0, np.arange(2, 2 + d) // 2 + 2, size=(n, d)).astype(np.float64)
        return _split(K, np.argmax(K @ w[:, :3] + rng.normal(size=(n, 3)), axis=1))
    if name == "random_semi":
        y = np.argmax(X @ w[:, :3] + rng.normal(size=(n, 3)), axis=1)
        y[rng.uniform(size=n) < 0.5] = -1
        return _split(X, y)
    raise KeyError(f"unknown dataset {name!r}")
