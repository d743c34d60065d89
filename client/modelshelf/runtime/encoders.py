"""Categorical encoders: OneHotEncoder and OrdinalEncoder, on numeric and string categories.

Both find each value's *position* among its column's categories (scikit-learn's
``categories_[i]``), then map positions to outputs resolved at compile time (one-hot columns
after infrequent grouping and drops; ordinal values after grouping, missing values encoded).

- Numeric columns: ``categories[offsets[i]:offsets[i + 1]]``, float64 sorted with NaN last; a
  value matches by equality (NaN matches NaN).
- String columns (``strings``): a vocabulary string table per column (text_lookup.py) maps each
  string to its position; ``none`` and ``nan`` are the positions of None and NaN when the
  encoder saw them at fit (scikit-learn keeps both, strings first, then None, then NaN). Their
  slots of ``categories`` hold NaN and are never read. Anything else in a string column (a
  number, ``pd.NA``) matches nothing, as in scikit-learn.

Input is a float64 matrix, or a 2-D object array when a DataFrame (or an object array) mixes
strings and numbers: numeric columns are then read as float64, string columns value by value.
"""

from __future__ import annotations

import datetime
import numbers
import warnings
from typing import Any

import numpy as np

from ..errors import InputTypeError, ManifestError, UnknownCategoryError
from ._base import Executor, Spec, register
from ._sparse import CSRMatrix, index_dtype
from .preprocessing import check_width
from .text_lookup import Vocabulary

_TRANSFORM = frozenset({"transform"})
_SHOWN = 10  # categories quoted in a message


# Values that are never a string column's category: numbers and dates (an unknown string, or
# another object such as pandas' NA, is an unknown category, as scikit-learn finds it).
_NOT_CATEGORIES = (
    int, float, complex, np.number, np.bool_, bytes,
    datetime.date, datetime.timedelta, np.datetime64, np.timedelta64,
)  # fmt: skip


class StringColumn:
    """The string categories of one column: their vocabulary, and the positions of None and
    NaN among the column's ``size`` categories (-1: not seen at fit)."""

    def __init__(self, vocabulary: Vocabulary, size: int, none: int, nan: int) -> None:
        self.vocabulary = vocabulary
        self.size = size
        self.none = none
        self.nan = nan

    def positions(self, values: np.ndarray, label: str) -> np.ndarray:
        """Each value's position among the categories, -1 where it is none of them. A number
        or a date raises InputTypeError: where strings were fitted it is a mistake, not an
        unknown category (scikit-learn refuses a numeric or datetime column there)."""
        items = values.tolist()
        out = np.full(len(items), -1, dtype=np.int64)
        strings, where = [], []
        for j, v in enumerate(items):
            if isinstance(v, str):
                strings.append(v)
                where.append(j)
            elif v is None:
                out[j] = self.none
            elif isinstance(v, float | np.floating) and v != v:  # is_scalar_nan: any real NaN
                out[j] = self.nan
            elif isinstance(v, _NOT_CATEGORIES):
                raise InputTypeError(
                    f"{label}: expected strings (the encoder was fitted on strings there), got "
                    f"{v!r} of type {type(v).__name__} in row {j}; convert the column to str "
                    "(X[column].astype(str)) if these are categories"
                )
        if strings:
            out[where] = self.vocabulary.lookup(strings)
        return out

    def category(self, position: int) -> Any:
        """The category at ``position`` (for messages only: O(vocabulary))."""
        if position in (self.none, self.nan):
            return None if position == self.none else float("nan")
        vocab = self.vocabulary
        at = np.flatnonzero(vocab.columns == position)
        if not at.size:
            return "?"
        index, seen = int(at[0]), 0
        for length, offset, count in vocab.runs.tolist():
            if index < seen + count:
                start = offset + length * (index - seen)
                return bytes(vocab.blob[start : start + length]).decode("utf-8", "surrogatepass")
            seen += count
        return "?"


