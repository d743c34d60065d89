"""Helpers shared by the meta-estimator executors, which delegate to child executors.

A meta-estimator never validates its input beyond what its children would: NaN may reach it
only if every child that sees the input accepts NaN. Its methods are those scikit-learn's
``available_if`` gives it, decided by the converter and checked here against the children.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..errors import ManifestError, UnsupportedModelError
from ._base import METHODS, Executor, Spec

PREDICTING = ("predict", "predict_proba", "predict_log_proba", "decision_function")
# A count read from a manifest sizes allocations: it must be checked before any use.
MAX_COUNT = 1 << 24


def call(child: Executor, method: str, X: Any) -> Any:
    return getattr(child, method)(X)


def same_shape(outputs: list[Any], rows: int, parent: str, method: str) -> list[Any]:
    """``outputs`` (one per child), once they are checked to share one shape whose first
    dimension is ``rows``, as the parent stacks or adds them: children of an image that differ
    there (numpy would fail, or broadcast) are a ManifestError."""
    shapes = {np.shape(y) for y in outputs}
    if len(shapes) != 1 or next(iter(shapes))[:1] != (rows,):
        raise ManifestError(
            f"{parent}: its estimators' {method} outputs have shapes {sorted(shapes)} for "
            f"{rows} rows; they must share one shape, one value (or row) per input row"
        )
    return outputs


def count(spec: Spec, key: str, low: int = 0, high: int = MAX_COUNT) -> int:
    """An integer parameter in [low, high] (``Spec.count``, with the children's bound)."""
    return spec.count(key, low, high)


def methods_param(spec: Spec, allowed: Iterable[str], children: Iterable[Executor]) -> list[str]:
    """The ``methods`` parameter: names in ``allowed`` that every child in ``children`` has."""
    names = spec.param("methods", list)
    allowed = set(allowed)
    kids = list(children)
    for name in names:
        if not isinstance(name, str) or name not in METHODS or name not in allowed:
            spec.fail(f"method {name!r} is not one of {sorted(allowed)}")
        for child in kids:
            if not child.supports(name):
                spec.fail(f"method {name!r} needs a child that has it ({child.kind} has not)")
    return names


def all_allow_nan(children: Iterable[Executor]) -> bool:
    return all(child.allow_nan for child in children)


def hand_on_objects(parent: Executor, children: list[Executor]) -> None:
    """A meta-estimator that gives ``X`` to its children as it is takes mixed columns
    (strings, a DataFrame of them) when every child does, as scikit-learn's would: it then
    reads the columns any child reads, and names them in each child's errors. One numeric
    child and it takes numbers, as before."""
    if not children or not all(getattr(c, "accepts_objects", False) for c in children):
        return
    masks = [getattr(c, "used_columns", None) for c in children]
    used = None
    if all(m is not None for m in masks):
        arrays = [np.asarray(m, dtype=bool) for m in masks]
        if len({a.shape for a in arrays}) == 1:
            used = np.logical_or.reduce(arrays)
    # attributes the Model looks up with getattr (an executor that takes strings has them)
    setattr(parent, "accepts_objects", True)  # noqa: B010
    setattr(parent, "used_columns", used)  # noqa: B010
    setattr(parent, "name_columns", lambda names: _name_children(children, names))  # noqa: B010


def _name_children(children: list[Executor], names: list[str]) -> None:
    for child in children:
        name_columns = getattr(child, "name_columns", None)
        if name_columns is not None:
            name_columns(names)


def columns(spec: Spec, role: str, n: int, *, empty: bool = False) -> np.ndarray:
    """An index array of columns in [0, n)."""
    cols: np.ndarray = spec.array(role, ndim=1, kind="iu")
    if cols.size == 0:
        if not empty:
            spec.fail(f"array {role!r} selects no column")
        return cols
    if int(cols.min()) < 0 or int(cols.max()) >= n:
        spec.fail(f"array {role!r} must select columns in [0, {n})")
    return cols


def response(child: Executor, method: str, X: np.ndarray) -> np.ndarray:
    """scikit-learn's ``_get_response_values`` of a binary classifier (positive class
    ``classes_[-1]``) or a regressor: one score per sample."""
    out = np.asarray(call(child, method, X))
    if method in ("predict_proba", "predict_log_proba"):
        if out.ndim != 2 or out.shape[1] < 2:
            raise UnsupportedModelError(
                f"{child.kind}: its {method} has {out.shape[-1] if out.ndim == 2 else 1} "
                "column where a score of the positive class is needed: it was fitted on one "
                "class (scikit-learn refuses this too); refit with both classes, or use "
                "chain_method='predict'"
            )
        classes = getattr(child, "classes_", None)
        # the column of classes_[-1]: the first of a classifier fitted on one class that
        # answers two columns anyway (an MLP), the last otherwise
        at = len(classes) - 1 if isinstance(classes, np.ndarray) and len(classes) < 2 else -1
        return out[:, at]
    return out
