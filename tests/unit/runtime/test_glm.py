"""GLM and isotonic executors: the edges the exactness matrix cannot reach.

Exactness over datasets lives in tests/cases/glm.py; these tests cover isotonic regression's
"raise" mode (which must raise where scikit-learn raises), its one-column input, and hand-made
manifests.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import BayesianRidge

import modelshelf
from modelshelf.errors import (
    FeatureCountError,
    ManifestError,
    UnknownCategoryError,
)
from modelshelf.image import ImageBuilder
from tests.cases.glm import one_column


def _isotonic(**kw: object) -> tuple[IsotonicRegression, np.ndarray]:
    X, y, X_test = one_column()()
    return IsotonicRegression(**kw).fit(X, y), X_test  # type: ignore[arg-type]


@pytest.mark.parametrize("row", [0, 1], ids=["below", "above"])
def test_isotonic_raise_mode_raises_like_scikit_learn(row: int) -> None:
    est, X_test = _isotonic(out_of_bounds="raise")
    model = modelshelf.load(modelshelf.compile(est))
    outside = X_test[-3:][[row]]
    with pytest.raises(ValueError, match="interpolation range"):
        est.predict(outside)
    with pytest.raises(UnknownCategoryError, match="interpolation range") as info:
        model.predict(outside)
    assert isinstance(info.value, ValueError)
    with pytest.raises(UnknownCategoryError):
        model.transform(np.concatenate([X_test[:5], outside]))
    np.testing.assert_array_equal(model.predict(X_test[:-3]), est.predict(X_test[:-3]))


def test_isotonic_takes_one_column_or_a_vector() -> None:
    """As scikit-learn does: a 1-D vector is the one feature; 2-D input of one column too."""
    est, X_test = _isotonic()
    model = modelshelf.load(modelshelf.compile(est))
    assert model.n_features_in_ == 1
    np.testing.assert_array_equal(model.transform(X_test), est.transform(X_test[:, 0]))
    np.testing.assert_array_equal(model.predict(X_test[:, 0]), est.predict(X_test[:, 0]))
    np.testing.assert_array_equal(model.predict(list(X_test[:, 0])), est.predict(X_test[:, 0]))
    with pytest.raises(FeatureCountError):
        model.predict(np.zeros((3, 2)))


def test_bayesian_ridge_predict_is_the_mean() -> None:
    X, y, X_test = one_column()()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = BayesianRidge().fit(X, y)
    model = modelshelf.load(modelshelf.compile(est))
    mean, _ = est.predict(X_test, return_std=True)
    np.testing.assert_allclose(model.predict(X_test), mean, rtol=1e-12)


@pytest.mark.parametrize(
    ("x", "y", "params", "message"),
    [
        ([0.0, 1.0], [0.0], {}, "as many values"),
        ([], [], {}, "at least one"),
        ([0.0, 1.0], [0.0, 1.0], {"bounds": [2.0, 1.0]}, "low <= high"),
        ([0.0, 1.0], [0.0, 1.0], {"n_features": 2}, "one feature"),
        ([0.0, 1.0], [0.0, 1.0], {"out_of_bounds": "wrap"}, "not one of"),
    ],
)
def test_isotonic_rejects_inconsistent_manifests(
    x: list[float], y: list[float], params: dict[str, object], message: str
) -> None:
    builder = ImageBuilder()
    spec = {
        "kind": "isotonic",
        "arrays": {"x": builder.add("x", np.array(x)), "y": builder.add("y", np.array(y))},
        "params": {"n_features": 1, "out_of_bounds": "nan", "bounds": [0.0, 1.0], **params},
    }
    image = builder.build({"model": spec, "input": {"n_features": 1}, "metadata": {}})
    with pytest.raises(ManifestError, match=message):
        modelshelf.load(image)
