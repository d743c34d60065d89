"""Discriminant analysis beyond the exactness matrix: LDA's "lsqr" solver, which scikit-learn
gives a transform that always raises; the Model has none."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

import modelshelf
from tests.cases._case import fit_on


@pytest.mark.parametrize(
    ("est", "data"),
    [
        (LinearDiscriminantAnalysis(solver="lsqr"), "random_multi"),
        (LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"), "random_strlabels"),
        (LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.2), "breast_cancer"),
    ],
)
def test_lsqr_solver(est: LinearDiscriminantAnalysis, data: str) -> None:
    est, X = fit_on(est, data)
    model = modelshelf.load(modelshelf.compile(est))
    assert np.array_equal(model.predict(X), est.predict(X))
    for method in ("predict_proba", "predict_log_proba", "decision_function"):
        expected = getattr(est, method)(X)
        np.testing.assert_allclose(getattr(model, method)(X), expected, rtol=1e-9, atol=1e-12)
    assert not hasattr(model, "transform")
