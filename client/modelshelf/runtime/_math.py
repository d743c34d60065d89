"""Numerically careful elementwise functions shared by the kernels (numpy only, no SciPy)."""

from __future__ import annotations

import numpy as np


def expit(x: np.ndarray) -> np.ndarray:
    """The logistic sigmoid 1 / (1 + exp(-x)), without overflow for large |x|."""
    out = np.empty_like(x, dtype=np.float64)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
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
