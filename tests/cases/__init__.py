"""The exactness matrix: every supported estimator and option, with the data it is fitted on.

Each family contributes a module whose ``CASES`` list holds ``Case`` objects; the one
parametrized test in tests/unit/convert/test_exactness.py runs them all against scikit-learn.
"""

from __future__ import annotations

from . import catboost, compose, frames, linear, naive_bayes, neural, preprocessing, text, trees
from ._case import Case

CASES: list[Case] = [
    *linear.CASES,
    *neural.CASES,
    *naive_bayes.CASES,
    *preprocessing.CASES,
    *compose.CASES,
    *frames.CASES,
    *trees.CASES,
    *text.CASES,
    *catboost.CASES,
]

__all__ = ["CASES", "Case"]
