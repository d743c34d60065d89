"""CatBoost's input layer for categorical features: hashes, one-hot indicators, CTR values.

The ``catboost_features`` step turns a table (numbers and strings, docs/format.md "CatBoost
features") into the float64 matrix the oblivious trees split on (a boosted forest after it in a
pipeline reads that matrix as float32, as CatBoost compares float32 values with float32 borders):

- columns ``0..F-1``: the float features, as given (NaN kept: the trees route it);
- columns ``F..F+H-1``: one-hot indicators, 1.0 where the categorical feature's hash equals the
  split's value (a ``OneHotFeature`` split is then ``x > 0.5``);
- columns ``F+H..``: one value per CTR feature (``OnlineCtr`` splits compare it with borders).

A categorical value hashes as CatBoost's ``CalcCatFeatureHash``: CityHash64 of its bytes, the
low 32 bits, read as a signed int32 (runtime/_cityhash.py). Its bytes: a string's UTF-8, bytes
as they are, an integer's (bool's) decimal digits. CatBoost refuses floats, NaN and None in a
categorical column; so does this step, except an integral float, which is what a column of
integers becomes once a table of numbers is read as float64.

A CTR feature reads one projection's hash: ``h = 0``, then ``h = M * (h + M * b)`` (mod 2**64,
``M = 0x4906ba494954cb65``) for each element's ``b`` in order: a categorical hash (sign-extended
to 64 bits), a float split's bit ``x > border`` (float32; NaN takes the stored side), or a
one-hot bit. The hash is looked up in the CTR's table (sorted hashes, one row of counts each);
the row gives ``(good, total)`` by the CTR's type, ``(0, 0)`` when absent, and the value is
``((good + prior_num) / (total + prior_denom) + shift) * scale`` in float32, as CatBoost's
``TModelCtr::Calc``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import FeatureCountError, InputTypeError
from ._base import Executor, Spec, register
from ._cityhash import city_hash64
from ._input import as_numbers

_TRANSFORM = frozenset({"transform"})
#: CTR types, in the order of their codes in ``ctr_features[:, 2]``.
CTR_TYPES = (
    "Borders",
    "Buckets",
    "BinarizedTargetMeanValue",
    "FloatTargetMeanValue",
    "Counter",
    "FeatureFreq",
)
BORDERS, BUCKETS, MEAN, FLOAT_MEAN, COUNTER, FREQ = range(len(CTR_TYPES))
#: projection element kinds, ``proj_elements[:, 0]``
CAT_VALUE, FLOAT_SPLIT, EXACT_VALUE = 0, 1, 2
MAGIC = np.uint64(0x4906BA494954CB65)
_INT64_RANGE = (-(1 << 63), (1 << 63) - 1)
_EXACT_FLOATS = float(1 << 53)  # integral floats above this may not be the integer given
MAX_FEATURES = 1 << 24  # input columns: far above any CatBoost model's
_SHOWN = 40  # characters of a refused value quoted in a message


def _value_bytes(value: Any, label: str) -> bytes:
    """The bytes CatBoost hashes for one categorical value, or a refusal."""
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InputTypeError(f"{label}: {value[:_SHOWN]!r} is not valid text: {exc}") from exc
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool | np.bool_ | int | np.integer):
        number = int(value)
        if not _INT64_RANGE[0] <= number <= _INT64_RANGE[1]:
            raise InputTypeError(f"{label}: the integer {number} does not fit in 64 bits")
        return str(number).encode("ascii")
    if isinstance(value, float | np.floating):
        real = float(value)
        if real == real and real.is_integer() and abs(real) <= _EXACT_FLOATS:
            return str(int(real)).encode("ascii")
        what = "missing values (NaN)" if real != real else f"the real number {real!r}"
        raise InputTypeError(
            f"{label} is categorical: CatBoost refuses {what} there (categories are strings or "
            "integers); convert them as at training (for example to the string 'nan')"
        )
    what = "missing values (None)" if value is None else f"{type(value).__name__} values"
    raise InputTypeError(
        f"{label} is categorical: CatBoost refuses {what} there (categories are strings or "
        "integers); convert them as at training (for example to the string 'None')"
    )


def category_hashes(column: np.ndarray, label: str) -> np.ndarray:
    """Each value's CatBoost hash as int64 (a signed int32, sign-extended); each distinct value
    is hashed once."""
    items = column.tolist()
    known: dict[Any, int] = {}
    out = np.empty(len(items), dtype=np.int64)
    for i, value in enumerate(items):
        try:
            h = known.get(value)
        except TypeError:  # an unhashable object: refused below
            h = None
        if h is None:
            h = city_hash64(_value_bytes(value, label)) & 0xFFFFFFFF
            h = h - (1 << 32) if h >= 1 << 31 else h
            if value == value:  # NaN is refused above; never key a dict on it
                known[value] = h
        out[i] = h
    return out


def _combine(h: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CatBoost's ``CalcHash(a, b) = M * (a + M * b)`` modulo 2**64, for arrays."""
    with np.errstate(over="ignore"):
        return MAGIC * (h + MAGIC * b)


