"""Exactness cases: LinearDiscriminantAnalysis (solvers svd and eigen; shrinkage, priors,
n_components) and QuadraticDiscriminantAnalysis (reg_param, priors). Ids start with lda, qda.

The "lsqr" solver is in tests/unit/runtime/test_discriminant.py: scikit-learn's transform
exists there but raises, where the Model has no transform at all.
"""

from __future__ import annotations

from sklearn.discriminant_analysis import (
    LinearDiscriminantAnalysis,
    QuadraticDiscriminantAnalysis,
)

from ._case import Case

CASES: list[Case] = [
    Case("lda-svd-iris", lambda: LinearDiscriminantAnalysis(), "iris"),
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
    Case("qda-iris", lambda: QuadraticDiscriminantAnalysis(), "iris"),
    Case("qda-binary", lambda: QuadraticDiscriminantAnalysis(), "random_clf"),
    Case("qda-reg-wine", lambda: QuadraticDiscriminantAnalysis(reg_param=0.1), "wine"),
    Case(
        "qda-priors-strlabels",
        lambda: QuadraticDiscriminantAnalysis(priors=[0.5, 0.25, 0.25]),
        "random_strlabels",
    ),
    Case("qda-multi", lambda: QuadraticDiscriminantAnalysis(reg_param=0.01), "random_multi"),
]
