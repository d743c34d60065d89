"""DataFrame input with category columns: the image's category tables recode them.

XGBoost and LightGBM split on a categorical feature's *codes*, and the code of a value is its
position among the categories the model was fitted on. A pandas ``category`` column carries its
own categories and codes, in whatever order it was declared, so a DataFrame is recoded through
the training categories (``input.categories`` in the manifest, docs/format.md "Tabular input"):
each category of the column is looked up among the training categories, and each row takes the
training code of its category. Arrays and lists are read as they are: their values are codes,
as both libraries read them.

One table per categorical feature:

- ``numbers``: the training categories as float64 ``values`` sorted ascending, with the training
  ``codes`` beside them; a category matches by value (``10 == 10.0``), as pandas matches them.
- ``strings``: the vocabulary string table of the text vectorizers (``terms``, ``runs``,
  ``columns``), whose columns are the training codes.
- ``codes``: the model recorded no categories (XGBoost before 3.1, a model fitted on an array):
  the library reads a category column's own codes, and a column of numbers as codes, and so
  does the runtime.

A category the model never saw is ``missing`` (NaN: LightGBM) or an ``error`` (XGBoost refuses
the DataFrame). pandas is never imported: a DataFrame is anything with ``columns``, ``dtypes``
and ``items()``, and a category column one whose dtype is named ``category`` (its ``array``
has ``categories`` and ``codes``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import FeatureCountError, InputTypeError, ManifestError, UnknownCategoryError
from ._base import Spec
from ._input import frame_column
from .text_lookup import Vocabulary

TABLES = ("numbers", "strings", "codes")
UNKNOWN = ("error", "missing")
_SHOWN = 8  # categories quoted in a message


class CategoryTable:
    """The training categories of one feature (see the module docstring)."""

    def __init__(
        self,
        column: int,
        table: str,
        unknown: str,
        values: np.ndarray | None = None,
        codes: np.ndarray | None = None,
        vocabulary: Vocabulary | None = None,
    ) -> None:
        self.column = column
        self.table = table
        self.unknown = unknown
        self.values = values
        self.codes = codes
        self.vocabulary = vocabulary

    @classmethod
    def from_spec(cls, spec: Spec, n_features: int) -> CategoryTable:
        """O(1) checks: kinds, shapes and the vocabulary's runs; never every category."""
        column = spec.param("column", int)
        spec.check(0 <= column < n_features, f"column {column} is outside 0..{n_features - 1}")
        table = spec.choice("table", TABLES)
        unknown = spec.choice("unknown", UNKNOWN, "missing")
        if table == "numbers":
            values = spec.array("values", ndim=1, kind="f")
            codes = spec.array("codes", ndim=1, kind="iu")
            spec.check(len(values) == len(codes), "values and codes differ in length")
            return cls(column, table, unknown, values=values, codes=codes)
        if table == "strings":
            return cls(column, table, unknown, vocabulary=Vocabulary.from_spec(spec))
        return cls(column, table, unknown)

    def recode(self, categories: np.ndarray) -> np.ndarray:
        """The training code of each of a column's categories (float64), -1 where unknown."""
        if self.table == "codes":
            return np.arange(len(categories), dtype=np.float64)
        found = np.full(len(categories), -1.0)
        if self.table == "numbers":
            assert self.values is not None and self.codes is not None
            numbers = _as_numbers(categories)
            if numbers is not None and len(self.values):
                at = np.minimum(np.searchsorted(self.values, numbers), len(self.values) - 1)
                hit = self.values[at] == numbers
                found[hit] = self.codes[at[hit]]
        else:
            assert self.vocabulary is not None
            strings = [c if isinstance(c, str) else None for c in categories.tolist()]
            text = [s for s in strings if s is not None]
            if text:
                where = np.flatnonzero([s is not None for s in strings])
                found[where] = self.vocabulary.lookup(text)
        return found


def _as_numbers(categories: np.ndarray) -> np.ndarray | None:
    """Categories as float64, NaN (which matches nothing) for any that is not a number: never
    parsed from strings ("10" is not 10 to pandas, nor to the libraries)."""
    if categories.dtype.kind in "biuf":
        return categories.astype(np.float64)
    if categories.dtype.kind == "O":
        items = categories.tolist()
        return np.array(
            [
                float(c) if isinstance(c, int | float | np.integer | np.floating) else np.nan
                for c in items
            ]
        )
    return None


