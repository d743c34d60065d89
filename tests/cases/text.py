"""Exactness cases: text vectorizers and pipelines from documents to predictions.

The corpus is built here, deterministically: mixed case, accents (composed and decomposed),
ligatures, non-Latin scripts, emoji, punctuation, digits, runs of white space, empty and
blank documents, one very long document, and a NUL character. Labels follow the topic words a
document draws, so the classifiers have something to learn.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import GradientBoostingClassifier, RandomForestRegressor
from sklearn.feature_extraction.text import (
    CountVectorizer,
    HashingVectorizer,
    TfidfTransformer,
    TfidfVectorizer,
)
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
from sklearn.multiclass import OneVsRestClassifier
from sklearn.naive_bayes import BernoulliNB, ComplementNB, MultinomialNB
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, Normalizer, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

from ._case import Case

_TOPICS = [
    "café naïve résumé crème brûlée Ça Très CAFÉ Straße über Öl",
    "python numpy array 2024 3.14 x86_64 C++ e-mail user@example.com",
    "東京 日本語 Ελληνικά кошка İstanbul ﬁnance ½ 🙂 مرحبا",
]
_SHARED = [
    "The",
    "the",
    "THE",
    "and",
    "of",
    "a",
    "to",
    "in",
    "is",
    "it's",
    "don't",
    "co-op",
    "well-known",
    "!!!",
    "...",
    "??",
    "Hello",
    "hello",
    "HeLLo",
    "world",
    "World",
    "42",
    "007",
    "1st",
    "2nd",
]
_EXTRA_DOCS = [
    "",
    "   ",
    "!!! ... ???",
    "a",
    "Cafe\u0301 decomposed e\u0301te\u0301 vs café été",
    "tabs\tand\nnewlines\r\n  and    spaces",
    "nul\x00inside a\x00b token",
    "UPPER lower MiXeD CaSe",
]


@functools.cache
def corpus(n: int = 160, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(documents, topic labels, a real-valued target) for ``n`` generated documents."""
    rng = random.Random(seed)
    topics = [t.split() for t in _TOPICS]
    docs, labels, target = [], [], []
    for i in range(n):
        label = i % 3
        k = rng.randrange(1, 25)
        words = [
            rng.choice(topics[label]) if rng.random() < 0.5 else rng.choice(_SHARED)
            for _ in range(k)
        ]
        if rng.random() < 0.3:
            words.append(rng.choice(topics[(label + 1) % 3]))  # noise
        sep = rng.choice([" ", "  ", ", ", "\t", " - "])
        docs.append(sep.join(words))
        labels.append(label)
        target.append(label * 1.5 + 0.1 * k)
    docs[7] = " ".join(rng.choice(topics[7 % 3] + _SHARED) for _ in range(5000))  # very long
    for j, extra in enumerate(_EXTRA_DOCS):
        docs[20 + 5 * j] = extra
    return docs, np.array(labels), np.array(target)


def _split(y: np.ndarray, docs: list[Any] | None = None) -> tuple[list[Any], np.ndarray, list[Any]]:
    all_docs, _, _ = corpus()
    docs = all_docs if docs is None else docs
    cut = int(len(docs) * 0.75)
    return docs[:cut], y[:cut], docs[cut:] + _EXTRA_DOCS[:3]


def labelled() -> tuple[list[str], np.ndarray, list[str]]:
    return _split(corpus()[1])


def named_labels() -> tuple[list[str], np.ndarray, list[str]]:
    return _split(np.array(["food", "code", "world"])[corpus()[1]])


def regression() -> tuple[list[str], np.ndarray, list[str]]:
    return _split(corpus()[2])


def encoded(encoding: str, errors: str = "strict") -> Callable[[], Any]:
    """The corpus as bytes in ``encoding`` (unencodable characters replaced by '?'), plus
    documents with bytes invalid in UTF-8 when ``errors`` is not strict."""

    def make() -> tuple[list[bytes], np.ndarray, list[bytes]]:
        docs = [d.replace("\x00", "") for d in corpus()[0]]
        raw = [d.encode(encoding, "replace") for d in docs]
        if errors != "strict":
            raw[3] = b"bad \xff\xfe bytes caf\xe9 ok"
            raw[-1] = b"\xc3( broken \x80 sequence"
        return _split(corpus()[1], raw)

    return make


def _text(id: str, make: Callable[[], Any], data: Callable[[], Any] = labelled, **kw: Any) -> Case:
    return Case(f"text-{id}", make, data, **kw)  # type: ignore[arg-type]


