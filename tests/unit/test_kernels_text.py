"""The compiled text kernels (modelshelf/_kernels/text.c) against the numpy runtime: murmurhash3
of every length, vocabulary counts over odd terms (the empty term, NULs, surrogates, combining
marks) and random tables, hashed counts with cancelling signs, and the checks on runs, columns
and arguments. (The exactness matrix runs real vectorizers through both kernels;
tests/adversarial/test_text_kernels.py feeds them hostile string tables.)"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.utils import murmurhash3_32 as sk_murmurhash3_32

from modelshelf import _kernels
from modelshelf.runtime._sparse import from_dense
from modelshelf.runtime.text import TfidfTransformer, _count
from modelshelf.runtime.text_lookup import (
    Vocabulary,
    build_vocabulary,
    hashed_columns,
    murmurhash3_32,
)
from tests.kernels import require, using

_ODD_TERMS = ["", "a", "b", "a\x00", "\x00", "\x00\x00", "ab", "日本", "x\ud800", "é", "e\u0301"]


def _native() -> Any:
    require("compiled")
    assert _kernels.BUILT is not None
    return _kernels.BUILT


def _lengths(*counts: int) -> np.ndarray:
    return np.array(counts, dtype=np.intp)


def _numpy_counts(
    vocab: dict[str, int], features: list[str], lengths: np.ndarray
) -> tuple[list[int], list[int], list[int]]:
    """(indptr, indices, counts) as the numpy path's lookup and ``_count`` give them."""
    arrays = build_vocabulary(vocab)
    columns = Vocabulary(arrays["terms"], arrays["runs"], arrays["columns"]).lookup(features)
    doc_of = np.repeat(np.arange(len(lengths)), lengths)
    kept = columns >= 0
    rows, cols, counts = _count(doc_of[kept], columns[kept], len(lengths), len(vocab))
    indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=len(lengths)))]
    return indptr.tolist(), cols.tolist(), counts.tolist()


def _compiled_counts(
    vocab: dict[str, int], features: list[str], lengths: np.ndarray
) -> tuple[list[int], list[int], list[int]]:
    arrays = build_vocabulary(vocab)
    counts = _native().Vocab(arrays["terms"], arrays["runs"], arrays["columns"]).counts
    indptr, indices, values, nnz = counts(features, lengths)
    assert indptr.dtype == indices.dtype == values.dtype == np.int64
    return indptr.tolist(), indices[:nnz].tolist(), values[:nnz].tolist()


def test_murmurhash_matches_sklearn_on_every_length() -> None:
    native = _native()
    rng = random.Random(0)
    keys = [bytes(rng.randrange(256) for _ in range(n)) for n in range(0, 70) for _ in range(20)]
    keys += ["héllo 日本語 🙂".encode(), b"\x00", b"\xff\xff\xff\xff"]
    assert [native.murmurhash3_32(k) for k in keys] == [
        sk_murmurhash3_32(k, seed=0, positive=False) for k in keys
    ]


def test_odd_terms_count_as_numpy_does() -> None:
    vocab = {t: i for i, t in enumerate(_ODD_TERMS + [f"term{i}" for i in range(300)])}
    features = [*_ODD_TERMS, "term7", "a", "", "missing", "x\ud801", "a\x00\x00", "term7", "é"]
    lengths = _lengths(5, 0, len(features) - 5, 0)
    assert _compiled_counts(vocab, features, lengths) == _numpy_counts(vocab, features, lengths)


def test_empty_term_absent_drops_empty_tokens() -> None:
    vocab = {"a": 0, "bb": 1}
    assert _compiled_counts(vocab, ["", "bb", ""], _lengths(3)) == ([0, 1], [1], [1])


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.text(max_size=5), min_size=1, max_size=60, unique=True),
    st.lists(st.text(max_size=5), max_size=40),
    st.randoms(use_true_random=False),
)
def test_vocabulary_counts_property(terms: list[str], queries: list[str], rnd: Any) -> None:
    columns = list(range(len(terms)))
    rnd.shuffle(columns)
    vocab = dict(zip(terms, columns, strict=True))
    features = queries + [rnd.choice(terms) for _ in range(30)]
    rnd.shuffle(features)
    cuts = sorted(rnd.randrange(len(features) + 1) for _ in range(3))
    lengths = np.diff([0, *cuts, len(features)]).astype(np.intp)
    assert _compiled_counts(vocab, features, lengths) == _numpy_counts(vocab, features, lengths)


