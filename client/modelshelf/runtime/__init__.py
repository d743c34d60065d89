"""Numpy kernels per model family, and the registry that builds executors from manifests.

Importing this package registers every family; it needs numpy and nothing else.
"""

from __future__ import annotations

from . import compose, encoders, linear, naive_bayes, neural, preprocessing, text, trees  # noqa: F401
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
