"""Text vectorizers at their edges, found by sweeping every parameter and unusual documents
against scikit-learn: each answered what scikit-learn does not, or failed with an exception
that said the wrong thing."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.feature_extraction.text import (
    CountVectorizer,
    HashingVectorizer,
    TfidfTransformer,
)

import modelshelf
from modelshelf.errors import InputTypeError, NonFiniteInputError, UnsupportedModelError


def test_a_vocabulary_term_that_is_not_a_string_is_refused() -> None:
    """None was stored as "None": the token "None" was counted where scikit-learn never matches
    it, and with "None" in the vocabulary too the image lost a column."""
    for vocabulary in (["a", None], ["None", None]):
        est = CountVectorizer(vocabulary=vocabulary, token_pattern=r"\S+", lowercase=False)
        est.fit(["None a"])
        with pytest.raises(UnsupportedModelError, match="not a string"):
            modelshelf.compile(est)


@pytest.mark.parametrize("dtype", [bool, np.uint8])
def test_signed_hashes_into_bool_or_unsigned_are_refused(dtype: type) -> None:
    """scikit-learn casts each signed value before a column sums them (+1 and -1 make True);
    the image summed first (False)."""
    with pytest.raises(UnsupportedModelError, match="alternate_sign=True"):
        modelshelf.compile(HashingVectorizer(n_features=4, dtype=dtype).fit(["a"]))
    est = HashingVectorizer(n_features=4, dtype=dtype, alternate_sign=False, norm=None)
    docs = ["a b c d e f g", "x"]
    model = modelshelf.load(modelshelf.compile(est.fit(docs)))
    np.testing.assert_array_equal(model.transform(docs).toarray(), est.transform(docs).toarray())


def test_sublinear_tf_of_a_negative_count_is_refused_as_scikit_learn_refuses_it() -> None:
    """log(-1): scikit-learn's normalize (or the next step) raises on NaN; the image answered
    NaN, and a pipeline's logistic regression NaN probabilities and a label."""
    words = [f"w{i}" for i in range(40)]
    docs = [" ".join(words[i : i + 5]) for i in range(0, 40, 5)]
    counts = HashingVectorizer(n_features=8, norm=None).transform(docs).toarray()
    negative = counts[(counts < 0).any(axis=1)]
    assert len(negative)
    est = TfidfTransformer(sublinear_tf=True).fit(np.abs(counts) + 1)
    model = modelshelf.load(modelshelf.compile(est))
    with warnings.catch_warnings(), pytest.raises(ValueError):
        warnings.simplefilter("ignore")
        est.transform(negative)
    with pytest.raises(NonFiniteInputError, match="sublinear_tf"):
        model.transform(negative)
    np.testing.assert_array_equal(
        model.transform(np.abs(counts)).toarray(), est.transform(np.abs(counts)).toarray()
    )


def test_stop_words_that_are_not_strings_never_match_as_in_scikit_learn() -> None:
    """["the", None] made compile fail with sorted()'s bare TypeError."""
    docs = ["the cat None", "the dog"]
    est = CountVectorizer(stop_words=["the", None]).fit(docs)
    model = modelshelf.load(modelshelf.compile(est))
    np.testing.assert_array_equal(model.transform(docs).toarray(), est.transform(docs).toarray())


def test_a_codec_that_cannot_ignore_errors_says_so() -> None:
    """idna cannot ignore errors: a bare UnicodeError escaped; punycode's refusal claimed the
    model was compiled with decode_error='strict'."""
    est = CountVectorizer(encoding="idna", decode_error="ignore").fit(["alpha beta"])
    model = modelshelf.load(modelshelf.compile(est))
    with pytest.raises(InputTypeError, match="decode_error='ignore'"):
        model.transform([b"\xff\xfe"])
