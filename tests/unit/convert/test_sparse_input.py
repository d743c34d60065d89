"""Sparse input (issue 10, point 4): the models scikit-learn takes scipy.sparse for take it too,
with scikit-learn's answers on the same sparse matrix; a batch too large to densify is refused
with the way out."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import BernoulliNB, MultinomialNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeRegressor

import modelshelf
from modelshelf.errors import InputShapeError
from modelshelf.runtime import METHODS


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y = make_classification(n_samples=300, n_features=20, random_state=0)
    X = np.where(np.abs(X) < 0.8, 0.0, np.abs(X))  # mostly zeros, non-negative (naive Bayes)
    return X[:200], y[:200], X[200:]


MODELS = [
    LogisticRegression(max_iter=2000),
    Ridge(),
    MultinomialNB(),
    BernoulliNB(),
    SVC(),
    KNeighborsClassifier(n_neighbors=5, weights="distance"),
    RandomForestClassifier(n_estimators=10, random_state=0),
    DecisionTreeRegressor(random_state=0),
]


@pytest.mark.parametrize("est", MODELS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_input_answers_as_scikit_learn_does(est, fmt: str) -> None:
    X, y, X_test = _data()
    est.fit(X, y)
    model = modelshelf.load(modelshelf.compile(est))
    sparse = sp.csr_matrix(X_test).asformat(fmt)
    compared = 0
    for method in METHODS:
        if not hasattr(est, method):
            continue
        with warnings.catch_warnings():  # log(0) of predict_log_proba, as the matrix allows
            warnings.simplefilter("ignore")
            try:
                expected = np.asarray(getattr(est, method)(sparse.tocsr()))
            except ValueError:  # SVC trained on dense data: libsvm's limit, not the model's
                expected = np.asarray(getattr(est, method)(X_test))
            actual = getattr(model, method)(sparse)
        np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-12)
        compared += 1
    assert compared


def test_a_sparse_batch_too_large_to_densify_is_refused() -> None:
    X, y, _ = _data()
    model = modelshelf.load(
        modelshelf.compile(HistGradientBoostingClassifier(max_iter=5).fit(X, y))
    )
    huge = sp.csr_matrix((1 << 23, 20))  # 168M cells: 1.3 GB dense
    with pytest.raises(InputShapeError, match="smaller batches"):
        model.predict(huge)