class Categories:
    """Every input column's categories (see the module docstring)."""

    def __init__(
        self,
        categories: np.ndarray,
        offsets: np.ndarray,
        strings: dict[int, StringColumn],
        integers: frozenset[int] = frozenset(),
    ) -> None:
        self.categories = categories
        self.offsets = offsets
        self.strings = strings
        self.integers = integers  # columns whose categories are integers
        self.n_features = len(offsets) - 1

    @classmethod
    def from_spec(cls, spec: Spec) -> Categories:
        """O(number of columns) checks: offsets against categories, each string table's runs
        and its slots; never every category."""
        categories = spec.array("categories", ndim=1)
        offsets = spec.array("offsets", ndim=1, kind="iu")
        n = len(offsets) - 1
        spec.check(n >= 0, "offsets must hold n_features + 1 values")
        spec.check(
            int(offsets[0]) == 0
            and int(offsets[-1]) == len(categories)
            and bool(np.all(np.diff(offsets.astype(np.int64)) > 0)),
            "offsets must rise from 0 to the number of categories, every column having one",
        )
        entries = spec.param("strings", list, [])
        spec.check(len(entries) <= n, f"strings lists more than the {n} columns")
        strings: dict[int, StringColumn] = {}
        for k, entry in enumerate(entries):
            spec.check(isinstance(entry, dict), f"strings[{k}] must be an object")
            # An entry is flat: its keys are the params, "arrays" names its arrays by role.
            raw = {"arrays": entry.get("arrays", {}), "params": entry}
            sub = Spec(raw, spec.arrays, f"{spec.path}.strings[{k}]")
            column = sub.param("column", int)
            sub.check(0 <= column < n and column not in strings, f"column {column} is invalid")
            size = int(offsets[column + 1]) - int(offsets[column])
            vocabulary = Vocabulary.from_spec(sub)
            sub.check(len(vocabulary) <= size, f"more strings than the column's {size} slots")
            slots = [sub.param(key, (int, type(None)), None) for key in ("none", "nan")]
            sub.check(
                all(s is None or 0 <= s < size for s in slots), f"none and nan must be < {size}"
            )
            none, nan = (-1 if s is None else s for s in slots)
            strings[column] = StringColumn(vocabulary, size, none, nan)
        integers = spec.param("integer_columns", list, [])
        spec.check(
            all(type(c) is int and 0 <= c < n and c not in strings for c in integers),
            f"integer_columns must list numeric columns of the {n}",
        )
        return cls(categories, offsets, strings, frozenset(integers))

    def positions(self, X: np.ndarray, i: int, label: str) -> tuple[np.ndarray, np.ndarray]:
        """(position of each value of column ``i``, whether it is a known category); unknown
        values get position 0."""
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        table = self.strings.get(i)
        if table is not None:
            pos = table.positions(X[:, i], label)
            found = pos >= 0
            pos[~found] = 0
            return pos, found
        column = original = X[:, i]
        strings = None
        if column.dtype.kind == "O":
            # anything but a number is an unknown category here, as scikit-learn compares
            # objects: a string is never parsed, and None or pd.NA is not the NaN category
            strings = np.fromiter(map(_not_number, column.tolist()), dtype=bool, count=len(column))
            if strings.any():
                column = np.where(strings, np.nan, column)
            else:
                strings = None
        x = _numbers(column, label)
        cats = self.categories[lo:hi]
        pos = np.searchsorted(cats, x)  # sorts NaN last, as the categories are
        np.minimum(pos, hi - lo - 1, out=pos)
        found = cats[pos] == x
        if np.isnan(cats[-1]):
            found |= np.isnan(x) & (pos == hi - lo - 1)
        if i in self.integers:  # as scikit-learn: integers against integer categories
            found &= ~_rounded_onto(original, cats[pos], found)
        if strings is not None:
            found &= ~strings
            pos[strings] = 0
        return pos, found

    def unknown_error(self, i: int, label: str, values: np.ndarray) -> UnknownCategoryError:
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        table = self.strings.get(i)
        if table is None:
            known = [_show(v) for v in self.categories[lo : min(hi, lo + _SHOWN)].tolist()]
            if values.dtype.kind == "O":  # strings among them: shown as given
                unseen = sorted({_show(v) for v in values.tolist()})[:5]
            else:
                unseen = [_show(v) for v in np.unique(_numbers(values, label))[:5].tolist()]
        else:
            known = [_show(table.category(p)) for p in range(min(hi - lo, _SHOWN))]
            unseen = sorted({_show(v) for v in values.tolist()})[:5]
        listed = f"[{', '.join(unseen)}]"
        others = f" (unknown values in this column: {listed})" if len(unseen) > 1 else ""
        more = ", ..." if hi - lo > _SHOWN else ""
        return UnknownCategoryError(
            f"{label}: value {unseen[0]} is not one of the {hi - lo} categories seen at fit "
            f"time [{', '.join(known)}{more}]{others}"
        )


