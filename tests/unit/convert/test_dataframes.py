"""XGBoost and LightGBM fitted on pandas DataFrames: category columns and feature names
(issue 9, points 1 and 2), against the libraries on the same DataFrames.

Both libraries split on category *codes*, the position of a value among the categories the
model was fitted on; a DataFrame's category column is recoded through them, whatever order its
own categories were declared in. Images store those categories and recode the same way; arrays
are read as codes, as the libraries read them. Feature names are stored and checked for every
library that keeps them: a DataFrame with other names or another order is refused.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import modelshelf
from modelshelf.errors import (
    FeatureCountError,
    FeatureNamesError,
    InputTypeError,
    UnknownCategoryError,
    UnsupportedModelError,
)
from modelshelf.image import Image, ImageBuilder

RTOL, ATOL = 1e-6, 1e-7  # XGBoost sums in float32; LightGBM exponentiates with libm

NUMBERS = [30, 10, 20]  # declared out of order: codes 0, 1, 2 are 30, 10, 20
STRINGS = ["b", "a", "c"]
SHUFFLED = [2, 0, 1]  # the values 0..2, but the code of 2 is 0


def frame(n: int = 500, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Three category columns (numbers, strings, 0..2 declared out of order), two numeric
    columns, 5% NaN, and a target each of them moves."""
    rng = np.random.default_rng(seed)
    number = rng.choice(NUMBERS, n)
    string = rng.choice(STRINGS, n)
    small = rng.choice(SHUFFLED, n)
    x = rng.normal(size=(n, 2))
    score = (
        np.select([number == 10, number == 20], [1.5, -1.0], 0.3)
        + np.select([string == "a", string == "b"], [-1.2, 0.8], 0.0)
        + np.select([small == 0, small == 1], [1.0, -0.7], 0.2)
        + x[:, 0]
    )
    X = pd.DataFrame(
        {
            "number": pd.Categorical(number, categories=NUMBERS),
            "x0": x[:, 0],
            "string": pd.Categorical(string, categories=STRINGS),
            "small": pd.Categorical(small, categories=SHUFFLED),
            "x1": x[:, 1],
        }
    )
    nan = rng.uniform(size=X.shape) < 0.05
    for j, column in enumerate(X.columns):
        X.loc[nan[:, j], column] = np.nan
    return X, (score + rng.normal(size=n) * 0.3 > 0).astype(np.int64)


def redeclared(X: pd.DataFrame) -> pd.DataFrame:
    """The same values with every category column's categories declared in another order (so
    that every code changes)."""
    out = X.copy()
    out["number"] = out["number"].cat.reorder_categories(sorted(NUMBERS))
    out["string"] = out["string"].cat.reorder_categories(sorted(STRINGS))
    out["small"] = out["small"].cat.reorder_categories([0, 1, 2])
    return out


def codes(X: pd.DataFrame) -> np.ndarray:
    """The DataFrame as the array the libraries take: category codes, NaN where missing."""
    out = np.empty(X.shape)
    for j, column in enumerate(X.columns):
        series = X[column]
        if isinstance(series.dtype, pd.CategoricalDtype):
            out[:, j] = np.where(series.cat.codes >= 0, series.cat.codes, np.nan)
        else:
            out[:, j] = series.to_numpy(dtype=np.float64)
    return out


_XGB = {"n_estimators": 20, "max_depth": 4, "n_jobs": 1, "enable_categorical": True}
_LGBM = {"n_estimators": 20, "num_leaves": 15, "verbose": -1, "n_jobs": 1}
_LGBM_CAT = {"min_data_per_group": 5, "cat_smooth": 1, "cat_l2": 1}


def _xgb_booster(X: pd.DataFrame, y: np.ndarray) -> Any:
    params = {"objective": "binary:logistic", "max_cat_to_onehot": 1, "nthread": 1}
    return xgb.train(params, xgb.DMatrix(X, y, enable_categorical=True), num_boost_round=20)


def _lgbm_booster(X: pd.DataFrame, y: np.ndarray) -> Any:
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, **_LGBM_CAT}
    return lgb.train(params, lgb.Dataset(X, y), num_boost_round=20)


