"""Exactness cases: pipelines and column transformers."""

from __future__ import annotations

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ._case import Case

CASES: list[Case] = [
    Case(
        "pipeline-scaler-logreg-wine",
        lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "wine",
    ),
]
