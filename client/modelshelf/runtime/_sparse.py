"""A light CSR matrix: what text vectorizers produce and the kernels after them consume.

The client's base install needs numpy only, so the runtime carries its own compressed sparse
row triple instead of SciPy's. ``CSRMatrix`` follows SciPy's field names and meaning exactly
(``data``, ``indices``, ``indptr``, ``shape``; column indices sorted within each row, no
duplicates), so converting to ``scipy.sparse.csr_matrix`` is zero-copy. ``publish`` does that
conversion at the Model boundary when SciPy is importable, and only then: nothing here imports
SciPy at ``import modelshelf``.

Kernels that follow a vectorizer compute on the triple directly: ``X @ W`` for a dense ``W`` is
a segment sum of ``data * W[indices]`` in each row's index order, the order SciPy's
``csr_matvecs`` adds in, so scores agree with scikit-learn's to the last bits or nearly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputShapeError, ManifestError

# Densifying more than this many cells at once for a kernel that needs dense input is done in
# row chunks instead (1000 documents x 300k terms would otherwise be 2.4 GB of float64).
DENSE_CHUNK_CELLS = 1 << 22
# Up to this many output columns, ``X @ W`` sums column by column in SciPy's exact order;
# wider products (an MLP's first layer) use one segment reduction, equal within rounding.
_BINCOUNT_COLUMNS = 32
# A single row with at most this many stored values is summed value by value (one numpy add
# each): cheaper than the batch's row bookkeeping for a one-row predict of a one-hot encoding.
_SHORT_ROW = 16


def index_dtype(nnz: int, n_cols: int) -> np.dtype[Any]:
    """int32 indices and offsets unless the matrix outgrows them, as SciPy and scikit-learn
    choose (a csr_matrix made from them keeps them, zero-copy)."""
    limit = np.iinfo(np.int32).max
    return np.dtype(np.int32 if nnz <= limit and n_cols <= limit else np.int64)


class CSRMatrix:
    """Compressed sparse rows: row ``i`` holds ``data[indptr[i]:indptr[i+1]]`` at columns
    ``indices[indptr[i]:indptr[i+1]]`` (sorted, unique). Arrays may be read-only views."""

    __slots__ = ("data", "indices", "indptr", "shape")
    ndim = 2

    def __init__(
        self, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, shape: tuple[int, int]
    ) -> None:
        n_rows, n_cols = int(shape[0]), int(shape[1])
        if indptr.shape != (n_rows + 1,) or data.shape != indices.shape or data.ndim != 1:
            raise InputShapeError(
                f"inconsistent CSR triple: data {data.shape}, indices {indices.shape}, "
                f"indptr {indptr.shape} for shape {(n_rows, n_cols)}"
            )
        if len(data) != (int(indptr[-1]) if n_rows else 0):
            raise InputShapeError(f"CSR indptr ends at {indptr[-1]}, data has {len(data)} values")
        self.data = data
        self.indices = indices
        self.indptr = indptr
        self.shape = (n_rows, n_cols)

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.data.dtype

    @property
    def nnz(self) -> int:
        return len(self.data)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"<modelshelf CSRMatrix {self.shape[0]}x{self.shape[1]} {self.dtype} nnz={self.nnz}>"

    def with_data(self, data: np.ndarray) -> CSRMatrix:
        """The same sparsity structure holding new values (the structure arrays are shared)."""
        return CSRMatrix(data, self.indices, self.indptr, self.shape)

    def row_ids(self) -> np.ndarray:
        """The row of every stored value."""
        if self.shape[0] == 1:
            return np.zeros(len(self.data), dtype=np.intp)
        return np.repeat(np.arange(self.shape[0], dtype=np.intp), np.diff(self.indptr))

    def toarray(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=self.dtype)
        out[self.row_ids(), self.indices] = self.data
        return out

    def tocsr(self) -> CSRMatrix:
        return self

    def rows(self, start: int, stop: int) -> CSRMatrix:
        """Rows ``start:stop`` as views (indptr rebased, a small copy)."""
        lo, hi = int(self.indptr[start]), int(self.indptr[stop])
        return CSRMatrix(
            self.data[lo:hi],
            self.indices[lo:hi],
            self.indptr[start : stop + 1] - lo,
            (stop - start, self.shape[1]),
        )

    def row_sums(self, values: np.ndarray) -> np.ndarray:
        """Per row, the sum of ``values`` (one per stored entry), added one by one in index
        order as SciPy's kernels do; empty rows give 0.

        ``bincount`` accumulates strictly in order, so sums match SciPy's bit for bit; numpy's
        own reductions sum pairwise, which differs in the last bits.
        """
        sums = np.bincount(self.row_ids(), weights=values, minlength=self.shape[0])
        return sums.astype(values.dtype, copy=False)

    def __matmul__(self, other: Any) -> np.ndarray:
        """``self @ W`` for a dense 1-D or 2-D ``W``: a dense result, as SciPy gives."""
        W = np.asarray(other)
        if W.ndim not in (1, 2) or W.shape[0] != self.shape[1]:
            # sparse rows come from a step of the model (callers' scipy matrices are read
            # dense): the image's steps disagree, not the caller's input
            raise ManifestError(
                f"weights take {W.shape[0] if W.ndim else 0} inputs, the model's sparse rows "
                f"give them {self.shape[1]}"
            )
        dtype = np.result_type(self.data.dtype, W.dtype)
        data = self.data.astype(dtype, copy=False)
        if self.shape[0] == 1 and self.nnz <= _SHORT_ROW:
            return self._one_row(data, W, dtype)
        if W.ndim == 1:
            return self.row_sums(data * W[self.indices])
        n, k = self.shape[0], W.shape[1]
        if k > _BINCOUNT_COLUMNS:
            out = np.zeros((n, k), dtype=dtype)
            starts = self.indptr[:-1]
            nonempty = starts < self.indptr[1:]
            if self.nnz:
                # reduceat's segment i runs to the next start given: skipping empty rows'
                # starts keeps every segment exactly one row's entries.
                values = data[:, None] * W[self.indices]
                out[nonempty] = np.add.reduceat(values, starts[nonempty], axis=0)
            return out
        # Column by column: W is typically ``coef.T``, so ``W[indices, j]`` gathers from one
        # contiguous row of coef, and no (nnz, k) temporary is made.
        out = np.empty((n, k), dtype=dtype)
        rows = self.row_ids()
        for j in range(k):
            out[:, j] = np.bincount(rows, weights=data * W[self.indices, j], minlength=n)
        return out

    def _one_row(self, data: np.ndarray, W: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
        """``self @ W`` of one short row (a one-row predict): its products added one by one in
        index order, as SciPy does, without the row bookkeeping of a batch."""
        if W.ndim == 1:
            products, out = data * W[self.indices], np.zeros(1, dtype=dtype)
            acc = out
        else:
            products, out = data[:, None] * W[self.indices], np.zeros((1, W.shape[1]), dtype)
            acc = out[0]
        for value in products:
            acc += value
        return out

    def scale_columns(self, factors: np.ndarray) -> CSRMatrix:
        """``X * factors`` column-wise (``factors`` one per column); a new data array."""
        return self.with_data(self.data * factors[self.indices])

    def normalize_rows(self, norm: str) -> CSRMatrix:
        """Rows scaled to unit l1, l2 or max norm as scikit-learn's ``normalize`` does on CSR
        (l1 and l2 accumulated in float64; rows whose norm is zero left as they are)."""
        data = self.data if self.data.dtype.kind == "f" else self.data.astype(np.float64)
        if norm == "max":
            sums = np.zeros(self.shape[0], dtype=np.float64)
            np.maximum.at(sums, self.row_ids(), np.abs(data))
        else:
            # sklearn squares (or takes |x|) in the data's own precision, sums and divides
            # in float64, then stores back in the data's precision.
            per_entry = np.abs(data) if norm == "l1" else data * data
            sums = self.row_sums(per_entry.astype(np.float64, copy=False))
        if norm == "l2":
            sums = np.sqrt(sums)
        sums[sums == 0.0] = 1.0
        scaled = data.astype(np.float64, copy=False) / np.repeat(sums, np.diff(self.indptr))
        return self.with_data(scaled.astype(data.dtype, copy=False))


def from_dense(X: np.ndarray) -> CSRMatrix:
    """The nonzero cells of a dense 2-D array, as CSR."""
    rows, cols = np.nonzero(X)
    indptr = np.zeros(X.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=X.shape[0]), out=indptr[1:])
    return CSRMatrix(X[rows, cols], cols.astype(np.int32), indptr, X.shape)


def is_sparse(X: Any) -> bool:
    return isinstance(X, CSRMatrix)


def to_dense(X: Any) -> Any:
    """``X`` densified if it is this module's CSR, else ``X`` itself."""
    return X.toarray() if isinstance(X, CSRMatrix) else X


