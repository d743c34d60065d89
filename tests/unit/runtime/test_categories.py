"""Category tables (runtime/_categories.py): how a DataFrame's columns become the matrix a
tabular model reads, table by table, without any library model in the way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelshelf.errors import FeatureCountError, InputTypeError, UnknownCategoryError
from modelshelf.runtime import as_float_matrix
from modelshelf.runtime._categories import CategoryTable, CategoryTables
from modelshelf.runtime.text_lookup import Vocabulary, build_vocabulary


def tables(unknown: str = "missing") -> CategoryTables:
    """Column 0: numbers 30, 10, 20 (codes 0, 1, 2); column 1: strings "b", "a" (codes 0, 1);
    column 2: the DataFrame's own codes; column 3: numbers."""
    values = np.array([10.0, 20.0, 30.0])
    codes = np.array([1, 2, 0], dtype=np.int32)
    vocab = build_vocabulary({"b": 0, "a": 1})
    strings = Vocabulary(vocab["terms"], vocab["runs"], vocab["columns"])
    return CategoryTables(
        [
            CategoryTable(0, "numbers", unknown, values=values, codes=codes),
            CategoryTable(1, "strings", unknown, vocabulary=strings),
            CategoryTable(2, "codes", unknown),
        ],
        n_features=4,
    )


def frame(**columns: object) -> pd.DataFrame:
    base = {
        "n": pd.Categorical([10, 30, None, 20], categories=[20, 10, 30]),
        "s": pd.Categorical(["a", "b", "a", None]),
        "k": pd.Categorical([5, 7, 5, 9], categories=[9, 7, 5]),
        "x": [0.5, -1.0, 2.0, 3.5],
    }
    return pd.DataFrame({**base, **columns})


def test_category_columns_become_training_codes() -> None:
    out = as_float_matrix(frame(), 4, categories=tables(), allow_nan=True)
    expected = np.array([[1, 1, 2, 0.5], [0, 0, 1, -1.0], [np.nan, 1, 2, 2.0], [2, np.nan, 0, 3.5]])
    np.testing.assert_array_equal(out, expected)


def test_numbers_match_by_value_and_strings_by_bytes() -> None:
    X = frame(n=pd.Categorical([10.0, 30.0, 20.0, 40.0]), s=pd.Categorical(["a", "é", "b", "A"]))
    out = as_float_matrix(X, 4, categories=tables(), allow_nan=True)
    np.testing.assert_array_equal(out[:, 0], [1, 0, 2, np.nan])  # 40 is unseen: missing
    np.testing.assert_array_equal(out[:, 1], [1, np.nan, 0, np.nan])
    # Strings are never numbers, even when they read as one; nor numbers strings.
    X = frame(n=pd.Categorical(["10", "30", "20", "10"]), s=pd.Categorical([1, 2, 1, 2]))
    out = as_float_matrix(X, 4, categories=tables(), allow_nan=True)
    assert np.isnan(out[:, :2]).all()
    mixed = pd.Categorical([10, "10", 10, "10"], categories=pd.Index([10, "10"], dtype=object))
    out = as_float_matrix(frame(n=mixed), 4, categories=tables(), allow_nan=True)
    np.testing.assert_array_equal(out[:, 0], [1, np.nan, 1, np.nan])


def test_unseen_categories_are_refused_where_the_library_refuses_them() -> None:
    X = frame(s=pd.Categorical(["a", "b", "a", "b"], categories=["a", "b", "zz"]))
    with pytest.raises(UnknownCategoryError, match=r"column 's' .*\['zz'\] \(1 in all\)"):
        as_float_matrix(X, 4, categories=tables("error"), allow_nan=True)


def test_columns_must_keep_their_kind() -> None:
    with pytest.raises(InputTypeError, match="column 'n' was a 'category' column"):
        as_float_matrix(frame(n=[10.0, 30.0, 20.0, 10.0]), 4, categories=tables())
    with pytest.raises(InputTypeError, match="column 'x' is a 'category' column"):
        as_float_matrix(frame(x=pd.Categorical([1, 2, 1, 2])), 4, categories=tables())
    with pytest.raises(InputTypeError, match="do not convert to float"):
        as_float_matrix(frame(x=["a", "b", "c", "d"]), 4, categories=tables())
    # A codes table also reads numbers: without recorded categories they are the codes.
    out = as_float_matrix(frame(k=[2.0, 0.0, 1.0, 1.0]), 4, categories=tables(), allow_nan=True)
    np.testing.assert_array_equal(out[:, 2], [2, 0, 1, 1])


def test_arrays_and_column_counts() -> None:
    codes = np.array([[1.0, 0.0, 2.0, 0.5]])
    np.testing.assert_array_equal(as_float_matrix(codes, 4, categories=tables()), codes)
    with pytest.raises(FeatureCountError, match="got a DataFrame of 3 columns"):
        as_float_matrix(frame().iloc[:, :3], 4, categories=tables())
