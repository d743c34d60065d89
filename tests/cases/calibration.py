"""Exactness cases: CalibratedClassifierCV (sigmoid and isotonic, ensemble or not, binary and
multiclass), FixedThresholdClassifier and TunedThresholdClassifierCV."""

from __future__ import annotations

from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

from ._case import Case, dataset


def logreg() -> LogisticRegression:
    return LogisticRegression(max_iter=2000)


def tree() -> DecisionTreeClassifier:
    return DecisionTreeClassifier(max_depth=4, random_state=0)


def frozen_calibrated() -> CalibratedClassifierCV:
    """A pipeline fitted on half of breast_cancer, frozen, then calibrated (cv="prefit" is
    gone from scikit-learn: FrozenEstimator replaces it)."""
    X, y, _ = dataset("breast_cancer")
    half = len(X) // 2
    base = make_pipeline(StandardScaler(), logreg()).fit(X[:half], y[:half])
    return CalibratedClassifierCV(FrozenEstimator(base), method="isotonic")


CASES: list[Case] = [
    Case(
        "threshold-fixed-proba",
        lambda: FixedThresholdClassifier(logreg(), threshold=0.3),
        "breast_cancer",
    ),
    Case(
        "calibration-sigmoid-logreg-binary",
        lambda: CalibratedClassifierCV(logreg(), cv=3),
        "breast_cancer",
    ),
    Case(
        "calibration-isotonic-svc-binary",
        lambda: CalibratedClassifierCV(LinearSVC(), method="isotonic", cv=3),
        "random_clf",
    ),
    Case(
        "calibration-sigmoid-svc-multiclass",
        lambda: CalibratedClassifierCV(LinearSVC(), cv=3),
        "wine",
    ),
    Case(
        "calibration-isotonic-nb-multiclass",
        lambda: CalibratedClassifierCV(GaussianNB(), method="isotonic", cv=3),
        "random_strlabels",
    ),
    Case(
        "calibration-isotonic-tree-no-ensemble",
        lambda: CalibratedClassifierCV(tree(), method="isotonic", cv=3, ensemble=False),
        "iris",
    ),
    Case(
        "calibration-sigmoid-nb-no-ensemble-binary",
        lambda: CalibratedClassifierCV(GaussianNB(), cv=4, ensemble=False),
        "breast_cancer",
    ),
    Case(
        "calibration-sigmoid-tree-multiclass",
        lambda: CalibratedClassifierCV(tree(), cv=3),
        "random_multi",
    ),
    Case("calibration-frozen-isotonic", frozen_calibrated, "breast_cancer"),
    # Thresholds: proba or decision, pos_label, the tuned threshold.
    Case(
        "threshold-fixed-auto-decision",
        lambda: FixedThresholdClassifier(LinearSVC(), response_method="decision_function"),
        "random_clf",
    ),
    Case(
        "threshold-fixed-pos-label-first",
        lambda: FixedThresholdClassifier(
            LinearSVC(), threshold=-0.2, pos_label=0, response_method="decision_function"
        ),
        "random_clf",
    ),
    Case(
        "threshold-fixed-pos-label-proba-tree",
        lambda: FixedThresholdClassifier(tree(), threshold=0.7, pos_label=0),
        "breast_cancer",
    ),
    Case(
        "threshold-tuned-logreg",
        lambda: TunedThresholdClassifierCV(logreg(), cv=3),
        "breast_cancer",
    ),
    Case(
        "threshold-tuned-svc-f1",
        lambda: TunedThresholdClassifierCV(LinearSVC(), scoring="f1", cv=3),
        "random_clf",
    ),
]
