"""DataFrames in and out (issue 10, points 1 and 5), beyond the exactness matrix's cases
(tests/cases/frames.py): numpy input by position, the checks scikit-learn makes on a
DataFrame, unknown strings, ``set_output(transform="pandas")``, float32 scalers, and the
refusals' messages.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

import modelshelf
from modelshelf.errors import (
    FeatureNamesError,
    InputTypeError,
    UnknownCategoryError,
    UnsupportedModelError,
)
from modelshelf.runtime._input import frame_column
from tests.cases.frames import customers, logreg, recipe


def _sk(est: Any, method: str, X: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(est, method)(X)


def _dense(out: Any) -> np.ndarray:
    return np.asarray(out.toarray() if hasattr(out, "toarray") else out)


def _sparse_where(actual: Any, expected: Any) -> np.ndarray:
    """``actual`` densified, once it is checked to be sparse exactly where ``expected`` is."""
    assert hasattr(actual, "toarray") == hasattr(expected, "toarray"), (actual, expected)
    return _dense(actual)


def _by_position(X: pd.DataFrame) -> np.ndarray:
    """A DataFrame as the object array a caller without pandas would build."""
    out = np.empty(X.shape, dtype=object)
    for j, (_, column) in enumerate(X.items()):
        out[:, j] = frame_column(column)
    return out


@pytest.fixture(scope="module")
def fitted() -> tuple[Any, modelshelf.Model]:
    X, y, _ = customers()()
    est = make_pipeline(recipe(), logreg()).fit(X, y)
    return est, modelshelf.load(modelshelf.compile(est))


def test_the_tutorial_recipe_predicts_from_dataframes_and_arrays(
    fitted: tuple[Any, modelshelf.Model],
) -> None:
    est, model = fitted
    _, _, test = customers(unknown=True)()
    expected = est.predict_proba(test)
    np.testing.assert_allclose(model.predict_proba(test), expected, rtol=1e-9)
    # By position, as scikit-learn reads an array (it refuses one when columns have names).
    np.testing.assert_allclose(model.predict_proba(_by_position(test)), expected, rtol=1e-9)
    assert model.image.version == (1, 1)
    assert model.image.manifest["input"]["type"] == "tabular"
    assert list(model.feature_names_in_) == list(test.columns)


def test_dataframes_are_checked_by_name(fitted: tuple[Any, modelshelf.Model]) -> None:
    """A column transformer fitted on a DataFrame takes its columns by name: in any order,
    extra ones ignored, unread ones (dropped by the remainder) optional."""
    est, model = fitted
    _, _, test = customers()()
    expected = est.predict_proba(test)
    for shuffled in (
        test[list(test.columns[::-1])],
        test.assign(extra=1.0),
        test.drop(columns=["visits", "tier"]),
    ):
        np.testing.assert_allclose(_sk(est, "predict_proba", shuffled), expected, rtol=1e-12)
        np.testing.assert_allclose(model.predict_proba(shuffled), expected, rtol=1e-9)
    with pytest.raises(ValueError, match=r"columns are missing: \{'age'\}"):
        est.predict(test.drop(columns="age"))
    with pytest.raises(FeatureNamesError, match=r"missing \['age'\], which the model reads"):
        model.predict(test.drop(columns="age"))
    # Other models check names and order, as scikit-learn does.
    scaler = StandardScaler().fit(test[["age", "visits"]])
    image = modelshelf.load(modelshelf.compile(scaler))
    with pytest.raises(FeatureNamesError, match="same names in a different order"):
        image.transform(test[["visits", "age"]])


def test_strings_in_a_numeric_column_name_the_transformer(
    fitted: tuple[Any, modelshelf.Model],
) -> None:
    _, model = fitted
    _, _, test = customers()()
    bad = test.astype({"age": object})
    bad.loc[bad.index[0], "age"] = "forty"
    with pytest.raises(InputTypeError, match=r"transformer 'num' \(input columns \[0, 1\]\)"):
        model.predict(bad)


def test_unknown_strings_raise_as_in_scikit_learn() -> None:
    X, y, _ = customers()()
    est = recipe(handle_unknown="error").fit(X, y)
    model = modelshelf.load(modelshelf.compile(est))
    _, _, test = customers(unknown=True)()
    with pytest.raises(ValueError, match=r"Found unknown categories \['free'\]"):
        est.transform(test)
    with pytest.raises(UnknownCategoryError) as info:
        model.transform(test)
    message = str(info.value)
    assert message.startswith("transformer 'cat': column 'plan': value 'free' is not one of")
    # By position too, the column is named as at fit time.
    with pytest.raises(UnknownCategoryError, match="transformer 'cat': column 'plan': value"):
        model.transform(_by_position(test))
    assert "'basic'" in message and len(message) < 400


def test_missing_values_in_string_columns_are_read_as_scikit_learn_reads_them() -> None:
    """None and NaN are categories of their own when seen at fit; pd.NA in a string column is
    neither (scikit-learn reads it as an unknown value)."""
    X, y, test = customers()()
    est = ColumnTransformer(
        [("c", OneHotEncoder(handle_unknown="ignore"), ["plan", "channel"])]
    ).fit(X, y)
    model = modelshelf.load(modelshelf.compile(est))
    test = test.copy()
    test["plan"] = test["plan"].astype("string")  # missing values become pd.NA
    test.loc[test.index[:5], "channel"] = np.nan  # fitted with None only: unknown
    expected = _sk(est, "transform", test)
    np.testing.assert_array_equal(_sparse_where(model.transform(test), expected), _dense(expected))


def test_ordinal_encoder_alone_on_strings() -> None:
    X, _, test = customers()()
    columns = ["plan", "country", "channel"]
    est = OrdinalEncoder().fit(X[columns])
    model = modelshelf.load(modelshelf.compile(est))
    np.testing.assert_array_equal(model.transform(test[columns]), est.transform(test[columns]))
    _, _, unknown = customers(unknown=True)()
    with pytest.raises(ValueError, match="Found unknown categories"):
        est.transform(unknown[columns])
    with pytest.raises(UnknownCategoryError, match=r"column 'plan': value 'free' is not one"):
        model.transform(unknown[columns])


def test_set_output_pandas_returns_dataframes() -> None:
    X, y, test = customers(unknown=True)()
    est = recipe(sparse_output=False).set_output(transform="pandas").fit(X, y)
    model = modelshelf.load(modelshelf.compile(est))
    expected = est.transform(test)
    got = model.transform(test)
    assert isinstance(got, pd.DataFrame)
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-12)
    by_position = model.transform(_by_position(test))
    assert list(by_position.columns) == list(expected.columns)
    assert list(by_position.index) == list(range(len(test)))


def test_set_output_pandas_without_pandas_returns_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y, test = customers()()
    est = recipe(sparse_output=False).set_output(transform="pandas").fit(X, y)
    model = modelshelf.load(modelshelf.compile(est))
    arrays, expected = _by_position(test), est.transform(test).to_numpy()
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas raises ImportError
    out = model.transform(arrays)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_set_output_polars_is_refused() -> None:
    X, y, _ = customers()()
    est = recipe(sparse_output=False).fit(X, y)
    est._sklearn_output_config = {"transform": "polars"}  # set_output needs polars installed
    with pytest.raises(UnsupportedModelError, match=r"set_output\(transform='polars'\)"):
        modelshelf.compile(est)


def test_the_client_imports_pandas_only_for_dataframes(tmp_path: Any) -> None:
    X, y, _ = customers()()
    est = recipe(sparse_output=False).fit(X, y)
    path = tmp_path / "recipe.msi"
    path.write_bytes(modelshelf.compile(est))
    code = (
        "import sys, numpy as np, modelshelf\n"
        f"model = modelshelf.load({str(path)!r})\n"
        "row = np.array([[41.0, 50000, 3, 'pro', 'de', 'web', 2]], dtype=object)\n"
        "assert model.transform(row).shape[0] == 1\n"
        "assert 'pandas' not in sys.modules, 'pandas was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize(
    "make",
    [
        StandardScaler,
        lambda: StandardScaler(with_mean=False),
        lambda: MinMaxScaler(clip=True),
        MaxAbsScaler,
        RobustScaler,
        lambda: make_pipeline(MinMaxScaler(), StandardScaler()),
    ],
)
def test_float32_input_keeps_the_scalers_output_dtype(make: Any) -> None:
    X = np.random.default_rng(0).normal(3, 2, size=(200, 4)).astype(np.float32)
    est = make().fit(X)
    model = modelshelf.load(modelshelf.compile(est))
    expected = est.transform(X)
    got = model.transform(X)
    assert got.dtype == expected.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    # float64 input is unchanged.
    assert model.transform(X.astype(np.float64)).dtype == np.float64


def test_refusals_name_the_option_and_the_way_out() -> None:
    X, y, _ = customers()()
    est = ColumnTransformer([("p", OneHotEncoder(), ["plan"])]).fit(X, y)
    # A text vectorizer takes one column by its name; scikit-learn hands it a 1-D column.
    est.transformers_[0] = ("p", est.transformers_[0][1], "plan")
    with pytest.raises(UnsupportedModelError) as info:
        modelshelf.compile(est)
    message = str(info.value)
    assert message == (
        "ColumnTransformer: transformer 'p' takes the single column 'plan', which "
        "scikit-learn hands it as a 1-D column (only a text vectorizer, or a pipeline that "
        "starts with one, reads a 1-D column) cannot be compiled; select ['plan'] to give it a "
        "2-D column"
    )


def test_string_imputation_other_than_nan_is_refused_naming_the_marker() -> None:
    from sklearn.impute import SimpleImputer

    X, _, _ = customers()()
    est = SimpleImputer(missing_values=None, strategy="most_frequent").fit(X[["channel"]])
    with pytest.raises(UnsupportedModelError) as info:
        modelshelf.compile(est)
    assert str(info.value) == (
        "SimpleImputer: missing_values=None on strings cannot be compiled; mark them with NaN"
    )


def test_strings_passed_through_are_refused_naming_the_way_out() -> None:
    X, y, test = customers()()
    est = ColumnTransformer([("num", StandardScaler(), ["age"])], remainder="passthrough")
    est.fit(X[["age", "visits", "plan"]], y)
    model = modelshelf.load(modelshelf.compile(est))
    with pytest.raises(InputTypeError, match="through as numbers only: encode or drop strings"):
        model.transform(test[["age", "visits", "plan"]])


def test_nullable_columns_read_pd_na_as_missing_in_numeric_models() -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    X, y, test = customers(regression=True)()
    columns = ["age", "income", "visits"]
    assert test["income"].isna().any()
    est = HistGradientBoostingRegressor(max_iter=10).fit(X[columns], y)
    model = modelshelf.load(modelshelf.compile(est))
    np.testing.assert_allclose(model.predict(test[columns]), est.predict(test[columns]), 1e-12)


def test_inspect_describes_mixed_input(fitted: tuple[Any, modelshelf.Model]) -> None:
    from modelshelf.cli._images import _describe_input

    _, model = fitted
    assert _describe_input(dict(model.image.manifest["input"])) == (
        "tabular, 7 features, numbers and strings (encoded by the model)"
    )


@pytest.mark.parametrize(
    "options",
    [{"handle_unknown": "warn", "min_frequency": 30}, {"drop": "first"}],
    ids=["warn-infrequent", "drop-ignore"],
)
def test_unknown_strings_warn_as_in_scikit_learn(options: dict[str, Any]) -> None:
    X, y, _ = customers()()
    est = recipe(**options).fit(X, y)
    model = modelshelf.load(modelshelf.compile(est))
    _, _, test = customers(unknown=True)()
    with pytest.warns(UserWarning, match="Found unknown categories") as sk_record:
        expected = est.transform(test)
    with pytest.warns(UserWarning, match="Found unknown categories") as record:
        got = model.transform(test)
    np.testing.assert_allclose(_sparse_where(got, expected), _dense(expected), rtol=1e-12)
    assert str(record[0].message) == str(sk_record[0].message)


def test_the_callers_data_is_never_written() -> None:
    from sklearn.impute import SimpleImputer

    X, _, test = customers()()
    columns = ["channel", "country"]
    est = make_pipeline(SimpleImputer(strategy="most_frequent"), OrdinalEncoder()).fit(X[columns])
    model = modelshelf.load(modelshelf.compile(est))
    frame = test[columns].astype(object)  # one object block, which np.asarray views
    before = frame.copy()
    array = frame.to_numpy()
    np.testing.assert_array_equal(model.transform(frame), est.transform(frame))
    model.transform(array)
    pd.testing.assert_frame_equal(frame, before)
    assert array.flags.writeable and pd.isna(array[:, 1]).any()
