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
the row gives ``(good, total)`` by the CTR's type (absent: ``(0, 0)``, but ``(0, denominator)``
for Counter and FeatureFreq, as CatBoost's ``TStaticCtrProvider``), and the value is
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
_BLOCK = 1 << 16  # (CTR or element, row) pairs per block of rows
MAX_FEATURES = 1 << 24  # input columns: far above any CatBoost model's
MAX_WIDTH = 1 << 16  # values per table row (classes): far above any CatBoost model's
MAX_CTR_CELLS = 1 << 24  # CTRs x row width: the weights built at load stay below 32 MiB
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
        spec.check(self.values.shape[1] <= MAX_WIDTH, f"table rows hold at most {MAX_WIDTH}")
        spec.check(len(self.values) == len(self.hashes), "one table_values row per hash")
        self.table_info = spec.array("table_info", ndim=2, kind="i")
        n_tables = len(self.table_info)
        spec.check(self.table_info.shape[1] == 2, "table_info rows are (width, denominator)")
        self.table_offsets = _offsets(spec, "table_offsets", n_tables, len(self.hashes))
        widths = self.table_info[:, 0]
        if len(widths) and (widths.min() < 1 or widths.max() > self.values.shape[1]):
            spec.fail(f"table widths must lie in 1..{self.values.shape[1]}")

        self.ctrs = spec.array("ctr_features", ndim=2, kind="i")
        spec.check(self.ctrs.shape[1] == 4, "ctr_features rows are (projection, table, type, idx)")
        self.priors = spec.array("ctr_priors", ndim=2, kind="f")
        spec.check(self.priors.dtype == np.float32, "ctr_priors must be float32")
        spec.check(self.priors.shape == (len(self.ctrs), 4), "one ctr_priors row per CTR")
        if len(self.ctrs) * self.values.shape[1] > MAX_CTR_CELLS:
            spec.fail(f"CTRs times table width exceed {MAX_CTR_CELLS}")
        _indices(spec, self.ctrs[:, 0], n_proj, "CTR projections")
        _indices(spec, self.ctrs[:, 1], n_tables, "CTR tables")
        _indices(spec, self.ctrs[:, 2], len(CTR_TYPES), "CTR types")
        if len(self.ctrs):
            width = self.table_info[self.ctrs[:, 1], 0]
            _indices(spec, self.ctrs[:, 3], int(width.max()), "CTR target border indices")
            spec.check(bool(np.all(self.ctrs[:, 3] < width)), "a CTR reads past its table's row")
        self.n_out = len(self.float_columns) + len(self.onehot) + len(self.ctrs)
        self._derive()
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

    def _derive(self) -> None:
        """Small per-projection and per-CTR arrays the batch computation reads (O(P + R·w)
        vectorised work, no loop over the model): projection lengths and each CTR's row
        weights, ``good = row · a`` and ``total = row · b + denominator`` where found."""
        self.proj_lengths = np.diff(self.proj_offsets)
        self.max_length = int(self.proj_lengths.max()) if len(self.proj_lengths) else 0
        table, kind, index = self.ctrs[:, 1], self.ctrs[:, 2], self.ctrs[:, 3]
        width = self.table_info[table, 0][:, None]
        cols = np.arange(self.values.shape[1])[None, :]
        inside = cols < width
        mean = (kind == MEAN) | (kind == FLOAT_MEAN)
        counter = (kind == COUNTER) | (kind == FREQ)
        self.good_weights = np.select(
            [kind[:, None] == BORDERS, kind[:, None] == BUCKETS],
            [(cols > index[:, None]) & inside, cols == index[:, None]],
            cols == 0,
        )
        self.total_weights = np.select(
            [mean[:, None], counter[:, None]], [cols == np.minimum(1, width - 1), False], inside
        )
        self.denominators = np.where(counter, self.table_info[table, 1], 0).astype(np.float64)
        self.ctr_start = self.table_offsets[table]
        self.ctr_stop = self.table_offsets[table + 1]

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
        n_onehot = len(self.onehot)
        if n_onehot:
            out[:, n_float : n_float + n_onehot] = (
                hashes[self.onehot[:, 0]] == self.onehot[:, 1:]
            ).T
        if len(self.ctrs):
            # rows in blocks: the temporaries are (CTRs or elements) x rows
            widest = max(len(self.ctrs), len(self.elements), len(self.proj_lengths), 1)
            step = max(1, _BLOCK // widest)
            floats32 = floats.T.astype(np.float32)
            for a in range(0, n, step):
                part = slice(a, a + step)
                projected = self._project(hashes[:, part], floats32[:, part])
                out[part, n_float + n_onehot :] = self._ctr_values(projected[self.ctrs[:, 0]]).T
        return out

    def _project(self, hashes: np.ndarray, floats: np.ndarray) -> np.ndarray:
        """Every projection's hash, (P, n): each element's value for every row at once, then
        the projections folded element by element, all projections together."""
        kind, index, value = self.elements[:, 0], self.elements[:, 1], self.elements[:, 2:]
        is_float = kind == FLOAT_SPLIT
        cat_values = hashes[np.where(is_float, 0, index)] if len(hashes) else None
        bits = np.zeros((len(kind), hashes.shape[1]), dtype=np.uint64)
        if cat_values is not None:
            bits[:] = np.where(kind[:, None] == CAT_VALUE, cat_values, cat_values == value)
        if is_float.any():
            x = floats[index[is_float]]
            with np.errstate(invalid="ignore"):
                above = x > self.borders[is_float, None]
            bits[is_float] = np.where(np.isnan(x), value[is_float] != 0, above)
        out = np.zeros((len(self.proj_lengths), hashes.shape[1]), dtype=np.uint64)
        starts = self.proj_offsets[:-1]
        for step in range(self.max_length):
            live = self.proj_lengths > step
            out[live] = _combine(out[live], bits[starts[live] + step])
        return out

    def _ctr_values(self, queries: np.ndarray) -> np.ndarray:
        """Each CTR's value for each row, (R, n): its hash searched in its own table (between
        the table's offsets), then the weighted row where found."""
        good = np.zeros(queries.shape)
        # Counter's denominator counts whether the hash is found or not (CatBoost's emptyVal)
        total = np.repeat(self.denominators[:, None], queries.shape[1], axis=1)
        last = len(self.hashes) - 1
        if last >= 0:
            at = np.empty(queries.shape, dtype=np.int64)
            bounds = zip(self.ctr_start.tolist(), self.ctr_stop.tolist(), strict=True)
            for r, (start, stop) in enumerate(bounds):
                at[r] = start + np.searchsorted(self.hashes[start:stop], queries[r])
            found = at < self.ctr_stop[:, None]
            np.minimum(at, last, out=at)
            found &= self.hashes[at] == queries
            with np.errstate(all="ignore"):  # a hostile table's inf * 0 is NaN, not an error
                for k in range(self.values.shape[1]):  # integer counts: the sums are exact
                    column = np.where(found, self.values[:, k][at], 0.0)
                    good += column * self.good_weights[:, k, None]
                    total += column * self.total_weights[:, k, None]
        prior_num, prior_denom, shift, scale = (self.priors[:, k, None] for k in range(4))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ratio = (good.astype(np.float32) + prior_num) / (total.astype(np.float32) + prior_denom)
            result: np.ndarray = (ratio + shift) * scale
        return result
