"""Input validation, as scikit-learn's ``check_array`` would do it, with errors that say more.

Executors receive what ``as_float_matrix`` returns: a 2-D float64 array that is a read-only
view whenever no conversion was needed, so a kernel that tried to write into the caller's data
fails loudly instead of corrupting it. Models whose root takes strings (a column transformer or
a pipeline starting with encoders) receive what ``as_table`` returns: the same float64 matrix
when every column is numeric, else a 2-D object array whose columns the model reads itself.

A DataFrame is anything with ``columns``, ``dtypes`` and ``items()``; pandas is never imported.
Its nullable columns (``Int64``, ``Float64``, ``boolean``) are read as float64 with ``pd.NA``
as NaN, as scikit-learn reads them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .. import _kernels
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
_FLOAT64 = np.dtype(np.float64)
_LIGHTGBM_KEPT = (np.dtype(np.float32), _FLOAT64)  # native only: '>f8' is cast to float32 there
_isfinite = np.isfinite
_every = np.logical_and.reduce


#: float32 rounds a float64 of this magnitude or more to infinity (2**128 - 2**103: a tie
#: rounds to even, up): scikit-learn's trees cast X to float32 and refuse the infinity
FLOAT32_ROUNDS_TO_INF = 2.0**128 - 2.0**103


def ready_float64(
    X: Any, n_features: int, allow_nan: bool, within_float32: bool = False
) -> np.ndarray | None:
    """What ``as_float_matrix(X, n_features)`` returns, when X is already a valid model input:
    a native float64 2-D ndarray of ``n_features`` columns (-1: any) and at least one row,
    all finite; else None, and ``as_float_matrix`` must decide (and word any refusal).

    The numpy twin of the compiled ``float_input`` (_kernels/input.c), in the fewest numpy
    calls (a sum would be one pass, but it warns where it overflows or meets inf - inf). With
    ``allow_nan`` a NaN sends X to the full checks too, which let it through.
    """
    if type(X) is not np.ndarray or X.dtype is not _FLOAT64 or X.ndim != 2:
        return None
    rows, cols = X.shape
    if not rows or (n_features >= 0 and cols != n_features) or not _every(_isfinite(X), None):
        return None
    if within_float32 and not _every(np.abs(X) < FLOAT32_ROUNDS_TO_INF, None):
        return None
    if X.flags.writeable:
        X = X.view()
        X.flags.writeable = False
    return X


def column_names(X: Any) -> list[str] | None:
    """Column names of a DataFrame-like input (anything with string ``columns``), else None
    (no names at all, or names that are none of them strings: a DataFrame's default numbers,
    read by position as scikit-learn reads them). Names that are strings only in part, or that
    repeat, raise FeatureNamesError, as scikit-learn refuses them: which column is meant is
    not known."""
    columns = getattr(X, "columns", None)
    if columns is None or isinstance(X, np.ndarray):
        return None
    names = list(columns)
    strings = sum(isinstance(n, str) for n in names)
    if strings == 0:
        return None
    if strings < len(names):
        kinds = sorted({type(n).__name__ for n in names})
        raise FeatureNamesError(
            f"column names must all be strings to be read by name, got names of types {kinds} "
            f"([{', '.join(map(repr, names[:_SHOWN_NAMES]))}"
            f"{', ...' if len(names) > _SHOWN_NAMES else ''}]); name every column with a string "
            "(X.columns = X.columns.astype(str)) or pass an array to predict by position"
        )
    if len(set(names)) < len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise FeatureNamesError(
            f"column names appear more than once: {twice[:_SHOWN_NAMES]}; "
            "which of them the model should read is not known: give each column its own name"
        )
    return names


def as_float_matrix(
    X: Any,
    n_features: int | None,
    *,
    feature_names: Sequence[str] | None = None,
    categories: CategoryTables | None = None,
    allow_nan: bool = False,
    keep_float32: bool = False,
    widen_float16: bool = False,
    within_float32: bool = False,
    product_casts: str = "",
    numpy_float32: bool = False,
) -> np.ndarray:
    """Return ``X`` as a 2-D float64 array with ``n_features`` columns, or raise an InputError.

    ``product_casts``: the model's ``Executor.product_casts``; the input it names is converted
    into a C-ordered array, as numpy's matmul casts it there (else the conversion keeps X's
    layout, as scikit-learn's ``check_array`` does).

    ``numpy_float32``: an array or list whose numbers are of another dtype than native float32
    or float64 is rounded to float32 first (LightGBM); a DataFrame is not.

    ``within_float32``: a finite value that float32 rounds to infinity is refused (scikit-learn's
    trees validate X cast to float32).

    ``keep_float32``: float32 input stays float32 (models whose output keeps its dtype in
    scikit-learn: the scalers); float16 input is then refused (scikit-learn computes in
    float16 there), unless ``widen_float16`` (the first step widens it to float64 there too:
    KBinsDiscretizer).

    A DataFrame's category columns are recoded through ``categories`` when the model has them
    (runtime/_categories.py); any other input is read as it is, its values being codes.
    The result never lets anyone write into the caller's memory: it is either a fresh array
    (after a conversion) or a read-only view of ``X``.
    """
    if type(X) is np.ndarray:  # the hot path: no names, not sparse
        arr = X
    else:
        numpy_float32 = numpy_float32 and not is_frame(X) and not is_scipy_sparse(X)
        names = column_names(X)
        if feature_names is not None:
            _check_names(names, list(feature_names))
        if categories is not None and is_frame(X):
            arr = categories.frame_matrix(X, names)
        elif is_scipy_sparse(X):
            arr = _densified(X)
        else:
            numbers = _frame_numbers(X)
            arr = _as_array(X) if numbers is None else numbers
            if arr.dtype.kind == "O" and is_frame(X):  # nullable columns: pd.NA is NaN
                arr = _stack([frame_column(column) for _, column in X.items()], len(X))
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
        raise _not_2d(arr)
    if arr.shape[0] == 0:
        raise InputShapeError(f"expected at least 1 sample, got shape {arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise FeatureCountError(
            f"expected {n_features} features per sample, got {arr.shape[1]} "
            f"(input shape {arr.shape})"
        )
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 8:
        raise InputTypeError(
            f"got {arr.dtype} (long double) input: scikit-learn computes linear models and MLPs "
            "in long double and casts it for others (rounding once where float64 would round "
            "twice), modelshelf computes in float64: pass X.astype(np.float64), answered as "
            "scikit-learn answers float64 input"
        )
    if numpy_float32 and arr.dtype.kind in "biuf" and arr.dtype not in _LIGHTGBM_KEPT:
        arr = arr.astype(np.float32)  # LightGBM's _np2d_to_np1d: 2**24 + 1 becomes 2**24
    if keep_float32 and not widen_float16 and arr.dtype.kind == "f" and arr.dtype.itemsize == 2:
        raise InputTypeError(
            "got float16 input: scikit-learn computes this model's first step in float16 (it "
            "keeps its input's dtype), modelshelf does not; convert it first (X.astype("
            "np.float32) or np.float64), and both answer alike"
        )
    if keep_float32 and arr.dtype == np.float32 and arr.dtype.isnative:
        arr = arr.view()
        arr.flags.writeable = False
    elif arr.dtype != np.float64:  # also converts big-endian float64 to native
        arr = arr.astype(np.float64, order=cast_order(arr.dtype, product_casts))
    elif arr.flags.writeable:
        arr = arr.view()
        arr.flags.writeable = False
    check_finite(arr, allow_nan=allow_nan)
    if within_float32:
        check_float32_range(arr)
    return arr


def cast_order(dtype: np.dtype[Any], product_casts: str) -> Literal["C", "K"]:
    """The layout of ``dtype``'s conversion to float64 for a model whose ``product_casts`` is
    given: "C" where scikit-learn hands that dtype to numpy's matmul, which casts it into a
    C-ordered copy (a Fortran-ordered int or float32 DataFrame, the common case: its gemv then
    sums in another order), "K" (X's own layout) where its validation converts it."""
    if product_casts == "numeric" or (product_casts == "float32" and dtype == np.float32):
        return "C"
    return "K"


def check_float32_range(arr: np.ndarray, *, nested: bool = False) -> None:
    """Refuse a value float32 rounds to infinity (or an infinity), as scikit-learn's trees
    validate their input; ``nested``: the trees' input is what steps before them handed on."""
    with np.errstate(invalid="ignore"):  # NaN compares False: let through, as checked before
        beyond = np.abs(arr) >= FLOAT32_ROUNDS_TO_INF
    if not beyond.any():
        return
    row, column = (int(i) for i in np.argwhere(beyond)[0])
    where = "the trees' input (what the steps before them hand on) holds " if nested else "got "
    raise NonFiniteInputError(
        f"expected values within float32's range (|x| < 3.4028235e+38), {where}"
        f"X[{row}, {column}] = {float(arr[row, column])!r} ({int(beyond.sum())} cell(s)): "
        "scikit-learn's trees compare in float32, where it is infinity, and refuse it "
        "('Input X contains infinity or a value too large for dtype('float32')'); clip "
        "or impute such values first"
    )


def as_table(
    X: Any,
    n_features: int | None,
    *,
    feature_names: Sequence[str] | None = None,
    allow_nan: bool = False,
    used: np.ndarray | None = None,
    keep_float32: bool = False,
    widen_float16: bool = False,
    within_float32: bool = False,
) -> np.ndarray:
    """``X`` for a model that takes strings: ``as_float_matrix(X)`` when every column is
    numeric, else a 2-D object array of ``n_features`` columns (numeric columns of a DataFrame
    as float64 values, the others as numpy gives them: strings, None, NaN).

    ``used`` (a column transformer's mask of the columns it reads): a DataFrame's columns are
    then taken by name, as scikit-learn's column transformer takes them, in any order, extra
    ones ignored, and only those it reads required. ``keep_float32``, ``within_float32``: as in
    ``as_float_matrix``, for input of numbers only."""

    def numbers(arr: Any) -> np.ndarray:
        return as_float_matrix(
            arr,
            n_features,
            allow_nan=allow_nan,
            keep_float32=keep_float32,
            widen_float16=widen_float16,
            within_float32=within_float32,
        )

    if type(X) is np.ndarray and X.dtype.kind in "iu" and _beyond_doubles(X):
        X = X.astype(object)  # the encoders compare integers beyond 2**53 as integers
    if (type(X) is np.ndarray and X.dtype.kind in "biuf") or is_scipy_sparse(X):  # numbers only
        return numbers(X)
    if is_frame(X):
        names = column_names(X)
        fitted = None if feature_names is None else list(feature_names)
        if used is not None and names is not None and fitted is not None and names != fitted:
            columns = _by_name(X, names, fitted, used)
            if all(c.dtype.kind in "biuf" for c in columns) and not any(
                c.dtype.kind in "iu" and _beyond_doubles(c) for c in columns
            ):
                return numbers(_stack(columns, len(X)))
            arr = np.empty((len(X), len(columns)), dtype=object)
            for j, column in enumerate(columns):
                arr[:, j] = column
        else:
            if feature_names is not None:
                _check_names(names, list(feature_names))
            arr = _frame_objects(X)
            if arr.dtype.kind != "O" and _big_integer_columns(X, arr):
                arr = np.empty(X.shape, dtype=object)  # as above: integers stay integers
                for j, (_, column) in enumerate(X.items()):
                    arr[:, j] = frame_column(column)
            elif arr.dtype.kind != "O":
                return numbers(arr)
    else:
        arr = _as_array(X)
        if arr.dtype.kind in "US":  # a list's numbers became strings too: read it as objects
            arr = arr.astype(object) if isinstance(X, np.ndarray) else np.asarray(X, dtype=object)
        if arr.dtype.kind != "O":
            return numbers(arr)
    if arr.ndim != 2:  # before any conversion: one row of strings is a shape mistake
        raise _not_2d(arr)
    if arr.shape[0] == 0:
        return as_float_matrix(arr, n_features)  # raises the shape error
    if n_features is not None and arr.shape[1] != n_features:
        raise FeatureCountError(
            f"expected {n_features} features per sample, got {arr.shape[1]} "
            f"(input shape {arr.shape})"
        )
    if arr.flags.writeable:  # it may be the caller's array, or a view of a DataFrame's block
        arr = arr.view()
        arr.flags.writeable = False
    return arr


def _not_2d(arr: np.ndarray) -> InputShapeError:
    hint = " (for one sample, use X.reshape(1, -1), or a list of one row)" if arr.ndim == 1 else ""
    return InputShapeError(
        f"expected a 2-D array of shape (n_samples, n_features), got {arr.ndim}-D "
        f"shape {arr.shape}{hint}"
    )


_EXACT = 2**53  # integers up to this magnitude are exact doubles


def _beyond_doubles(x: np.ndarray) -> bool:
    """Integers that a double cannot hold exactly (64-bit IDs): as float64, an unseen one may
    equal a category seen at fit, where scikit-learn's encoders compare the integers."""
    return bool(x.size) and bool(((x > _EXACT) | (x < -_EXACT)).any())


def _big_integer_columns(X: Any, numbers: np.ndarray) -> bool:
    """Whether an integer column of the DataFrame ``X`` (read as ``numbers``) is beyond
    doubles: looked at column by column only if some number is at least 2**53 (a rounded
    integer is too), and never where the DataFrame holds no integers."""
    if numbers.dtype.kind in "iu":
        return _beyond_doubles(numbers)
    if numbers.dtype.kind != "f" or not numbers.size or not (np.abs(numbers) >= _EXACT).any():
        return False
    return any(
        isinstance(d, np.dtype) and d.kind in "iu" and _beyond_doubles(X.iloc[:, j].to_numpy())
        for j, d in enumerate(X.dtypes)
    )


def _frame_objects(X: Any) -> np.ndarray:
    """A DataFrame as one array in one pass (pandas interleaves its blocks; a column at a time
    costs a Series each): numeric if every column is, else objects, with the nullable numeric
    columns' ``pd.NA`` made NaN and everything numeric if only those made it objects."""
    arr = _frame_numbers(X)
    if arr is not None:
        return arr
    arr = _as_array(X)
    if arr.dtype.kind != "O":
        return arr
    dtypes = list(X.dtypes)
    nullable = [
        j
        for j, d in enumerate(dtypes)
        if not isinstance(d, np.dtype) and getattr(d, "kind", "O") in "biuf"
    ]
    if nullable:
        arr = arr.copy()  # a view of the caller's block must not be written
        for j in nullable:
            arr[:, j] = frame_column(X.iloc[:, j])
        if all(getattr(d, "kind", "O") in "biuf" for d in dtypes):
            return arr.astype(np.float64)
    return arr


def _frame_numbers(X: Any) -> np.ndarray | None:
    """A DataFrame's numbers from its ``to_numpy()`` (pandas interleaves its blocks as for
    ``np.asarray``), or None: not a DataFrame, or not all numbers (then ``np.asarray`` and the
    nullable columns' handling decide). pandas' ``__array__`` builds a Series of the dtypes on
    every call, which costs far more than the rest of a one-row prediction."""
    to_numpy = getattr(X, "to_numpy", None)
    if to_numpy is None or not is_frame(X):
        return None
    try:
        arr = np.asarray(to_numpy())
    except (ValueError, TypeError):
        return None
    return arr if arr.dtype.kind in "biuf" else None


def _by_name(X: Any, names: list[str], expected: list[str], used: Any) -> list[np.ndarray]:
    """The fitted columns of ``X`` in fitted order, by name; NaN for unread missing ones."""
    given = dict(X.items())
    missing = [n for j, n in enumerate(expected) if n not in given and used[j]]
    if missing:
        raise FeatureNamesError(
            f"input columns are missing {missing[:_SHOWN_NAMES]}, which the model reads: "
            f"expected {_shorten(expected)}, got {_shorten(names)}"
        )
    absent = np.full(len(X), np.nan)
    return [frame_column(given[n]) if n in given else absent for n in expected]


def as_numbers(X: np.ndarray, label: str, allow_nan: bool, why: str) -> np.ndarray:
    """Columns of a mixed input that a numeric transformer takes, as float64 (``label``, the
    part, names them in errors; ``why`` says why they must be numbers)."""
    try:
        arr = X.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(
            f"{label}: expected numbers ({why}), got values that do not convert to float ({exc})"
        ) from exc
    try:
        check_finite(arr, allow_nan=allow_nan)
    except NonFiniteInputError as exc:
        raise NonFiniteInputError(f"{label}: {exc}") from exc
    return arr


def is_frame(X: Any) -> bool:
    """Whether ``X`` is DataFrame-like: ``columns``, ``dtypes`` and ``items()``."""
    # Asked of the class first: pandas computes ``dtypes``, a Series, on every access.
    return _has(X, "columns") and _has(X, "dtypes") and _has(X, "items")


def _has(X: Any, name: str) -> bool:
    return hasattr(type(X), name) or hasattr(X, name)


def frame_column(column: Any) -> np.ndarray:
    """One DataFrame column as numpy: nullable numbers as float64 with NaN for ``pd.NA``
    (pandas extension dtypes of kind b, i, u, f), anything else as ``np.asarray`` gives it
    (category columns as their values, strings as objects)."""
    dtype = column.dtype
    if not isinstance(dtype, np.dtype) and getattr(dtype, "kind", "O") in "biuf":
        return np.asarray(column.to_numpy(dtype=np.float64, na_value=np.nan))
    return np.asarray(column)


def _stack(columns: list[np.ndarray], n_rows: int) -> np.ndarray:
    if not columns:
        return np.zeros((n_rows, 0))
    return np.column_stack(columns)


MAX_DENSE_CELLS = 1 << 26  # a sparse batch becomes at most 512 MiB of float64


def is_scipy_sparse(X: Any) -> bool:
    """A scipy.sparse matrix (or array), by its methods: scipy is not imported for it."""
    return hasattr(X, "toarray") and hasattr(X, "tocsr")


def _densified(X: Any) -> np.ndarray:
    """A scipy.sparse matrix as the dense array it stands for (implicit entries are 0.0, as
    scikit-learn reads them), for models that compute densely; bounded, since a sparse batch
    may stand for far more memory than it takes."""
    shape: tuple[int, ...] = tuple(getattr(X, "shape", ()))
    if len(shape) != 2:
        raise InputShapeError(f"expected a 2-D sparse matrix, got shape {shape}")
    if shape[0] * shape[1] > MAX_DENSE_CELLS:
        raise InputShapeError(
            f"a sparse batch of shape {shape} would take {shape[0] * shape[1] * 8:,} bytes as a "
            f"dense array, more than {MAX_DENSE_CELLS * 8:,}: predict in smaller batches of rows"
        )
    return np.asarray(X.toarray())


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
    # One pass in the common case: the compiled scan of a float64 or float32 block, else
    # numpy's isfinite and one reduction, cheaper than min and max (which propagate NaN and
    # serve objects); a sum would warn where it overflows, and np.errstate costs more than all.
    native = _kernels.all_finite()
    if native is not None and native(arr, allow_nan):
        return
    if arr.size == 0:
        return
    if arr.dtype.kind != "O":
        if _every(_isfinite(arr), None):
            return
    elif math.isfinite(arr.min()) and math.isfinite(arr.max()):
        return
    n_inf = int(np.count_nonzero(np.isinf(arr)))
    if n_inf:
        raise NonFiniteInputError(
            f"expected finite values, got infinity in {n_inf} cell(s): modelshelf refuses it "
            "for every model (scikit-learn's validation refuses it for most; its "
            "HistGradientBoosting, XGBoost, LightGBM and CatBoost answer it); for trees, clip "
            "it to a large finite value, which they answer as they answer infinity "
            "(np.nan_to_num(X, nan=np.nan, posinf=1e300, neginf=-1e300))"
        )
    if not allow_nan:
        n_nan = int(np.count_nonzero(np.isnan(arr)))
        if n_nan:
            raise NonFiniteInputError(
                f"expected no missing values, got NaN in {n_nan} cell(s); this model does not "
                "accept NaN (impute them first, or use a model with missing-value support)"
            )