def _fit(make: Callable[[], Any]) -> Callable[[pd.DataFrame, np.ndarray], Any]:
    return lambda X, y: make().fit(X, y)


# (id, fit, the library's outputs as {method: callable(model, X)})
MODELS: list[tuple[str, Callable[[pd.DataFrame, np.ndarray], Any], str]] = [
    ("xgb-clf", _fit(lambda: xgb.XGBClassifier(max_cat_to_onehot=1, **_XGB)), "sklearn"),
    ("xgb-clf-onehot", _fit(lambda: xgb.XGBClassifier(max_cat_to_onehot=8, **_XGB)), "sklearn"),
    ("xgb-reg", _fit(lambda: xgb.XGBRegressor(max_cat_to_onehot=1, **_XGB)), "sklearn"),
    ("xgb-booster", _xgb_booster, "xgb-booster"),
    ("lgbm-clf", _fit(lambda: lgb.LGBMClassifier(**_LGBM, **_LGBM_CAT)), "sklearn"),
    ("lgbm-reg", _fit(lambda: lgb.LGBMRegressor(**_LGBM, **_LGBM_CAT)), "sklearn"),
    ("lgbm-booster", _lgbm_booster, "lgbm-booster"),
]
_IDS = [m[0] for m in MODELS]


def outputs(model: Any, flavour: str, X: Any) -> dict[str, np.ndarray]:
    """What the library predicts for ``X``: every method an image of ``model`` has."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if flavour == "xgb-booster":
            # An array is taken by position, under the Booster's own names and types.
            names = {"feature_names": model.feature_names, "feature_types": model.feature_types}
            data = xgb.DMatrix(
                X, enable_categorical=True, **({} if hasattr(X, "columns") else names)
            )
            return {
                "predict": model.predict(data),
                "decision_function": model.predict(data, output_margin=True),
            }
        if flavour == "lgbm-booster":
            return {
                "predict": model.predict(X),
                "decision_function": model.predict(X, raw_score=True),
            }
        out = {"predict": np.asarray(model.predict(X))}
        if hasattr(model, "predict_proba"):
            out["predict_proba"] = np.asarray(model.predict_proba(X))
        return out


def assert_same(image: modelshelf.Model, expected: dict[str, np.ndarray], X: Any) -> None:
    for method, want in expected.items():
        got = getattr(image, method)(X)
        if method == "predict" and want.dtype.kind in "iub":
            assert np.array_equal(got, want), f"{method}: labels differ"
        else:
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=method)


@pytest.fixture(scope="module")
def fitted() -> dict[str, tuple[Any, modelshelf.Model]]:
    X, y = frame()
    out = {}
    for name, fit, _ in MODELS:
        model = fit(X[:400], y[:400])
        out[name] = (model, modelshelf.load(modelshelf.compile(model), verify=True))
    return out


@pytest.mark.parametrize(("name", "flavour"), [(m[0], m[2]) for m in MODELS], ids=_IDS)
def test_category_columns_predict_as_the_library(
    fitted: dict[str, tuple[Any, modelshelf.Model]], name: str, flavour: str
) -> None:
    model, image = fitted[name]
    X, _ = frame()
    test = X[400:]
    assert_same(image, outputs(model, flavour, test), test)
    # Categories declared in another order: the libraries recode by value, so do images.
    assert_same(image, outputs(model, flavour, redeclared(test)), redeclared(test))
    # An array is read as codes, as the libraries read it.
    assert_same(image, outputs(model, flavour, codes(test)), codes(test))
    assert list(image.feature_names_in_) == list(X.columns)


@pytest.mark.parametrize("name", ["lgbm-clf", "lgbm-booster"])
def test_lightgbm_reads_unseen_categories_as_missing(
    fitted: dict[str, tuple[Any, modelshelf.Model]], name: str
) -> None:
    model, image = fitted[name]
    X, _ = frame(seed=1)
    test = X[:60].copy()
    test["number"] = test["number"].cat.add_categories([40, 50])
    test.loc[test.index[:10], "number"] = 40
    test["string"] = test["string"].cat.set_categories(["zz", "a", "b"])  # "c" becomes NaN
    test.loc[test.index[10:20], "string"] = "zz"
    flavour = "lgbm-booster" if name.endswith("booster") else "sklearn"
    assert_same(image, outputs(model, flavour, test), test)


@pytest.mark.parametrize("name", ["xgb-clf", "xgb-booster"])
def test_xgboost_refuses_unseen_categories(
    fitted: dict[str, tuple[Any, modelshelf.Model]], name: str
) -> None:
    model, image = fitted[name]
    X, _ = frame(seed=1)
    test = X[:20].copy()
    test["string"] = test["string"].cat.add_categories(["zz"])
    test.loc[test.index[:3], "string"] = "zz"
    flavour = "xgb-booster" if name.endswith("booster") else "sklearn"
    with pytest.raises(xgb.core.XGBoostError, match="not in the training set"):
        outputs(model, flavour, test)
    with pytest.raises(UnknownCategoryError, match=r"column 'string'.*\['zz'\]"):
        image.predict(test)
    # declared in the dtype but held by no row: refused too, as XGBoost refuses it
    unused = X[:20].copy()
    unused["string"] = unused["string"].cat.add_categories(["zz"])
    with pytest.raises(xgb.core.XGBoostError, match="not in the training set"):
        outputs(model, flavour, unused)
    with pytest.raises(UnknownCategoryError, match="not in the training set"):
        image.predict(unused)
    # Only the declared categories matter, as in XGBoost: a subset of them is fine.
    subset = X[:20].copy()
    subset["number"] = subset["number"].cat.set_categories([10, 20])
    assert_same(image, outputs(model, flavour, subset), subset)


def test_category_columns_must_stay_categories(
    fitted: dict[str, tuple[Any, modelshelf.Model]],
) -> None:
    _, image = fitted["lgbm-clf"]
    X, _ = frame()
    plain = X[:10].copy()
    plain["number"] = plain["number"].astype(float)  # 10.0, 20.0, 30.0: values, not codes
    with pytest.raises(InputTypeError, match=r"column 'number' was a 'category' column"):
        image.predict(plain)
    extra = X[:10].copy()
    extra["x0"] = pd.Categorical(extra["x0"].round())
    with pytest.raises(InputTypeError, match=r"column 'x0' is a 'category' column"):
        image.predict(extra)
    with pytest.raises(FeatureNamesError, match=r"missing \['x1'\]"):
        image.predict(X.iloc[:10, :4])


@pytest.mark.parametrize("name", _IDS)
def test_reordered_or_renamed_columns_are_refused(
    fitted: dict[str, tuple[Any, modelshelf.Model]], name: str
) -> None:
    _, image = fitted[name]
    X, _ = frame()
    test = X[400:]
    reordered = test[["x0", "number", "string", "small", "x1"]]
    with pytest.raises(FeatureNamesError, match="same names in a different order"):
        image.predict(reordered)
    with pytest.raises(FeatureNamesError, match=r"missing \['x1'\], unexpected \['y1'\]"):
        image.predict(test.rename(columns={"x1": "y1"}))


def test_booster_feature_names_are_stored_and_checked() -> None:
    """XGBoost scores a reordered DataFrame by position if not told otherwise ... unless the
    Booster has names: then it refuses, and so does the image (it used to answer)."""
    X, y = frame()
    numeric = X[["x0", "x1"]].fillna(0.0)
    booster = xgb.train({"nthread": 1}, xgb.DMatrix(numeric, y), num_boost_round=5)
    image = modelshelf.load(modelshelf.compile(booster))
    assert list(image.feature_names_in_) == ["x0", "x1"]
    swapped = numeric[["x1", "x0"]]
    with pytest.raises(ValueError, match="feature_names mismatch"):
        booster.predict(xgb.DMatrix(swapped))
    with pytest.raises(FeatureNamesError, match="expected \\['x0', 'x1'\\], got \\['x1', 'x0'\\]"):
        image.predict(swapped)
    np.testing.assert_allclose(
        image.predict(numeric), booster.predict(xgb.DMatrix(numeric)), rtol=RTOL, atol=ATOL
    )
    # Fitted on an array: no names, no check (LightGBM's own Column_<i> are not names).
    bare = xgb.train({"nthread": 1}, xgb.DMatrix(numeric.to_numpy(), y), num_boost_round=2)
    assert not hasattr(modelshelf.load(modelshelf.compile(bare)), "feature_names_in_")
    params = {"objective": "binary", "verbose": -1, "num_threads": 1}
    lgbm = lgb.train(params, lgb.Dataset(numeric.to_numpy(), y), num_boost_round=2)
    assert not hasattr(modelshelf.load(modelshelf.compile(lgbm)), "feature_names_in_")


def test_models_without_recorded_categories_read_a_dataframes_codes() -> None:
    """Fitted on arrays of codes, neither library records categories: both read a
    DataFrame's own codes, and so does the image."""
    X, y = frame()
    arr = codes(X)
    params = {"objective": "binary:logistic", "max_cat_to_onehot": 1, "nthread": 1}
    types = ["c", "q", "c", "c", "q"]
    train = xgb.DMatrix(arr, y, feature_types=types, enable_categorical=True)
    booster = xgb.train(params, train, num_boost_round=10)
    lgbm = lgb.train(
        {"objective": "binary", "verbose": -1, "num_threads": 1, **_LGBM_CAT},
        lgb.Dataset(arr, y, categorical_feature=[0, 2, 3]),
        num_boost_round=10,
    )
    test = X[400:].set_axis([f"f{j}" for j in range(5)], axis=1)
    for model, flavour in ((booster, "xgb-booster"), (lgbm, "lgbm-booster")):
        image = modelshelf.load(modelshelf.compile(model))
        tables = image.image.manifest["input"]["categories"]
        assert [t["table"] for t in tables] == ["codes"] * 3
        expected = outputs(model, flavour, test)
        assert_same(image, expected, test)
        assert_same(image, outputs(model, flavour, codes(test)), codes(test))
        # A DataFrame of numbers is read as codes too, as both libraries read it.
        numbers = pd.DataFrame(codes(test), columns=test.columns)
        assert_same(image, outputs(model, flavour, numbers), numbers)
        with pytest.raises(FeatureCountError, match="expected 5 features"):
            image.predict(test.iloc[:, :4])