CASES: list[Case] = [
    # CountVectorizer: analyzers and options
    _text("count-word", CountVectorizer),
    _text(
        "count-word-options",
        lambda: CountVectorizer(
            lowercase=False,
            strip_accents="unicode",
            ngram_range=(1, 3),
            stop_words="english",
            min_df=2,
            max_df=0.9,
            max_features=150,
            binary=True,
        ),
    ),
    _text("count-word-ngrams-2-3", lambda: CountVectorizer(ngram_range=(2, 3), min_df=0.02)),
    _text("count-char", lambda: CountVectorizer(analyzer="char", ngram_range=(1, 3))),
    _text(
        "count-char-wb",
        lambda: CountVectorizer(analyzer="char_wb", ngram_range=(2, 5), strip_accents="ascii"),
    ),
    _text(
        "count-pattern-stoplist",
        lambda: CountVectorizer(token_pattern=r"(?u)\b\w+\b", stop_words=["the", "and", "a"]),
    ),
    _text("count-pattern-group", lambda: CountVectorizer(token_pattern=r"(\w+)[-']\w+")),
    _text("count-pattern-ascii", lambda: CountVectorizer(token_pattern=r"(?a)[a-z0-9]{2,}")),
    _text("count-nul-chars", lambda: CountVectorizer(analyzer="char", lowercase=False)),
    _text("count-float32", lambda: CountVectorizer(dtype=np.float32)),
    _text("count-max-features", lambda: CountVectorizer(max_features=10, ngram_range=(1, 2))),
    # TfidfVectorizer
    _text("tfidf-word", TfidfVectorizer),
    _text(
        "tfidf-options",
        lambda: TfidfVectorizer(sublinear_tf=True, norm="l1", smooth_idf=False, min_df=2),
    ),
    _text("tfidf-no-idf", lambda: TfidfVectorizer(use_idf=False, norm=None, binary=True)),
    _text(
        "tfidf-char-wb",
        lambda: TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), strip_accents="unicode"),
    ),
    _text("tfidf-float32", lambda: TfidfVectorizer(dtype=np.float32), rtol=1e-6, atol=1e-7),
    # HashingVectorizer
    _text("hashing-word", lambda: HashingVectorizer(n_features=2**10)),
    _text(
        "hashing-char-options",
        lambda: HashingVectorizer(
            analyzer="char", ngram_range=(2, 3), alternate_sign=False, norm="l1", binary=True
        ),
    ),
    _text("hashing-no-norm", lambda: HashingVectorizer(n_features=7, norm=None)),
    _text("hashing-float32", lambda: HashingVectorizer(dtype=np.float32), rtol=1e-6, atol=1e-7),
    # Bytes input: encodings and decode errors
    _text("bytes-latin1", lambda: CountVectorizer(encoding="latin-1"), encoded("latin-1")),
    _text(
        "bytes-replace",
        lambda: CountVectorizer(decode_error="replace", analyzer="char"),
        encoded("utf-8", "replace"),
    ),
    _text(
        "bytes-ignore",
        lambda: TfidfVectorizer(decode_error="ignore"),
        encoded("utf-8", "ignore"),
    ),
    # TfidfTransformer alone takes counts (numeric input)
    _text("tfidf-transformer-counts", TfidfTransformer, "random_counts"),  # type: ignore[arg-type]
    _text(
        "tfidf-transformer-options",
        lambda: TfidfTransformer(norm=None, sublinear_tf=True, smooth_idf=False),
        "random_counts",  # type: ignore[arg-type]
    ),
    # Pipelines from text to predictions
    _text("pipe-tfidf-logreg", lambda: make_pipeline(TfidfVectorizer(), LogisticRegression())),
    _text(
        "pipe-tfidf-logreg-strlabels",
        lambda: make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression(C=10)),
        named_labels,
    ),
    _text("pipe-count-mnb", lambda: make_pipeline(CountVectorizer(), MultinomialNB())),
    _text(
        "pipe-count-tfidf-cnb",
        lambda: make_pipeline(CountVectorizer(), TfidfTransformer(), ComplementNB()),
    ),
    _text(
        "pipe-count-bnb",
        lambda: make_pipeline(CountVectorizer(analyzer="char_wb"), BernoulliNB()),
    ),
    _text("pipe-tfidf-linearsvc", lambda: make_pipeline(TfidfVectorizer(), LinearSVC())),
    _text(
        "pipe-hashing-sgd",
        lambda: make_pipeline(
            HashingVectorizer(n_features=2**12), SGDClassifier(loss="log_loss", random_state=0)
        ),
    ),
    _text("pipe-tfidf-ridge", lambda: make_pipeline(TfidfVectorizer(), Ridge()), regression),
    _text(
        "pipe-tfidf-maxabs-linearsvc",
        lambda: make_pipeline(TfidfVectorizer(), MaxAbsScaler(), LinearSVC()),
    ),
    _text(
        "pipe-tfidf-stdscaler-logreg",
        lambda: make_pipeline(
            TfidfVectorizer(dtype=np.float32), StandardScaler(with_mean=False), LogisticRegression()
        ),
        rtol=1e-6,
        atol=1e-7,
    ),
    _text(
        "pipe-count-normalizer-sgd",
        lambda: make_pipeline(
            CountVectorizer(), Normalizer(norm="max"), SGDClassifier(random_state=0)
        ),
    ),
    _text(
        "pipe-tfidf-ovr-linearsvc",
        lambda: make_pipeline(TfidfVectorizer(), OneVsRestClassifier(LinearSVC())),
    ),
    _text(  # PCA has no sparse kernel: the pipeline densifies the batch for it
        "pipe-tfidf-pca-logreg",
        lambda: make_pipeline(
            TfidfVectorizer(max_features=40),
            PCA(n_components=5, svd_solver="arpack", random_state=0),
            LogisticRegression(),
        ),
    ),
    # Trees have no sparse kernel: the pipeline densifies the batch (in chunks) for them
    _text(
        "pipe-tfidf-tree",
        lambda: make_pipeline(TfidfVectorizer(), DecisionTreeClassifier(random_state=0)),
    ),
    _text(
        "pipe-count-forest-reg",
        lambda: make_pipeline(
            CountVectorizer(analyzer="char_wb", ngram_range=(2, 3)),
            RandomForestRegressor(n_estimators=10, random_state=0),
        ),
        regression,
    ),
    _text(
        "pipe-hashing-gbm",
        lambda: make_pipeline(
            HashingVectorizer(n_features=2**8),
            GradientBoostingClassifier(n_estimators=10, random_state=0),
        ),
    ),
    _text(
        "pipe-tfidf-mlp",
        lambda: make_pipeline(
            TfidfVectorizer(max_features=60),
            MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, random_state=0),
        ),
    ),
]
