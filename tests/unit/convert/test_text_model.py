"""Text models through the public surface: documents in, validation, cheap loading."""

from __future__ import annotations

import sys
import tracemalloc

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

import modelshelf
from modelshelf.errors import InputError, InputTypeError
from tests.cases.text import labelled


@pytest.fixture(scope="module")
def classifier() -> modelshelf.Model:
    docs, y, _ = labelled()
    pipe = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(docs, y)
    return modelshelf.load(modelshelf.compile(pipe))


def test_a_bare_string_raises_instead_of_iterating_characters(
    classifier: modelshelf.Model,
) -> None:
    with pytest.raises(InputTypeError, match="single str"):
        classifier.predict("café and python")
    assert classifier.predict(["café and python"]).shape == (1,)


@pytest.mark.parametrize("bad", [[1.5], [None], [["a", "b"]], np.zeros((2, 3))])
def test_documents_must_be_strings(classifier: modelshelf.Model, bad: object) -> None:
    with pytest.raises(InputError):
        classifier.predict_proba(bad)


def test_strict_decoding_raises_an_input_error() -> None:
    model = modelshelf.load(modelshelf.compile(CountVectorizer().fit(["café crème"])))
    with pytest.raises(InputTypeError, match="decode_error='strict'"):
        model.transform([b"caf\xe9"])
    assert model.transform(["café".encode()]).toarray().tolist() == [[1, 0]]


def test_a_vectorizer_model_only_transforms() -> None:
    model = modelshelf.load(modelshelf.compile(TfidfVectorizer().fit(["a bb", "bb cc"])))
    assert hasattr(model, "transform")
    assert not hasattr(model, "predict") and not hasattr(model, "predict_proba")
    with pytest.raises(AttributeError):
        _ = model.n_features_in_


def test_loading_builds_nothing_per_term() -> None:
    # 40k terms: a dict of them alone would take megabytes; loading must allocate a few KB.
    terms = [f"term{i}" for i in range(40_000)]
    docs = [" ".join(terms[i : i + 100]) for i in range(0, len(terms), 100)]
    image = modelshelf.compile(CountVectorizer().fit(docs))
    tracemalloc.start()
    try:
        model = modelshelf.load(image)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200_000, peak
    counts = model.transform(["term5 term5 term39999 unknown"]).toarray()
    assert counts.sum() == 3 and counts.max() == 2


def test_transform_returns_scipy_csr_when_scipy_is_installed() -> None:
    from scipy import sparse

    est = TfidfVectorizer().fit(labelled()[0])
    model = modelshelf.load(modelshelf.compile(est))
    docs = labelled()[2]
    out = model.transform(docs)
    assert isinstance(out, sparse.csr_matrix)
    want = est.transform(docs)
    assert out.dtype == want.dtype and out.shape == want.shape
    assert np.array_equal(out.indptr, want.indptr) and np.array_equal(out.indices, want.indices)
    np.testing.assert_allclose(out.data, want.data, rtol=1e-12)


def test_transform_without_scipy_returns_the_light_csr(monkeypatch: pytest.MonkeyPatch) -> None:
    docs, y, test = labelled()
    est = CountVectorizer().fit(docs)
    vectorizer = modelshelf.load(modelshelf.compile(est))
    pipe = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(docs, y)
    classifier = modelshelf.load(modelshelf.compile(pipe))
    want_counts = est.transform(["café python", ""]).toarray()
    want_labels = pipe.predict(test)
    monkeypatch.setitem(sys.modules, "scipy", None)  # ``import scipy`` now fails
    out = vectorizer.transform(["café python", ""])
    assert type(out).__name__ == "CSRMatrix"
    assert out.shape == (2, len(est.vocabulary_))
    assert np.array_equal(out.toarray(), want_counts)
    assert np.array_equal(classifier.predict(test), want_labels)  # predictions never need SciPy
