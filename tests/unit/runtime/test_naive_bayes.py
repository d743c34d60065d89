"""Naive Bayes executors: scikit-learn's log-sum-exp, input checks, zero-copy, edge cases.

Exactness over datasets lives in tests/cases/naive_bayes.py; these tests cover what that matrix
cannot: negative input, ties and -inf in the normalisation, degenerate fits, manifests.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from sklearn.naive_bayes import (
    BernoulliNB,
    ComplementNB,
    GaussianNB,
    MultinomialNB,
)
from sklearn.utils._array_api import _logsumexp

import modelshelf
from modelshelf.errors import InputError, ManifestError
from modelshelf.image import ImageBuilder
from modelshelf.runtime._math import log_normalize
from tests.cases._case import dataset

METHODS = ("predict", "predict_proba", "predict_log_proba")


def _fit(est: Any, X: np.ndarray, y: np.ndarray) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y)


def _assert_matches(est: Any, X: np.ndarray) -> modelshelf.Model:
    model = modelshelf.load(modelshelf.compile(est))
    for method in METHODS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = getattr(est, method)(X)
        actual = getattr(model, method)(X)
        if method == "predict":
            assert np.array_equal(actual, expected)
        else:
            np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-12)
    return model


def test_log_normalize_is_scikit_learns_to_the_bit() -> None:
    rng = np.random.default_rng(3)
    jll = rng.normal(size=(200, 5)) * 300
    jll[0] = [-5.0, -5.0, -7.0, -5.0, -9.0]  # ties at the maximum
    jll[1] = [-np.inf, -1.0, -2.0, -np.inf, -3.0]
    jll[2] = [1e4, -1e4, 0.0, 3.0, 1e4]
    jll[3] = [-np.inf] * 5  # every class impossible: NaN, as in scikit-learn
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = jll - _logsumexp(jll, axis=1)[:, None]
    assert np.array_equal(log_normalize(jll), expected, equal_nan=True)
    assert np.isnan(expected[3]).all()


@pytest.mark.parametrize("cls", [MultinomialNB, ComplementNB])
def test_count_models_refuse_negative_input(cls: type) -> None:
    X, y, X_test = dataset("random_counts")
    model = modelshelf.load(modelshelf.compile(_fit(cls(), X, y)))
    bad = X_test.copy()
    bad[3, 5] = -0.5
    for method in METHODS:
        with pytest.raises(InputError, match=r"negative values are not allowed.*X\[3, 5\] = -0.5"):
            getattr(model, method)(bad)
    model.predict(X_test)


@pytest.mark.parametrize("est", [GaussianNB(), BernoulliNB(binarize=0.0)])
def test_other_models_take_negative_input(est: Any) -> None:
    X, y, X_test = dataset("random_clf")
    _assert_matches(_fit(est, X, y), -X_test)


def test_bernoulli_threshold_is_strict() -> None:
    X, y, X_test = dataset("random_counts")
    assert (X_test == 1.0).any()
    _assert_matches(_fit(BernoulliNB(binarize=1.0), X, y), X_test)


def test_zero_prior_gives_minus_infinity() -> None:
    X, y, X_test = dataset("random_multi")
    est = _fit(GaussianNB(priors=[0.0, 0.25, 0.25, 0.25, 0.25]), X, y)
    model = _assert_matches(est, X_test)
    assert np.isneginf(model.predict_log_proba(X_test)[:, 0]).all()


def test_complement_single_class() -> None:
    X, _, X_test = dataset("random_counts")
    est = _fit(ComplementNB(), X, np.full(len(X), "solo"))
    model = _assert_matches(est, X_test)
    assert (model.predict(X_test) == "solo").all()


def test_arrays_are_read_only_views_and_input_is_not_written() -> None:
    X, y, X_test = dataset("digits")
    model = _assert_matches(_fit(BernoulliNB(binarize=4.0), X, y), X_test)
    weights = model._executor.weights  # type: ignore[union-attr]
    assert weights is model.tensors["model/weights"] and not weights.flags.writeable
    ro = X_test.copy()
    ro.setflags(write=False)
    model.predict_proba(ro)
    assert np.array_equal(ro, X_test)

    model = _assert_matches(_fit(GaussianNB(), X, y), ro)
    assert model._executor.theta is model.tensors["model/theta"]  # type: ignore[union-attr]


def _image(spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    builder = ImageBuilder()
    for name, arr in arrays.items():
        builder.add(name, arr)
    return builder.build({"model": spec, "input": {"type": "numeric"}, "metadata": {}})


CLASSES = {"dtype": "str", "strings": ["a", "b", "c"]}


@pytest.mark.parametrize(
    ("kind", "shapes", "params", "message"),
    [
        ("discrete_nb", {"weights": (2, 4)}, {}, "one row per class"),
        ("discrete_nb", {"weights": (3, 4), "bias": (2,)}, {}, "one value per class"),
        ("discrete_nb", {"weights": (3, 4)}, {"binarize": "yes"}, "binarize"),
        ("discrete_nb", {"weights": (3, 4)}, {"nonnegative": 1}, "nonnegative"),
        (
            "gaussian_nb",
            {"theta": (3, 4), "var": (3, 5), "log_prior": (3,), "log_norm": (3,)},
            {},
            "differ",
        ),
        (
            "gaussian_nb",
            {"theta": (3, 4), "var": (3, 4), "log_prior": (2,), "log_norm": (3,)},
            {},
            "one row per class",
        ),
        ("gaussian_nb", {"theta": (3, 4), "var": (3, 4), "log_prior": (3,)}, {}, "log_norm"),
    ],
)
def test_inconsistent_manifest_is_rejected(
    kind: str, shapes: dict[str, tuple[int, ...]], params: dict[str, Any], message: str
) -> None:
    arrays = {role: np.zeros(shape) for role, shape in shapes.items()}
    spec = {
        "kind": kind,
        "arrays": {role: role for role in arrays},
        "params": {"classes": CLASSES, **params},
    }
    with pytest.raises(ManifestError, match=message):
        modelshelf.load(_image(spec, arrays))


def test_hand_made_discrete_manifest_predicts() -> None:
    weights = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    bias = np.array([0.0, 0.0, 0.1])
    spec = {
        "kind": "discrete_nb",
        "arrays": {"weights": "w", "bias": "b"},
        "params": {"classes": CLASSES, "binarize": 0.5},
    }
    model = modelshelf.load(_image(spec, {"w": weights, "b": bias}))
    X = np.array([[1.0, 0.0], [0.2, 0.9], [0.9, 0.9]])
    assert list(model.predict(X)) == ["a", "b", "c"]
    jll = (X > 0.5) @ weights.T + bias
    expected = np.exp(jll) / np.exp(jll).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict_proba(X), expected, rtol=1e-12)
