"""Text vectorizers to specs (text issue).

A vectorizer's analysis becomes manifest parameters (analyzer, lowercase, accent stripping,
the token pattern string, the stop-word list, the n-gram range, the decoding); its fitted
vocabulary becomes the string-table arrays of ``runtime.text_lookup``. What ``min_df``,
``max_df`` and ``max_features`` did at fit time is already in that vocabulary. Code cannot go
into an image: a callable analyzer, preprocessor, tokenizer or accent stripper is refused.
"""

from __future__ import annotations

import codecs
import re
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import (
    CountVectorizer,
    HashingVectorizer,
    TfidfTransformer,
    TfidfVectorizer,
)

from ..runtime.text import DTYPES, TEXT_KINDS
from ..runtime.text_analysis import MAX_NGRAM
from ..runtime.text_lookup import build_vocabulary
from ._context import Context, converter, unsupported


def input_type(spec: dict[str, Any]) -> str:
    """The manifest ``input.type`` a compiled model takes: "text" when the first component
    that sees the input is a text vectorizer, else "numeric"."""
    while spec.get("kind") == "pipeline":
        steps = spec.get("params", {}).get("steps") or [{}]
        spec = steps[0]
    return "text" if spec.get("kind") in TEXT_KINDS else "numeric"


def _analysis(est: Any) -> dict[str, Any]:
    """Manifest parameters of a vectorizer's analysis; refuses what an image cannot hold."""
    if callable(est.analyzer):
        raise unsupported(
            est,
            "a callable analyzer (images hold no code)",
            "use analyzer='word', 'char' or 'char_wb'",
        )
    if est.analyzer not in ("word", "char", "char_wb"):
        raise unsupported(est, f"analyzer={est.analyzer!r}")
    if est.preprocessor is not None:
        raise unsupported(
            est, "a custom preprocessor (images hold no code)", "preprocess the documents before"
        )
    if est.tokenizer is not None and est.analyzer == "word":
        raise unsupported(
            est, "a custom tokenizer (images hold no code)", "use a token_pattern instead"
        )
    if callable(est.strip_accents):
        raise unsupported(
            est, "a callable strip_accents (images hold no code)", "use 'ascii' or 'unicode'"
        )
    if est.input != "content":
        raise unsupported(est, f"input={est.input!r}", "use input='content' and pass the contents")
    try:
        codecs.lookup(est.encoding)
    except LookupError as exc:
        raise unsupported(est, f"encoding={est.encoding!r}") from exc
    if not 1 <= est.ngram_range[0] <= est.ngram_range[1] <= MAX_NGRAM:
        raise unsupported(
            est, f"ngram_range={est.ngram_range!r}", f"n-grams of 1 to {MAX_NGRAM} are supported"
        )
    params: dict[str, Any] = {
        "analyzer": est.analyzer,
        "lowercase": bool(est.lowercase),
        "strip_accents": est.strip_accents or None,
        "ngram_range": [int(n) for n in est.ngram_range],
        "encoding": est.encoding,
        "decode_error": est.decode_error,
    }
    if est.analyzer == "word":
        pattern = re.compile(est.token_pattern)
        if pattern.groups > 1:
            raise unsupported(
                est, "a token_pattern with more than one group", "use (?:...) for the others"
            )
        params["token_pattern"] = est.token_pattern
        # scikit-learn compiles the pattern with no flags: inline flags travel inside it.
        params["token_flags"] = 0
        stop = est.get_stop_words()
        if stop is not None and not all(isinstance(w, str) for w in stop):
            # scikit-learn compares tokens with them: a non-string never matches one
            stop = [w for w in stop if isinstance(w, str)]
        params["stop_words"] = None if stop is None else sorted(stop)
    return params


def _dtype(est: Any) -> str:
    name = np.dtype(est.dtype).name
    if name not in DTYPES:
        raise unsupported(est, f"dtype={name}")
    return name


def _counts_spec(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    odd = [term for term in est.vocabulary_ if not isinstance(term, str)]
    if odd:  # scikit-learn never matches a token with it; str() of it would match "None"
        raise unsupported(
            est, f"a vocabulary term that is not a string ({odd[0]!r})",
            "give the vocabulary as strings",
        )  # fmt: skip
    vocabulary = {str(term): int(column) for term, column in est.vocabulary_.items()}
    return ctx.spec(
        "count_vectorizer",
        path,
        arrays=build_vocabulary(vocabulary),
        params={**_analysis(est), "binary": bool(est.binary), "dtype": _dtype(est)},
    )


def _tfidf_spec(est: Any, ctx: Context, path: str, n_features: int) -> dict[str, Any]:
    idf = np.asarray(est.idf_) if est.use_idf else None
    return ctx.spec(
        "tfidf_transformer",
        path,
        arrays={"idf": idf},
        params={
            "n_features": n_features,
            "sublinear_tf": bool(est.sublinear_tf),
            "norm": est.norm,
        },
    )


@converter(CountVectorizer)
def _count_vectorizer(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    return _counts_spec(est, ctx, path)


@converter(TfidfVectorizer)
def _tfidf_vectorizer(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    counts = _counts_spec(est, ctx, f"{path}/counts")
    tfidf = _tfidf_spec(est._tfidf, ctx, f"{path}/tfidf", len(est.vocabulary_))
    return ctx.spec("tfidf_vectorizer", path, params={"counts": counts, "tfidf": tfidf})


@converter(TfidfTransformer)
def _tfidf_transformer(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    return _tfidf_spec(est, ctx, path, int(est.n_features_in_))


@converter(HashingVectorizer)
def _hashing_vectorizer(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    kind = np.dtype(est.dtype).kind
    if est.alternate_sign and kind in "bu":
        # scikit-learn casts each signed value before summing a column: +1 and -1 make True
        # (or overflow an unsigned type), not the 0 of their sum
        raise unsupported(
            est, f"dtype={np.dtype(est.dtype).name} with alternate_sign=True",
            "use a float dtype, or alternate_sign=False",
        )  # fmt: skip
    return ctx.spec(
        "hashing_vectorizer",
        path,
        params={
            **_analysis(est),
            "n_features": int(est.n_features),
            "binary": bool(est.binary),
            "alternate_sign": bool(est.alternate_sign),
            "norm": est.norm,
            "dtype": _dtype(est),
        },
    )
