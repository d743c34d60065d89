"""Input validation, as scikit-learn's ``check_array`` would do it, with errors that say more."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import (
    FeatureCountError,
    FeatureNamesError,
    InputShapeError,
    InputTypeError,
    NonFiniteInputError,
)


def column_names(X: Any) -> list[str] | None:
    """Column names of a DataFrame-like input (anything with string ``columns``), else None."""
    columns = getattr(X, "columns", None)
    if columns is None or isinstance(X, np.ndarray):
        return None
    names = list(columns)
    if names and all(isinstance(n, str) for n in names):
        return names
    return None


def as_float_matrix(
    X: Any,
    n_features: int | None,
    *,
    feature_names: Sequence[str] | None = None,
    allow_nan: bool = False,
) -> np.ndarray:
    """Return ``X`` as a 2-D float64 array with ``n_features`` columns, or raise an InputError."""
    if feature_names is not None:
        given = column_names(X)
        if given is not None and list(given) != list(feature_names):
            missing = [n for n in feature_names if n not in given]
            unexpected = [n for n in given if n not in feature_names]
            detail = (
                f"missing {missing[:5]}, unexpected {unexpected[:5]}"
                if missing or unexpected
                else "same names in a different order"
            )
            raise FeatureNamesError(
                f"input columns differ from the feature names seen at fit time: {detail}"
            )
    if hasattr(X, "toarray") and hasattr(X, "tocsr"):
        raise InputTypeError("sparse input is not supported; pass a dense array (X.toarray())")
    try:
        arr = np.asarray(X)
    except (ValueError, TypeError) as exc:  # ragged nested sequences, odd objects
        raise InputTypeError(f"input cannot be read as a numeric 2-D array: {exc}") from exc
    if arr.dtype.kind in "USVMmc":
        raise InputTypeError(
            f"expected numeric input (int, float or bool), got an array of dtype {arr.dtype}"
        )
    if arr.dtype.kind == "O":
        try:
            arr = arr.astype(np.float64)
        except (ValueError, TypeError) as exc:
            raise InputTypeError(
                f"expected numeric input, got objects that do not convert to float: {exc}"
            ) from exc
    if arr.ndim != 2:
        hint = " (for one sample, use X.reshape(1, -1))" if arr.ndim == 1 else ""
        raise InputShapeError(
            f"expected a 2-D array of shape (n_samples, n_features), got {arr.ndim}-D "
            f"shape {arr.shape}{hint}"
        )
    if arr.shape[0] == 0:
        raise InputShapeError(f"expected at least 1 sample, got shape {arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise FeatureCountError(
            f"expected {n_features} features per sample, got {arr.shape[1]} "
            f"(input shape {arr.shape})"
        )
    arr = arr.astype(np.float64, copy=False)
    check_finite(arr, allow_nan=allow_nan)
    return arr


def check_finite(arr: np.ndarray, *, allow_nan: bool) -> None:
    """Raise NonFiniteInputError for infinity, and for NaN unless ``allow_nan``."""
    # A sum is finite iff every element is (or overflowed): one cheap pass in the common case.
    total = np.sum(arr)
    if np.isfinite(total):
        return
    if np.isinf(arr).any():
        raise NonFiniteInputError("input contains infinity; the model accepts only finite values")
    if not allow_nan and np.isnan(arr).any():
        raise NonFiniteInputError(
            "input contains NaN and this model does not accept missing values "
            "(impute them first, or use a model with missing-value support)"
        )
