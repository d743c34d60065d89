"""Arrays kept column-major by the estimator are stored as their row-major transpose under
"<role>.T" (convert/_context.py) and read back as a view in the estimator's order
(runtime/_base.Spec.array); a reader that does not know the suffix refuses the image."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import modelshelf
from modelshelf.errors import ManifestError
from modelshelf.runtime._base import Spec


def test_a_column_major_coef_is_stored_as_its_transpose_and_read_in_its_order() -> None:
    X, y = load_iris(return_X_y=True)
    est = LogisticRegression(max_iter=500).fit(X, y)
    coef = np.asfortranarray(est.coef_)  # column-major whatever scikit-learn's version keeps
    est.coef_ = coef
    model = modelshelf.load(modelshelf.compile(est))
    assert "model/coef.T" in model.tensors and "model/coef" not in model.tensors
    held = model._executor.coef
    assert held.flags.f_contiguous and not held.flags.writeable
    assert np.array_equal(held, coef) and held.strides == coef.strides
    for i in range(len(X)):  # one row at a time: the route numpy takes is scikit-learn's
        assert np.array_equal(model.predict_proba(X[i : i + 1]), est.predict_proba(X[i : i + 1]))
    est.coef_ = np.ascontiguousarray(coef)  # row-major: stored as it is, under "coef"
    assert "model/coef" in modelshelf.load(modelshelf.compile(est)).tensors


def _spec(refs: dict[str, str], arrays: dict[str, np.ndarray]) -> Spec:
    return Spec({"kind": "x", "arrays": refs}, arrays, "model")


def test_a_transposed_role_must_be_2d_and_the_plain_role_wins() -> None:
    stored = np.arange(6.0).reshape(3, 2)
    spec = _spec({"coef.T": "a"}, {"a": stored})
    assert spec.array("coef", ndim=2).shape == (2, 3)
    assert np.shares_memory(spec.array("coef", ndim=2), stored)  # a view, not a copy
    with pytest.raises(ManifestError, match="must be 2-D"):
        _spec({"coef.T": "a"}, {"a": np.arange(3.0)}).array("coef")
    with pytest.raises(ManifestError, match="not stored"):
        _spec({"coef.T": "missing"}, {}).array("coef")
    both = _spec({"coef": "a", "coef.T": "b"}, {"a": stored, "b": stored.T.copy()})
    assert both.array("coef") is stored
    with pytest.raises(ManifestError, match="missing array 'coef'"):
        _spec({}, {}).array("coef")
