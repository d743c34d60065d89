"""Exactness cases: voting, stacking, bagging and AdaBoost over supported base estimators."""

from __future__ import annotations

from sklearn.dummy import DummyRegressor
from sklearn.ensemble import (
    AdaBoostClassifier,
    AdaBoostRegressor,
    BaggingClassifier,
    BaggingRegressor,
    RandomForestClassifier,
    StackingClassifier,
    StackingRegressor,
    VotingClassifier,
    VotingRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, RidgeClassifier
from sklearn.multiclass import OneVsOneClassifier
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from ._case import Case


def logreg() -> LogisticRegression:
    return LogisticRegression(max_iter=2000)


def tree(depth: int = 3) -> DecisionTreeClassifier:
    return DecisionTreeClassifier(max_depth=depth, random_state=0)


def trio() -> list[tuple[str, object]]:
    return [("lr", logreg()), ("nb", GaussianNB()), ("dt", tree())]


CASES: list[Case] = [
    # Nested first: the adversarial corpus takes only each family's first two cases, and these
    # bring every ensemble kind (and one-vs-one, dummy_regressor).
    Case(
        "ensemble-nested-stacking",
        lambda: StackingClassifier(
            [
                ("vote", VotingClassifier(trio(), voting="soft")),
                ("bag", BaggingClassifier(tree(), n_estimators=4, random_state=0)),
                ("ada", AdaBoostClassifier(tree(1), n_estimators=5, random_state=0)),
                ("ovo", OneVsOneClassifier(LinearSVC())),
            ],
            cv=3,
        ),
        "wine",
    ),
    Case(
        "ensemble-nested-voting-regressor",
        lambda: VotingRegressor(
            [
                ("ada", AdaBoostRegressor(n_estimators=5, random_state=0)),
                ("dummy", DummyRegressor(strategy="median")),
                (
                    "bag",
                    BaggingRegressor(DecisionTreeRegressor(max_depth=3), n_estimators=4),
                ),
            ]
        ),
        "diabetes",
    ),
    # Voting: hard (ties broken by the lowest class index), soft, weights, 'drop'.
    Case("ensemble-voting-hard-wine", lambda: VotingClassifier(trio()), "wine"),
    Case(
        "ensemble-voting-hard-ties",  # two voters: ties are frequent
        lambda: VotingClassifier([("nb", GaussianNB()), ("dt", tree(1))]),
        "random_multi",
    ),
    Case(
        "ensemble-voting-hard-weights-strlabels",
        lambda: VotingClassifier(
            [("lr", logreg()), ("svc", LinearSVC()), ("dt", tree())], weights=[1, 2, 0.5]
        ),
        "random_strlabels",
    ),
    Case("ensemble-voting-soft-iris", lambda: VotingClassifier(trio(), voting="soft"), "iris"),
    Case(
        "ensemble-voting-soft-weights-unflat",
        lambda: VotingClassifier(
            [*trio(), ("gone", "drop")],
            voting="soft",
            weights=[2, 1, 1, 5],
            flatten_transform=False,
        ),
        "breast_cancer",
    ),
    Case(
        "ensemble-voting-regressor",
        lambda: VotingRegressor(
            [("lr", LinearRegression()), ("dt", DecisionTreeRegressor(max_depth=4))],
            weights=[0.3, 0.7],
        ),
        "diabetes",
    ),
    # Stacking: every stack_method, passthrough, the binary column drop.
    Case(
        "ensemble-stacking-auto-binary",
        lambda: StackingClassifier(
            [("nb", GaussianNB()), ("svc", LinearSVC()), ("rc", RidgeClassifier())], cv=3
        ),
        "breast_cancer",
    ),
    Case(
        "ensemble-stacking-proba-multiclass-passthrough",
        lambda: StackingClassifier(
            trio(), final_estimator=tree(), stack_method="predict_proba", passthrough=True, cv=3
        ),
        "wine",
    ),
    Case(
        "ensemble-stacking-decision-strlabels",
        lambda: StackingClassifier(
            [("lr", logreg()), ("svc", LinearSVC())], stack_method="decision_function", cv=3
        ),
        "random_strlabels",
    ),
    Case(
        "ensemble-stacking-predict",
        lambda: StackingClassifier(
            [("dt", tree()), ("nb", GaussianNB())], stack_method="predict", cv=3
        ),
        "iris",
    ),
    Case(
        "ensemble-stacking-regressor-passthrough",
        lambda: StackingRegressor(
            [("lr", LinearRegression()), ("dt", DecisionTreeRegressor(max_depth=3))],
            final_estimator=Ridge(),
            passthrough=True,
            cv=3,
        ),
        "diabetes",
    ),
    # Bagging: feature subsets, bootstrap features, the voting fallback, decision_function.
    Case(
        "ensemble-bagging-trees-features",
        lambda: BaggingClassifier(tree(), n_estimators=8, max_features=0.6, random_state=0),
        "wine",
    ),
    Case(
        "ensemble-bagging-logreg-bootstrap-features",
        lambda: BaggingClassifier(
            make_pipeline(StandardScaler(), logreg()),
            n_estimators=6,
            max_samples=0.3,
            bootstrap_features=True,
            random_state=1,
        ),
        "random_multi",
    ),
    Case(
        "ensemble-bagging-svc-voting",
        lambda: BaggingClassifier(LinearSVC(), n_estimators=5, max_features=5, random_state=0),
        "random_strlabels",
    ),
    Case(
        "ensemble-bagging-missing-classes",  # tiny bootstrap samples miss classes
        lambda: BaggingClassifier(GaussianNB(), n_estimators=6, max_samples=6, random_state=3),
        "random_multi",
    ),
    Case(
        "ensemble-bagging-regressor",
        lambda: BaggingRegressor(
            DecisionTreeRegressor(max_depth=4), n_estimators=7, max_features=0.5, random_state=0
        ),
        "diabetes",
    ),
    # AdaBoost: SAMME over trees and others; the weighted median.
    Case("ensemble-adaboost-binary", lambda: AdaBoostClassifier(random_state=0), "breast_cancer"),
    Case(
        "ensemble-adaboost-multiclass",
        lambda: AdaBoostClassifier(tree(2), n_estimators=20, random_state=0),
        "random_strlabels",
    ),
    Case(
        "ensemble-adaboost-forest",
        lambda: AdaBoostClassifier(
            RandomForestClassifier(n_estimators=3, max_depth=2, random_state=0),
            n_estimators=5,
            random_state=0,
        ),
        "iris",
    ),
    Case(
        "ensemble-adaboost-regressor",
        lambda: AdaBoostRegressor(DecisionTreeRegressor(max_depth=3), random_state=0),
        "diabetes",
    ),
    Case(
        "ensemble-adaboost-regressor-square",
        lambda: AdaBoostRegressor(n_estimators=15, loss="square", random_state=0),
        "random_reg",
    ),
]
