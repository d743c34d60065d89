"""The light CSR matrix: products, row sums and norms against dense numpy and SciPy."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from scipy import sparse

from modelshelf.errors import InputShapeError, ManifestError
from modelshelf.runtime._sparse import CSRMatrix, dense_chunks, from_dense, publish, to_dense


def _random(n: int = 9, d: int = 13, seed: int = 0, dtype: type = np.float64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    X[rng.uniform(size=X.shape) < 0.7] = 0
    X[2] = 0  # an empty row, and one at the end
    X[-1] = 0
    return X


def test_from_dense_round_trips_and_matches_scipy() -> None:
    X = _random()
    csr = from_dense(X)
    ref = sparse.csr_matrix(X)
    assert np.array_equal(csr.toarray(), X)
    assert np.array_equal(csr.indptr, ref.indptr)
    assert np.array_equal(csr.indices, ref.indices)
    assert csr.nnz == ref.nnz and len(csr) == 9 and csr.shape == (9, 13)


@pytest.mark.parametrize("k", [None, 1, 4, 40])
def test_matmul_matches_dense(k: int | None) -> None:
    X = _random()
    rng = np.random.default_rng(1)
    W = rng.normal(size=13) if k is None else rng.normal(size=(13, k))
    got = from_dense(X) @ W
    assert got.shape == (X @ W).shape
    np.testing.assert_allclose(got, X @ W, rtol=1e-12, atol=1e-15)
    assert np.array_equal(got[2], np.zeros_like(got[2]))


@pytest.mark.parametrize("k", [None, 3])
def test_matmul_sums_in_scipys_order(k: int | None) -> None:
    X = _random(n=50, d=400, seed=5)
    X[:, :200] = np.random.default_rng(6).normal(size=(50, 200))  # long rows
    rng = np.random.default_rng(7)
    W = rng.normal(size=400) if k is None else rng.normal(size=(400, k))
    assert np.array_equal(from_dense(X) @ W, sparse.csr_matrix(X) @ W)


def test_matmul_with_transposed_readonly_weights() -> None:
    X = _random()
    coef = np.random.default_rng(2).normal(size=(3, 13))
    coef.flags.writeable = False
    np.testing.assert_allclose(from_dense(X) @ coef.T, X @ coef.T, rtol=1e-12, atol=1e-15)


def test_matmul_rejects_wrong_width() -> None:
    """Sparse rows come from a step of the model: a width the next step's weights do not take
    is the image's fault (it blamed the caller's input)."""
    with pytest.raises(ManifestError, match="weights take 5 inputs, the model's sparse rows"):
        from_dense(_random()) @ np.ones(5)


def test_integer_counts_times_float_weights() -> None:
    X = (np.abs(_random()) * 10).astype(np.int64)
    W = np.random.default_rng(3).normal(size=(13, 2))
    got = from_dense(X) @ W
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, X @ W, rtol=1e-12)


@pytest.mark.parametrize("norm", ["l1", "l2"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_normalize_rows_matches_sklearn(norm: str, dtype: type) -> None:
    from sklearn.preprocessing import normalize

    X = _random(dtype=dtype)
    got = from_dense(X).normalize_rows(norm)
    want = normalize(sparse.csr_matrix(X), norm=norm)
    assert got.dtype == want.dtype
    assert np.array_equal(got.toarray(), want.toarray())


def test_row_slices_and_dense_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    X = _random(n=30)
    csr = from_dense(X)
    assert np.array_equal(csr.rows(5, 17).toarray(), X[5:17])
    monkeypatch.setattr("modelshelf.runtime._sparse.DENSE_CHUNK_CELLS", 13 * 4)
    chunks = dense_chunks(csr)
    assert [len(c) for c in chunks] == [4] * 7 + [2]
    assert np.array_equal(np.concatenate(chunks), X)
    assert to_dense(csr).shape == X.shape and to_dense(X) is X


def test_inconsistent_triples_are_refused() -> None:
    with pytest.raises(InputShapeError):
        CSRMatrix(np.ones(3), np.zeros(3, np.int32), np.array([0, 1, 2]), (3, 4))
    with pytest.raises(InputShapeError):
        CSRMatrix(np.ones(3), np.zeros(2, np.int32), np.array([0, 1, 3]), (2, 4))


def test_publish_gives_scipy_csr_without_copying() -> None:
    csr = from_dense(_random())
    out = publish(csr)
    assert isinstance(out, sparse.csr_matrix)
    assert np.shares_memory(out.data, csr.data)
    assert np.array_equal(out.toarray(), csr.toarray())
    dense = np.ones(3)
    assert publish(dense) is dense


def test_publish_without_scipy_keeps_the_light_triple(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "scipy", None)  # makes ``import scipy`` fail
    csr = from_dense(_random())
    assert publish(csr) is csr


def test_pipeline_densifies_in_chunks_for_steps_without_a_sparse_kernel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sklearn.decomposition import PCA
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    import modelshelf
    from tests.cases.text import labelled

    docs, y, test = labelled()
    pipe = make_pipeline(
        TfidfVectorizer(max_features=30),
        PCA(n_components=4, svd_solver="arpack"),
        LogisticRegression(),
    ).fit(docs, y)
    model = modelshelf.load(modelshelf.compile(pipe))
    seen: list[int] = []
    real_chunks = dense_chunks
    monkeypatch.setattr("modelshelf.runtime.compose.DENSE_CHUNK_CELLS", 30 * 8)
    monkeypatch.setattr("modelshelf.runtime._sparse.DENSE_CHUNK_CELLS", 30 * 8)

    def spy(X: CSRMatrix) -> list[np.ndarray]:
        out = real_chunks(X)
        seen.extend(len(c) for c in out)
        return out

    monkeypatch.setattr("modelshelf.runtime.compose.dense_chunks", spy)
    np.testing.assert_allclose(model.predict_proba(test), pipe.predict_proba(test), rtol=1e-9)
    assert seen and max(seen) == 8 and sum(seen) == len(test)


def test_a_centering_scaler_refuses_sparse_input() -> None:
    from modelshelf.errors import InputTypeError
    from modelshelf.runtime.preprocessing import Scaler

    scaler = Scaler(13, np.zeros(13), np.ones(13), None, None, None)
    with pytest.raises(InputTypeError, match="sparse"):
        scaler.transform(from_dense(_random()))  # type: ignore[arg-type]
    scaling = Scaler(13, None, np.full(13, 2.0), None, None, (-0.1, 0.1))
    got = scaling.transform(from_dense(_random()))  # type: ignore[arg-type]
    np.testing.assert_array_equal(got.toarray(), np.clip(_random() * 0.5, -0.1, 0.1))


def test_naive_bayes_refuses_negative_sparse_counts() -> None:
    from modelshelf.errors import InputError
    from modelshelf.runtime.naive_bayes import DiscreteNB

    nb = DiscreteNB(np.ones((2, 13)), None, None, True, np.array([0, 1]))
    X = from_dense(_random())
    with pytest.raises(InputError, match="negative"):
        nb.jll(X)  # type: ignore[arg-type]
    counts = from_dense(np.abs(_random()))
    np.testing.assert_allclose(nb.jll(counts), np.abs(_random()) @ np.ones((13, 2)))  # type: ignore[arg-type]