class CategoryTables:
    """Every categorical feature's table, and the DataFrame -> float matrix conversion."""

    def __init__(self, tables: list[CategoryTable], n_features: int) -> None:
        self.tables = {t.column: t for t in tables}
        self.n_features = n_features

    @classmethod
    def from_manifest(cls, entries: Any, arrays: Any, n_features: Any) -> CategoryTables:
        if not isinstance(entries, list) or not entries:
            raise ManifestError("input categories must be a non-empty list of tables")
        if isinstance(n_features, bool) or not isinstance(n_features, int):
            raise ManifestError("input categories need an integer n_features")
        tables = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise ManifestError(f"input.categories[{i}] must be a JSON object")
            # An entry is flat: its keys are the params, "arrays" names its arrays by role.
            raw = {"arrays": entry.get("arrays", {}), "params": entry}
            spec = Spec(raw, arrays, f"input.categories[{i}]")
            tables.append(CategoryTable.from_spec(spec, n_features))
        columns = [t.column for t in tables]
        if columns != sorted(set(columns)):
            raise ManifestError(f"input categories' columns must rise strictly: {columns[:8]}")
        return cls(tables, n_features)

    def frame_matrix(self, X: Any, names: list[str] | None) -> np.ndarray:
        """``X`` (a DataFrame) as float64, category columns recoded; strict about dtypes.

        One pass over the columns (``X.items()``): selecting the numeric ones as a block
        (``X.iloc[:, cols]``) builds a new DataFrame, ten times the cost for one row."""
        n_columns = len(X.columns)
        if n_columns != self.n_features:
            raise FeatureCountError(
                f"expected {self.n_features} features per sample, got a DataFrame of "
                f"{n_columns} columns"
            )
        out = np.empty((len(X), self.n_features))
        for j, (_, column) in enumerate(X.items()):
            table = self.tables.get(j)
            if is_category(column.dtype):
                if table is None:
                    raise InputTypeError(
                        f"{_label(names, j)} is a 'category' column, but the model was fitted "
                        "on numbers there: pass it as numbers (X[name].astype(float))"
                    )
                out[:, j] = self._recode(table, column.array, _label(names, j))
            elif table is None or table.table == "codes":
                # Without recorded categories the libraries read numbers as codes.
                # nullable columns (boolean, Int64, Float64) read pd.NA as missing
                out[:, j] = _numbers_or_raise(frame_column(column))
            else:
                raise InputTypeError(
                    f"{_label(names, j)} was a 'category' column when the model was fitted, "
                    f"got dtype {column.dtype}: convert it (X[name].astype('category')); "
                    "categories are matched by value, in any order"
                )
        return out

    def _recode(self, table: CategoryTable, column: Any, label: str) -> np.ndarray:
        """A pandas Categorical's rows as training codes (NaN where missing or unknown)."""
        categories = np.asarray(column.categories)
        codes = np.asarray(column.codes, dtype=np.intp)
        known = table.recode(categories)
        unknown = known < 0
        if table.unknown == "error" and unknown.any():
            shown = categories[unknown][:_SHOWN].tolist()
            raise UnknownCategoryError(
                f"{label} has categories the model was not fitted with: {shown} "
                f"({int(unknown.sum())} in all); XGBoost refuses such a frame ('not in the "
                "training set'), whether rows hold them or not, though some of its paths "
                "answer such rows as its first category: remove them from the column's "
                "categories, mapping rows to a known category or to NaN (missing), before "
                "predicting (each answered as XGBoost answers it)"
            )
        known[unknown] = np.nan
        # A row's code -1 is pandas' missing value: NaN, the model's missing value too.
        recoded = np.full(len(codes), np.nan)
        present = codes >= 0
        recoded[present] = known[codes[present]]
        return recoded


def is_category(dtype: Any) -> bool:
    """Whether ``dtype`` is pandas' categorical dtype (by name: pandas is never imported)."""
    return getattr(dtype, "name", None) == "category"


def _numbers_or_raise(column: np.ndarray) -> np.ndarray:
    if column.dtype.kind in "biuf":
        return column
    try:
        return column.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(
            f"expected numeric columns besides the categorical ones, got values that do not "
            f"convert to float: {exc}"
        ) from exc


def _label(names: list[str] | None, j: int) -> str:
    return f"column {j}" if names is None else f"column {names[j]!r}"
