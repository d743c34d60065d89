"""Numerically careful elementwise functions and the dense product shared by the kernels
(numpy only, no SciPy)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _kernels
from ..errors import ManifestError

# A dense product ``X @ W`` (m x k times k x n) runs on the calling thread in numpy's OpenBLAS
# only while m * k * n <= 65536 * 4 (interface/gemm.c: SMP_THRESHOLD_MIN x
# GEMM_MULTITHREAD_THRESHOLD). Above that OpenBLAS hands part of the work to its worker threads
# and waits for them: on a busy node a worker waits for a core, and a 40 us product of 1000 rows
# by a 64 x 10 LogisticRegression took 8 ms (issue 9, point 24; bench/busy.py). The layout of W
# does not matter (X @ coef.T and X @ coef.T.copy() stall alike); the size of each call does.
#: cells (m * k * n) of one product that OpenBLAS keeps on the calling thread.
SINGLE_THREAD_CELLS = 65536 * 4
#: Row blocks are a whole number of this many rows, and at least one such: fewer rows per call
#: cost more in repeated packing of W than a stall would save, so products of many rows whose
#: k * n exceeds SINGLE_THREAD_CELLS / MIN_BLOCK_ROWS (5461 weights) are left whole, to BLAS's
#: own threading. Whole multiples keep the bits of one call: BLAS's kernels compute rows in
#: tiles (of 2, 4, 8, 12, 16 or 24 rows on the CPUs numpy's OpenBLAS targets) and the rows of a
#: partial tile by another code path, so a block starting at row 131 put one row per block
#: through it and changed its last bit (a probe: 15 of 5,000 MLP predictions; blocks of 48
#: rows start where one call's tiles do). A single row left at the end goes with the block
#: before it: alone it would be a vector product (gemv), another sum.
MIN_BLOCK_ROWS = 48


def row_block(rows: int, k: int, n: int) -> int:
    """The rows of each of ``matmul``'s row blocks for ``rows`` x ``k`` times ``k`` x ``n``,
    or 0 where the product is one call (small enough, or too few rows per block)."""
    cells = SINGLE_THREAD_CELLS // max(k * n, 1)
    if rows <= cells:
        return 0
    return cells // MIN_BLOCK_ROWS * MIN_BLOCK_ROWS


def block_stop(start: int, block: int, rows: int) -> int:
    """Where the row block starting at ``start`` ends (a single row left goes with it)."""
    stop = min(start + block, rows)
    return rows if rows - stop == 1 else stop


def matmul(X: Any, W: np.ndarray) -> Any:
    """``X @ W`` for a dense 2-D ``X`` and a 1-D or 2-D ``W``, in blocks small enough that BLAS
    computes each on the calling thread: blocks of rows (``row_block``), the bits of one call
    on one BLAS thread; for a single row (a one-row predict), blocks of W's columns. (One call
    on several BLAS threads splits the rows among them where it likes: its last bits depend on
    the thread count, scikit-learn's as much as anyone's.)

    Anything else (a ``CSRMatrix``, a 1-D ``X``) is ``X @ W`` unchanged.
    """
    if not isinstance(X, np.ndarray) or X.ndim != 2:
        return X @ W
    rows, k = X.shape
    if k != W.shape[0]:  # X was checked against the manifest: the image's weights disagree
        raise ManifestError(f"weights take {W.shape[0]} inputs, the model gives them {k}")
    n = W.shape[1] if W.ndim == 2 else 1
    if rows * k * n <= SINGLE_THREAD_CELLS:
        return X @ W
    block = row_block(rows, k, n)
    if block:
        out = np.empty((rows, *W.shape[1:]), dtype=np.result_type(X, W))
        start = 0
        while start < rows:
            stop = block_stop(start, block, rows)
            np.matmul(X[start:stop], W, out=out[start:stop])
            start = stop
        return out
    width = SINGLE_THREAD_CELLS // max(k, 1) // MIN_BLOCK_ROWS * MIN_BLOCK_ROWS
    dtype = np.result_type(X, W)
    if rows == 1 and W.ndim == 2 and width >= 1 and dtype == np.float64:
        # A vector-matrix product streams W once whatever the split: column blocks cost nothing
        # (with more rows, narrow column panels would make BLAS far slower than a stall).
        # Whole 48s of columns too, a single one left going with the block before (row_block).
        # Not in float32: OpenBLAS's sgemv over a C-ordered W sums some columns in another
        # order when it gets fewer of them (found on 1 in 2 random shapes, any panel width).
        out = np.empty((1, n), dtype=dtype)
        start = 0
        while start < n:
            stop = block_stop(start, width, n)
            np.matmul(X, W[:, start:stop], out=out[:, start:stop])
            start = stop
        return out
    return X @ W


#: the largest x whose exp is finite: C's exp gives inf above it, Python's math.exp raises
EXP_MAX = 709.782712893384


def exp_libm(x: np.ndarray) -> np.ndarray:
    """C's ``exp`` (libm) of every value, in a new float64 array of x's shape.

    scipy's ``expit``, libsvm, LightGBM and CatBoost call the C library's exp; numpy's own
    (SIMD where the CPU has AVX-512) differs from it in the last bit on a few percent of
    values, so their probabilities are reproduced with libm's. ``math.exp`` is libm's; one
    Python call per value (about 50 ns): the compiled kernels call it from C.
    """
    values = np.asarray(x, dtype=np.float64)
    flat = values.ravel()
    big = flat > EXP_MAX  # NaN is not: math.exp(nan) is nan
    fed = np.where(big, 0.0, flat).tolist()
    out = np.fromiter(map(math.exp, fed), dtype=np.float64, count=len(fed))
    out[big] = np.inf
    return out.reshape(values.shape)


def _c_expf() -> Any:
    """The C library's ``expf`` through ctypes (the interpreter has libm loaded), or None."""
    try:
        import ctypes
        import ctypes.util
    except ImportError:
        return None
    # the process's own symbols first (the interpreter links libm); find_library, which may
    # run ldconfig, only where they lack it
    for find in (False, True):
        try:
            library = ctypes.CDLL(ctypes.util.find_library("m") if find else None)
            fn = library.expf
        except (OSError, AttributeError, TypeError):
            continue
        fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float]
        return fn
    return None