def dense_chunks(X: CSRMatrix) -> list[np.ndarray]:
    """``X`` as dense row blocks of at most ``DENSE_CHUNK_CELLS`` cells (at least one row)."""
    step = max(1, DENSE_CHUNK_CELLS // max(1, X.shape[1]))
    return [X.rows(i, min(i + step, X.shape[0])).toarray() for i in range(0, X.shape[0], step)]


def concat_rows(parts: list[Any]) -> Any:
    """Stack per-chunk results (dense arrays, or this module's CSR) back into one."""
    if not isinstance(parts[0], CSRMatrix):
        return np.concatenate(parts, axis=0)
    offsets = np.cumsum([0] + [p.nnz for p in parts[:-1]])
    indptr = np.concatenate(
        [parts[0].indptr[:1]] + [p.indptr[1:] + o for p, o in zip(parts, offsets, strict=True)]
    )
    return CSRMatrix(
        np.concatenate([p.data for p in parts]),
        np.concatenate([p.indices for p in parts]),
        indptr,
        (sum(p.shape[0] for p in parts), parts[0].shape[1]),
    )


def hstack(parts: list[Any]) -> CSRMatrix:
    """Dense arrays and ``CSRMatrix`` parts side by side as one CSR matrix, as
    ``scipy.sparse.hstack(parts).tocsr()`` builds it: a dense part gives its nonzero cells (NaN
    included, as ``nonzero`` counts it), a sparse one every stored value; each row holds its
    entries part by part, so its column indices stay sorted."""
    n = parts[0].shape[0]
    dtype = np.result_type(*(p.dtype for p in parts))
    rows, cols, values = [], [], []
    offset = 0
    for part in parts:
        if isinstance(part, CSRMatrix):
            r, c, v = part.row_ids(), part.indices, part.data
        else:
            r, c = np.nonzero(part)  # row-major
            v = part[r, c]
        rows.append(r)
        cols.append(c.astype(np.intp) + offset)
        values.append(v.astype(dtype, copy=False))
        offset += part.shape[1]
    data, indices = np.concatenate(values), np.concatenate(cols)
    itype = index_dtype(len(data), offset)
    if n == 1:  # one row (a one-row predict): the parts' entries are already in order
        indptr = np.array([0, len(data)], dtype=itype)
        return CSRMatrix(data, indices.astype(itype), indptr, (1, offset))
    row_ids = np.concatenate(rows)
    order = np.argsort(row_ids, kind="stable")  # by row, parts kept in order
    indptr = np.zeros(n + 1, dtype=itype)
    np.cumsum(np.bincount(row_ids, minlength=n), out=indptr[1:])
    return CSRMatrix(data[order], indices[order].astype(itype), indptr, (n, offset))


def publish(value: Any) -> Any:
    """What a Model method hands its caller: our CSR becomes ``scipy.sparse.csr_matrix``
    (zero-copy) when SciPy is installed, and stays a ``CSRMatrix`` otherwise."""
    if not isinstance(value, CSRMatrix):
        return value
    try:
        from scipy import sparse
    except ImportError:
        return value
    return sparse.csr_matrix((value.data, value.indices, value.indptr), shape=value.shape)