def test_lightgbm_categorical_numbers_in_a_dataframe_stay_numbers() -> None:
    """categorical_feature naming numeric columns of a DataFrame: LightGBM records no
    categories and reads those columns' values as codes; the image is a plain numeric one."""
    X, y = frame()
    numbers = pd.DataFrame(codes(X), columns=X.columns)
    model = lgb.LGBMClassifier(**_LGBM, **_LGBM_CAT)
    model.fit(numbers, y, categorical_feature=["number", "string", "small"])
    assert model.booster_.pandas_categorical == []
    image = modelshelf.load(modelshelf.compile(model))
    assert image.image.manifest["input"]["type"] == "numeric"
    assert_same(image, outputs(model, "sklearn", numbers[400:]), numbers[400:])


def test_numeric_models_keep_format_1_0() -> None:
    X, y = frame()
    numeric = X[["x0", "x1"]]
    image = modelshelf.load(modelshelf.compile(xgb.XGBClassifier(n_estimators=2).fit(numeric, y)))
    assert image.image.version == (1, 0)
    assert image.image.manifest["input"]["type"] == "numeric"


def test_tabular_images_are_format_1_1(fitted: dict[str, tuple[Any, modelshelf.Model]]) -> None:
    _, image = fitted["xgb-clf"]
    assert image.image.version == (1, 1)
    schema = image.image.manifest["input"]
    assert schema["type"] == "tabular"
    assert [(t["column"], t["table"]) for t in schema["categories"]] == [
        (0, "numbers"),
        (2, "strings"),
        (3, "numbers"),
    ]


