"""CatBoost: what is refused, and why (the exact cases are in tests/cases/catboost.py)."""

from __future__ import annotations

import catboost as cb
import numpy as np
import pytest

import modelshelf
from modelshelf.errors import UnsupportedModelError

_CB = {
    "iterations": 5,
    "depth": 3,
    "verbose": 0,
    "thread_count": 1,
    "random_seed": 0,
    "allow_writing_files": False,
}


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    return X, (X[:, 0] > 0).astype(int)


def test_categorical_features_are_refused_with_the_way_out(data) -> None:
    X, y = data
    cats = np.array([["a", "b", "c"][i % 3] for i in range(len(X))], dtype=object)
    Xc = np.column_stack([X.astype(object), cats])
    est = cb.CatBoostClassifier(**_CB, cat_features=[4]).fit(Xc, y)
    with pytest.raises(UnsupportedModelError, match=r"features \(cat_features\) .* OrdinalEncoder"):
        modelshelf.compile(est)


def test_non_symmetric_trees_are_refused(data) -> None:
    X, y = data
    est = cb.CatBoostRegressor(**_CB, grow_policy="Depthwise").fit(X, y.astype(float))
    with pytest.raises(UnsupportedModelError, match="grow_policy"):
        modelshelf.compile(est)


def test_a_scaled_model_is_refused(data) -> None:
    X, y = data
    est = cb.CatBoostRegressor(**_CB).fit(X, y.astype(float))
    est.set_scale_and_bias(0.5, est.get_scale_and_bias()[1])
    with pytest.raises(UnsupportedModelError, match=r"scale of 0\.5"):
        modelshelf.compile(est)


def test_a_loss_without_a_known_prediction_is_refused(data) -> None:
    X, y = data
    est = cb.CatBoostRegressor(**_CB, loss_function="LogCosh").fit(X, y.astype(float))
    with pytest.raises(UnsupportedModelError, match="loss_function='LogCosh'"):
        modelshelf.compile(est)


def test_nan_where_training_had_none_goes_where_catboost_sends_it(data) -> None:
    X, y = data
    est = cb.CatBoostClassifier(**_CB).fit(X, y)  # no NaN in training: "AsIs"
    Xt = X[:50].copy()
    Xt[::3, 0] = np.nan
    model = modelshelf.load(modelshelf.compile(est))
    np.testing.assert_allclose(model.predict_proba(Xt), est.predict_proba(Xt), rtol=1e-12)
