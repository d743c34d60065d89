"""Text runtime: documents validation, murmurhash, the vocabulary table, vectorizer kernels.

Kernels are built straight from compiled images (``runtime.build``), so these tests exercise
the runtime without the Model layer; tests/cases/text.py covers the Model surface. The
vectorizer tests run on both kernels (numpy, and the compiled counts of modelshelf/_kernels).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfVectorizer
from sklearn.utils import murmurhash3_32 as sk_murmurhash3_32

import modelshelf
from modelshelf.errors import InputError, InputShapeError, InputTypeError, ManifestError
from modelshelf.image import Image
from modelshelf.runtime import Executor, build
from modelshelf.runtime._base import Spec
from modelshelf.runtime.text import CountVectorizer as CountKernel
from modelshelf.runtime.text_analysis import as_documents
from modelshelf.runtime.text_lookup import (
    Vocabulary,
    build_vocabulary,
    hashed_columns,
    murmurhash3_32,
)
from tests.cases.text import corpus
from tests.kernels import using


def _kernel(est: Any, docs: list[Any] | None = None) -> Executor:
    est.fit(corpus()[0] if docs is None else docs)
    image = Image(modelshelf.compile(est))
    return build(image.manifest["model"], image.arrays)


def _vocabulary(terms: list[str]) -> Vocabulary:
    arrays = build_vocabulary({t: i for i, t in enumerate(terms)})
    return Vocabulary(arrays["terms"], arrays["runs"], arrays["columns"])


# --- documents -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["one document", b"one document"])
def test_a_bare_string_is_not_a_list_of_documents(bad: Any) -> None:
    with pytest.raises(InputTypeError, match="single"):
        as_documents(bad)


@pytest.mark.parametrize("bad", [[1, 2], ["ok", None], ["ok", np.nan], [["nested"]]])
def test_every_document_must_be_a_string(bad: list[Any]) -> None:
    with pytest.raises(InputTypeError, match="document"):
        as_documents(bad)


def test_documents_accepted_from_any_sequence() -> None:
    docs = ["a", b"b", np.str_("c")]
    assert as_documents(docs) == docs
    assert as_documents(tuple(docs)) == docs
    assert as_documents(iter(docs)) == docs
    assert as_documents(np.array(["x", "y"], dtype=object)) == ["x", "y"]
    with pytest.raises(InputShapeError):
        as_documents([])
    with pytest.raises(InputShapeError):
        as_documents(np.array([["x"]]))
    for bad in (3, {"a": 1}, {"a", "b"}):
        with pytest.raises(InputTypeError):
            as_documents(bad)


class _Frame:
    """The part of a DataFrame that matters here: iterating it yields column names."""

    columns = ["text"]

    def __iter__(self) -> Any:
        return iter(self.columns)


def test_a_table_is_not_a_list_of_documents() -> None:
    with pytest.raises(InputTypeError, match="table"):
        as_documents(_Frame())


@pytest.mark.usefixtures("kernel")
def test_undecodable_bytes_follow_decode_error() -> None:
    docs = ["café au lait", "plain text"]
    strict = _kernel(CountVectorizer(), docs)
    with pytest.raises(InputTypeError, match="not valid utf-8"):
        strict.transform([b"ok", b"caf\xe9"])  # type: ignore[attr-defined]
    for mode in ("ignore", "replace"):
        est = CountVectorizer(decode_error=mode, analyzer="char")
        kernel = _kernel(est, docs)
        raw = [b"caf\xe9 \xff au lait"]
        got = kernel.transform(raw).toarray()  # type: ignore[attr-defined]
        assert np.array_equal(got, est.transform(raw).toarray())


# --- murmurhash ----------------------------------------------------------------------------


def test_murmurhash_matches_sklearn_on_every_length_and_byte() -> None:
    rng = random.Random(0)
    keys = [bytes(rng.randrange(256) for _ in range(n)) for n in range(0, 70) for _ in range(40)]
    keys += ["héllo 日本語 🙂".encode(), b"\x00", b"\x00\x00\x00\x00\x00"]
    want = [sk_murmurhash3_32(k, seed=0, positive=False) for k in keys]
    assert murmurhash3_32(keys).tolist() == want


def test_hashed_column_of_int32_min_is_sklearns() -> None:
    hashes = np.array([-(2**31), -5, 5, 2**31 - 1], dtype=np.int32)
    for n in (1, 7, 2**20):
        special = (2147483647 - (n - 1)) % n  # _hashing_fast.pyx's definition
        expected = [special, 5 % n, 5 % n, (2**31 - 1) % n]
        assert hashed_columns(hashes, n).tolist() == expected


# --- vocabulary table ----------------------------------------------------------------------

_ODD_TERMS = ["", "a", "b", "a\x00", "\x00", "\x00\x00", "ab", "日本", "x\ud800", "é", "e\u0301"]


def test_vocabulary_finds_every_term_and_nothing_else() -> None:
    terms = _ODD_TERMS + [f"term{i}" for i in range(500)]
    vocab = _vocabulary(terms)
    assert vocab.lookup(terms).tolist() == list(range(len(terms)))
    absent = ["c", "a\x00\x00", "\x00\x00\x00", "term500", "日", "ab\x00", "x\ud801", "E"]
    assert vocab.lookup(absent).tolist() == [-1] * len(absent)


def test_vocabulary_without_empty_term_misses_empty_tokens() -> None:
    assert _vocabulary(["a", "bb"]).lookup(["", "bb"]).tolist() == [-1, 1]


def test_vocabulary_layout_is_sorted_by_length_then_bytes() -> None:
    arrays = build_vocabulary({"bb": 0, "a": 1, "ba": 2, "ccc": 3, "ab": 4})
    assert arrays["terms"].tobytes() == b"aabbabbccc"
    assert arrays["runs"].tolist() == [[1, 0, 1], [2, 1, 3], [3, 7, 1]]
    assert arrays["columns"].tolist() == [1, 4, 2, 0, 3]


def test_vocabulary_cost_is_within_budget() -> None:
    terms = [f"wörd{i}" * (1 + i % 3) for i in range(3000)]
    arrays = build_vocabulary({t: i for i, t in enumerate(terms)})
    utf8 = sum(len(t.encode()) for t in terms)
    assert sum(a.nbytes for a in arrays.values()) <= 1.5 * utf8 + 8 * len(terms)


def test_vocabulary_views_share_the_image_bytes() -> None:
    with using("numpy"):  # the numpy path's views (the compiled one reads the blob in C)
        kernel = _kernel(CountVectorizer())
    assert isinstance(kernel, CountKernel)
    vocab = kernel.vocabulary
    assert not vocab.blob.flags.writeable
    assert vocab._views == {}  # loading built nothing per term or per length
    kernel.transform(["café naïve python"])
    _, view = next(iter(vocab._views.values()))
    assert np.shares_memory(view, vocab.blob)


@pytest.mark.parametrize(
    "runs",
    [
        [[1, 0, 2], [1, 2, 1]],  # lengths not rising
        [[1, 0, 2], [2, 3, 1]],  # a gap
        [[1, 0, 2], [2, 2, 2]],  # past the blob's end
        [[1, 0, 0], [2, 0, 2]],  # empty run
    ],
)
def test_corrupt_runs_are_refused_at_load(runs: list[list[int]]) -> None:
    arrays = {
        "t": np.frombuffer(b"abcd", dtype=np.uint8),
        "r": np.array(runs, dtype=np.int64),
        "c": np.arange(3, dtype=np.int32),
    }
    spec = Spec({"arrays": {"terms": "t", "runs": "r", "columns": "c"}}, arrays, "model")
    with pytest.raises(ManifestError):
        Vocabulary.from_spec(spec)


# --- vectorizer kernels --------------------------------------------------------------------


def _same(kernel: Executor, est: Any, docs: list[Any]) -> None:
    got = kernel.transform(docs)  # type: ignore[attr-defined]
    want = est.transform(docs)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got.indptr, want.indptr)
    assert np.array_equal(got.indices, want.indices)
    np.testing.assert_allclose(got.data, want.data, rtol=1e-12)


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize(
    "est",
    [
        CountVectorizer(),
        CountVectorizer(analyzer="char_wb", ngram_range=(1, 3), lowercase=False),
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        HashingVectorizer(n_features=50, ngram_range=(1, 2)),
    ],
    ids=["count", "char-wb", "tfidf", "hashing"],
)
def test_kernels_produce_sklearns_exact_csr(est: Any) -> None:
    kernel = _kernel(est)
    docs = corpus()[0]
    _same(kernel, est, docs)
    _same(kernel, est, docs[5:6])  # one document
    _same(kernel, est, ["", "zzz qqq", "   "])  # nothing known: empty rows


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("binary", [False, True])
def test_hashing_keeps_entries_whose_signs_cancel(binary: bool) -> None:
    # With one column every character lands together and the signs cancel: SciPy keeps the
    # stored zero, and binary=True turns it into a 1.
    est = HashingVectorizer(n_features=1, norm=None, analyzer="char", binary=binary)
    kernel = _kernel(est, ["x"])
    docs = ["abcdefgh" * 3, "a"]
    got = kernel.transform(docs)  # type: ignore[attr-defined]
    want = est.transform(docs)
    assert np.array_equal(got.toarray(), want.toarray())
    assert got.nnz == want.nnz


@pytest.mark.usefixtures("kernel")
def test_kernels_never_write_their_input() -> None:
    docs = ["Café Ölfarbe", "python numpy"]
    before = list(docs)
    kernel = _kernel(TfidfVectorizer(), corpus()[0])
    kernel.transform(docs)  # type: ignore[attr-defined]
    assert docs == before


@pytest.mark.usefixtures("kernel")
def test_hashing_refuses_tokens_utf8_cannot_encode() -> None:
    kernel = _kernel(HashingVectorizer(n_features=8, analyzer="char"), ["x"])
    with pytest.raises(InputError):
        kernel.transform(["lone \ud800 surrogate"])  # type: ignore[attr-defined]


def test_hostile_run_lengths_do_not_overflow() -> None:
    arrays = {
        "t": np.frombuffer(b"abcd", dtype=np.uint8),
        "r": np.array([[2**62, 0, 4]], dtype=np.int64),  # 2**62 * 4 wraps to 0 in int64
        "c": np.arange(4, dtype=np.int32),
    }
    spec = Spec({"arrays": {"terms": "t", "runs": "r", "columns": "c"}}, arrays, "model")
    with pytest.raises(ManifestError, match="past the terms blob"):
        Vocabulary.from_spec(spec)


@pytest.mark.parametrize("bad", [7, -2])
def test_out_of_range_columns_are_caught_on_use(bad: int) -> None:
    arrays = build_vocabulary({"a": 0, "b": 1})
    columns = arrays["columns"].copy()
    columns[1] = bad
    vocab = Vocabulary(arrays["terms"], arrays["runs"], columns)
    assert vocab.lookup(["a"]).tolist() == [0]
    with pytest.raises(ManifestError, match="columns"):
        vocab.lookup(["b"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=30))
def test_murmurhash_property(keys: list[bytes]) -> None:
    want = [sk_murmurhash3_32(k, seed=0, positive=False) for k in keys]
    assert murmurhash3_32(keys).tolist() == want


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.text(max_size=6), min_size=1, max_size=40, unique=True),
    st.lists(st.text(max_size=6), max_size=20),
)
def test_vocabulary_lookup_property(terms: list[str], queries: list[str]) -> None:
    vocab = _vocabulary(terms)
    index = {t: i for i, t in enumerate(terms)}
    assert vocab.lookup(terms + queries).tolist() == [index.get(q, -1) for q in terms + queries]