# -- refused at compile time ------------------------------------------------------------------


def test_xgboost_non_ascii_categories_are_refused() -> None:
    X, y = frame()
    X["string"] = X["string"].cat.rename_categories({"a": "é"})
    model = xgb.XGBClassifier(**{**_XGB, "n_estimators": 2}).fit(X, y)
    with pytest.raises(UnsupportedModelError, match="'string' has non-ASCII string categories"):
        modelshelf.compile(model)


def test_lightgbm_ordered_category_columns_are_refused() -> None:
    """LightGBM reads an ordered category column as numbers but still records its categories:
    which recorded list belongs to which feature is then unknown."""
    X, y = frame()
    X["number"] = X["number"].cat.as_ordered()
    model = lgb.LGBMClassifier(**_LGBM).fit(X, y)
    with pytest.raises(UnsupportedModelError, match="recorded the categories of 3 pandas"):
        modelshelf.compile(model)
    X, y = frame()
    model = lgb.LGBMClassifier(**_LGBM).fit(X, y, categorical_feature=["number"])
    with pytest.raises(UnsupportedModelError, match="has 1 categorical features"):
        modelshelf.compile(model)


def test_lightgbm_mixed_type_categories_are_refused() -> None:
    X, y = frame()
    X["string"] = X["string"].cat.rename_categories({"a": 7})
    model = lgb.LGBMClassifier(**_LGBM).fit(X, y)
    with pytest.raises(UnsupportedModelError, match="'string' has categories of types"):
        modelshelf.compile(model)


