"""Exactness cases: linear models."""

from __future__ import annotations

from sklearn.linear_model import LogisticRegression

from ._case import Case

CASES: list[Case] = [
    Case("logreg-binary-breast_cancer", lambda: LogisticRegression(max_iter=5000), "breast_cancer"),
    Case("logreg-multinomial-iris", lambda: LogisticRegression(max_iter=1000), "iris"),
    Case("logreg-strlabels", lambda: LogisticRegression(), "random_strlabels"),
]
