"""Refusals of the further estimators: each names the class, the option and the way out."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.kernel_approximation import Nystroem
from sklearn.kernel_ridge import KernelRidge
from sklearn.naive_bayes import CategoricalNB
from sklearn.preprocessing import FunctionTransformer

import modelshelf
from modelshelf import InputError, UnknownCategoryError, UnsupportedModelError

IRIS = load_iris(return_X_y=True)


def _refused(est: object, *fragments: str) -> None:
    with pytest.raises(UnsupportedModelError) as info:
        modelshelf.compile(est)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_function_transformer_with_a_function_is_refused() -> None:
    est = FunctionTransformer(np.log1p).fit(IRIS[0])
    _refused(est, "FunctionTransformer", "func=", "a Python function cannot be compiled")


def _dot(x: np.ndarray, y: np.ndarray) -> float:
    return float(x @ y)


@pytest.mark.parametrize("kernel", [_dot, "additive_chi2"])
def test_kernel_ridge_with_an_uncompiled_kernel_is_refused(kernel: object) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # additive_chi2's Gram matrix may be singular
        est = KernelRidge(kernel=kernel, alpha=10.0).fit(IRIS[0], IRIS[1])
    _refused(est, "KernelRidge", "kernel=", "use one of")


def test_precomputed_nystroem_is_refused() -> None:
    est = Nystroem(kernel="precomputed", n_components=150).fit(IRIS[0] @ IRIS[0].T)
    _refused(est, "Nystroem", "kernel='precomputed'", "use one of")


def test_categorical_nb_fails_on_unseen_and_negative_codes_as_scikit_learn() -> None:
    X = np.array([[0, 1], [1, 2], [2, 0], [1, 1]], dtype=np.float64)
    est = CategoricalNB().fit(X, [0, 1, 1, 0])
    model = modelshelf.load(modelshelf.compile(est))
    np.testing.assert_array_equal(model.predict(X + 0.5), est.predict(X + 0.5))  # truncated
    with pytest.raises(IndexError):
        est.predict([[3, 0]])
    with pytest.raises(UnknownCategoryError, match=r"X\[0, 0\] = 3"):
        model.predict(np.array([[3.0, 0.0]]))
    with pytest.raises(ValueError, match="Negative"):
        est.predict([[-1, 0]])
    with pytest.raises(InputError, match="Negative"):
        model.predict(np.array([[-1.0, 0.0]]))