def test_categories_inside_a_pipeline_are_refused() -> None:
    X, y = frame()
    pipe = Pipeline([("model", lgb.LGBMClassifier(**_LGBM))]).fit(X, y)
    with pytest.raises(UnsupportedModelError, match="fitted on pandas category columns"):
        modelshelf.compile(pipe)
    numeric = X[["x0", "x1"]]
    pipe = Pipeline([("scale", StandardScaler()), ("model", lgb.LGBMClassifier(**_LGBM))])
    image = modelshelf.load(modelshelf.compile(pipe.fit(numeric, y)))
    assert list(image.feature_names_in_) == ["x0", "x1"]


def test_pipeline_starting_with_passthrough_keeps_its_names() -> None:
    """Such a pipeline has no feature_names_in_, yet its first real step checks the names."""
    X, y = frame()
    numeric = X[["x0", "x1"]].fillna(0.0)
    pipe = Pipeline([("keep", "passthrough"), ("scale", StandardScaler())]).fit(numeric, y)
    assert not hasattr(pipe, "feature_names_in_")
    image = modelshelf.load(modelshelf.compile(pipe))
    swapped = numeric[["x1", "x0"]]
    with pytest.raises(ValueError, match="feature names should match"):
        pipe.transform(swapped)
    with pytest.raises(FeatureNamesError, match="same names in a different order"):
        image.transform(swapped)


def test_images_without_tables_refuse_category_columns() -> None:
    """An image compiled before category tables existed (format 1.0) cannot recode a
    DataFrame's category columns: it refuses them instead of reading values as codes."""
    X, y = frame()
    model = lgb.LGBMClassifier(**_LGBM, **_LGBM_CAT).fit(X[:400], y[:400])
    image = Image.open(modelshelf.compile(model))
    builder = ImageBuilder()
    for name, array in image.arrays.items():
        if not name.startswith("input/"):
            builder.add(name, array)
    schema = {"type": "numeric", "n_features": 5, "feature_names": list(X.columns)}
    model_spec = dict(image.manifest["model"])
    params = dict(model_spec["params"])
    del params["numpy_float32"]  # a 1.5 addition: the image stands for one of 1.0
    model_spec["params"] = params
    old = modelshelf.load(builder.build({**image.manifest, "input": schema, "model": model_spec}))
    assert old.image.version == (1, 0)
    with pytest.raises(InputTypeError, match=r"\['number', 'string', 'small'\] are pandas"):
        old.predict(X[400:])
    arrays = codes(X[400:])
    expected = outputs(model, "sklearn", arrays)["predict"]
    np.testing.assert_array_equal(old.predict(arrays), expected)
    as_numbers = pd.DataFrame(arrays, columns=X.columns)
    np.testing.assert_array_equal(old.predict(as_numbers), expected)
