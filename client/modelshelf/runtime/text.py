"""Text vectorizers over position-independent vocabularies (text issue).

``CountVectorizer`` and ``HashingVectorizer`` turn a batch of documents into a sparse
``CSRMatrix`` exactly as scikit-learn does (same columns, values and dtype); ``TfidfTransformer``
weights and normalises counts; ``TfidfVectorizer`` chains the two. The analysis is in
``text_analysis``, the vocabulary table and murmurhash in ``text_lookup``. Loading builds no
per-term structure: the vocabulary stays the image's bytes.

Where the compiled kernels are built (modelshelf/_kernels), a vectorizer takes at load the
compiled counts of its family (text.c): the lookup or hashing of every occurrence and the
per-document sorted counts, then the idf weights and row norms of float data (not sublinear
tf), the numpy path's CSR to the last bit; analysis stays in Python (``re``).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np

from .. import _kernels
from ..errors import FeatureCountError, InputTypeError, ManifestError, NonFiniteInputError
from ._base import Executor, Spec, register
from ._sparse import CSRMatrix, from_dense, index_dtype
from .text_analysis import Analyzer, as_documents
from .text_lookup import Vocabulary, hashed_columns, murmurhash3_32

__all__ = [
    "CountVectorizer",
    "HashingVectorizer",
    "TfidfTransformer",
    "TfidfVectorizer",
    "as_documents",
]

#: Executor kinds that take documents, not numbers (``input.type`` "text" in a manifest).
TEXT_KINDS = frozenset({"count_vectorizer", "tfidf_vectorizer", "hashing_vectorizer"})
# Output dtypes a vectorizer may declare (its scikit-learn ``dtype``).
DTYPES = ("float64", "float32", "int64", "int32", "int16", "int8", "uint8", "bool")
NORMS = ("l1", "l2")


def _dtype(spec: Spec) -> np.dtype[Any]:
    return np.dtype(spec.choice("dtype", DTYPES))


def _norm(spec: Spec) -> str | None:
    """The ``norm`` parameter: absent or null, else one of NORMS (an empty string too is
    checked, not taken for "no norm")."""
    if spec.param("norm", (str, type(None)), None) is None:
        return None
    return str(spec.choice("norm", NORMS))


def _csr(
    rows: np.ndarray, columns: np.ndarray, values: np.ndarray, n_docs: int, n_features: int
) -> CSRMatrix:
    """CSR from entries already sorted by (row, column) with no duplicates."""
    itype = index_dtype(len(values), n_features)
    indptr = np.zeros(n_docs + 1, dtype=itype)
    np.cumsum(np.bincount(rows, minlength=n_docs), out=indptr[1:])
    return CSRMatrix(values, columns.astype(itype), indptr, (n_docs, n_features))


def _csr_from_indptr(
    indptr: np.ndarray, columns: np.ndarray, values: np.ndarray, n_features: int
) -> CSRMatrix:
    """CSR from a compiled kernel's parts, in ``_csr``'s index dtype."""
    itype = index_dtype(len(values), n_features)
    shape = (len(indptr) - 1, n_features)
    return CSRMatrix(values, columns.astype(itype), indptr.astype(itype), shape)


def _count(
    doc_of: np.ndarray, columns: np.ndarray, n_docs: int, n_features: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, columns, occurrences) of every distinct (document, column), sorted."""
    keys = doc_of.astype(np.int64) * n_features + columns
    keys.sort()
    if not len(keys):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    counts = np.diff(np.r_[starts, len(keys)])
    distinct = keys[starts]
    return distinct // n_features, distinct % n_features, counts


