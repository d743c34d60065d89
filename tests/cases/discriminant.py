"""Exactness cases: LinearDiscriminantAnalysis (solvers svd and eigen; shrinkage, covariance
estimators, priors, n_components), QuadraticDiscriminantAnalysis (solvers svd and eigen;
reg_param, shrinkage, covariance estimators, priors) and NearestCentroid (metrics,
priors, shrink_threshold), which scores classes as QDA does. Ids start with lda, qda, centroid;
each kind comes early, so that tests/adversarial/test_family_specs.py meets it.

The "lsqr" solver is in tests/unit/runtime/test_discriminant.py: scikit-learn's transform
exists there but raises, where the Model has no transform at all.
"""

from __future__ import annotations

from sklearn.covariance import OAS
from sklearn.discriminant_analysis import (
    LinearDiscriminantAnalysis,
    QuadraticDiscriminantAnalysis,
)
from sklearn.neighbors import NearestCentroid

from ._case import Case

CASES: list[Case] = [
    Case("lda-svd-iris", lambda: LinearDiscriminantAnalysis(), "iris"),
    Case("qda-iris", lambda: QuadraticDiscriminantAnalysis(), "iris"),
    Case("centroid-iris", lambda: NearestCentroid(), "iris"),
    Case("lda-svd-binary", lambda: LinearDiscriminantAnalysis(), "breast_cancer"),
    Case("lda-svd-ncomp-digits", lambda: LinearDiscriminantAnalysis(n_components=4), "digits"),
    Case("lda-eigen-wine", lambda: LinearDiscriminantAnalysis(solver="eigen"), "wine"),
    Case(
        "lda-eigen-shrinkage-binary",
        lambda: LinearDiscriminantAnalysis(solver="eigen", shrinkage=0.3),
        "random_clf",
    ),
    Case(
        "lda-svd-priors",
        lambda: LinearDiscriminantAnalysis(priors=[0.2, 0.5, 0.3]),
        "random_strlabels",
    ),
    Case("qda-binary", lambda: QuadraticDiscriminantAnalysis(), "random_clf"),
    Case("qda-reg-wine", lambda: QuadraticDiscriminantAnalysis(reg_param=0.1), "wine"),
    Case(
        "qda-priors-strlabels",
        lambda: QuadraticDiscriminantAnalysis(priors=[0.5, 0.25, 0.25]),
        "random_strlabels",
    ),
    Case("qda-multi", lambda: QuadraticDiscriminantAnalysis(reg_param=0.01), "random_multi"),
    Case(
        "qda-eigen-shrinkage",
        lambda: QuadraticDiscriminantAnalysis(solver="eigen", shrinkage=0.2),
        "random_strlabels",
    ),
    Case(
        "qda-eigen-oas",
        lambda: QuadraticDiscriminantAnalysis(solver="eigen", covariance_estimator=OAS()),
        "wine",
    ),
    Case(
        "lda-eigen-oas",
        lambda: LinearDiscriminantAnalysis(solver="eigen", covariance_estimator=OAS()),
        "random_multi",
    ),
    Case("centroid-manhattan", lambda: NearestCentroid(metric="manhattan"), "random_strlabels"),
    Case("centroid-shrink-binary", lambda: NearestCentroid(shrink_threshold=0.2), "random_clf"),
    Case("centroid-priors-wine", lambda: NearestCentroid(priors="empirical"), "wine"),
    Case("centroid-digits", lambda: NearestCentroid(priors=[0.1] * 10), "digits"),
]
