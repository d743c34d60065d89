"""Exactness cases: nearest neighbours (k and radius, classifiers and regressors) and
LocalOutlierFactor(novelty=True); NearestCentroid is with discriminant analysis.

Ids start with knn, knnreg, rnn, rnnreg, lof. Every index scikit-learn can build
(brute, kd_tree, ball_tree) against the runtime's brute force; metrics minkowski p = 1, 2, 3,
euclidean, manhattan, chebyshev, cosine; uniform and distance weights. The digits have
integer features, so test rows equal to training rows meet zero distances exactly.

Distances tied at the k-th neighbour are left out where the choice changes a result:
scikit-learn's brute heap and its trees each keep their own pick among equals, the runtime keeps
the rows fitted first (docs/format.md, "Nearest neighbours").
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import (
    KNeighborsClassifier,
    KNeighborsRegressor,
    LocalOutlierFactor,
    RadiusNeighborsClassifier,
    RadiusNeighborsRegressor,
)

from ._case import Case, dataset

Data = tuple[np.ndarray, np.ndarray | None, np.ndarray]


def _with_duplicates() -> Data:
    """digits, with a third of the test rows copies of training rows (zero distances)."""
    X, y, X_test = dataset("digits")
    return X, y, np.vstack([X_test, X[: len(X_test) // 3]])


def _unlabelled(name: str):  # type: ignore[no-untyped-def]
    def data() -> Data:
        X, _, X_test = dataset(name)
        return X, None, X_test

    return data


CASES: list[Case] = [
    Case(
        "rnn-outlier-unseen",
        lambda: RadiusNeighborsClassifier(20.0, p=1, outlier_label=-1),
        "random_multi",
    ),
    Case("lof-novelty", lambda: LocalOutlierFactor(novelty=True), _unlabelled("random_clf")),
    *(
        Case(f"knn-{algorithm}-iris", lambda a=algorithm: KNeighborsClassifier(algorithm=a), "iris")
        for algorithm in ("brute", "kd_tree", "ball_tree")
    ),
    Case(
        "knn-distance-strlabels",
        lambda: KNeighborsClassifier(7, weights="distance"),
        "random_strlabels",
    ),
    Case(
        "knn-distance-duplicates",
        lambda: KNeighborsClassifier(4, weights="distance"),
        _with_duplicates,
    ),
    Case("knn-manhattan-wine", lambda: KNeighborsClassifier(3, p=1), "wine"),
    Case("knn-minkowski3-multi", lambda: KNeighborsClassifier(6, p=3), "random_multi"),
    Case("knn-chebyshev-binary", lambda: KNeighborsClassifier(metric="chebyshev"), "random_clf"),
    Case(
        "knn-cosine-digits",
        lambda: KNeighborsClassifier(5, metric="cosine", weights="distance"),
        "digits",
    ),
    Case("knn-ties-digits", lambda: KNeighborsClassifier(4, algorithm="brute"), _with_duplicates),
    Case("knnreg-uniform", lambda: KNeighborsRegressor(5), "random_reg"),
    Case(
        "knnreg-distance-kdtree",
        lambda: KNeighborsRegressor(8, weights="distance", algorithm="kd_tree"),
        "diabetes",
    ),
    Case(
        "knnreg-multioutput",
        lambda: KNeighborsRegressor(3, weights="distance", p=1),
        "random_multireg",
    ),
    Case("rnn-iris", lambda: RadiusNeighborsClassifier(1.5), "iris"),
    Case(
        "rnn-distance-balltree",
        lambda: RadiusNeighborsClassifier(2.0, weights="distance", algorithm="ball_tree"),
        "iris",
    ),
    Case(
        "rnn-outlier-frequent",
        lambda: RadiusNeighborsClassifier(8.0, outlier_label="most_frequent"),
        "random_strlabels",
    ),
    Case(
        "rnn-distance-duplicates",
        lambda: RadiusNeighborsClassifier(25.0, weights="distance", outlier_label="most_frequent"),
        _with_duplicates,
    ),
    Case("rnnreg-uniform", lambda: RadiusNeighborsRegressor(8.0), "random_reg"),
    Case(
        "rnnreg-distance-multi",
        lambda: RadiusNeighborsRegressor(6.0, weights="distance", metric="chebyshev"),
        "random_multireg",
    ),
    Case(
        "lof-novelty-manhattan",
        lambda: LocalOutlierFactor(10, p=1, novelty=True, contamination=0.1),
        _unlabelled("wine"),
    ),
    Case(
        "lof-novelty-kdtree",
        lambda: LocalOutlierFactor(5, novelty=True, algorithm="kd_tree"),
        _unlabelled("random_reg"),
    ),
]