class _Vectorizer(Executor):
    methods = frozenset({"transform"})
    #: intern a batch's features before ``columns_of`` (worth it when a lookup is costly).
    distinct_features = True
    #: the compiled counts (modelshelf/_kernels, text.c) taken at load, or None: numpy.
    kernel: _kernels.TextCounts | None = None

    def __init__(self, analyzer: Analyzer, n_features: int, binary: bool, dtype: Any) -> None:
        self.analyzer = analyzer
        self.n_features = n_features
        self.binary = binary
        self.dtype = np.dtype(dtype)

    @abstractmethod
    def columns_of(self, features: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """(column, value) of every feature, column -1 dropping it; values None: all 1."""

    def compiled_counts(
        self, docs: list[str | bytes], norm: str | None = None, idf: np.ndarray | None = None
    ) -> CSRMatrix:
        """``counts`` through the compiled kernel: every occurrence looked up or hashed in C;
        then, for float data, the idf weights and the row ``norm`` in C too (``weigh``),
        else with numpy (``TfidfTransformer``, ``normalize_rows``), by the caller."""
        assert self.kernel is not None
        features, _, lengths = self.analyzer.tokens(docs, distinct=False)
        indptr, columns, values, nnz = self.kernel(features, lengths)
        columns = columns[:nnz]
        data = values[:nnz].astype(self.dtype)  # a new array: weighed in place
        if self.binary:
            data = np.ones_like(data)
        if norm is not None or idf is not None:
            assert _kernels.weighs(data.dtype, idf)
            _kernels.weigh(data, columns, indptr, idf, norm)
        return _csr_from_indptr(indptr, columns, data, self.n_features)

    def counts(self, docs: Any) -> CSRMatrix:
        docs = as_documents(docs)
        if self.kernel is not None:
            return self.compiled_counts(docs)
        features, ids, lengths = self.analyzer.tokens(docs, distinct=self.distinct_features)
        columns, values = self.columns_of(features)
        doc_of = np.repeat(np.arange(len(docs), dtype=np.int64), lengths)
        token_columns = columns[ids]
        kept = token_columns >= 0
        if not kept.all():
            doc_of, ids, token_columns = doc_of[kept], ids[kept], token_columns[kept]
        if values is None:  # every occurrence counts 1
            rows, cols, counts = _count(doc_of, token_columns, len(docs), self.n_features)
            data = counts.astype(self.dtype)
        else:  # signed hashing: occurrences add +1 or -1
            keys = doc_of * self.n_features + token_columns
            distinct, inverse = np.unique(keys, return_inverse=True)
            # A sum of zero stays stored, as SciPy's sum_duplicates keeps it: binary=True
            # then makes it 1.
            sums = np.bincount(inverse, weights=values[ids], minlength=len(distinct))
            rows, cols = distinct // self.n_features, distinct % self.n_features
            data = sums.astype(self.dtype)
        if self.binary:
            data = np.ones_like(data)
        return _csr(rows, cols, data, len(docs), self.n_features)


@register
class CountVectorizer(_Vectorizer):
    """Term counts over a fitted vocabulary (``min_df``, ``max_df``, ``max_features`` and
    stop words already applied at fit time: they shaped the stored vocabulary)."""

    kind = "count_vectorizer"

    def __init__(
        self, analyzer: Analyzer, vocabulary: Vocabulary, binary: bool, dtype: Any
    ) -> None:
        super().__init__(analyzer, len(vocabulary), binary, dtype)
        self.vocabulary = vocabulary
        self.kernel = _kernels.vocabulary(vocabulary.blob, vocabulary.runs, vocabulary.columns)

    @classmethod
    def from_spec(cls, spec: Spec) -> CountVectorizer:
        vocabulary = Vocabulary.from_spec(spec)
        spec.check(len(vocabulary) > 0, "the vocabulary is empty")
        return cls(Analyzer.from_spec(spec), vocabulary, spec.param("binary", bool), _dtype(spec))

    def columns_of(self, features: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        return self.vocabulary.lookup(features), None

    def compiled_counts(
        self, docs: list[str | bytes], norm: str | None = None, idf: np.ndarray | None = None
    ) -> CSRMatrix:
        try:
            return super().compiled_counts(docs, norm, idf)
        except IndexError as exc:  # a column outside the vocabulary, as the numpy path says
            raise ManifestError(
                f"vocabulary columns must lie in [0, {len(self.vocabulary)}): {exc}"
            ) from exc

    def transform(self, X: Any) -> CSRMatrix:
        return self.counts(X)


@register
class HashingVectorizer(_Vectorizer):
    """Signed murmurhash3 feature hashing, as ``FeatureHasher`` inside scikit-learn's
    ``HashingVectorizer``; then ``binary`` and the row ``norm``."""

    kind = "hashing_vectorizer"
    distinct_features = False  # murmurhash per occurrence is cheaper than interning

    def __init__(
        self,
        analyzer: Analyzer,
        n_features: int,
        binary: bool,
        dtype: Any,
        alternate_sign: bool,
        norm: str | None,
    ) -> None:
        super().__init__(analyzer, n_features, binary, dtype)
        self.alternate_sign = alternate_sign
        self.norm = norm
        self.kernel = _kernels.hashing(n_features, alternate_sign)

    @classmethod
    def from_spec(cls, spec: Spec) -> HashingVectorizer:
        n_features = spec.param("n_features", int)
        spec.check(1 <= n_features <= np.iinfo(np.int32).max, f"bad n_features {n_features}")
        norm = _norm(spec)
        return cls(
            Analyzer.from_spec(spec),
            n_features,
            spec.param("binary", bool),
            _dtype(spec),
            spec.param("alternate_sign", bool),
            norm,
        )

    def compiled_counts(
        self, docs: list[str | bytes], norm: str | None = None, idf: np.ndarray | None = None
    ) -> CSRMatrix:
        try:
            return super().compiled_counts(docs, norm, idf)
        except UnicodeEncodeError as exc:  # strict UTF-8, as the numpy path and scikit-learn
            raise InputTypeError(f"a token cannot be encoded as UTF-8 for hashing: {exc}") from exc

    def columns_of(self, features: list[str]) -> tuple[np.ndarray, np.ndarray]:
        try:
            keys = list(map(str.encode, features))  # strict UTF-8, in C
        except UnicodeEncodeError as exc:
            # scikit-learn's hasher encodes strictly too, and fails the same way.
            raise InputTypeError(f"a token cannot be encoded as UTF-8 for hashing: {exc}") from exc
        hashes = murmurhash3_32(keys)
        columns = hashed_columns(hashes, self.n_features)
        if not self.alternate_sign:
            return columns, np.ones(len(hashes))
        return columns, np.where(hashes >= 0, 1.0, -1.0)

    def transform(self, X: Any) -> CSRMatrix:
        if self.kernel is not None and self.norm is not None and _kernels.weighs(self.dtype):
            return self.compiled_counts(as_documents(X), norm=self.norm)
        out = self.counts(X)
        return out if self.norm is None else out.normalize_rows(self.norm)


@register
class TfidfTransformer(Executor):
    """``tf * idf`` then the row norm, on CSR counts (or a dense count matrix)."""

    kind = "tfidf_transformer"
    keeps_float32 = True
    widens_float16 = True  # scikit-learn reads float16 as float64 here
    methods = frozenset({"transform"})
    accepts_sparse = True

    def __init__(
        self, idf: np.ndarray | None, n_features: int, sublinear_tf: bool, norm: str | None
    ):
        self.idf = idf
        self.n_features = n_features
        self.sublinear_tf = sublinear_tf
        self.norm = norm

    @classmethod
    def from_spec(cls, spec: Spec) -> TfidfTransformer:
        idf = spec.array("idf", ndim=1, optional=True)
        n_features = spec.count("n_features")
        spec.check(idf is None or len(idf) == n_features, "idf needs one value per feature")
        norm = _norm(spec)
        return cls(idf, n_features, spec.param("sublinear_tf", bool), norm)

    def transform(self, X: Any) -> CSRMatrix:
        csr = X if isinstance(X, CSRMatrix) else from_dense(np.asarray(X))
        if csr.shape[1] != self.n_features:
            raise FeatureCountError(
                f"expected {self.n_features} features per sample, got {csr.shape[1]}"
            )
        data = csr.data
        if data.dtype not in (np.float64, np.float32):
            data = data.astype(np.float64)
        else:
            data = data.copy()  # the input may be the caller's, or read-only
        if self.sublinear_tf:
            if (data < 0).any():  # log of a negative value: NaN where scikit-learn refuses it
                raise NonFiniteInputError(
                    "this tf-idf transform takes the log of each count (sublinear_tf) and a "
                    "count is negative (a hashing vectorizer's alternate signs, or the "
                    "caller's input): the result would be NaN, which scikit-learn refuses too"
                )
            with np.errstate(divide="ignore"):
                np.log(data, out=data)
            data += 1.0
        if self.idf is not None:
            # In float64, then rounded to the data's dtype: what numpy's in-place *= does.
            data = (data * self.idf[csr.indices]).astype(data.dtype, copy=False)
        out = csr.with_data(data)
        return out if self.norm is None else out.normalize_rows(self.norm)


@register
class TfidfVectorizer(Executor):
    """A ``count_vectorizer`` child followed by a ``tfidf_transformer`` child."""

    kind = "tfidf_vectorizer"
    methods = frozenset({"transform"})

    def __init__(self, counts: CountVectorizer, tfidf: TfidfTransformer) -> None:
        self.counts = counts
        self.tfidf = tfidf

    @classmethod
    def from_spec(cls, spec: Spec) -> TfidfVectorizer:
        counts, tfidf = spec.child("counts"), spec.child("tfidf")
        if not isinstance(counts, CountVectorizer) or not isinstance(tfidf, TfidfTransformer):
            raise ManifestError(f"{spec.path}: needs a count_vectorizer and a tfidf_transformer")
        spec.check(tfidf.n_features == counts.n_features, "counts and tfidf differ in width")
        return cls(counts, tfidf)

    def transform(self, X: Any) -> CSRMatrix:
        counts, tfidf = self.counts, self.tfidf
        if (
            counts.kernel is not None
            and not tfidf.sublinear_tf  # np.log stays in numpy: C's log may round otherwise
            and _kernels.weighs(counts.dtype, tfidf.idf)
        ):
            return counts.compiled_counts(as_documents(X), tfidf.norm, tfidf.idf)
        return tfidf.transform(counts.transform(X))
