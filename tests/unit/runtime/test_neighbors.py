"""Nearest neighbours beyond the exactness matrix: refusals, chunked search, outliers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.neighbors import (
    KNeighborsClassifier,
    KNeighborsRegressor,
    LocalOutlierFactor,
    RadiusNeighborsClassifier,
)

import modelshelf
from modelshelf import InputError, UnsupportedModelError
from modelshelf.runtime import neighbors
from tests.cases._case import dataset


@pytest.mark.parametrize(
    ("est", "match"),
    [
        (KNeighborsClassifier(metric=lambda a, b: float(np.abs(a - b).sum())), "metric=<function"),
        (KNeighborsClassifier(metric="mahalanobis", algorithm="brute"), "metric='mahalanobis'"),
        (KNeighborsRegressor(metric_params={"w": np.ones(4)}), "metric_params="),
        (KNeighborsClassifier(weights=lambda d: d), "weights=<function"),
        (LocalOutlierFactor(), "novelty=False"),
    ],
)
def test_refused_options_are_named(est: object, match: str) -> None:
    X, y, _ = dataset("iris")
    if getattr(est, "metric", None) == "mahalanobis":
        est.set_params(metric_params={"VI": np.eye(4)})  # type: ignore[attr-defined]
    est.fit(X, y)  # type: ignore[attr-defined]
    with pytest.raises(UnsupportedModelError, match=match):
        modelshelf.compile(est)


def test_multi_output_too_many_neighbours_and_sparse_fit_are_refused() -> None:
    X, y, _ = dataset("iris")
    with pytest.raises(UnsupportedModelError, match="n_neighbors=200 over 112 training rows"):
        modelshelf.compile(KNeighborsRegressor(200).fit(X, y))
    with pytest.raises(UnsupportedModelError, match="multi-output"):
        modelshelf.compile(KNeighborsClassifier().fit(X, np.c_[y, y]))
    with pytest.raises(UnsupportedModelError, match="sparse matrix"):
        modelshelf.compile(KNeighborsClassifier().fit(sp.csr_matrix(X), y))


def test_search_in_many_chunks_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bounding the distance block to a few rows changes nothing."""
    X, y, X_test = dataset("random_multi")
    est = KNeighborsClassifier(5, weights="distance").fit(X, y)
    model = modelshelf.load(modelshelf.compile(est))
    monkeypatch.setattr(neighbors, "_CHUNK_ELEMENTS", 3 * X.size)
    np.testing.assert_allclose(model.predict_proba(X_test), est.predict_proba(X_test), rtol=1e-9)


def test_radius_outliers_without_a_label_are_an_input_error() -> None:
    X, y, X_test = dataset("iris")
    est = RadiusNeighborsClassifier(0.5).fit(X, y)
    model = modelshelf.load(modelshelf.compile(est))
    far = X_test[:2] + 100.0
    with pytest.raises(InputError, match=r"no training rows within radius 0\.5"):
        model.predict(far)


def test_ties_at_the_kth_distance_keep_the_first_fitted_rows() -> None:
    fit_X = np.array([[1.0], [-1.0], [1.0], [-1.0]])
    train = neighbors.TrainingSet(fit_X, "euclidean", 2.0, np.einsum("ij,ij->i", fit_X, fit_X))
    dist, ind = train.kneighbors(np.zeros((1, 1)), 3)
    assert ind.tolist() == [[0, 1, 2]] and dist.tolist() == [[1.0, 1.0, 1.0]]
