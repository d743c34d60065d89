"""Linear executors and one-vs-rest: the edges the exactness matrix cannot reach.

Exactness over datasets lives in tests/cases/linear.py; these tests push fitted estimators to
saturated scores (all-zero probability rows, exact zeros and ones, log(0)), and cover sparse
and float32 coefficients, older scikit-learn's ``multi_class``, zero-copy loading, untouched
inputs, hand-made manifests and unsupported options.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from scipy import sparse
from scipy.special import expit
from sklearn.linear_model import (
    LogisticRegression,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
)
from sklearn.multiclass import OneVsRestClassifier
from sklearn.svm import LinearSVC
from sklearn.utils.extmath import softmax

import modelshelf
from modelshelf.errors import ManifestError, UnsupportedModelError
from modelshelf.image import ImageBuilder
from modelshelf.runtime._math import expit as sigmoid
from tests.cases._case import dataset, fit_on, library_output

METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function")


def _sk_has(est: Any, method: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hasattr(est, method)


def _assert_matches(est: Any, X: np.ndarray) -> modelshelf.Model:
    """Every method scikit-learn has agrees (labels exactly); the others are absent."""
    model = modelshelf.load(modelshelf.compile(est), verify=True)
    for method in METHODS:
        if not _sk_has(est, method):
            assert not hasattr(model, method), method
            continue
        expected = library_output(est, method, X)
        actual = getattr(model, method)(X)
        assert actual.shape == expected.shape, method
        if method == "predict":
            np.testing.assert_array_equal(actual, expected)
        else:
            np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-12, err_msg=method)
    return model


def test_sigmoid_is_scipy_expit_including_its_exact_zeros() -> None:
    x = np.concatenate(
        [np.linspace(-800, 800, 4001), [-745.2, -709.8, -709.7, -1e-300, 0.0, 1e-300, 37, 745]]
    )
    expected = expit(x)
    actual = sigmoid(x)
    np.testing.assert_allclose(actual, expected, rtol=1e-15, atol=0)
    # Where SciPy says exactly 0 (exp(-x) overflowed), so must we: sums and logs depend on it.
    assert np.array_equal(actual == 0, expected == 0)
    assert (expected == 0).sum() > 100


def test_one_vs_rest_all_zero_probability_rows_stay_zero() -> None:
    est, X = fit_on(OneVsRestClassifier(LogisticRegression()), "iris")
    for child in est.estimators_:
        child.intercept_ = child.intercept_ - 1000.0  # every sigmoid underflows to exactly 0
    X = np.vstack([X, X[:3] * 0.0])
    expected = library_output(est, "predict_proba", X)
    assert (expected.sum(axis=1) == 0).all(), "the case must reach all-zero rows"
    model = _assert_matches(est, X)
    assert not hasattr(model, "predict_log_proba")


def test_one_vs_rest_partly_zero_rows_normalise_the_rest() -> None:
    est, X = fit_on(OneVsRestClassifier(LogisticRegression()), "wine")
    est.estimators_[0].intercept_ = est.estimators_[0].intercept_ - 1000.0
    est.estimators_[1].intercept_ = est.estimators_[1].intercept_ - 1000.0
    expected = library_output(est, "predict_proba", X)
    assert (expected[:, :2] == 0).all() and np.allclose(expected[:, 2], 1)
    _assert_matches(est, X)


def test_ovr_link_all_zero_rows_become_uniform() -> None:
    # SGD log_loss normalises per-class sigmoids like liblinear: all-zero rows are uniform.
    est, X = fit_on(SGDClassifier(loss="log_loss", max_iter=5, tol=None, random_state=0), "iris")
    est.intercept_ = est.intercept_ - 1000.0
    expected = library_output(est, "predict_proba", X)
    np.testing.assert_array_equal(expected, np.full_like(expected, 1 / 3))
    _assert_matches(est, X)


def test_modified_huber_zero_sums_become_uniform() -> None:
    est, X = fit_on(
        SGDClassifier(loss="modified_huber", max_iter=5, tol=None, random_state=0), "random_multi"
    )
    raw = X @ est.coef_[0]
    est.intercept_ = np.full(5, -1e9)  # classes 1-4 clip to -1, so (score + 1) / 2 is zero
    est.intercept_[0] = -np.median(raw) - 1  # class 0 too, but in only half of the rows
    zero_rows = (library_output(est, "decision_function", X) <= -1).all(axis=1)
    assert 0 < zero_rows.sum() < len(X), "the case must mix zero-sum and normal rows"
    model = _assert_matches(est, X)
    np.testing.assert_array_equal(model.predict_proba(X)[zero_rows], 0.2)


def test_modified_huber_binary_hard_zeros_and_ones() -> None:
    est, X = fit_on(
        SGDClassifier(loss="modified_huber", max_iter=5, tol=None, random_state=0), "random_clf"
    )
    est.coef_ = est.coef_ * 100
    proba = library_output(est, "predict_proba", X)
    assert (proba == 0).any() and (proba == 1).any()
    model = _assert_matches(est, X)
    assert np.isneginf(model.predict_log_proba(X)).any()


def test_saturated_logistic_binary_log_proba() -> None:
    # Scores beyond +-709.78: p is exactly 0 or 1 and log gives -inf, as scikit-learn's does,
    # also between -745 and -709.78, where exp(x) would still be a subnormal.
    est, X = fit_on(LogisticRegression(), "random_clf")
    scores = library_output(est, "decision_function", X)
    # The score nearest zero goes to -715; the others lie further out on either side.
    nearest = np.argmin(np.abs(scores))
    scale = -715.0 / scores[nearest]
    est.coef_ = est.coef_ * scale
    est.intercept_ = est.intercept_ * scale
    scores = library_output(est, "decision_function", X)
    assert ((scores > -745) & (scores < -709.78)).any() and (np.abs(scores) > 709.78).all()
    assert np.isneginf(library_output(est, "predict_log_proba", X)).sum() == len(X)
    _assert_matches(est, X)


def test_nearly_saturated_logistic_binary_log_proba() -> None:
    # p within 1e-9..1e-15 of 1: log(1 - p) depends on p's last bits.
    est, X = fit_on(LogisticRegression(), "breast_cancer")
    est.coef_ = est.coef_ * 3
    est.intercept_ = est.intercept_ * 3
    p = library_output(est, "predict_proba", X)
    assert ((p.min(axis=1) < 1e-9) & (p.min(axis=1) > 0)).sum() >= 5
    _assert_matches(est, X)


def test_sparse_coef_after_sparsify() -> None:
    est, X = fit_on(
        SGDClassifier(penalty="l1", alpha=0.05, max_iter=10, tol=None, random_state=0),
        "random_multi",
    )
    est.sparsify()
    assert sparse.issparse(est.coef_)
    _assert_matches(est, X)


def test_float32_coefficients_keep_their_dtype() -> None:
    X, y, X_test = dataset("diabetes")
    est = Ridge().fit(X.astype(np.float32), y.astype(np.float32))
    assert est.coef_.dtype == np.float32
    model = _assert_matches(est, X_test)
    assert model.tensors["model/coef"].dtype == np.float32


def test_ridge_classifier_two_labels_multilabel() -> None:
    X, Y, X_test = dataset("random_multilabel")
    est = RidgeClassifier().fit(X, Y[:, :2])
    assert est.coef_.shape[0] == 2 and len(est.classes_) == 2
    model = _assert_matches(est, X_test)
    assert model.predict(X_test).shape == (len(X_test), 2)


def test_one_vs_rest_all_labels_constant() -> None:
    X, Y, X_test = dataset("random_multilabel")
    Y = np.zeros_like(Y)
    Y[:, 1] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = OneVsRestClassifier(LinearSVC()).fit(X, Y)
    assert all(type(e).__name__ == "_ConstantPredictor" for e in est.estimators_)
    _assert_matches(est, X_test)


def test_one_vs_rest_mixed_children_lacks_the_missing_method() -> None:
    # LinearSVC children: no predict_proba, in sklearn and in the Model.
    est, X = fit_on(OneVsRestClassifier(LinearSVC(max_iter=100)), "random_strlabels")
    model = _assert_matches(est, X)
    assert not hasattr(model, "predict_proba")


@pytest.mark.parametrize("multi", ["ovr", "auto-liblinear"])
def test_older_sklearn_ovr_logistic(multi: str) -> None:
    # scikit-learn < 1.8 stored multi_class; "ovr" normalised per-class sigmoids. The formula
    # is the one LinearClassifierMixin._predict_proba_lr still implements.
    est, X = fit_on(LogisticRegression(), "wine")
    est.multi_class = "ovr" if multi == "ovr" else "auto"
    if multi != "ovr":
        est.solver = "liblinear"
    model = modelshelf.load(modelshelf.compile(est))
    expected = est._predict_proba_lr(X)
    np.testing.assert_allclose(model.predict_proba(X), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.predict_log_proba(X), np.log(expected), rtol=1e-9)
    assert not np.allclose(expected, library_output(est, "predict_proba", X))


def test_older_sklearn_binary_multinomial_logistic() -> None:
    # scikit-learn < 1.8 with multi_class="multinomial" on two classes: softmax([-d, d]).
    est, X = fit_on(LogisticRegression(), "breast_cancer")
    est.multi_class = "multinomial"
    model = modelshelf.load(modelshelf.compile(est))
    d = library_output(est, "decision_function", X)
    expected = softmax(np.c_[-d, d])
    np.testing.assert_allclose(model.predict_proba(X), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(model.predict(X), library_output(est, "predict", X))


def test_views_over_the_image_and_inputs_untouched() -> None:
    est, X = fit_on(
        OneVsRestClassifier(SGDClassifier(loss="modified_huber", max_iter=5, random_state=0)),
        "iris",
    )
    model = modelshelf.load(modelshelf.compile(est))
    children = model._executor.children  # type: ignore[union-attr]
    for i, child in enumerate(children):
        assert child.coef is model.tensors[f"model/{i}/coef"]
        assert not child.coef.flags.writeable
    X_before = X.copy()
    X.flags.writeable = False  # a kernel writing into X would raise
    try:
        for method in ("predict", "predict_proba", "decision_function"):
            getattr(model, method)(X)
    finally:
        X.flags.writeable = True
    np.testing.assert_array_equal(X, X_before)


def test_sparse_y_is_unsupported() -> None:
    X, Y, _ = dataset("random_multilabel")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ovr = OneVsRestClassifier(LogisticRegression()).fit(X, sparse.csr_matrix(Y))
        ridge = RidgeClassifier().fit(X, sparse.csr_matrix(Y))
    for est in (ovr, ridge):
        with pytest.raises(UnsupportedModelError, match="sparse y"):
            modelshelf.compile(est)


def test_unsupported_child_names_it() -> None:
    from sklearn.neighbors import KNeighborsClassifier

    est, _ = fit_on(OneVsRestClassifier(KNeighborsClassifier(metric="canberra")), "iris")
    with pytest.raises(UnsupportedModelError, match="KNeighborsClassifier"):
        modelshelf.compile(est)


def _image(spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    builder = ImageBuilder()
    for name, value in arrays.items():
        builder.add(name, value)
    manifest = {
        "model": spec,
        "input": {"type": "numeric", "n_features": 2, "feature_names": None},
        "metadata": {"name": "hand-made"},
    }
    return builder.build(manifest)


LINEAR_ARRAYS = {
    "coef": np.ones((3, 2)),
    "intercept": np.zeros(3),
    "classes": np.arange(3),
}


def _linear_spec(**params: Any) -> dict[str, Any]:
    return {
        "kind": "linear_classifier",
        "arrays": {"coef": "coef", "intercept": "intercept", "classes": "classes"},
        "params": {"proba": "none", **params},
    }


@pytest.mark.parametrize(
    ("spec", "arrays", "match"),
    [
        (_linear_spec(proba="sigmoid"), LINEAR_ARRAYS, "not one of"),
        (_linear_spec(), {**LINEAR_ARRAYS, "intercept": np.zeros(2)}, "one value per score row"),
        (_linear_spec(), {**LINEAR_ARRAYS, "classes": np.arange(4)}, "4 classes need 4"),
        (_linear_spec(multilabel=True, proba="ovr"), LINEAR_ARRAYS, "no probabilities"),
        (_linear_spec(multilabel=1), LINEAR_ARRAYS, "expected bool"),
        (
            {
                "kind": "one_vs_rest",
                "params": {
                    "estimators": [{"kind": "constant_binary", "params": {"value": 1}}] * 3,
                    "scores": ["decision_function"] * 2,
                    "target": "multiclass",
                    "threshold": 0.0,
                    "classes": {"dtype": "str", "strings": ["a", "b", "c"]},
                },
            },
            {},
            "one score method per estimator",
        ),
        (
            {
                "kind": "one_vs_rest",
                "params": {
                    "estimators": [_linear_spec()],
                    "scores": ["predict_proba"],
                    "target": "binary",
                    "threshold": 0.0,
                    "classes": {"dtype": "str", "strings": ["a", "b"]},
                },
            },
            LINEAR_ARRAYS,
            "cannot score by 'predict_proba'",
        ),
        (
            {"kind": "constant_binary", "params": {"value": 2}},
            {},
            "value must be 0 or 1",
        ),
    ],
)
def test_malformed_manifests_are_rejected(
    spec: dict[str, Any], arrays: dict[str, np.ndarray], match: str
) -> None:
    with pytest.raises(ManifestError, match=match):
        modelshelf.load(_image(spec, arrays))


def test_hand_made_one_vs_rest_predicts() -> None:
    # Constant children only: scores 1, 0, 1 -> class "a" (first maximum), probabilities 1/2.
    children = [{"kind": "constant_binary", "params": {"value": v}} for v in (1, 0, 1)]
    spec = {
        "kind": "one_vs_rest",
        "params": {
            "estimators": children,
            "scores": ["decision_function"] * 3,
            "target": "multiclass",
            "threshold": 0.5,
            "classes": {"dtype": "str", "strings": ["a", "b", "c"]},
        },
    }
    model = modelshelf.load(_image(spec, {}))
    X = np.zeros((4, 2))
    assert model.predict(X).tolist() == ["a"] * 4
    np.testing.assert_array_equal(model.predict_proba(X), [[0.5, 0.0, 0.5]] * 4)
    np.testing.assert_array_equal(model.decision_function(X), [[1, 0, 1]] * 4)
