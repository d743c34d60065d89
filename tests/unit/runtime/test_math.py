"""The blocked dense product (issue 9, point 24): same results as one ``X @ W``, within rounding,
for every shape the kernels use (row blocks; column blocks for one row), and scikit-learn's
results on inputs long enough to be split.

Whether a block stays on one BLAS thread is a matter of time, measured in bench/busy.py, never
asserted here.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import MultinomialNB
from sklearn.neural_network import MLPClassifier, MLPRegressor
from threadpoolctl import threadpool_limits

import modelshelf
from modelshelf.runtime import _math
from modelshelf.runtime._math import MIN_BLOCK_ROWS, SINGLE_THREAD_CELLS, matmul
from modelshelf.runtime._sparse import CSRMatrix

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("rows", "shape"),
    [
        (1000, (64, 10)),  # 384 rows a block (409 in whole 48s): 3 blocks, the last one short
        (409, (64, 10)),  # one call (409 x 640 cells)
        (410, (64, 10)),  # a block of 384 and one of 26
        (768, (64, 10)),  # exactly two blocks
        (769, (64, 10)),  # two blocks and one row: the row goes with the second
        (770, (64, 10)),  # two blocks and two rows: a block of their own
        (5003, (40, 50)),  # an MLP layer of 50 units: blocks of 96 rows
        (5000, (200,)),  # 1-D weights (a regressor's coef_): 1296 rows a block
        (2593, (200,)),  # ... and one row left
        (3000, (784, 1)),  # one output column
        (2000, (64, 100)),  # an MLP layer: 0 blocks of 48 (40 rows): one call
        (1000, (784, 128)),  # too many weights for a block of MIN_BLOCK_ROWS: one call
        (0, (64, 10)),
        (1, (64, 10)),
        (1, (784, 1024)),  # one row, 803k weights: blocks of 288 columns (334 in 48s)
        (1, (785, 865)),  # ... and one column left (3 x 288 + 1): with the block before
        (1, (5000, 100)),  # one row: blocks of 48 columns
        (2, (784, 1024)),  # two rows: left whole
        (1, (300_000, 2)),  # a row wider than a block: left whole
        (1, (300_000,)),
    ],
)
def test_blocks_give_the_bits_of_one_product(rows: int, shape: tuple[int, ...], dtype: Any) -> None:
    """Row blocks of whole 48s, a single row left going with the block before: the bits of one
    call on one BLAS thread. (Blocks of 409 rows changed the last bit of one row in each: BLAS
    computes the rows of a partial tile by another code path; a probe found 15 of 5,000 MLP
    predictions one ulp off scikit-learn's.)"""
    X = RNG.normal(size=(rows, shape[0])).astype(dtype)
    W = RNG.normal(size=shape).astype(dtype)
    with threadpool_limits(1):  # one call on several threads splits rows as it likes
        out = matmul(X, W)
        expected = X @ W
        assert out.shape == expected.shape and out.dtype == expected.dtype
        np.testing.assert_array_equal(out, expected)
        # the transposed view of a C-ordered coef_ (what the linear kernels pass, as
        # scikit-learn's X @ coef_.T does): the bits of one call with that layout
        if len(shape) == 2:
            view = W.T.copy().T
            np.testing.assert_array_equal(matmul(X, view), X @ view)


def test_block_size_follows_the_single_thread_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = np.matmul

    def spy(a: np.ndarray, b: np.ndarray, **kwargs: Any) -> Any:
        seen.append(len(a))
        return real(a, b, **kwargs)

    monkeypatch.setattr(_math.np, "matmul", spy)
    W = RNG.normal(size=(64, 10))
    matmul(RNG.normal(size=(1000, 64)), W)
    block = SINGLE_THREAD_CELLS // (64 * 10) // MIN_BLOCK_ROWS * MIN_BLOCK_ROWS
    assert block == 384 and seen == [block, block, 1000 - 2 * block]
    assert all(n * 64 * 10 <= SINGLE_THREAD_CELLS for n in seen)
    seen.clear()
    matmul(RNG.normal(size=(769, 64)), W)  # one row left: with the block before it
    assert seen == [384, 385]
    assert SINGLE_THREAD_CELLS // (784 * 128) < MIN_BLOCK_ROWS  # left whole: no spy call
    seen.clear()
    matmul(RNG.normal(size=(100, 784)), RNG.normal(size=(784, 128)))
    assert seen == []


def test_one_row_splits_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    widths: list[int] = []
    real = np.matmul

    def spy(a: np.ndarray, b: np.ndarray, **kwargs: Any) -> Any:
        widths.append(b.shape[1])
        return real(a, b, **kwargs)

    monkeypatch.setattr(_math.np, "matmul", spy)
    x = RNG.normal(size=(1, 784))
    coef = RNG.normal(size=(1024, 784))  # scikit-learn's layout; the kernels pass coef.T
    out = matmul(x, coef.T)
    width = SINGLE_THREAD_CELLS // 784 // MIN_BLOCK_ROWS * MIN_BLOCK_ROWS
    assert width == 288 and widths == [width, width, width, 1024 - 3 * width]
    with threadpool_limits(1):
        np.testing.assert_array_equal(out, x @ coef.T)


def test_float32_weights_widen_as_one_product_does() -> None:
    X = RNG.normal(size=(1000, 64))
    W = RNG.normal(size=(64, 10)).astype(np.float32)
    out = matmul(X, W)
    assert out.dtype == (X @ W).dtype == np.float64
    np.testing.assert_allclose(out, X @ W, rtol=1e-12)


def test_sparse_and_one_dimensional_inputs_pass_through() -> None:
    W = RNG.normal(size=(3, 2))
    csr = CSRMatrix(
        np.array([1.0, 2.0]), np.array([0, 2], dtype=np.int32), np.array([0, 1, 2]), (2, 3)
    )
    np.testing.assert_array_equal(matmul(csr, W), csr @ W)
    x = RNG.normal(size=3)
    np.testing.assert_array_equal(matmul(x, W), x @ W)


def _fit(est: Any, X: np.ndarray, y: np.ndarray) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y)


@pytest.mark.parametrize(
    "make",
    [
        lambda: LogisticRegression(max_iter=300),
        lambda: Ridge(),
        lambda: MLPClassifier(hidden_layer_sizes=(100,), max_iter=50, random_state=0),
        lambda: MLPRegressor(hidden_layer_sizes=(40, 20), max_iter=50, random_state=0),
        lambda: MultinomialNB(),
        lambda: PCA(20),
    ],
    ids=["logreg", "ridge", "mlp-classifier", "mlp-regressor", "multinomial-nb", "pca"],
)
@pytest.mark.parametrize("n_rows", [3000, 5003])
def test_split_products_match_scikit_learn(make: Any, n_rows: int) -> None:
    """Every product here is split into several blocks: scikit-learn's bits, on one BLAS
    thread (with more, its own single product's last bits depend on the thread count)."""
    X, y = load_digits(return_X_y=True)
    est = _fit(make(), X, y)
    model = modelshelf.load(modelshelf.compile(est))
    noise = np.abs(RNG.normal(scale=0.01, size=(n_rows, X.shape[1])))  # counts stay >= 0 (NB)
    rows = np.resize(X, (n_rows, X.shape[1])) + noise
    for method in ("predict", "predict_proba", "decision_function", "transform"):
        if not hasattr(est, method):
            continue
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")
            expected = getattr(est, method)(rows)
            actual = getattr(model, method)(rows)
        np.testing.assert_array_equal(actual, expected, err_msg=method)
