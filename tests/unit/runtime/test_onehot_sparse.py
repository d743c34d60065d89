"""One-hot output stays sparse where scikit-learn's is: a OneHotEncoder's ``sparse_output`` (its
default), a ColumnTransformer's ``sparse_output_`` (decided at fit by ``sparse_threshold``), a
FeatureUnion with a sparse part. What follows computes on the nonzeros as scikit-learn does: a
linear model's scores are their sum in column order, to the bit; and a batch of rows over tens
of thousands of categories is never a dense matrix of rows x categories."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from scipy import sparse
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import modelshelf
from modelshelf.runtime._sparse import CSRMatrix, hstack

RNG = np.random.default_rng(7)
N = 3000
CATS = RNG.integers(0, 2000, size=(N, 2)).astype(np.float64)  # two high-cardinality columns
NUMS = RNG.normal(size=(N, 4)) * [1.0, 10.0, 0.1, 3.0]
X = np.hstack([CATS, NUMS])
Y = ((CATS[:, 0] % 3 == 0) ^ (NUMS[:, 0] > 0.5)).astype(int)


def _load(est: Any, data: np.ndarray = X) -> modelshelf.Model:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(data, Y)
    return modelshelf.load(modelshelf.compile(est))


def _columns(**options: Any) -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("c", OneHotEncoder(handle_unknown="ignore"), [0, 1]),
            ("n", StandardScaler(), [2, 3, 4, 5]),
        ],
        **options,
    )


def _same_sparse(actual: Any, expected: Any) -> None:
    assert sparse.issparse(actual) and sparse.issparse(expected), (type(actual), type(expected))
    expected = expected.tocsr()
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    assert actual.indices.dtype == expected.indices.dtype == np.int32  # what scikit-learn has
    np.testing.assert_array_equal(actual.indptr, expected.indptr)
    np.testing.assert_array_equal(actual.indices, expected.indices)
    np.testing.assert_array_equal(actual.data, expected.data)


@pytest.mark.parametrize(
    "make",
    [
        lambda: OneHotEncoder(handle_unknown="ignore"),
        lambda: OneHotEncoder(handle_unknown="ignore", drop="first"),
        lambda: OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=3),
        lambda: OneHotEncoder(handle_unknown="ignore", dtype=np.int32),
        lambda: _columns(),
        lambda: FeatureUnion([("c", _columns()), ("s", StandardScaler())]),
    ],
    ids=["ignore", "drop-first", "infrequent", "int32", "columns", "union"],
)
def test_transform_is_sparse_as_scikit_learn_builds_it(make: Any) -> None:
    est = make()
    model = _load(est)
    unseen = X[:50].copy()
    unseen[::3, 0] = 1e6  # unknown categories: no column (or the infrequent one)
    for rows in (X[:200], unseen, X[:1]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = est.transform(rows)
            actual = model.transform(rows)
        _same_sparse(actual, expected)


def test_dense_where_scikit_learn_is_dense() -> None:
    """sparse_threshold=0 (or sparse_output=False) gives dense output in scikit-learn: so here."""
    for est, data in (
        (_columns(sparse_threshold=0.0), X),
        (OneHotEncoder(sparse_output=False), CATS),
    ):
        est.fit(data, Y)
        model = modelshelf.load(modelshelf.compile(est))
        actual, expected = model.transform(data[:100]), est.transform(data[:100])
        assert isinstance(actual, np.ndarray) and isinstance(expected, np.ndarray)
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize(
    "make",
    [
        lambda: make_pipeline(OneHotEncoder(handle_unknown="ignore"), LogisticRegression()),
        lambda: make_pipeline(_columns(), LogisticRegression(max_iter=500)),
        lambda: make_pipeline(_columns(), Ridge()),
    ],
    ids=["onehot-logistic", "columns-logistic", "columns-ridge"],
)
def test_linear_scores_are_scikit_learns_to_the_bit(make: Any) -> None:
    """scikit-learn sums a sparse row's nonzeros in column order (SciPy's csr_matvecs): so do
    the scores here, bit for bit, where a dense product would differ in the last bits."""
    est = make()
    rows = CATS if isinstance(est.steps[0][1], OneHotEncoder) else X
    model = _load(est, rows)
    method = "decision_function" if hasattr(est, "decision_function") else "predict"
    expected = getattr(est, method)(rows)
    actual = getattr(model, method)(rows)
    assert actual.dtype == expected.dtype
    np.testing.assert_array_equal(actual, expected)


def test_many_categories_are_never_a_dense_batch() -> None:
    """1000 rows over 20,000 one-hot columns would be 160 MB dense; the encoder's output is
    the 2,000 ones, and the scores need no more."""
    est = make_pipeline(OneHotEncoder(handle_unknown="ignore"), LogisticRegression())
    cats = RNG.integers(0, 10_000, size=(40_000, 2)).astype(np.float64)
    est.fit(cats, (cats[:, 0] % 2 == 0).astype(int))
    model = modelshelf.load(modelshelf.compile(est))
    encoded = modelshelf.load(modelshelf.compile(est.steps[0][1])).transform(cats[:1000])
    assert sparse.issparse(encoded) and encoded.shape[1] > 19_000 and encoded.nnz == 2000
    np.testing.assert_array_equal(
        model.decision_function(cats[:1000]), est.decision_function(cats[:1000])
    )


def test_hstack_keeps_nan_and_stored_zeros_as_scipy_does() -> None:
    dense = np.array([[0.0, np.nan, 1.5], [0.0, 0.0, 0.0], [-2.0, 0.0, 3.0]])
    stored = CSRMatrix(
        np.array([0.0, 4.0, 5.0]),
        np.array([1, 0, 1]),
        np.array([0, 1, 1, 3]),
        (3, 2),
    )
    ours = hstack([dense, stored, dense.astype(np.float32)])
    theirs = sparse.hstack(
        [
            sparse.csr_matrix(dense),
            sparse.csr_matrix((stored.data, stored.indices, stored.indptr), shape=(3, 2)),
            sparse.csr_matrix(dense.astype(np.float32)),
        ]
    ).tocsr()
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours.indptr, theirs.indptr)
    np.testing.assert_array_equal(ours.indices, theirs.indices)
    np.testing.assert_array_equal(ours.data, theirs.data)  # NaN where theirs, zeros stored