_EXPF: Any = None  # found at the first float32 link: most processes never need it
_EXPF_LOOKED = False


def expf_libm(x: np.ndarray) -> np.ndarray:
    """The C library's ``expf`` of every value, in a new float32 array of x's shape.

    XGBoost's float32 links call it; glibc's is not correctly rounded (it differs from
    ``float32(exp(float64(x)))`` on about 6 values in 10,000), and numpy's float32 exp is
    neither. Through ctypes, one call per value (about 0.3 us): the compiled kernels call it
    from C. Where ctypes cannot find it, the correctly rounded value stands in (it differs
    from the C library's only on such values).
    """
    global _EXPF, _EXPF_LOOKED
    if not _EXPF_LOOKED:
        _EXPF, _EXPF_LOOKED = _c_expf(), True
    values = np.asarray(x, dtype=np.float32)
    if _EXPF is None:
        with np.errstate(over="ignore"):
            return np.exp(values.astype(np.float64)).astype(np.float32)
    flat = values.ravel().tolist()
    return np.fromiter(map(_EXPF, flat), dtype=np.float32, count=len(flat)).reshape(values.shape)


def expit(x: np.ndarray) -> np.ndarray:
    """``scipy.special.expit``: ``1 / (1 + exp(-x))`` with libm's exp, in a new float64 array
    (0 below x = -709.78, where exp(-x) overflows, as in SciPy)."""
    out = exp_libm(-np.asarray(x, dtype=np.float64))
    out += 1.0
    return np.divide(1.0, out, out=out)


def expit_keeping(x: np.ndarray) -> np.ndarray:
    """``scipy.special.expit`` in x's own precision, as scikit-learn calls it on scores that kept
    float32: float32 as ``1 / (1 + expf(-x))`` with the C library's expf (SciPy's float loop),
    anything else as ``expit``. A new array."""
    if getattr(x, "dtype", None) != np.float32:
        return expit(x)
    values = np.ascontiguousarray(x)
    link = _kernels.sigmoid()
    if link is not None:  # link.c: the same expression, in C
        pair = np.empty((values.size, 2), dtype=np.float32)
        link(values.reshape(-1, 1), pair)
        # C-ordered, as SciPy's: BLAS may sum a strided operand of the next layer otherwise
        return np.ascontiguousarray(pair[:, 1]).reshape(values.shape)
    out = expf_libm(-values)
    out += np.float32(1)
    return np.divide(np.float32(1), out, out=out)


def softmax_libm(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax as LightGBM computes it (``Common::Softmax``): ``exp(x - max)`` with
    libm's exp, summed left to right, each divided by the sum."""
    out = exp_libm(x - x.max(axis=1, keepdims=True))
    total = out[:, 0].copy()
    for j in range(1, out.shape[1]):
        total += out[:, j]
    out /= total[:, None]
    return out


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax, as scikit-learn's ``utils.extmath.softmax`` computes it."""
    out = x - x.max(axis=1, keepdims=True)
    np.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)
    return out


def logsumexp(x: np.ndarray) -> np.ndarray:
    """Row-wise log(sum(exp(x))), as ``scipy.special.logsumexp(x, axis=1)``."""
    peak = x.max(axis=1, keepdims=True)
    peak[~np.isfinite(peak)] = 0
    with np.errstate(divide="ignore"):
        return np.log(np.exp(x - peak).sum(axis=1)) + peak[:, 0]


def log_normalize(jll: np.ndarray) -> np.ndarray:
    """``jll - logsumexp(jll, axis=1)`` as scikit-learn's naive Bayes computes it
    (``sklearn.utils._array_api._logsumexp``: ties of the row maximum counted, ``log1p``)."""
    peak = jll.max(axis=1, keepdims=True)
    at_peak = jll == peak
    rest = jll.copy()
    rest[at_peak] = -np.inf
    ties = at_peak.sum(axis=1, keepdims=True, dtype=np.float64)
    shift = np.where(np.isfinite(peak), peak, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.exp(rest - shift).sum(axis=1, keepdims=True, dtype=np.float64)
        total = np.where(total == 0, total, total / ties)
        lse = np.log1p(total) + np.log(ties) + peak
        return jll - lse
