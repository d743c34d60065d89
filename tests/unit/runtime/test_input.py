"""as_float_matrix: every bad input raises its own InputError subclass with a message saying what
was expected and what was given; good input of any numeric form becomes 2-D float64 without
touching the caller's memory."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sparse

from modelshelf.errors import (
    FeatureCountError,
    FeatureNamesError,
    InputError,
    InputShapeError,
    InputTypeError,
    NonFiniteInputError,
)
from modelshelf.runtime import as_float_matrix, check_finite


class Frame:
    """A DataFrame stand-in (pandas is not a dependency): named columns over an array."""

    def __init__(self, data: Any, columns: list[str]) -> None:
        self._data = np.asarray(data)
        self.columns = columns

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self._data if dtype is None else self._data.astype(dtype)


def _raises(cls: type[InputError], X: Any, n: int | None = 3, **kw: Any) -> str:
    with pytest.raises(cls) as info:
        as_float_matrix(X, n, **kw)
    assert isinstance(info.value, ValueError)  # callers catching ValueError still catch it
    return str(info.value)


def test_wrong_feature_count_says_expected_and_given() -> None:
    msg = _raises(FeatureCountError, np.zeros((2, 5)))
    assert "expected 3 features" in msg and "got 5" in msg and "(2, 5)" in msg


@pytest.mark.parametrize(
    ("X", "given"),
    [(np.float64(1.0), "0-D"), (np.zeros((2, 3, 1)), "3-D shape (2, 3, 1)"), (5, "0-D")],
)
def test_wrong_ndim(X: Any, given: str) -> None:
    msg = _raises(InputShapeError, X)
    assert "expected a 2-D array" in msg and given in msg
    assert "reshape" not in msg


def test_one_dimensional_input_gets_the_reshape_hint() -> None:
    msg = _raises(InputShapeError, [1.0, 2.0, 3.0])
    assert "got 1-D shape (3,)" in msg and "X.reshape(1, -1)" in msg


@pytest.mark.parametrize(
    ("X", "given"),
    [
        ([["a", "b", "c"]], "<U1"),
        (np.array([[b"x", b"y", b"z"]]), "|S1"),
        (np.ones((2, 3), dtype=complex), "complex128"),
        (np.array([["2024-01-01"] * 3], dtype="datetime64[D]"), "datetime64[D]"),
        (np.array([[1, 2, 3]], dtype="timedelta64[s]"), "timedelta64[s]"),
        ([[1.0, "x", 3.0]], "<U32"),
    ],
)
def test_non_numeric_dtypes(X: Any, given: str) -> None:
    msg = _raises(InputTypeError, X)
    assert "expected numeric input" in msg and given in msg


@pytest.mark.parametrize(
    "cells",
    [
        [object(), object(), object()],
        [dt.datetime(2024, 1, 1), 1.0, 2.0],
        [1 + 2j, 1.0, 2.0],
        [[1, 2], 1.0, 2.0],
    ],
)
def test_objects_that_are_not_numbers(cells: list[Any]) -> None:
    X = np.empty((1, 3), dtype=object)
    X[0, :] = cells
    msg = _raises(InputTypeError, X)
    assert "expected numeric input" in msg and "objects that do not convert" in msg


def test_numeric_objects_convert_as_scikit_learn_converts_them() -> None:
    X = np.array([[1, 2.5, True]], dtype=object)
    out = as_float_matrix(X, 3)
    assert out.dtype == np.float64 and out.tolist() == [[1.0, 2.5, 1.0]]


def test_ragged_rows_name_their_lengths() -> None:
    msg = _raises(InputShapeError, [[1.0, 2.0, 3.0], [4.0, 5.0]])
    assert "same number of features" in msg and "[2, 3]" in msg


def test_sparse_input_is_read_as_the_dense_array_it_stands_for() -> None:
    from modelshelf.runtime._input import as_float_matrix

    dense = np.array([[0.0, 2.0, 0.0], [1.5, 0.0, 0.0], [0.0, 0.0, 0.0]])
    for matrix in (sparse.csr_matrix(dense), sparse.csc_matrix(dense), sparse.coo_matrix(dense)):
        np.testing.assert_array_equal(as_float_matrix(matrix, 3), dense)
    with pytest.raises(FeatureCountError, match="expected 3 features"):
        as_float_matrix(sparse.csr_matrix(np.eye(2)), 3)


def test_zero_samples() -> None:
    msg = _raises(InputShapeError, np.zeros((0, 3)))
    assert "at least 1 sample" in msg and "(0, 3)" in msg


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rejected_by_default(bad: float) -> None:
    X = np.ones((4, 3))
    X[2, 1] = bad
    msg = _raises(NonFiniteInputError, X)
    assert ("infinity" if np.isinf(bad) else "NaN") in msg and "1 cell" in msg


def test_nan_accepted_where_the_model_accepts_it_but_infinity_never() -> None:
    X = np.ones((4, 3))
    X[0, 0] = X[3, 2] = np.nan
    out = as_float_matrix(X, 3, allow_nan=True)
    assert np.isnan(out).sum() == 2
    X[1, 1] = np.inf
    assert "infinity" in _raises(NonFiniteInputError, X, allow_nan=True)


def test_huge_finite_values_are_finite() -> None:
    # Their sum overflows; the fast path must fall back to an exact check, without a warning.
    X = np.full((3, 3), 1e308)
    X[0, 0] = -1e308
    assert as_float_matrix(X, 3) is not None
    check_finite(X, allow_nan=False)


def test_feature_names_mismatch_lists_expected_and_given() -> None:
    names = ["a", "b", "c"]
    msg = _raises(FeatureNamesError, Frame(np.ones((2, 3)), ["a", "b", "x"]), feature_names=names)
    assert "missing ['c']" in msg and "unexpected ['x']" in msg
    assert "expected ['a', 'b', 'c']" in msg and "got ['a', 'b', 'x']" in msg
    msg = _raises(FeatureNamesError, Frame(np.ones((2, 3)), ["c", "b", "a"]), feature_names=names)
    assert "different order" in msg and "got ['c', 'b', 'a']" in msg


def test_long_name_lists_are_shortened() -> None:
    names = [f"f{i}" for i in range(50)]
    msg = _raises(
        FeatureNamesError, Frame(np.ones((1, 50)), names[::-1]), n=50, feature_names=names
    )
    assert "(50 names)" in msg and "f30" not in msg


def test_matching_names_and_unnamed_input_are_accepted() -> None:
    names = ["a", "b", "c"]
    assert as_float_matrix(Frame(np.ones((2, 3)), names), 3, feature_names=names).shape == (2, 3)
    assert as_float_matrix(np.ones((2, 3)), 3, feature_names=names).shape == (2, 3)


@pytest.mark.parametrize(
    "X",
    [
        [[1, 2, 3], [4, 5, 6]],
        np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int32),
        np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8),
        np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32),
        np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float16),
        np.array([[1, 2, 3], [4, 5, 6]], dtype=">f8"),
        np.asfortranarray([[1.0, 2, 3], [4, 5, 6]]),
        np.arange(12, dtype=np.int64).reshape(2, 6)[:, ::2],
        ((1, 2, 3), (4, 5, 6)),
    ],
    ids=[
        "lists",
        "int32",
        "uint8",
        "float32",
        "float16",
        "big-endian",
        "fortran",
        "int-view",
        "tuple",
    ],
)
def test_numeric_forms_become_float64(X: Any) -> None:
    out = as_float_matrix(X, 3)
    assert out.dtype == np.float64 and out.shape == (2, 3)
    np.testing.assert_array_equal(out, np.asarray(X, dtype=np.float64))


def test_long_double_is_refused_with_the_way_out() -> None:
    """scikit-learn computes long double in long double (linear models, MLPs) or casts it once
    (trees: straight to float32); a probe found it answered in float64, other values."""
    X = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.longdouble)
    if np.dtype(np.longdouble).itemsize <= 8:  # long double is float64 here: answered as such
        np.testing.assert_array_equal(as_float_matrix(X, 3), X)
        return
    with pytest.raises(InputTypeError, match=r"long double.*X\.astype\(np\.float64\)"):
        as_float_matrix(X, 3)
    from sklearn.linear_model import LogisticRegression

    import modelshelf

    est = LogisticRegression().fit(np.array([[0.0, 1, 2], [1, 0, 2], [2, 1, 0]]), [0, 1, 1])
    with pytest.raises(InputTypeError, match="long double"):
        modelshelf.load(modelshelf.compile(est)).predict_proba(X)


def test_bools_become_zero_and_one() -> None:
    out = as_float_matrix(np.array([[True, False, True]]), 3)
    assert out.tolist() == [[1.0, 0.0, 1.0]]


def test_float64_input_is_not_copied_and_cannot_be_written_through() -> None:
    X = np.arange(12.0).reshape(4, 3)
    before = X.copy()
    out = as_float_matrix(X, 3)
    assert np.shares_memory(out, X)  # no copy for input already in the right form
    assert not out.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        out[0, 0] = 99.0
    assert X.flags.writeable  # the caller's own array keeps its flags
    np.testing.assert_array_equal(X, before)


def test_non_contiguous_float64_view_stays_a_view() -> None:
    base = np.arange(24.0).reshape(4, 6)
    X = base[:, ::2]
    out = as_float_matrix(X, 3)
    assert np.shares_memory(out, base) and not out.flags.writeable
    np.testing.assert_array_equal(out, base[:, ::2])


def test_any_n_features_when_the_model_has_no_fixed_count() -> None:
    assert as_float_matrix(np.ones((2, 7)), None).shape == (2, 7)
