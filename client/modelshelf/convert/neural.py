"""MLPClassifier and MLPRegressor to specs."""

from __future__ import annotations
