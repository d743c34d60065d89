"""scikit-learn's own list (tests/universe.py): every class that compiles predicts exactly what
scikit-learn predicts; every other one is refused with a short error that names it; the
classes the project promises are among the exact ones; docs/models.md is current."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import universe
from tests.universe import EXACT, NOT_APPLICABLE, REFUSED, Row

DOC = Path(__file__).resolve().parents[3] / "docs" / "models.md"


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return universe.survey()


def test_every_compiled_class_is_exact(rows: list[Row]) -> None:
    wrong = [
        (r.name, r.status, r.reason)
        for r in rows
        if r.status not in (EXACT, REFUSED, NOT_APPLICABLE)
    ]
    assert not wrong, wrong


def test_every_refusal_is_short_and_names_the_class(rows: list[Row]) -> None:
    for r in rows:
        if r.status == REFUSED:
            assert r.name in r.reason, r
            assert len(r.reason) <= 400, (r.name, len(r.reason))
            assert "._" not in r.reason.split(r.name)[0], r  # no private module paths


def test_docs_models_md_is_current(rows: list[Row]) -> None:
    import difflib

    expected = "\n".join(universe.table(rows)) + "\n"
    diff = list(difflib.unified_diff(DOC.read_text().splitlines(), expected.splitlines(), n=0))
    assert not diff, "regenerate: python -m tests.universe > docs/models.md\n" + "\n".join(
        diff[:20]
    )


# issue 10, point 2: the classes promised, each with cases of its own in the exactness matrix
# (LabelBinarizer is used as a target transformer inside other estimators; it is not one)
PROMISED = [
    "SelectKBest",
    "SelectPercentile",
    "SelectFpr",
    "SelectFdr",
    "SelectFwe",
    "VarianceThreshold",
    "SelectFromModel",
    "RFE",
    "RFECV",
    "SequentialFeatureSelector",
    "CalibratedClassifierCV",
    "SVC",
    "SVR",
    "NuSVC",
    "NuSVR",
    "OneClassSVM",
    "KNeighborsClassifier",
    "KNeighborsRegressor",
    "RadiusNeighborsClassifier",
    "RadiusNeighborsRegressor",
    "NearestCentroid",
    "TruncatedSVD",
    "NMF",
    "FeatureUnion",
    "VotingClassifier",
    "VotingRegressor",
    "StackingClassifier",
    "StackingRegressor",
    "BaggingClassifier",
    "BaggingRegressor",
    "AdaBoostClassifier",
    "AdaBoostRegressor",
    "DummyClassifier",
    "DummyRegressor",
    "PoissonRegressor",
    "GammaRegressor",
    "TweedieRegressor",
    "BayesianRidge",
    "ARDRegression",
    "QuantileRegressor",
    "IsotonicRegression",
    "TransformedTargetRegressor",
    "PolynomialFeatures",
    "SplineTransformer",
    "KBinsDiscretizer",
    "PowerTransformer",
    "QuantileTransformer",
    "TargetEncoder",
    "KNNImputer",
    "MissingIndicator",
    "Binarizer",
    "KMeans",
    "MiniBatchKMeans",
    "GaussianMixture",
    "LocalOutlierFactor",
    "EllipticEnvelope",
    "MultiOutputClassifier",
    "MultiOutputRegressor",
    "ClassifierChain",
    "RegressorChain",
    "OneVsOneClassifier",
    "FixedThresholdClassifier",
    "TunedThresholdClassifierCV",
    "LinearDiscriminantAnalysis",
    "QuadraticDiscriminantAnalysis",
    "GridSearchCV",
    "RandomizedSearchCV",
    "HalvingGridSearchCV",
    "HalvingRandomSearchCV",
]


def test_every_promised_class_has_exactness_cases() -> None:
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401

    from tests.cases import CASES

    def names(est: object) -> set[str]:
        out = {type(est).__name__}
        for value in getattr(est, "__dict__", {}).values():  # nested: pipelines, meta
            if hasattr(value, "fit"):
                out |= names(value)
        return out

    covered: set[str] = set()
    for case in CASES:
        covered |= names(case.make())
    assert not sorted(set(PROMISED) - covered)
