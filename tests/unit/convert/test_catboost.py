"""CatBoost: what is refused, and why; how categorical values are read (the exact cases are in
tests/cases/catboost.py)."""

from __future__ import annotations

import os
import re
import tempfile
from typing import Any

import catboost as cb
import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import make_pipeline

import modelshelf
from modelshelf.errors import FeatureNamesError, InputTypeError, UnsupportedModelError
from modelshelf.runtime.catboost_ctr import category_hashes
from tests.kernels import same_bits, using

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


def test_text_features_are_refused_with_the_way_out() -> None:
    rng = np.random.default_rng(0)
    words = np.array(["red apple", "green pear", "blue sky", "red sky"], dtype=object)
    X = pd.DataFrame({"x": rng.normal(size=80), "t": words[rng.integers(0, 4, 80)]})
    y = (X["t"].str.startswith("red")).astype(int)
    est = cb.CatBoostClassifier(**_CB, text_features=["t"]).fit(X, y)
    with pytest.raises(UnsupportedModelError, match=r"text features \(text_features\)"):
        modelshelf.compile(est)


@pytest.fixture(scope="module")
def with_categories() -> tuple[Any, Any]:
    """A classifier on a float feature and two categorical ones (strings, integers)."""
    rng = np.random.default_rng(1)
    X = pd.DataFrame(
        {
            "x": rng.normal(size=300),
            "color": rng.choice(["red", "green", "blue"], 300).astype(object),
            "size": rng.integers(0, 4, 300),
        }
    )
    y = ((X["color"] == "red") ^ (X["size"] > 1)).astype(int)
    est = cb.CatBoostClassifier(**_CB, cat_features=["color", "size"], one_hot_max_size=1)
    est.fit(X, y)
    return est, modelshelf.load(modelshelf.compile(est))


def test_categories_take_catboost_s_conversions(with_categories: tuple[Any, Any]) -> None:
    """Integers hash as their digits whatever their type (bool, numpy, and the integral floats
    a table of numbers becomes); bytes as they are; unseen values get the prior's CTR."""
    est, model = with_categories
    rows = np.array(
        [
            [0.3, "red", 2],
            [0.3, b"red", np.int8(2)],
            [0.3, "green", True],
            [-1.0, "purple", 1],
            [0.1, "blue", np.uint64(3)],
            [0.1, "日本", -7],
        ],
        dtype=object,
    )
    np.testing.assert_allclose(model.predict_proba(rows), est.predict_proba(rows), rtol=1e-12)
    numbers = np.array([[0.3, "red", 2.0]], dtype=object)
    np.testing.assert_allclose(
        model.predict_proba(numbers), est.predict_proba(rows[:1]), rtol=1e-12
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, r"column 'color' is categorical: CatBoost refuses missing values \(None\)"),
        (np.nan, r"refuses missing values \(NaN\)"),
        (2.5, r"refuses the real number 2\.5"),
        (2.0**60, r"refuses the real number"),
        (10**30, "does not fit in 64 bits"),
        ([1], "list values"),
    ],
)
def test_values_catboost_refuses_are_refused(
    with_categories: tuple[Any, Any], value: Any, message: str
) -> None:
    _, model = with_categories
    X = pd.DataFrame({"x": [0.1], "color": pd.Series([value], dtype=object), "size": [1]})
    with pytest.raises(InputTypeError, match=message):
        model.predict(X)


def test_frames_are_read_by_column_name(with_categories: tuple[Any, Any]) -> None:
    est, model = with_categories
    X = pd.DataFrame({"x": [0.2, -0.5], "color": ["red", "blue"], "size": [0, 3]})
    expected = est.predict_proba(X)
    np.testing.assert_allclose(model.predict_proba(X[["size", "x", "color"]]), expected)
    with pytest.raises(FeatureNamesError, match="missing"):
        model.predict(X[["x", "color"]])


def test_categories_inside_a_pipeline_are_refused(with_categories: tuple[Any, Any]) -> None:
    est, _ = with_categories
    with pytest.raises(UnsupportedModelError, match=r"cat_features at model/0: only a model"):
        modelshelf.compile(make_pipeline(est))


def test_integer_categories_in_a_table_of_numbers() -> None:
    """A DataFrame of numbers only reaches the model as float64: its integer categories are
    still hashed as integers."""
    rng = np.random.default_rng(2)
    X = pd.DataFrame({"x": rng.normal(size=200), "k": rng.integers(0, 30, 200)})
    y = X["x"] + (X["k"] % 3 == 0) + rng.normal(size=200) * 0.1
    est = cb.CatBoostRegressor(**_CB, cat_features=["k"]).fit(X, y)
    model = modelshelf.load(modelshelf.compile(est))
    test = pd.DataFrame({"x": [0.0, 1.0, -1.0], "k": [3, 4, 1000]})
    np.testing.assert_allclose(model.predict(test), est.predict(test), rtol=1e-12)


def test_city_hash_matches_catboost_s_own_table() -> None:
    """CatBoost's Python export holds its hashes of the training strings: every length class
    of CityHash64 (0-16, 17-32, 33-64, longer) is checked against it."""
    strings = ["", "w", "abc", "ßü"] + [f"k{n}" * n for n in (3, 6, 9, 15, 30, 70)]
    X = pd.DataFrame({"c": strings * 4, "x": np.arange(40.0)})
    y = np.arange(40) % 2
    est = cb.CatBoostClassifier(**_CB, cat_features=["c"]).fit(X, y)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.py")
        est.save_model(path, format="python", pool=cb.Pool(X, y, cat_features=["c"]))
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    table = dict(re.findall(r'^    "((?:[^"\\]|\\.)*)": (-?\d+),$', text, re.MULTILINE))
    assert len(table) >= len(strings) - 1
    for s in strings:
        key = s.encode("utf-8").decode("latin-1")  # the export writes bytes as Latin-1
        if key in table:
            assert category_hashes(np.array([s], dtype=object), "c")[0] == int(table[key]), s


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


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
def test_sums_are_catboost_s_to_the_bit_the_bias_added_last(kernel: str) -> None:
    """CatBoost sums the trees from zero and adds its bias to the sum (``scale_and_bias``);
    starting from the bias rounds differently, an ulp on many rows."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(500, 4))
    y = X[:, 0] + np.sin(X[:, 1])
    regressor = cb.CatBoostRegressor(**{**_CB, "iterations": 20}).fit(X, y)
    assert regressor.get_scale_and_bias()[1] != 0
    frame = pd.DataFrame({"x": X[:, 0], "y": X[:, 1], "c": np.where(X[:, 2] > 0, "a", "b")})
    categorical = cb.CatBoostRegressor(**{**_CB, "iterations": 20}, cat_features=["c"])
    categorical.fit(frame, y + (frame["c"] == "a"))
    with using(kernel):
        got = modelshelf.load(modelshelf.compile(regressor)).predict(X)
        through_categories = modelshelf.load(modelshelf.compile(categorical)).predict(frame)
    assert same_bits(got, regressor.predict(X))
    assert same_bits(through_categories, categorical.predict(frame))
