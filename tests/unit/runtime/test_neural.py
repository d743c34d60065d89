"""MLP executors: the exact sigmoid, zero-copy loading, the Model surface, manifest checks.

Exactness over datasets lives in tests/cases/neural.py; these tests cover what that matrix
cannot: saturated outputs, read-only inputs, hand-made manifests, unsupported options.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from sklearn.neural_network import MLPClassifier, MLPRegressor

import modelshelf
from modelshelf.errors import ManifestError, UnsupportedModelError
from modelshelf.image import ImageBuilder
from tests.cases._case import dataset, fit_on, library_output


def test_saturated_binary_log_proba_matches() -> None:
    # Scaling the output layer pushes p to within 1e-12 of 1. scikit-learn's log(1 - p) there
    # is quantised to multiples of 2**-53: a "more accurate" log-sigmoid would miss rtol=1e-9.
    est, X = fit_on(
        MLPClassifier(hidden_layer_sizes=(8,), max_iter=60, random_state=0), "random_clf"
    )
    est.coefs_[-1] = est.coefs_[-1] * 40
    est.intercepts_[-1] = est.intercepts_[-1] * 40
    model = modelshelf.load(modelshelf.compile(est))
    p = library_output(est, "predict_proba", X)
    assert (p.min(axis=1) < 1e-12).sum() >= 5, "the case must reach saturated probabilities"
    expected = library_output(est, "predict_log_proba", X)
    np.testing.assert_allclose(model.predict_log_proba(X), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.predict_proba(X), p, rtol=1e-9, atol=1e-12)


def test_layers_are_read_only_views_over_the_image() -> None:
    est, _ = fit_on(
        MLPClassifier(hidden_layer_sizes=(6, 5), max_iter=20, random_state=0), "random_multi"
    )
    model = modelshelf.load(modelshelf.compile(est))
    layers = model._executor.layers  # type: ignore[union-attr]
    assert len(layers) == 3
    for i, (coef, intercept) in enumerate(layers):
        assert coef is model.tensors[f"model/coef_{i}"]
        assert intercept is model.tensors[f"model/intercept_{i}"]
        assert not coef.flags.writeable and coef.flags.c_contiguous
        np.testing.assert_array_equal(coef, est.coefs_[i])


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
def test_read_only_input_is_never_written(activation: str) -> None:
    est, X = fit_on(
        MLPRegressor(hidden_layer_sizes=(7,), activation=activation, max_iter=20, random_state=0),
        "random_reg",
    )
    model = modelshelf.load(modelshelf.compile(est))
    X = X.copy()
    before = X.copy()
    X.setflags(write=False)
    np.testing.assert_allclose(
        model.predict(X), library_output(est, "predict", X), rtol=1e-9, atol=1e-12
    )
    assert np.array_equal(X, before)


def test_surface_follows_the_estimator() -> None:
    reg, X = fit_on(
        MLPRegressor(hidden_layer_sizes=(4,), max_iter=10, random_state=0), "random_multireg"
    )
    model = modelshelf.load(modelshelf.compile(reg))
    assert not hasattr(model, "predict_proba") and not hasattr(model, "classes_")
    assert model.predict(X).shape == (len(X), 3)

    clf, X = fit_on(
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=10, random_state=0), "random_multilabel"
    )
    model = modelshelf.load(modelshelf.compile(clf))
    assert not hasattr(model, "decision_function")
    labels = model.predict(X)
    assert labels.shape == (len(X), 4) and labels.dtype.kind == "i"
    assert np.array_equal(labels, library_output(clf, "predict", X))
    assert np.array_equal(model.classes_, np.arange(4))


def test_single_class_classifier() -> None:
    X, _, X_test = dataset("random_clf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MLPClassifier(hidden_layer_sizes=(3,), max_iter=5, random_state=0).fit(
            X, np.full(len(X), "only")
        )
    model = modelshelf.load(modelshelf.compile(est))
    assert np.array_equal(model.predict(X_test), library_output(est, "predict", X_test))
    np.testing.assert_allclose(
        model.predict_proba(X_test), library_output(est, "predict_proba", X_test)
    )


def test_float32_fit_matches_on_float64_input() -> None:
    X, y, X_test = dataset("iris")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MLPClassifier(hidden_layer_sizes=(5,), max_iter=30, random_state=0).fit(
            X.astype(np.float32), y
        )
    assert est.coefs_[0].dtype == np.float32
    model = modelshelf.load(modelshelf.compile(est))
    assert model.tensors["model/coef_0"].dtype == np.float32  # as fitted
    np.testing.assert_allclose(
        model.predict_proba(X_test),
        library_output(est, "predict_proba", X_test),
        rtol=1e-9,
        atol=1e-12,
    )


def test_unknown_activation_is_unsupported() -> None:
    est, _ = fit_on(MLPClassifier(hidden_layer_sizes=(3,), max_iter=5, random_state=0), "iris")
    est.activation = "softplus"  # what a future scikit-learn could add
    with pytest.raises(UnsupportedModelError, match="softplus"):
        modelshelf.compile(est)


def _image(spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    builder = ImageBuilder()
    for name, arr in arrays.items():
        builder.add(name, arr)
    return builder.build({"model": spec, "input": {"type": "numeric"}, "metadata": {}})


def _mlp_spec(n_layers: int, names: list[str], **params: Any) -> dict[str, Any]:
    return {
        "kind": "mlp_regressor",
        "arrays": {name: name for name in names},
        "params": {"n_layers": n_layers, "activation": "relu", "output": "identity", **params},
    }


def test_hand_made_manifest_predicts() -> None:
    w0 = np.array([[1.0, -1.0], [0.5, 2.0]])
    w1 = np.array([[3.0], [1.0]])
    arrays = {"coef_0": w0, "intercept_0": np.zeros(2), "coef_1": w1, "intercept_1": np.ones(1)}
    model = modelshelf.load(_image(_mlp_spec(2, list(arrays)), arrays))
    X = np.array([[1.0, 1.0], [-2.0, 0.0]])
    expected = np.maximum(X @ w0, 0) @ w1 + 1
    np.testing.assert_array_equal(model.predict(X), expected.ravel())


@pytest.mark.parametrize(
    ("n_layers", "shapes", "params", "message"),
    [
        (2, [(2, 3), (3,), (4, 1), (1,)], {}, "coef_1 has 4 rows"),
        (1, [(2, 3), (2,)], {}, "intercept_0 has 2 values"),
        (0, [], {}, "n_layers must be"),
        (2, [(2, 3), (3,)], {}, "missing array 'coef_1'"),
        (1, [(2, 3), (3,)], {"activation": "gelu"}, "activation"),
        (1, [(2, 3), (3,)], {"output": "softmax"}, "output"),
    ],
)
def test_inconsistent_manifest_is_rejected(
    n_layers: int, shapes: list[tuple[int, ...]], params: dict[str, Any], message: str
) -> None:
    roles = [
        f"{kind}_{i // 2}" for i, kind in enumerate(["coef", "intercept"] * (len(shapes) // 2))
    ]
    arrays = {role: np.zeros(shape) for role, shape in zip(roles, shapes, strict=True)}
    with pytest.raises(ManifestError, match=message):
        modelshelf.load(_image(_mlp_spec(n_layers, roles, **params), arrays))


def test_classifier_outputs_must_fit_the_classes() -> None:
    arrays = {"coef_0": np.zeros((2, 3)), "intercept_0": np.zeros(3)}
    spec = {
        "kind": "mlp_classifier",
        "arrays": {name: name for name in arrays},
        "params": {
            "n_layers": 1,
            "activation": "relu",
            "target": "binary",
            "classes": {"dtype": "str", "strings": ["a", "b"]},
        },
    }
    with pytest.raises(ManifestError, match="binary MLP has 1 output"):
        modelshelf.load(_image(spec, arrays))
    spec["params"]["target"] = "multiclass"  # type: ignore[index]
    with pytest.raises(ManifestError, match="one output per class"):
        modelshelf.load(_image(spec, arrays))
