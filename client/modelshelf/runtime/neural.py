"""Neural networks: MLPClassifier and MLPRegressor forward passes."""

from __future__ import annotations
