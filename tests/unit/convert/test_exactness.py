"""The exactness matrix: every supported estimator and option against scikit-learn itself.

Labels must be identical; probabilities, decision values, regression outputs and transforms
must agree within each case's tolerance (1e-9 relative, 1e-6 where the model is float32).
Methods the estimator lacks must be absent from the Model too. Inputs may be numeric arrays or
lists of documents (text cases); sparse results are compared densified, after their dtypes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import modelshelf
from modelshelf.runtime import METHODS
from tests.cases import CASES, Case


def _sk_has(est: object, method: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hasattr(est, method)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_matches_scikit_learn(case: Case) -> None:
    est, X = case.fit()
    model = modelshelf.load(modelshelf.compile(est), verify=True)
    compared = 0
    for method in METHODS:
        if not _sk_has(est, method):
            assert not hasattr(model, method), f"Model has {method}() but the estimator does not"
            continue
        assert hasattr(model, method), f"estimator has {method}() but the Model does not"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = getattr(est, method)(X)
        actual = getattr(model, method)(X)
        if isinstance(expected, list):  # multi-output predict_proba: one array per output
            assert isinstance(actual, list) and len(actual) == len(expected), method
            for a, e in zip(actual, expected, strict=True):
                np.testing.assert_allclose(a, e, rtol=case.rtol, atol=case.atol)
            compared += 1
            continue
        if hasattr(actual, "toarray"):  # sparse output (text vectorizers): same dtype, densified
            assert hasattr(expected, "toarray"), f"{method}: sparse result where sklearn is dense"
            assert actual.dtype == expected.dtype, (method, actual.dtype, expected.dtype)
            actual = actual.toarray()
        if hasattr(expected, "toarray"):
            expected = expected.toarray()
        expected = np.asarray(expected)
        assert actual.shape == expected.shape, method
        if method == "predict" and (
            expected.dtype.kind not in "f" or getattr(est, "_estimator_type", "") == "classifier"
        ):
            assert np.array_equal(actual, expected), f"{method}: labels differ"
            assert actual.dtype.kind == expected.dtype.kind, (actual.dtype, expected.dtype)
        else:
            np.testing.assert_allclose(actual, expected, rtol=case.rtol, atol=case.atol)
        compared += 1
    assert compared > 0
    # TargetEncoder's classes_ is None for a continuous target, CatBoostRegressor's is empty
    if getattr(est, "classes_", None) is not None and len(est.classes_):
        assert np.array_equal(model.classes_, est.classes_)
    if hasattr(est, "n_features_in_"):
        assert model.n_features_in_ == est.n_features_in_
