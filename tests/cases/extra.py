"""Exactness cases: GenericUnivariateSelect, TheilSen, RANSAC, SGDOneClassSVM, self-training,
IncrementalPCA, random projections, kernel approximations and FunctionTransformer."""

from __future__ import annotations

from sklearn.decomposition import IncrementalPCA
from sklearn.feature_selection import GenericUnivariateSelect, f_regression
from sklearn.kernel_approximation import AdditiveChi2Sampler, RBFSampler, SkewedChi2Sampler
from sklearn.linear_model import (
    LinearRegression,
    LogisticRegression,
    RANSACRegressor,
    Ridge,
    SGDOneClassSVM,
    TheilSenRegressor,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, StandardScaler
from sklearn.random_projection import GaussianRandomProjection, SparseRandomProjection
from sklearn.semi_supervised import SelfTrainingClassifier
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from ._case import Case

CASES: list[Case] = [
    # First the new kinds of this module: the adversarial corpus takes each family's first.
    Case(
        "extra-chi2-rbf-one-class",
        lambda: make_pipeline(
            FunctionTransformer(),
            AdditiveChi2Sampler(),
            RBFSampler(gamma=0.05, n_components=30, random_state=0),
            SGDOneClassSVM(nu=0.2, random_state=0),
        ),
        "random_counts",
    ),
    Case("extra-sgd-one-class", lambda: SGDOneClassSVM(nu=0.2, random_state=0), "random_reg"),
    Case(
        "extra-rbf-sampler-logreg",
        lambda: make_pipeline(
            StandardScaler(),
            RBFSampler(gamma=0.1, n_components=30, random_state=0),
            LogisticRegression(),
        ),
        "wine",
    ),
    Case("extra-additive-chi2", lambda: AdditiveChi2Sampler(), "random_counts"),
    Case("extra-function-identity", lambda: FunctionTransformer(), "iris"),
    # GenericUnivariateSelect: every mode is the selectors' feature_selection kind.
    Case("extra-generic-kbest", lambda: GenericUnivariateSelect(mode="k_best", param=4), "wine"),
    Case(
        "extra-generic-percentile",
        lambda: GenericUnivariateSelect(f_regression, mode="percentile", param=30),
        "diabetes",
    ),
    Case("extra-generic-fpr", lambda: GenericUnivariateSelect(mode="fpr", param=0.01), "wine"),
    Case("extra-generic-fdr", lambda: GenericUnivariateSelect(mode="fdr", param=0.05), "wine"),
    Case("extra-generic-fwe", lambda: GenericUnivariateSelect(mode="fwe", param=0.05), "wine"),
    # Robust regressors: TheilSen's coef_ is linear; RANSAC predicts through estimator_.
    Case("extra-theil-sen", lambda: TheilSenRegressor(random_state=0), "diabetes"),
    Case(
        "extra-theil-sen-no-intercept",
        lambda: TheilSenRegressor(fit_intercept=False, random_state=0),
        "random_reg",
    ),
    Case("extra-ransac", lambda: RANSACRegressor(random_state=0), "diabetes"),
    Case(
        "extra-ransac-ridge",
        lambda: RANSACRegressor(Ridge(), min_samples=20, random_state=0),
        "random_reg",
    ),
    Case(
        "extra-sgd-one-class-no-intercept",
        lambda: SGDOneClassSVM(nu=0.1, fit_intercept=False, random_state=0),
        "iris",
    ),
    # Self-training predicts through its final estimator_.
    Case(
        "extra-self-training-svc",
        lambda: SelfTrainingClassifier(SVC(probability=True, random_state=0)),
        "random_semi",
    ),
    Case(
        "extra-self-training-tree",
        lambda: SelfTrainingClassifier(DecisionTreeClassifier(max_depth=4), criterion="k_best"),
        "random_semi",
    ),
    Case(
        "extra-self-training-logreg",
        lambda: SelfTrainingClassifier(LogisticRegression(), threshold=0.9),
        "random_semi",
    ),
    # IncrementalPCA and the random projections are the pca kind.
    Case("extra-ipca", lambda: IncrementalPCA(n_components=5, batch_size=50), "wine"),
    Case("extra-ipca-whiten", lambda: IncrementalPCA(n_components=3, whiten=True), "iris"),
    Case(
        "extra-gaussian-projection",
        lambda: GaussianRandomProjection(n_components=6, random_state=0),
        "random_reg",
    ),
    Case(
        "extra-sparse-projection",
        lambda: SparseRandomProjection(n_components=6, random_state=0),
        "random_reg",
    ),
    Case(
        "extra-sparse-projection-dense",
        lambda: make_pipeline(
            SparseRandomProjection(n_components=20, density=0.5, dense_output=True, random_state=1),
            LinearRegression(),
        ),
        "digits",
    ),
    # Kernel approximations.
    Case(
        "extra-rbf-sampler", lambda: RBFSampler(gamma=0.05, n_components=40, random_state=0), "iris"
    ),
    Case(
        "extra-skewed-chi2",
        lambda: make_pipeline(
            MinMaxScaler(), SkewedChi2Sampler(skewedness=0.5, n_components=25, random_state=0)
        ),
        "wine",
    ),
    Case("extra-additive-chi2-1", lambda: AdditiveChi2Sampler(sample_steps=1), "random_counts"),
    Case("extra-additive-chi2-3", lambda: AdditiveChi2Sampler(sample_steps=3), "random_counts"),
    Case(
        "extra-additive-chi2-interval",
        lambda: AdditiveChi2Sampler(sample_steps=5, sample_interval=0.3),
        "random_binary",
    ),
    Case(
        "extra-function-identity-novalidate",
        lambda: make_pipeline(FunctionTransformer(validate=True), LogisticRegression()),
        "wine",
    ),
]