def _offsets(spec: Spec, role: str, count: int, total: int) -> np.ndarray:
    offsets = spec.array(role, ndim=1, kind="i")
    if len(offsets) != count + 1 or count < 0:
        spec.fail(f"{role} must hold {count + 1} offsets")
    if offsets[0] != 0 or offsets[-1] != total or np.any(np.diff(offsets) < 0):
        spec.fail(f"{role} must rise from 0 to {total}")
    return offsets


def _indices(spec: Spec, values: np.ndarray, bound: int, what: str) -> None:
    if len(values) and (values.min() < 0 or values.max() >= bound):
        spec.fail(f"{what} must lie in 0..{bound - 1}")


@register
class CatBoostFeatures(Executor):
    """A CatBoost model's float features, one-hot indicators and CTR values (see the module
    docstring)."""

    kind = "catboost_features"
    methods = _TRANSFORM
    allow_nan = True  # float features may be NaN (the trees route it)
    accepts_objects = True  # strings reach this step as they are

    def __init__(self, spec: Spec) -> None:
        self.n_features = spec.param("n_features", int)
        spec.check(1 <= self.n_features <= MAX_FEATURES, f"n_features must be 1..{MAX_FEATURES}")
        #: a DataFrame's columns are taken by name (runtime/_input.py, ``as_table``)
        self.used_columns = np.ones(self.n_features, dtype=bool)
        self.float_columns = spec.array("float_columns", ndim=1, kind="i")
        self.cat_columns = spec.array("cat_columns", ndim=1, kind="i")
        for role, columns in (
            ("float_columns", self.float_columns),
            ("cat_columns", self.cat_columns),
        ):
            _indices(spec, columns, self.n_features, role)
        n_cat = len(self.cat_columns)
        self.onehot = spec.array("onehot", ndim=2, kind="i")
        spec.check(self.onehot.shape[1] == 2, "onehot rows are (categorical feature, hash)")
        _indices(spec, self.onehot[:, 0], n_cat, "onehot features")
        self.elements = spec.array("proj_elements", ndim=2, kind="i")
        spec.check(self.elements.shape[1] == 3, "proj_elements rows are (kind, index, value)")
        self.borders = spec.array("proj_borders", ndim=1, kind="f")
        spec.check(self.borders.dtype == np.float32, "proj_borders must be float32")
        spec.check(len(self.borders) == len(self.elements), "one proj_border per element")
        kinds, index = self.elements[:, 0], self.elements[:, 1]
        _indices(spec, kinds, 3, "projection element kinds")
        _indices(spec, index[kinds != FLOAT_SPLIT], n_cat, "categorical features of projections")
        _indices(spec, index[kinds == FLOAT_SPLIT], len(self.float_columns), "float features")
        n_proj = spec.param("n_projections", int)
        self.proj_offsets = _offsets(spec, "proj_offsets", n_proj, len(self.elements))

        self.hashes = spec.array("table_hashes", ndim=1, kind="u")
        spec.check(self.hashes.dtype == np.uint64, "table_hashes must be uint64")
        self.values = spec.array("table_values", ndim=2, kind="f")
        spec.check(len(self.values) == len(self.hashes), "one table_values row per hash")
        self.table_info = spec.array("table_info", ndim=2, kind="i")
        n_tables = len(self.table_info)
        spec.check(self.table_info.shape[1] == 2, "table_info rows are (width, denominator)")
        self.table_offsets = _offsets(spec, "table_offsets", n_tables, len(self.hashes))
        _indices(spec, self.table_info[:, 0] - 1, self.values.shape[1], "table widths - 1")

        self.ctrs = spec.array("ctr_features", ndim=2, kind="i")
        spec.check(self.ctrs.shape[1] == 4, "ctr_features rows are (projection, table, type, idx)")
        self.priors = spec.array("ctr_priors", ndim=2, kind="f")
        spec.check(self.priors.dtype == np.float32, "ctr_priors must be float32")
        spec.check(self.priors.shape == (len(self.ctrs), 4), "one ctr_priors row per CTR")
        _indices(spec, self.ctrs[:, 0], n_proj, "CTR projections")
        _indices(spec, self.ctrs[:, 1], n_tables, "CTR tables")
        _indices(spec, self.ctrs[:, 2], len(CTR_TYPES), "CTR types")
        if len(self.ctrs):
            width = self.table_info[self.ctrs[:, 1], 0]
            _indices(spec, self.ctrs[:, 3], int(width.max()), "CTR target border indices")
            spec.check(bool(np.all(self.ctrs[:, 3] < width)), "a CTR reads past its table's row")
        self.n_out = len(self.float_columns) + len(self.onehot) + len(self.ctrs)
        #: set by the Model (``name_columns``): each input column's name, for errors.
        self.input_names: list[str] | None = None

    @classmethod
    def from_spec(cls, spec: Spec) -> CatBoostFeatures:
        return cls(spec)

    def name_columns(self, names: list[str]) -> None:
        if len(names) == self.n_features:
            self.input_names = names

    def _label(self, column: int) -> str:
        names = self.input_names
        return f"column {column}" if names is None else f"column {names[column]!r}"

    def transform(self, X: np.ndarray) -> np.ndarray:
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise FeatureCountError(
                f"expected {self.n_features} features per sample, got input of shape {X.shape}"
            )
        n, n_float = len(X), len(self.float_columns)
        out = np.empty((n, self.n_out))
        floats = X[:, self.float_columns]
        if floats.dtype.kind == "O":
            floats = as_numbers(floats, "float features", True, "they are not categorical")
        out[:, :n_float] = floats
        hashes = np.empty((len(self.cat_columns), n), dtype=np.int64)
        for j, column in enumerate(self.cat_columns.tolist()):
            hashes[j] = category_hashes(X[:, column], self._label(column))
        at = n_float
        for c, value in self.onehot.tolist():
            out[:, at] = hashes[c] == value
            at += 1
        if len(self.ctrs):
            projected = self._project(hashes, floats.astype(np.float32))
            out[:, at:] = self._ctr_values(projected).T
        return out

    def _project(self, hashes: np.ndarray, floats: np.ndarray) -> list[np.ndarray | None]:
        """The hash of every projection some CTR reads (None for the others)."""
        unsigned = hashes.view(np.uint64)
        needed = set(self.ctrs[:, 0].tolist())
        offsets = self.proj_offsets.tolist()
        out: list[np.ndarray | None] = [None] * (len(offsets) - 1)
        for p in needed:
            h = np.zeros(hashes.shape[1], dtype=np.uint64)
            for e in range(offsets[p], offsets[p + 1]):
                kind, index, value = self.elements[e].tolist()
                if kind == CAT_VALUE:
                    bit = unsigned[index]
                elif kind == EXACT_VALUE:
                    bit = (hashes[index] == value).astype(np.uint64)
                else:  # a float split: x > border in float32; NaN goes where ``value`` says
                    x = floats[:, index]
                    with np.errstate(invalid="ignore"):
                        above = x > self.borders[e]
                    above[np.isnan(x)] = bool(value)
                    bit = above.astype(np.uint64)
                h = _combine(h, bit)
            out[p] = h
        return out

    def _ctr_values(self, projected: list[np.ndarray | None]) -> np.ndarray:
        n = len(next(p for p in projected if p is not None))
        result = np.empty((len(self.ctrs), n), dtype=np.float32)
        offsets = self.table_offsets
        for i, (p, t, ctr_type, idx) in enumerate(self.ctrs.tolist()):
            h = projected[p]
            assert h is not None
            start, stop = int(offsets[t]), int(offsets[t + 1])
            width, denominator = self.table_info[t].tolist()
            good = np.zeros(n)
            total = np.zeros(n)
            if stop > start:
                keys = self.hashes[start:stop]
                pos = np.minimum(np.searchsorted(keys, h), stop - start - 1)
                found = keys[pos] == h
                rows = self.values[start + pos[found], :width]
                if ctr_type == BORDERS:
                    good[found] = rows[:, idx + 1 :].sum(axis=1)
                    total[found] = rows.sum(axis=1)
                elif ctr_type == BUCKETS:
                    good[found] = rows[:, idx]
                    total[found] = rows.sum(axis=1)
                elif ctr_type in (MEAN, FLOAT_MEAN):
                    good[found] = rows[:, 0]
                    total[found] = rows[:, min(1, width - 1)]
                else:
                    good[found] = rows[:, 0]
                    total[found] = denominator
            prior_num, prior_denom, shift, scale = self.priors[i]
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                good32, total32 = good.astype(np.float32), total.astype(np.float32)
                result[i] = ((good32 + prior_num) / (total32 + prior_denom) + shift) * scale
        return result