@pytest.mark.parametrize("alternate_sign", [True, False])
@pytest.mark.parametrize("n_features", [1, 7, 2**20, 2**31 - 1])
def test_hashed_counts_match_numpy(alternate_sign: bool, n_features: int) -> None:
    native = _native()
    rng = random.Random(n_features)
    features = [
        "".join(rng.choice("abcé日\x00 ") for _ in range(rng.randrange(7))) for _ in range(400)
    ]
    lengths = _lengths(0, 150, 1, 249)
    indptr, indices, sums, nnz = native.hashed_counts(features, lengths, n_features, alternate_sign)
    hashes = murmurhash3_32([f.encode() for f in features])
    columns = hashed_columns(hashes, n_features)
    signs = np.where(hashes >= 0, 1.0, -1.0) if alternate_sign else np.ones(len(features))
    doc_of = np.repeat(np.arange(len(lengths)), lengths)
    keys = doc_of * n_features + columns
    distinct, inverse = np.unique(keys, return_inverse=True)
    want = np.bincount(inverse, weights=signs, minlength=len(distinct))
    assert sums.dtype == np.float64 and nnz == len(distinct)
    assert sums[:nnz].tobytes() == want.tobytes()  # stored zeros stay, +0.0
    assert indices[:nnz].tolist() == (distinct % n_features).tolist()
    assert (
        indptr.tolist()
        == np.r_[0, np.cumsum(np.bincount(distinct // n_features, minlength=4))].tolist()
    )


def test_hashing_is_strict_utf8() -> None:
    native = _native()
    with pytest.raises(UnicodeEncodeError):
        native.hashed_counts(["ok", "x\ud800"], _lengths(2), 8, True)


@pytest.mark.parametrize(
    "runs",
    [
        [[1, 0, 2], [1, 2, 1]],  # lengths not rising
        [[1, 0, 2], [2, 3, 1]],  # a gap
        [[1, 0, 2], [2, 2, 2]],  # past the blob's end
        [[1, 0, 0], [2, 0, 2]],  # empty run
        [[2**62, 0, 4]],  # 2**62 * 4 wraps to 0 in int64
        [[-1, 0, 1], [1, 0, 2]],  # a negative length
        [[0, 0, 2], [2, 0, 1]],  # two empty terms
        [[1, 0, 2]],  # does not cover the blob
        [[1, 0, 4]],  # more terms than columns
    ],
)
def test_corrupt_runs_are_refused(runs: list[list[int]]) -> None:
    native = _native()
    blob = np.frombuffer(b"abcd", dtype=np.uint8)
    with pytest.raises(ValueError):
        native.Vocab(blob, np.array(runs, dtype=np.int64), np.arange(3, dtype=np.int32))


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("bad", [2, -2, 2**31 - 1])
def test_columns_outside_are_caught_in_the_loop(dtype: type, bad: int) -> None:
    native = _native()
    arrays = build_vocabulary({"a": 0, "b": 1})
    columns = arrays["columns"].astype(dtype)
    columns[1] = bad
    counts = native.Vocab(arrays["terms"], arrays["runs"], columns).counts
    assert counts(["a", "a"], _lengths(2))[0].tolist() == [0, 1]
    with pytest.raises(IndexError, match="feature 1 has vocabulary column"):
        counts(["a", "b"], _lengths(2))


def test_a_stored_column_of_minus_one_drops_the_term_as_numpy_does() -> None:
    native = _native()
    arrays = build_vocabulary({"a": 0, "b": 1})
    columns = arrays["columns"].copy()
    columns[1] = -1
    indptr, indices, _, nnz = native.Vocab(arrays["terms"], arrays["runs"], columns).counts(
        ["b", "a"], _lengths(2)
    )
    assert (indptr.tolist(), indices[:nnz].tolist()) == ([0, 1], [0])


@pytest.mark.parametrize("lengths", [[2], [1, 1], [-1, 4], [4, -1], [3, 1]])
def test_lengths_must_count_the_features(lengths: list[int]) -> None:
    native = _native()
    arrays = build_vocabulary({"a": 0})
    vocab = native.Vocab(arrays["terms"], arrays["runs"], arrays["columns"])
    with pytest.raises(ValueError, match="lengths"):
        vocab.counts(["a", "a", "a"], np.array(lengths, dtype=np.intp))
    with pytest.raises(ValueError, match="lengths"):
        native.hashed_counts(["a", "a", "a"], np.array(lengths, dtype=np.intp), 4, True)


def test_arguments_of_other_types_are_refused() -> None:
    native = _native()
    arrays = build_vocabulary({"a": 0})
    vocab = native.Vocab(arrays["terms"], arrays["runs"], arrays["columns"])
    with pytest.raises(TypeError, match="feature 1 is bytes"):
        vocab.counts(["a", b"a"], _lengths(2))
    with pytest.raises(TypeError, match="lengths"):
        vocab.counts(["a"], np.array([1], dtype=np.int32))
    with pytest.raises(ValueError, match="n_features"):
        native.hashed_counts(["a"], _lengths(1), 0, True)


def test_the_facade_leaves_other_layouts_and_the_numpy_mode_to_numpy() -> None:
    require("compiled")
    arrays = build_vocabulary({"a": 0, "b": 1})
    with using("compiled"):
        assert _kernels.vocabulary(arrays["terms"], arrays["runs"], arrays["columns"]) is not None
        assert _kernels.hashing(8, True) is not None
        narrow = arrays["columns"].astype(np.int16)
        assert _kernels.vocabulary(arrays["terms"], arrays["runs"], narrow) is None
        runs32 = arrays["runs"].astype(np.int32)
        assert _kernels.vocabulary(arrays["terms"], runs32, arrays["columns"]) is None
    with using("numpy"):
        assert _kernels.vocabulary(arrays["terms"], arrays["runs"], arrays["columns"]) is None
        assert _kernels.hashing(8, True) is None


@pytest.mark.parametrize("norm", [None, "l1", "l2"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("with_idf", [True, False])
def test_weigh_equals_the_numpy_transformer_to_the_bit(
    norm: str | None, dtype: type, with_idf: bool
) -> None:
    native = _native()
    rng = np.random.default_rng(0)
    n_rows, n_features = 40, 30
    dense = rng.poisson(0.7, size=(n_rows, n_features)).astype(dtype)
    dense[3] = 0  # an empty row
    dense[5, :4] = [1e-30, 3e38, 7.0, 1e-45]  # tiny, huge (float32 overflow when squared)
    idf = rng.uniform(1.0, 9.0, n_features) * 10.0 ** rng.integers(-3, 3, n_features)
    idf[:3] = [np.inf, 0.0, np.nan]
    csr = from_dense(dense)
    with np.errstate(all="ignore"):
        want = TfidfTransformer(idf if with_idf else None, n_features, False, norm).transform(csr)
        data = csr.data.copy()
        indices, indptr = csr.indices.astype(np.int64), csr.indptr.astype(np.int64)
        native.weigh(
            data, indices, indptr, idf if with_idf else None, {None: 0, "l1": 1, "l2": 2}[norm]
        )
    assert data.dtype == want.data.dtype and data.tobytes() == want.data.tobytes()


def test_weigh_checks_its_indices() -> None:
    native = _native()
    data = np.ones(3)
    with pytest.raises(IndexError, match="entry 2 has column 5"):
        native.weigh(data, np.array([0, 1, 5]), np.array([0, 3]), np.ones(4), 2)
    with pytest.raises(IndexError, match="entry 0 has column -1"):
        native.weigh(data, np.array([-1, 1, 2]), np.array([0, 3]), np.ones(4), 2)
    for indptr in ([1, 3], [0, 2], [0, 4], [0, 2, 1, 3]):
        with pytest.raises(ValueError, match="indptr"):
            native.weigh(data, np.array([0, 1, 2]), np.array(indptr), None, 2)
    with pytest.raises(ValueError, match="norm"):
        native.weigh(data, np.array([0, 1, 2]), np.array([0, 3]), None, 3)
    with pytest.raises(TypeError, match="idf"):
        native.weigh(data, np.array([0, 1, 2]), np.array([0, 3]), np.ones(4, np.float32), 2)


def test_threads_sharing_one_vocabulary_get_the_same_counts() -> None:
    # The GIL is released while counting: threads run the same table at once.
    native = _native()
    terms = [f"t{i}" for i in range(5000)]
    arrays = build_vocabulary({t: i for i, t in enumerate(terms)})
    vocab = native.Vocab(arrays["terms"], arrays["runs"], arrays["columns"])
    rng = random.Random(1)
    features = [rng.choice(terms) + rng.choice(["", "", "x"]) for _ in range(20000)]
    lengths = _lengths(5000, 5000, 10000)

    def used(result: tuple[np.ndarray, np.ndarray, np.ndarray, int]) -> list[bytes]:
        indptr, indices, values, nnz = result  # entries past nnz are not written
        return [indptr.tobytes(), indices[:nnz].tobytes(), values[:nnz].tobytes()]

    want = used(vocab.counts(features, lengths))
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: vocab.counts(features, lengths), range(8)))
    assert all(used(r) == want for r in results)
