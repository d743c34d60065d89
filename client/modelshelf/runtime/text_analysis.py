"""Text analysis as scikit-learn's vectorizers do it: decode, preprocess, tokenize, n-grams.

Every step reproduces ``sklearn/feature_extraction/text.py`` with Python's own ``re`` and
``unicodedata``, so the tokens are the very strings scikit-learn counts. The manifest holds the
analysis as data (the token pattern string and its flags, the stop-word list, the n-gram range),
never as code. ``as_documents`` validates a batch of documents for a text model.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from functools import cached_property
from typing import Any

import numpy as np

from ..errors import InputShapeError, InputTypeError, ManifestError
from ._base import Spec

ANALYZERS = ("word", "char", "char_wb")
ACCENTS = ("ascii", "unicode")
DECODE_ERRORS = ("strict", "ignore", "replace")
# Flags a stored token pattern may carry; anything else (re.DEBUG, re.LOCALE) is refused.
# A plain int: ``~`` of a RegexFlag keeps only the other defined flags, so a mask of it would
# let bits no flag defines (2**31, which re.compile cannot take) through.
_PATTERN_FLAGS = int(re.IGNORECASE | re.MULTILINE | re.DOTALL | re.UNICODE | re.VERBOSE | re.ASCII)
_WHITE_SPACES = re.compile(r"\s\s+")
# The longest n-gram an analyzer makes. A document of L tokens (or characters) has about
# L x (max_n - min_n) n-grams of up to max_n each: an image asking for (1, 2**31) would have a
# client build gigabytes of strings per document. scikit-learn models use a few at most.
MAX_NGRAM = 64


def as_documents(X: Any) -> list[str | bytes]:
    """Validate a batch of text documents: a list (tuple, 1-D array, Series) of str or bytes.

    A bare string is refused rather than iterated character by character (scikit-learn's
    classic trap), as is anything that is not a string per document.
    """
    if isinstance(X, str | bytes | bytearray):
        raise InputTypeError(
            f"expected a list of documents, got a single {type(X).__name__}; "
            "wrap one document in a list: [doc]"
        )
    if isinstance(X, np.ndarray) and X.ndim != 1:
        raise InputShapeError(f"expected a 1-D sequence of documents, got shape {X.shape}")
    if hasattr(X, "columns") and not isinstance(X, np.ndarray):
        # Iterating a DataFrame yields its column names, not its rows.
        raise InputTypeError("expected a sequence of documents, got a table; pass one column")
    if isinstance(X, dict | set | frozenset) or not isinstance(X, Iterable):
        # A mapping iterates its keys, a set in no fixed order: neither is a batch.
        raise InputTypeError(f"expected a list of documents (str or bytes), got {type(X).__name__}")
    docs = list(X)
    if not docs:
        raise InputShapeError("expected at least 1 document, got an empty sequence")
    for i, doc in enumerate(docs):
        if not isinstance(doc, str | bytes):
            raise InputTypeError(
                f"expected every document to be str or bytes, document {i} is "
                f"{type(doc).__name__}: {doc!r:.60}"
            )
    return docs


def strip_accents_unicode(s: str) -> str:
    """scikit-learn's ``strip_accents_unicode``: NFKD, then drop combining characters."""
    try:
        s.encode("ASCII", errors="strict")
        return s
    except UnicodeEncodeError:
        normalized = unicodedata.normalize("NFKD", s)
        return "".join([c for c in normalized if not unicodedata.combining(c)])


def strip_accents_ascii(s: str) -> str:
    """scikit-learn's ``strip_accents_ascii``: NFKD, then drop whatever is not ASCII."""
    return unicodedata.normalize("NFKD", s).encode("ASCII", "ignore").decode("ASCII")


