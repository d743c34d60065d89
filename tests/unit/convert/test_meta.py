"""Meta-estimators: what compile() refuses (each refusal names the class, the option and the
way out), and the shapes of results the exactness matrix does not pin down."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_diabetes, load_iris
from sklearn.dummy import DummyClassifier
from sklearn.feature_selection import SelectKBest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.multiclass import OneVsOneClassifier
from sklearn.multioutput import ClassifierChain
from sklearn.pipeline import FeatureUnion
from sklearn.preprocessing import QuantileTransformer
from sklearn.svm import SVC

import modelshelf
from modelshelf import UnsupportedModelError

IRIS = load_iris(return_X_y=True)
DIABETES = load_diabetes(return_X_y=True)


def _refused(est: object, *fragments: str) -> None:
    with pytest.raises(UnsupportedModelError) as info:
        modelshelf.compile(est)
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize("strategy", ["stratified", "uniform"])
def test_random_dummy_is_refused(strategy: str) -> None:
    est = DummyClassifier(strategy=strategy).fit(*IRIS)
    _refused(est, "DummyClassifier", f"strategy={strategy!r}", "random", "'prior'")


def test_transformed_target_with_functions_is_refused() -> None:
    est = TransformedTargetRegressor(LinearRegression(), func=np.log1p, inverse_func=np.expm1).fit(
        DIABETES[0], DIABETES[1]
    )
    _refused(est, "TransformedTargetRegressor", "func=", "Python function", "transformer=")


def test_transformed_target_with_other_transformer_is_refused() -> None:
    est = TransformedTargetRegressor(
        LinearRegression(), transformer=QuantileTransformer(n_quantiles=50)
    ).fit(*DIABETES)
    _refused(est, "TransformedTargetRegressor", "QuantileTransformer", "MinMaxScaler")


def test_search_without_refit_is_refused() -> None:
    est = GridSearchCV(LogisticRegression(max_iter=500), {"C": [1.0, 2.0]}, refit=False, cv=3)
    est.fit(*IRIS)
    _refused(est, "GridSearchCV", "refit=False", "refit=True", "best_estimator_")


def test_temperature_calibration_is_refused() -> None:
    est = CalibratedClassifierCV(LogisticRegression(max_iter=500), method="temperature", cv=3)
    est.fit(*IRIS)
    _refused(est, "CalibratedClassifierCV", "method='temperature'", "'sigmoid'")


def test_precomputed_one_vs_one_is_refused() -> None:
    X, y = IRIS
    est = OneVsOneClassifier(SVC(kernel="precomputed")).fit(X @ X.T, y)
    _refused(est, "OneVsOneClassifier", "precomputed")


def test_multiclass_chain_label_is_refused() -> None:
    X, y = IRIS
    Y = np.column_stack([y, y % 2])
    est = ClassifierChain(LogisticRegression(max_iter=500)).fit(X, Y)
    _refused(est, "ClassifierChain", "more than 2 classes")


def test_a_chain_link_fitted_on_one_class_answers_as_scikit_learn() -> None:
    """A label every training row has: an MLP link answers two probability columns anyway,
    and scikit-learn takes the one of classes_[-1], its first (the last was taken: 1 - p,
    and with chain_method='predict_proba' the later links read it); a link that answers one
    column is refused by both."""
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neural_network import MLPClassifier

    X = IRIS[0]
    Y = np.column_stack([IRIS[1] == 0, np.ones(len(X), dtype=int), IRIS[1] == 2]).astype(int)
    for method in ("predict", "predict_proba"):
        mlp = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2000, random_state=0)
        est = ClassifierChain(mlp, chain_method=method).fit(X, Y)
        model = modelshelf.load(modelshelf.compile(est))
        np.testing.assert_array_equal(model.predict_proba(X), est.predict_proba(X))
        np.testing.assert_array_equal(model.predict(X), est.predict(X))
    est = ClassifierChain(GaussianNB(), chain_method="predict_proba").fit(X, Y)
    model = modelshelf.load(modelshelf.compile(est))
    with pytest.raises(ValueError, match="two classes"):
        est.predict(X)
    with pytest.raises(UnsupportedModelError, match="fitted on one class"):
        model.predict(X)


def test_union_of_nothing_is_refused() -> None:
    est = FeatureUnion([("a", "drop")]).fit(IRIS[0])
    _refused(est, "FeatureUnion", "'drop'")


def test_feature_selection_to_no_column() -> None:
    """scikit-learn warns and returns an (n, 0) array; so does the image, without the warning."""
    est = SelectKBest(k=0).fit(*IRIS)
    model = modelshelf.load(modelshelf.compile(est))
    assert model.transform(IRIS[0][:5]).shape == (5, 0)
