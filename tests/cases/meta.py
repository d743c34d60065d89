"""Exactness cases: feature selection, FeatureUnion, searches, TransformedTargetRegressor and
the dummy estimators."""

from __future__ import annotations

from sklearn.compose import TransformedTargetRegressor
from sklearn.decomposition import PCA
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.feature_selection import (
    RFE,
    RFECV,
    SelectFdr,
    SelectFpr,
    SelectFromModel,
    SelectFwe,
    SelectKBest,
    SelectPercentile,
    SequentialFeatureSelector,
    VarianceThreshold,
    f_regression,
)
from sklearn.linear_model import Lasso, LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import (
    GridSearchCV,
    HalvingGridSearchCV,
    HalvingRandomSearchCV,
    RandomizedSearchCV,
)
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from ._case import Case


def logreg() -> LogisticRegression:
    return LogisticRegression(max_iter=2000)


CASES: list[Case] = [
    # First the kinds of this module, two cases: the adversarial corpus takes only each
    # family's first two.
    Case(
        "meta-ttr-union-rfe",
        lambda: TransformedTargetRegressor(
            make_pipeline(
                FeatureUnion([("k", SelectKBest(f_regression, k=4)), ("pca", PCA(3))]),
                RFE(Ridge(), n_features_to_select=5),
            ),
            transformer=StandardScaler(),
        ),
        "diabetes",
    ),
    Case("meta-dummy-prior", lambda: DummyClassifier(strategy="prior"), "wine"),
    Case("meta-dummy-mean", lambda: DummyRegressor(), "diabetes"),
    # Feature selection: the support mask as columns; RFE/RFECV predict through estimator_.
    Case("meta-kbest-logreg-wine", lambda: make_pipeline(SelectKBest(k=5), logreg()), "wine"),
    Case("meta-kbest-all", lambda: SelectKBest(k="all"), "iris"),
    Case(
        "meta-percentile-regression",
        lambda: SelectPercentile(f_regression, percentile=30),
        "diabetes",
    ),
    Case("meta-fpr", lambda: SelectFpr(alpha=0.01), "breast_cancer"),
    Case("meta-fdr", lambda: SelectFdr(alpha=0.01), "breast_cancer"),
    Case("meta-fwe", lambda: SelectFwe(alpha=1e-8), "wine"),
    Case("meta-variance-threshold", lambda: VarianceThreshold(threshold=20.0), "digits"),
    Case("meta-variance-threshold-nan", lambda: VarianceThreshold(), "random_nan"),
    Case(
        "meta-from-model-lasso",
        lambda: SelectFromModel(Lasso(alpha=1.0)),
        "diabetes",
    ),
    Case(
        "meta-from-model-max-features",
        lambda: SelectFromModel(DecisionTreeClassifier(random_state=0), max_features=3),
        "iris",
    ),
    Case(
        "meta-sequential-forward",
        lambda: SequentialFeatureSelector(
            LinearRegression(), n_features_to_select=4, direction="forward", cv=3
        ),
        "diabetes",
    ),
    Case("meta-rfe-logreg", lambda: RFE(logreg(), n_features_to_select=5), "breast_cancer"),
    Case("meta-rfe-linear-svc", lambda: RFE(LinearSVC(), n_features_to_select=3), "wine"),
    Case("meta-rfe-tree", lambda: RFE(DecisionTreeClassifier(random_state=0), step=2), "iris"),
    Case("meta-rfe-ridge", lambda: RFE(Ridge(), n_features_to_select=4), "diabetes"),
    Case("meta-rfecv-logreg", lambda: RFECV(logreg(), cv=3), "wine"),
    Case("meta-rfecv-ridge", lambda: RFECV(Ridge(), cv=3, step=2), "random_reg"),
    # FeatureUnion: every part takes all columns; weights, 'drop' and 'passthrough'.
    Case(
        "meta-union-logreg",
        lambda: make_pipeline(
            FeatureUnion([("pca", PCA(3)), ("kbest", SelectKBest(k=4))]), logreg()
        ),
        "wine",
    ),
    Case(
        "meta-union-weights-drop-passthrough",
        lambda: FeatureUnion(
            [
                ("scale", StandardScaler()),
                ("gone", "drop"),
                ("raw", "passthrough"),
                ("pca", PCA(2)),
            ],
            transformer_weights={"scale": 2.0, "raw": 0.5},
        ),
        "iris",
    ),
    # Searches compile their best_estimator_.
    Case(
        "meta-grid-search-logreg",
        lambda: GridSearchCV(logreg(), {"C": [0.1, 1.0]}, cv=3),
        "iris",
    ),
    Case(
        "meta-randomized-search-pipeline",
        lambda: RandomizedSearchCV(
            make_pipeline(StandardScaler(), Ridge()),
            {"ridge__alpha": [0.1, 1.0, 10.0]},
            n_iter=2,
            cv=3,
            random_state=0,
        ),
        "diabetes",
    ),
    Case(
        "meta-halving-grid-tree",
        lambda: HalvingGridSearchCV(
            DecisionTreeClassifier(random_state=0), {"max_depth": [2, 3, 4]}, cv=3
        ),
        "wine",
    ),
    Case(
        "meta-halving-random-tree",
        lambda: HalvingRandomSearchCV(
            DecisionTreeRegressor(random_state=0), {"max_depth": [2, 3, 4]}, cv=3, random_state=0
        ),
        "diabetes",
    ),
    # TransformedTargetRegressor: inverse_transform in the runtime.
    Case(
        "meta-ttr-standard",
        lambda: TransformedTargetRegressor(Ridge(), transformer=StandardScaler()),
        "diabetes",
    ),
    Case(
        "meta-ttr-minmax-tree",
        lambda: TransformedTargetRegressor(
            DecisionTreeRegressor(max_depth=4, random_state=0), transformer=MinMaxScaler((-2, 3))
        ),
        "diabetes",
    ),
    Case(
        "meta-ttr-maxabs-multireg",
        lambda: TransformedTargetRegressor(LinearRegression(), transformer=MaxAbsScaler()),
        "random_multireg",
    ),
    Case(
        "meta-ttr-robust",
        lambda: TransformedTargetRegressor(Lasso(alpha=0.1), transformer=RobustScaler()),
        "random_reg",
    ),
    Case("meta-ttr-identity", lambda: TransformedTargetRegressor(Ridge()), "random_reg"),
    # Dummy estimators: the deterministic strategies.
    Case("meta-dummy-most-frequent", lambda: DummyClassifier(), "random_strlabels"),
    Case(
        "meta-dummy-constant",
        lambda: DummyClassifier(strategy="constant", constant="bee"),
        "random_strlabels",
    ),
    Case(
        "meta-dummy-constant-int", lambda: DummyClassifier(strategy="constant", constant=2), "iris"
    ),
    Case("meta-dummy-median-multi", lambda: DummyRegressor(strategy="median"), "random_multireg"),
    Case(
        "meta-dummy-quantile",
        lambda: DummyRegressor(strategy="quantile", quantile=0.25),
        "random_reg",
    ),
    Case(
        "meta-dummy-constant-reg",
        lambda: DummyRegressor(strategy="constant", constant=3),
        "diabetes",
    ),
]
