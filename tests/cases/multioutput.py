"""Exactness cases: MultiOutputClassifier/Regressor, ClassifierChain, RegressorChain and
OneVsOneClassifier."""

from __future__ import annotations

from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.multiclass import OneVsOneClassifier
from sklearn.multioutput import (
    ClassifierChain,
    MultiOutputClassifier,
    MultiOutputRegressor,
    RegressorChain,
)
from sklearn.naive_bayes import GaussianNB
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from ._case import Case


def logreg() -> LogisticRegression:
    return LogisticRegression(max_iter=2000)


CASES: list[Case] = [
    Case(
        "multioutput-classifier-logreg",
        lambda: MultiOutputClassifier(logreg()),
        "random_multilabel",
    ),
    Case("chain-classifier-logreg", lambda: ClassifierChain(logreg()), "random_multilabel"),
    Case("ovo-logreg-wine", lambda: OneVsOneClassifier(logreg()), "wine"),
    Case(
        "multioutput-classifier-svc",  # no predict_proba
        lambda: MultiOutputClassifier(LinearSVC()),
        "random_multilabel",
    ),
    Case(
        "multioutput-classifier-forest",
        lambda: MultiOutputClassifier(RandomForestClassifier(n_estimators=5, random_state=0)),
        "random_multilabel",
    ),
    Case(
        "multioutput-regressor-tree",
        lambda: MultiOutputRegressor(DecisionTreeRegressor(max_depth=4, random_state=0)),
        "random_multireg",
    ),
    Case("multioutput-regressor-ridge", lambda: MultiOutputRegressor(Ridge()), "random_multireg"),
    # Chains: the order, and what each link hands on (chain_method).
    Case(
        "chain-classifier-order-proba",
        lambda: ClassifierChain(logreg(), order=[2, 0, 3, 1], chain_method="predict_proba"),
        "random_multilabel",
    ),
    Case(
        "chain-classifier-decision",
        lambda: ClassifierChain(
            logreg(), chain_method="decision_function", order="random", random_state=0
        ),
        "random_multilabel",
    ),
    Case(
        "chain-classifier-tree",
        lambda: ClassifierChain(DecisionTreeClassifier(max_depth=3, random_state=0)),
        "random_multilabel",
    ),
    Case(
        "chain-regressor",
        lambda: RegressorChain(LinearRegression(), order=[1, 2, 0]),
        "random_multireg",
    ),
    # One-vs-one: votes plus transformed confidences.
    Case("ovo-svc-strlabels", lambda: OneVsOneClassifier(LinearSVC()), "random_strlabels"),
    Case("ovo-nb-multi", lambda: OneVsOneClassifier(GaussianNB()), "random_multi"),
    Case(
        "ovo-tree-binary",
        lambda: OneVsOneClassifier(DecisionTreeClassifier(max_depth=3, random_state=0)),
        "breast_cancer",
    ),
    Case("ovo-regressor", lambda: OneVsOneClassifier(LinearRegression()), "iris"),
]
