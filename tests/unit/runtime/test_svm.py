"""Kernel SVMs: the options images refuse, and libsvm's probability coupling on its edges."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.svm import SVC, SVR, OneClassSVM

import modelshelf
from modelshelf import UnsupportedModelError
from tests.cases._case import dataset, fit_on


@pytest.mark.parametrize(
    ("est", "match"),
    [
        (SVC(kernel="precomputed"), "kernel='precomputed'"),
        (SVR(kernel=lambda a, b: a @ b.T), "kernel=<function"),
        (OneClassSVM(kernel="precomputed"), "OneClassSVM: kernel="),
    ],
)
def test_precomputed_and_callable_kernels_are_refused(est: object, match: str) -> None:
    X, y, _ = dataset("iris")
    est.fit(X @ X.T if est.kernel == "precomputed" else X, y)  # type: ignore[attr-defined]
    with pytest.raises(UnsupportedModelError, match=match):
        modelshelf.compile(est)


def test_break_ties_with_ovo_is_refused() -> None:
    est, _ = fit_on(SVC(break_ties=True, decision_function_shape="ovo"), "iris")
    with pytest.raises(UnsupportedModelError, match="break_ties=True with decision_function_shape"):
        modelshelf.compile(est)


def test_sparse_fit_is_refused() -> None:
    X, y, _ = dataset("iris")
    est = SVC().fit(sp.csr_matrix(X), y)
    with pytest.raises(UnsupportedModelError, match="sparse matrix"):
        modelshelf.compile(est)


def test_probabilities_match_on_single_rows_and_far_points() -> None:
    """The coupling runs per sample: a batch and its rows one by one give the same numbers,
    and points far outside the data (pairwise probabilities clipped) still match libsvm."""
    est, X = fit_on(SVC(probability=True, random_state=0), "random_multi")
    model = modelshelf.load(modelshelf.compile(est))
    far = np.vstack([X[:3] * 1e3, -X[:3] * 1e3])
    expected = est.predict_proba(far)
    np.testing.assert_allclose(model.predict_proba(far), expected, rtol=1e-9, atol=1e-12)
    for row in range(len(far)):
        np.testing.assert_allclose(
            model.predict_proba(far[row : row + 1]), expected[row : row + 1], rtol=1e-9, atol=1e-12
        )
