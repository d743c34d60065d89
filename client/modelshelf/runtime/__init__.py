"""Numpy kernels per model family, and the registry that builds executors from manifests.

Importing this package registers every family; it needs numpy and nothing else.
"""

from __future__ import annotations

from . import (  # noqa: F401
    boosted_linear,
    calibration,
    catboost_ctr,
    compose,
    covariance,
    cross_decomposition,
    discriminant,
    encoders,
    ensemble,
    extra,
    glm,
    kernel_approximation,
    kernels,
    knn_imputer,
    linear,
    mixture,
    multioutput,
    naive_bayes,
    neighbors,
    neural,
    nmf,
    nonlinear,
    preprocessing,
    selection,
    splines,
    svm,
    text,
    transformers,
    trees,
    wrappers,
)
from ._base import METHODS, Executor, Spec, build, register, registered_kinds
from ._input import as_float_matrix, check_finite

__all__ = [
    "METHODS",
    "Executor",
    "Spec",
    "as_float_matrix",
    "build",
    "check_finite",
    "register",
    "registered_kinds",
]
