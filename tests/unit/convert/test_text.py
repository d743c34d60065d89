"""Compiling text vectorizers: what the manifest holds, what is refused, analysis parity."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from sklearn.feature_extraction.text import (
    ENGLISH_STOP_WORDS,
    CountVectorizer,
    HashingVectorizer,
    TfidfVectorizer,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import modelshelf
from modelshelf.convert.text import input_type
from modelshelf.errors import UnsupportedModelError
from modelshelf.image import Image
from modelshelf.runtime import build
from tests.cases.text import corpus


def _manifest(est: Any) -> dict[str, Any]:
    return Image(modelshelf.compile(est)).manifest


@pytest.mark.parametrize(
    ("est", "what"),
    [
        (CountVectorizer(tokenizer=str.split, token_pattern=None), "tokenizer"),
        (CountVectorizer(preprocessor=str.lower), "preprocessor"),
        (CountVectorizer(analyzer=str.split), "analyzer"),
        (TfidfVectorizer(strip_accents=str.lower), "strip_accents"),
        (HashingVectorizer(analyzer=str.split), "analyzer"),
    ],
)
def test_code_in_a_vectorizer_is_refused(est: Any, what: str) -> None:
    est.fit(corpus()[0])
    with pytest.raises(UnsupportedModelError, match=f"{what}.*images hold no code"):
        modelshelf.compile(est)
    with pytest.raises(UnsupportedModelError, match="images hold no code"):
        modelshelf.compile(make_pipeline(est, LogisticRegression()).fit(corpus()[0], corpus()[1]))


def test_a_tokenizer_the_char_analyzer_ignores_is_harmless() -> None:
    est = CountVectorizer(analyzer="char", tokenizer=str.split)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns that the tokenizer is unused
        est.fit(corpus()[0])
    assert _manifest(est)["model"]["kind"] == "count_vectorizer"


def test_file_inputs_and_unfitted_vectorizers_are_refused() -> None:
    est = CountVectorizer().fit(corpus()[0])
    est.input = "filename"  # as if fitted on files: the runtime only takes contents
    with pytest.raises(UnsupportedModelError, match="input='filename'"):
        modelshelf.compile(est)
    with pytest.raises(UnsupportedModelError, match="not fitted"):
        modelshelf.compile(CountVectorizer())


def test_the_manifest_holds_the_analysis_as_data() -> None:
    est = CountVectorizer(stop_words="english", token_pattern=r"(?u)\b\w+\b", ngram_range=(1, 2))
    params = _manifest(est.fit(corpus()[0]))["model"]["params"]
    assert params["token_pattern"] == r"(?u)\b\w+\b" and params["token_flags"] == 0
    assert params["stop_words"] == sorted(ENGLISH_STOP_WORDS)
    assert params["ngram_range"] == [1, 2] and params["analyzer"] == "word"


def test_input_type_follows_the_first_component() -> None:
    docs, y, _ = corpus()
    text = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(docs, y)
    assert input_type(_manifest(text)["model"]) == "text"
    assert input_type(_manifest(HashingVectorizer())["model"]) == "text"
    numeric = make_pipeline(StandardScaler(), LogisticRegression()).fit([[0.0], [1.0]], [0, 1])
    assert input_type(_manifest(numeric)["model"]) == "numeric"


_ANALYSES = [
    {},
    {"lowercase": False},
    {"strip_accents": "ascii"},
    {"strip_accents": "unicode", "ngram_range": (1, 3)},
    {"stop_words": "english", "ngram_range": (2, 2)},
    {"stop_words": ["the", "café"], "token_pattern": r"\S+"},
    {"token_pattern": r"(?i)([a-z]+)\d*"},
    {"analyzer": "char", "ngram_range": (1, 4)},
    {"analyzer": "char", "ngram_range": (3, 3), "strip_accents": "unicode"},
    {"analyzer": "char_wb", "ngram_range": (1, 5)},
    {"analyzer": "char_wb", "ngram_range": (4, 6), "lowercase": False},
]


@pytest.mark.parametrize("options", _ANALYSES, ids=[str(o) for o in _ANALYSES])
def test_analysis_matches_sklearns_build_analyzer(options: dict[str, Any]) -> None:
    docs = corpus()[0]
    est = HashingVectorizer(**options)  # no vocabulary: every feature is visible
    kernel = build(_manifest(est.fit(docs))["model"], {})
    sk_analyze = est.build_analyzer()
    for doc in docs:
        assert kernel.analyzer(doc) == sk_analyze(doc)  # type: ignore[attr-defined]


def test_bytes_analysis_decodes_like_sklearn() -> None:
    est = HashingVectorizer(encoding="latin-1", analyzer="char")
    kernel = build(_manifest(est.fit(["x"]))["model"], {})
    raw = "Ça coûte 5 €".encode("cp1252")
    assert kernel.analyzer(raw) == est.build_analyzer()(raw)  # type: ignore[attr-defined]
