"""Native boosters (xgboost.Booster, lightgbm.Booster) against their own predict.

They are not scikit-learn estimators, so they are not in the exactness matrix. An image of a
booster has ``predict`` (what ``Booster.predict`` returns: probabilities, values, or for
multi:softmax class indices) and ``decision_function``: the raw margins, which the libraries
give with ``output_margin=True`` / ``raw_score=True``; scikit-learn's name for raw scores.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb

import modelshelf
from modelshelf.errors import FeatureCountError, UnsupportedModelError
from tests.cases._case import dataset
from tests.cases.trees import categorical

RTOL, ATOL = 1e-6, 1e-7  # XGBoost computes in float32


def compiled(booster: Any) -> modelshelf.Model:
    return modelshelf.load(modelshelf.compile(booster), verify=True)


def data(kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if kind == "positive":
        return dataset("diabetes")
    X, y, X_test = dataset({"binary": "random_nan", "multi": "random_multi"}.get(kind, kind))
    return X, y, X_test


XGB_CASES = [
    ("binary:logistic", "binary", {}),
    ("binary:logitraw", "binary", {}),
    ("reg:logistic", "binary", {}),
    ("multi:softprob", "multi", {"num_class": 5}),
    ("multi:softmax", "multi", {"num_class": 5}),
    ("reg:squarederror", "random_reg", {}),
    ("reg:pseudohubererror", "random_reg", {}),
    ("reg:absoluteerror", "random_reg", {}),
    ("reg:quantileerror", "random_reg", {"quantile_alpha": np.array([0.2, 0.8])}),
    ("reg:squaredlogerror", "positive", {}),
    ("count:poisson", "positive", {}),
    ("reg:gamma", "positive", {}),
    ("reg:tweedie", "positive", {}),
    ("reg:squarederror", "random_multireg", {}),
]


@pytest.mark.parametrize(("objective", "kind", "extra"), XGB_CASES)
def test_xgboost_booster(objective: str, kind: str, extra: dict[str, Any]) -> None:
    X, y, X_test = data(kind)
    params = {"objective": objective, "max_depth": 4, "nthread": 1, **extra}
    booster = xgb.train(params, xgb.DMatrix(X, y), num_boost_round=12)
    model = compiled(booster)
    expected = booster.predict(xgb.DMatrix(X_test))
    np.testing.assert_allclose(model.predict(X_test), expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(
        model.predict(X_test), booster.inplace_predict(X_test), rtol=RTOL, atol=ATOL
    )
    margin = booster.predict(xgb.DMatrix(X_test), output_margin=True)
    np.testing.assert_allclose(model.decision_function(X_test), margin, rtol=RTOL, atol=ATOL)
    inplace = booster.inplace_predict(X_test, predict_type="margin")
    np.testing.assert_allclose(model.decision_function(X_test), inplace, rtol=RTOL, atol=ATOL)
    assert model.predict(X_test).dtype == np.float32
    assert not hasattr(model, "predict_proba")


@pytest.mark.parametrize("booster", ["dart", "gblinear"])
@pytest.mark.parametrize(
    ("objective", "kind", "extra"), [XGB_CASES[0], XGB_CASES[4], XGB_CASES[5], XGB_CASES[10]]
)
def test_xgboost_booster_kinds(
    booster: str, objective: str, kind: str, extra: dict[str, Any]
) -> None:
    """dart and gblinear boosters predict as ``Booster.predict`` on a DMatrix does. (For dart,
    ``inplace_predict`` rounds each tree's contribution differently: the scikit-learn
    wrappers' images follow that one, the exactness matrix checks them.)"""
    X, y, X_test = data(kind)
    params = {"objective": objective, "booster": booster, "nthread": 1, **extra}
    if booster == "dart":
        params.update(max_depth=4, rate_drop=0.3, seed=0)
    trained = xgb.train(params, xgb.DMatrix(X, y), num_boost_round=12)
    model = compiled(trained)
    test = xgb.DMatrix(X_test)
    np.testing.assert_allclose(model.predict(X_test), trained.predict(test), rtol=RTOL, atol=ATOL)
    margin = trained.predict(test, output_margin=True)
    np.testing.assert_allclose(model.decision_function(X_test), margin, rtol=RTOL, atol=ATOL)


def test_xgboost_booster_with_categories() -> None:
    X, y, X_test = categorical()
    types = ["c", "c", "q", "q", "q"]
    train = xgb.DMatrix(X, y, feature_types=types, enable_categorical=True)
    params = {"objective": "binary:logistic", "max_cat_to_onehot": 1, "nthread": 1}
    booster = xgb.train(params, train, num_boost_round=10)
    model = compiled(booster)
    assert "model/cat_column" in model.image.arrays
    test = xgb.DMatrix(X_test, feature_types=types, enable_categorical=True)
    np.testing.assert_allclose(model.predict(X_test), booster.predict(test), rtol=RTOL, atol=ATOL)


def test_xgboost_booster_errors() -> None:
    X, y, _ = dataset("random_multireg")
    params = {"multi_strategy": "multi_output_tree", "tree_method": "hist", "nthread": 1}
    booster = xgb.train(params, xgb.DMatrix(X, y), num_boost_round=2)
    with pytest.raises(UnsupportedModelError, match="multi_output_tree"):
        modelshelf.compile(booster)
    booster = xgb.train({"nthread": 1}, xgb.DMatrix(X, y[:, 0]), num_boost_round=2)
    with pytest.raises(FeatureCountError, match="expected 12 features"):
        compiled(booster).predict(X[:, :5])


LGBM_CASES = [
    ("binary", "binary", {}),
    ("binary", "binary", {"sigmoid": 0.5}),
    ("cross_entropy", "binary", {}),
    ("multiclass", "multi", {"num_class": 5}),
    ("multiclassova", "multi", {"num_class": 5}),
    ("regression", "random_reg", {}),
    ("regression_l1", "random_reg", {}),
    ("huber", "random_reg", {}),
    ("quantile", "random_reg", {"alpha": 0.8}),
    ("poisson", "positive", {}),
    ("gamma", "positive", {}),
    ("tweedie", "positive", {}),
    ("regression", "random_reg", {"boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.7}),
    ("regression", "binary", {"linear_tree": True}),
    ("binary", "binary", {"linear_tree": True, "linear_lambda": 0.1}),
]


@pytest.mark.parametrize(("objective", "kind", "extra"), LGBM_CASES)
def test_lightgbm_booster(objective: str, kind: str, extra: dict[str, Any]) -> None:
    X, y, X_test = data(kind)
    params = {"objective": objective, "num_leaves": 15, "verbose": -1, "num_threads": 1, **extra}
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=12)
    model = compiled(booster)
    np.testing.assert_allclose(model.predict(X_test), booster.predict(X_test), rtol=1e-9)
    raw = booster.predict(X_test, raw_score=True)
    np.testing.assert_allclose(model.decision_function(X_test), raw, rtol=1e-9, atol=1e-12)
    assert not hasattr(model, "predict_proba")


def test_lightgbm_booster_with_categories_and_early_stopping() -> None:
    X, y, X_test = categorical()
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, "min_data_per_group": 5}
    train = lgb.Dataset(X[:300], y[:300], categorical_feature=[0, 1])
    valid = lgb.Dataset(X[300:], y[300:], reference=train)
    booster = lgb.train(
        params, train, num_boost_round=300, valid_sets=[valid],
        callbacks=[lgb.early_stopping(3, verbose=False)],
    )  # fmt: skip
    assert 0 < booster.best_iteration < 300
    model = compiled(booster)
    assert "model/cat_column" in model.image.arrays
    np.testing.assert_allclose(model.predict(X_test), booster.predict(X_test), rtol=1e-9)


def test_lightgbm_booster_errors() -> None:
    X, y, _ = dataset("random_reg")
    params = {"objective": "regression", "reg_sqrt": True, "verbose": -1, "num_threads": 1}
    with pytest.raises(UnsupportedModelError, match="sqrt"):
        modelshelf.compile(lgb.train(params, lgb.Dataset(X, y), num_boost_round=2))
    params = {"objective": "regression", "verbose": -1, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=2)
    with pytest.raises(FeatureCountError, match="expected 12 features"):
        compiled(booster).predict(X[:, :5])