class Analyzer:
    """One vectorizer's analysis, built from its manifest parameters; ``__call__`` turns one
    document into its list of features (tokens, word n-grams or character n-grams)."""

    def __init__(
        self,
        *,
        analyzer: str,
        lowercase: bool,
        strip_accents: str | None,
        token_pattern: str | None,
        token_flags: int,
        stop_words: list[str] | None,
        ngram_range: tuple[int, int],
        encoding: str,
        decode_error: str,
    ) -> None:
        self.analyzer = analyzer
        self.lowercase = lowercase
        self.accent: Callable[[str], str] | None = (
            None
            if strip_accents is None
            else strip_accents_ascii
            if strip_accents == "ascii"
            else strip_accents_unicode
        )
        self.token_pattern = token_pattern
        self.token_flags = token_flags
        self._stop_list = stop_words
        self.min_n, self.max_n = ngram_range
        self.encoding = encoding
        self.decode_error = decode_error
        self.ngrams = {"word": self._word, "char": self._char, "char_wb": self._char_wb}[analyzer]

    @classmethod
    def from_spec(cls, spec: Spec) -> Analyzer:
        analyzer = spec.choice("analyzer", ANALYZERS)
        pattern = spec.param("token_pattern", (str, type(None)), None)
        flags = spec.param("token_flags", int, 0)
        spec.check(flags & ~_PATTERN_FLAGS == 0, f"token_flags {flags} has unsupported bits")
        spec.check(analyzer != "word" or pattern is not None, "a word analyzer needs token_pattern")
        stop = spec.param("stop_words", (list, type(None)), None)
        spec.check(
            stop is None or all(isinstance(w, str) for w in stop), "stop_words must list strings"
        )
        ngram = spec.param("ngram_range", list)
        spec.check(
            len(ngram) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) for n in ngram)
            and 1 <= ngram[0] <= ngram[1] <= MAX_NGRAM,
            f"ngram_range must be [min_n, max_n] with 1 <= min_n <= max_n <= {MAX_NGRAM}, "
            f"found {ngram}",
        )
        encoding = spec.param("encoding", str, "utf-8")
        try:
            "".encode(encoding)
        except (LookupError, ValueError) as exc:  # ValueError: a NUL in the name
            raise ManifestError(f"{spec.path}: unknown encoding {encoding!r}") from exc
        return cls(
            analyzer=analyzer,
            lowercase=spec.param("lowercase", bool),
            strip_accents=spec.param("strip_accents", (str, type(None)), None)
            and spec.choice("strip_accents", ACCENTS),
            token_pattern=pattern,
            token_flags=flags,
            stop_words=stop,
            ngram_range=(ngram[0], ngram[1]),
            encoding=encoding,
            decode_error=spec.choice("decode_error", DECODE_ERRORS, "strict"),
        )

    # The regex and the stop set are built on first use: loading an image stays O(arrays).
    @cached_property
    def _findall(self) -> Callable[[str], list[str]]:
        try:
            compiled = re.compile(self.token_pattern or "", self.token_flags)
        except re.error as exc:
            raise ManifestError(f"token_pattern {self.token_pattern!r}: {exc}") from exc
        if compiled.groups > 1:
            raise ManifestError(f"token_pattern {self.token_pattern!r} has more than 1 group")
        return compiled.findall

    @cached_property
    def _stop_words(self) -> frozenset[str] | None:
        return None if self._stop_list is None else frozenset(self._stop_list)

    def decode(self, doc: str | bytes, index: int = 0) -> str:
        if isinstance(doc, bytes):
            try:
                return doc.decode(self.encoding, self.decode_error)
            except UnicodeError as exc:  # some codecs raise the base class, or ignore no error
                where = (
                    f" ({exc.reason} at byte {exc.start})"
                    if isinstance(exc, UnicodeDecodeError)
                    else f" ({exc})"
                )
                raise InputTypeError(
                    f"document {index} is not valid {self.encoding}{where}: decoding with "
                    f"decode_error={self.decode_error!r} fails, as in scikit-learn"
                ) from exc
        return doc

    def preprocess(self, doc: str) -> str:
        if self.lowercase:
            doc = doc.lower()
        if self.accent is not None:
            doc = self.accent(doc)
        return doc

    def __call__(self, doc: str | bytes, index: int = 0) -> list[str]:
        return self.ngrams(self.preprocess(self.decode(doc, index)))

    def _word(self, text: str) -> list[str]:
        tokens = self._findall(text)
        stop = self._stop_words
        if stop is not None:
            tokens = [w for w in tokens if w not in stop]
        min_n, max_n = self.min_n, self.max_n
        if max_n == 1:
            return tokens
        original = tokens
        if min_n == 1:
            tokens = list(original)
            min_n += 1
        else:
            tokens = []
        n_original = len(original)
        append, join = tokens.append, " ".join
        for n in range(min_n, min(max_n + 1, n_original + 1)):
            for i in range(n_original - n + 1):
                append(join(original[i : i + n]))
        return tokens

    def _char(self, text: str) -> list[str]:
        text = _WHITE_SPACES.sub(" ", text)
        text_len = len(text)
        min_n, max_n = self.min_n, self.max_n
        if min_n == 1:
            grams = list(text)
            min_n += 1
        else:
            grams = []
        append = grams.append
        for n in range(min_n, min(max_n + 1, text_len + 1)):
            for i in range(text_len - n + 1):
                append(text[i : i + n])
        return grams

    def _char_wb(self, text: str) -> list[str]:
        text = _WHITE_SPACES.sub(" ", text)
        grams: list[str] = []
        append = grams.append
        for w in text.split():
            w = " " + w + " "
            w_len = len(w)
            for n in range(self.min_n, self.max_n + 1):
                offset = 0
                append(w[offset : offset + n])
                while offset + n < w_len:
                    offset += 1
                    append(w[offset : offset + n])
                if offset == 0:  # a word shorter than n is counted once
                    break
        return grams

    def tokens(
        self, docs: list[str | bytes], *, distinct: bool = True
    ) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Analyse a batch: (features, each feature occurrence's index into them, the number
        of occurrences per document).

        With ``distinct``, features are interned first (distinct, in first-seen order), so
        that a costly later step (a vocabulary search) runs once per distinct feature of the
        batch. Without it every occurrence is its own feature: cheaper when the later step
        costs less than interning (hashing).
        """
        occurrences: list[str] = []
        extend = occurrences.extend
        lengths = np.empty(len(docs), dtype=np.intp)
        for i, doc in enumerate(docs):
            features = self(doc, i)
            lengths[i] = len(features)
            extend(features)
        if not distinct:
            return occurrences, np.arange(len(occurrences)), lengths
        # C-level passes (fromkeys, zip, map) rather than a per-token Python expression.
        seen = list(dict.fromkeys(occurrences))
        index = dict(zip(seen, range(len(seen)), strict=True))
        ids = np.fromiter(
            map(index.__getitem__, occurrences), dtype=np.intp, count=len(occurrences)
        )
        return seen, ids, lengths
