"""The exactness matrix: every supported estimator and option, with the data it is fitted on.

Each family contributes a module whose ``CASES`` list holds ``Case`` objects; the one
parametrized test in tests/unit/convert/test_exactness.py runs them all against scikit-learn.
"""

from __future__ import annotations

from . import (
    calibration,
    catboost,
    categorical_nb,
    compose,
    cross_decomposition,
    discriminant,
    ensemble,
    extra,
    frames,
    glm,
    kernels,
    latent,
    linear,
    meta,
    mixture,
    multioutput,
    naive_bayes,
    neighbors,
    neural,
    nonlinear,
    preprocessing,
    svm,
    text,
    transformers,
    trees,
)
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
    *svm.CASES,
    *discriminant.CASES,
    *mixture.CASES,
    *neighbors.CASES,
    *glm.CASES,
    *transformers.CASES,
    *nonlinear.CASES,
    *meta.CASES,
    *ensemble.CASES,
    *calibration.CASES,
    *multioutput.CASES,
    *extra.CASES,
    *kernels.CASES,
    *cross_decomposition.CASES,
    *categorical_nb.CASES,
    *latent.CASES,
]

__all__ = ["CASES", "Case"]
