"""Input validation, as scikit-learn's ``check_array`` would do it, with errors that say more.

Executors receive what ``as_float_matrix`` returns: a 2-D float64 array that is a read-only
view whenever no conversion was needed, so a kernel that tried to write into the caller's data
fails loudly instead of corrupting it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import (
    FeatureCountError,
    FeatureNamesError,
    InputShapeError,
    InputTypeError,
    NonFiniteInputError,
)

if TYPE_CHECKING:
    from ._categories import CategoryTables

_SHOWN_NAMES = 8  # feature names quoted in a message; wide tables have thousands


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
    categories: CategoryTables | None = None,
    allow_nan: bool = False,
) -> np.ndarray:
    """Return ``X`` as a 2-D float64 array with ``n_features`` columns, or raise an InputError.

    A DataFrame's category columns are recoded through ``categories`` when the model has them
    (runtime/_categories.py); any other input is read as it is, its values being codes.
    The result never lets anyone write into the caller's memory: it is either a fresh array
    (after a conversion) or a read-only view of ``X``.
    """
    if type(X) is np.ndarray:  # the hot path: no names, not sparse
        arr = X
    else:
        names = column_names(X)
        if feature_names is not None:
            _check_names(names, list(feature_names))
        if categories is not None and hasattr(X, "dtypes") and hasattr(X, "items"):
            arr = categories.frame_matrix(X, names)
        elif hasattr(X, "toarray") and hasattr(X, "tocsr"):
            raise InputTypeError(
                f"expected a dense array, got sparse {type(X).__module__}.{type(X).__name__}; "
                "sparse input is not supported, pass X.toarray()"
            )
        else:
            arr = _as_array(X)
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
    if arr.dtype != np.float64:  # also converts big-endian float64 to native
        arr = arr.astype(np.float64)
    elif arr.flags.writeable:
        arr = arr.view()
        arr.flags.writeable = False
    check_finite(arr, allow_nan=allow_nan)
    return arr


def _as_array(X: Any) -> np.ndarray:
    try:
        return np.asarray(X)
    except (ValueError, TypeError) as exc:
        lengths = _row_lengths(X)
        if lengths is not None and len(set(lengths)) > 1:
            shown = sorted(set(lengths))[:_SHOWN_NAMES]
            raise InputShapeError(
                f"expected every row to have the same number of features, got rows of "
                f"lengths {shown}"
            ) from exc
        raise InputTypeError(f"input cannot be read as a numeric 2-D array: {exc}") from exc


def _row_lengths(X: Any) -> list[int] | None:
    """Row lengths of a list of sequences (to explain a ragged input), else None."""
    if not isinstance(X, list | tuple):
        return None
    try:
        return [len(row) for row in X]
    except TypeError:
        return None


def _check_names(given: list[str] | None, expected: list[str]) -> None:
    """Raise FeatureNamesError if a named input's columns differ from the fitted names.

    Unnamed input (a plain array) is accepted as scikit-learn accepts it: by position.
    """
    if given is None or given == expected:
        return
    missing = [n for n in expected if n not in given]
    unexpected = [n for n in given if n not in expected]
    if missing or unexpected:
        detail = f"missing {missing[:_SHOWN_NAMES]}, unexpected {unexpected[:_SHOWN_NAMES]}"
    else:
        detail = "same names in a different order"
    raise FeatureNamesError(
        f"input columns differ from the feature names seen at fit time ({detail}): expected "
        f"{_shorten(expected)}, got {_shorten(given)}; select them in that order "
        "(X[model.feature_names_in_]), or pass an array to predict by position"
    )


def _shorten(names: list[str]) -> str:
    if len(names) <= _SHOWN_NAMES:
        return repr(names)
    return f"[{', '.join(map(repr, names[:_SHOWN_NAMES]))}, ... ({len(names)} names)]"


def check_finite(arr: np.ndarray, *, allow_nan: bool) -> None:
    """Raise NonFiniteInputError for infinity, and for NaN unless ``allow_nan``."""
    # min and max propagate NaN and cannot overflow: two SIMD passes in the common case, and no
    # np.errstate, whose context manager costs more than both passes on a single row.
    if arr.size == 0 or (math.isfinite(arr.min()) and math.isfinite(arr.max())):
        return
    n_inf = int(np.count_nonzero(np.isinf(arr)))
    if n_inf:
        raise NonFiniteInputError(
            f"expected finite values, got infinity in {n_inf} cell(s); "
            "the model accepts only finite values"
        )
    if not allow_nan:
        n_nan = int(np.count_nonzero(np.isnan(arr)))
        if n_nan:
            raise NonFiniteInputError(
                f"expected no missing values, got NaN in {n_nan} cell(s); this model does not "
                "accept NaN (impute them first, or use a model with missing-value support)"
            )