_EXACT = 2**53  # integers up to this magnitude are exact doubles


def _rounded_onto(original: np.ndarray, matched: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Where an integer beyond 2**53 was found only because its double is a category's: an
    unseen 64-bit ID that rounds to a fitted one is unknown to scikit-learn, which compares
    integers with integer categories (exact: compile refuses others). Float categories are
    compared as doubles there, integer input included: not called for them."""
    kind = original.dtype.kind
    if kind == "i":
        big = found & ((original > _EXACT) | (original < -_EXACT))
    elif kind == "u":
        big = found & (original > _EXACT)
    elif kind == "O":
        big = found & np.fromiter(
            (_big_integer(v) for v in original.tolist()), dtype=bool, count=len(original)
        )
    else:
        return np.zeros(len(original), dtype=bool)
    rows = np.flatnonzero(big)
    if len(rows):
        big[rows] = [
            int(v) != int(c)
            for v, c in zip(original[rows].tolist(), matched[rows].tolist(), strict=True)
        ]
    return big


def _big_integer(value: Any) -> bool:
    return (
        isinstance(value, numbers.Integral)
        and not isinstance(value, bool)
        and abs(int(value)) > _EXACT
    )


def _not_number(value: Any) -> bool:
    return not isinstance(value, numbers.Number)


def _numbers(x: np.ndarray, label: str) -> np.ndarray:
    if x.dtype.kind == "f":
        return x
    try:
        return x.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(
            f"{label}: expected numbers (the encoder was fitted on numeric categories there), "
            f"got {x[:3].tolist()!r}: {exc}"
        ) from exc


def _show(value: Any) -> str:
    if isinstance(value, int | float | np.number) and not isinstance(value, bool):
        return repr(float(value))
    return repr(value)


class _Encoder(Executor):
    """What both encoders share: their categories, and naming columns as the caller sees them."""

    methods = _TRANSFORM
    allow_nan = True  # NaN is a category like any other: known if seen at fit, else unknown
    accepts_objects = True  # strings reach the encoder as they are

    def __init__(self, categories: Categories) -> None:
        self.categories = categories
        self.n_features = categories.n_features
        #: set by a column transformer: which of its input columns each column is, for errors.
        self.input_columns: np.ndarray | None = None
        #: set by the Model (``name_columns``): each column's name, for errors.
        self.input_names: list[str] | None = None

    def name_columns(self, names: list[str]) -> None:
        """Name the columns in errors as the caller's DataFrame does (the model's input)."""
        if len(names) == self.n_features:
            self.input_names = names

    def _label(self, i: int) -> str:
        if self.input_names is not None:
            return f"column {self.input_names[i]!r}"
        if self.input_columns is None:
            return f"column {i}"
        return f"input column {int(self.input_columns[i])}"


# How a one-hot encoder treats a value it never saw at fit time.
UNKNOWN_MODES = ("error", "ignore", "infrequent_if_exist", "warn")


# Output dtypes a OneHotEncoder may have (scikit-learn's ``dtype``).
ONE_HOT_DTYPES = ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8")


@register
class OneHotEncoder(_Encoder):
    """One-hot encoding in scikit-learn's ``dtype`` (float64 by default): sparse (a
    ``CSRMatrix``) where scikit-learn's was (``sparse_output``, its default), dense otherwise.

    ``codes`` at each category's slot is the output column it sets, or -1 for none (a dropped
    category); infrequent grouping and drops are resolved at compile time into these codes.
    ``unknown[i]`` is the output column an unseen value sets (the infrequent column), or -1
    for none; with ``handle_unknown="error"`` it raises instead.
    """

    kind = "one_hot_encoder"

    def __init__(
        self,
        categories: Categories,
        codes: np.ndarray,
        unknown: np.ndarray,
        n_out: int,
        handle_unknown: str,
        warn_unknown: bool,
        sparse: bool = False,
        dtype: str = "float64",
    ) -> None:
        super().__init__(categories)
        self.codes = codes
        self.unknown = unknown
        self.n_out = n_out
        self.handle_unknown = handle_unknown
        self.warn_unknown = warn_unknown
        self.sparse = sparse
        self.dtype = np.dtype(dtype)

    @classmethod
    def from_spec(cls, spec: Spec) -> OneHotEncoder:
        categories = Categories.from_spec(spec)
        codes = _vector(spec, "codes", len(categories.categories), "i")
        unknown = _vector(spec, "unknown", categories.n_features, "i")
        n_out = spec.param("n_out", int)
        # each output column is some category's (or an unknown's): no more columns than those
        spec.check(
            0 <= n_out <= len(codes) + len(unknown),
            f"n_out must lie in [0, {len(codes) + len(unknown)}] (categories and unknowns), "
            f"got {n_out}",
        )
        for role, arr in (("codes", codes), ("unknown", unknown)):
            spec.check(
                arr.size == 0 or (int(arr.min()) >= -1 and int(arr.max()) < n_out),
                f"{role} must lie in [-1, n_out={n_out})",
            )
        return cls(
            categories,
            codes,
            unknown,
            n_out,
            spec.choice("handle_unknown", UNKNOWN_MODES),
            spec.param("warn_unknown", bool, False),
            spec.param("sparse_output", bool, False),
            spec.choice("dtype", ONE_HOT_DTYPES, "float64"),
        )

    def transform(self, X: np.ndarray) -> np.ndarray | CSRMatrix:
        check_width(X, self.n_features, "this one-hot encoder")
        n = len(X)
        columns = np.empty((n, self.n_features), dtype=np.intp)  # each row's column per feature
        with_unknown = []
        for i in range(self.n_features):
            pos, found = self.categories.positions(X, i, self._label(i))
            col = self.codes[int(self.categories.offsets[i]) + pos]
            if not found.all():
                if self.handle_unknown == "error":
                    raise self.categories.unknown_error(i, self._label(i), X[~found, i])
                with_unknown.append(i)
                col[~found] = self.unknown[i]
            columns[:, i] = col
        out = self._encoded(columns)
        if with_unknown and self.warn_unknown:
            grouped = self.handle_unknown in ("infrequent_if_exist", "warn")
            then = "encoded as the infrequent category." if grouped else "encoded as all zeros"
            warnings.warn(
                f"Found unknown categories in columns {with_unknown} during transform. "
                f"These unknown categories will be {then}",
                UserWarning,
                stacklevel=2,
            )
        return out

    def _encoded(self, columns: np.ndarray) -> np.ndarray | CSRMatrix:
        """The ones at ``columns`` (-1: none). Sparse as scikit-learn builds it: each row's
        columns in feature order, which is ascending (feature i's outputs precede i + 1's)."""
        hit = columns >= 0
        n = len(columns)
        if not self.sparse:
            out = np.zeros((n, self.n_out), dtype=self.dtype)
            rows = np.broadcast_to(np.arange(n)[:, None], columns.shape)
            out[rows[hit], columns[hit]] = 1.0
            return out
        itype = index_dtype(columns.size, self.n_out)  # at most one value per cell of columns
        if hit.all():  # one column per feature in every row: no mask to apply
            indices = columns.reshape(-1).astype(itype)
            indptr = np.arange(n + 1, dtype=itype) * itype.type(columns.shape[1])
        else:
            indptr = np.zeros(n + 1, dtype=itype)
            np.cumsum(hit.sum(axis=1), out=indptr[1:])
            indices = columns[hit].astype(itype)  # row-major: row by row, features in order
        return CSRMatrix(np.ones(len(indices), self.dtype), indices, indptr, (n, self.n_out))


# Output dtypes an OrdinalEncoder may have (scikit-learn's ``dtype``).
ORDINAL_DTYPES = ("float64", "float32", "float16", "int64", "int32", "int16", "int8")


@register
class OrdinalEncoder(_Encoder):
    """Ordinal encoding: ``values`` at each category's slot is its output (its code after
    infrequent grouping; ``encoded_missing_value`` for the missing category), ``unknown[i]``
    an unseen value's (``unknown_value``), unless ``handle_unknown`` is ``"error"``. The
    float64 result is cast to ``dtype`` last, as scikit-learn casts its codes."""

    kind = "ordinal_encoder"

    def __init__(
        self,
        categories: Categories,
        values: np.ndarray,
        unknown: np.ndarray,
        handle_unknown: str,
        dtype: str,
    ) -> None:
        super().__init__(categories)
        self.values = values
        self.unknown = unknown
        self.handle_unknown = handle_unknown
        self.dtype = np.dtype(dtype)

    @classmethod
    def from_spec(cls, spec: Spec) -> OrdinalEncoder:
        categories = Categories.from_spec(spec)
        return cls(
            categories,
            _vector(spec, "values", len(categories.categories), "f"),
            _vector(spec, "unknown", categories.n_features, "f"),
            spec.choice("handle_unknown", ("error", "use_encoded_value")),
            spec.choice("dtype", ORDINAL_DTYPES, "float64"),
        )

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.n_features, "this ordinal encoder")
        out = np.empty((len(X), self.n_features))
        for i in range(self.n_features):
            pos, found = self.categories.positions(X, i, self._label(i))
            out[:, i] = self.values[int(self.categories.offsets[i]) + pos]
            if not found.all():
                if self.handle_unknown == "error":
                    raise self.categories.unknown_error(i, self._label(i), X[~found, i])
                out[~found, i] = self.unknown[i]
        if self.dtype == np.float64:
            return out
        if self.dtype.kind == "i" and not np.isfinite(out).all():
            raise ManifestError(f"an ordinal encoder of dtype {self.dtype} produced NaN")
        return out.astype(self.dtype)


def _vector(spec: Spec, role: str, n: int, kind: str) -> np.ndarray:
    arr: np.ndarray = spec.array(role, ndim=1, kind=kind)
    spec.check(arr.shape == (n,), f"array {role!r} must hold {n} values, found {arr.shape}")
    return arr


@register
class TargetEncoder(_Encoder):
    """Each category replaced by its fitted encoding (one column, or one per class).

    Feature ``i``'s categories are read as the other encoders' (numbers sorted, NaN last if
    seen; strings through the column's string table), their encodings are the same rows of
    ``encodings`` (total, c); a value never seen gets ``unknown`` (the target mean, (c,)).
    Labels are present for a binary (c = 1) or multiclass (c = classes) target.
    """

    kind = "target_encoder"

    def __init__(
        self,
        categories: Categories,
        encodings: np.ndarray,
        unknown: np.ndarray,
        classes: np.ndarray | None,
    ) -> None:
        super().__init__(categories)
        self.encodings = encodings
        self.unknown = unknown
        self.classes_ = classes

    @classmethod
    def from_spec(cls, spec: Spec) -> TargetEncoder:
        categories = Categories.from_spec(spec)
        encodings = spec.array("encodings", ndim=2)
        spec.check(
            len(encodings) == len(categories.categories) and encodings.shape[1] >= 1,
            "encodings must hold one row per category",
        )
        unknown = _vector(spec, "unknown", encodings.shape[1], "f")
        classes = None
        if "classes" in spec.raw.get("arrays", {}) or "classes" in spec.raw.get("params", {}):
            classes = spec.labels()
            need = 1 if len(classes) == 2 else len(classes)
            spec.check(encodings.shape[1] == need, f"{len(classes)} classes need {need} columns")
        return cls(categories, encodings, unknown, classes)

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_width(X, self.n_features, "this target encoder")
        c = self.encodings.shape[1]
        out = np.empty((len(X), self.n_features * c))
        for i in range(self.n_features):
            pos, found = self.categories.positions(X, i, self._label(i))
            block = out[:, i * c : (i + 1) * c]
            block[:] = self.encodings[int(self.categories.offsets[i]) + pos]
            block[~found] = self.unknown
        return out
