"""OneHotEncoder and OrdinalEncoder to specs, on numeric and string categories.

Each column's categories are stored in scikit-learn's order (``categories_``): numbers as
float64, strings as a vocabulary string table like the text vectorizers', None and NaN by
position. What scikit-learn recomputes at every transform (the infrequent grouping, dropped
categories, the encoded missing value) is resolved here once into one output per category.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

from ..runtime.encoders import ONE_HOT_DTYPES, ORDINAL_DTYPES
from ..runtime.text_lookup import build_vocabulary
from ._context import Context, converter, unsupported


@converter(OneHotEncoder)
def _one_hot_encoder(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    handle_unknown = est.handle_unknown
    if handle_unknown not in ("error", "ignore", "infrequent_if_exist", "warn"):
        modes = "'error', 'ignore' or 'infrequent_if_exist'"
        raise unsupported(est, f"handle_unknown={handle_unknown!r}", f"use {modes}")
    dtype = np.dtype(est.dtype).name
    if dtype not in ONE_HOT_DTYPES:
        raise unsupported(est, f"dtype={dtype}", f"use one of {', '.join(ONE_HOT_DTYPES)}")
    n_features = len(est.categories_)
    n_outs = list(est._n_features_outs)
    starts = np.cumsum([0, *n_outs])
    enabled = est._infrequent_enabled
    mappings = est._default_to_infrequent_mappings if enabled else [None] * n_features
    infrequent = est._infrequent_indices if enabled else [None] * n_features
    drops = est._drop_idx_after_grouping
    codes, unknown = [], []
    for i, cats in enumerate(est.categories_):
        # The integer code scikit-learn gives each category, after grouping and dropping.
        x_int = np.arange(len(cats), dtype=np.int64)
        if mappings[i] is not None:
            x_int = np.asarray(mappings[i], dtype=np.int64)[x_int]
        col = x_int + starts[i]
        to_drop = None if drops is None else drops[i]
        if to_drop is not None:
            col = np.where(x_int > to_drop, col - 1, col)
            col[x_int == to_drop] = -1
        codes.append(col)
        # Unknown values become the infrequent category where there is one and the mode says
        # so; otherwise no column is set (or, with "error", transform raises).
        rare = infrequent[i]
        if rare is not None and handle_unknown in ("infrequent_if_exist", "warn"):
            unknown.append(int(col[rare[0]]))
        else:
            unknown.append(-1)
    warn = handle_unknown == "warn" or (
        est.drop is not None and handle_unknown in ("ignore", "infrequent_if_exist")
    )
    arrays, strings, integers = _categories(est, ctx, path)
    params: dict[str, Any] = {
        "n_out": int(starts[-1]),
        "handle_unknown": handle_unknown,
        "warn_unknown": bool(warn),
    }
    if dtype != "float64":
        params["dtype"] = dtype
    if getattr(est, "sparse_output", False):
        # scikit-learn's default: what follows computes on the nonzeros (a linear model's
        # scores are their sum in column order), and so does the runtime
        params["sparse_output"] = True
    if strings:
        params["strings"] = strings
    if integers:
        params["integer_columns"] = integers
    arrays |= {
        "codes": np.concatenate(codes).astype(np.int64),
        "unknown": np.asarray(unknown, dtype=np.int64),
    }
    return ctx.spec("one_hot_encoder", path, arrays=arrays, params=params)


@converter(OrdinalEncoder)
def _ordinal_encoder(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    dtype = np.dtype(est.dtype).name
    if dtype not in ORDINAL_DTYPES:
        raise unsupported(est, f"dtype={dtype}", f"use one of {', '.join(ORDINAL_DTYPES)}")
    enabled = est._infrequent_enabled
    missing = est._missing_indices
    values = []
    for i, cats in enumerate(est.categories_):
        # As OrdinalEncoder.transform: codes grouped (the missing category excepted), then
        # every code equal to the missing category's position is the encoded missing value.
        x_int = np.arange(len(cats), dtype=np.int64)
        mapping = est._default_to_infrequent_mappings[i] if enabled else None
        if mapping is not None:  # it has no entry for the missing category, which is last
            grouped = x_int != missing.get(i, -1)
            x_int[grouped] = np.asarray(mapping, dtype=np.int64)[x_int[grouped]]
        out = x_int.astype(np.float64)
        if i in missing:
            out[x_int == missing[i]] = float(est.encoded_missing_value)
        values.append(out)
    unknown = np.nan if est.unknown_value is None else float(est.unknown_value)
    arrays, strings, integers = _categories(est, ctx, path)
    arrays |= {
        "values": np.concatenate(values),
        "unknown": np.full(len(values), unknown),
    }
    params: dict[str, Any] = {"handle_unknown": est.handle_unknown, "dtype": dtype}
    if strings:
        params["strings"] = strings
    if integers:
        params["integer_columns"] = integers
    return ctx.spec("ordinal_encoder", path, arrays=arrays, params=params)


def _categories(
    est: Any, ctx: Context, path: str
) -> tuple[dict[str, np.ndarray], list[dict[str, Any]], list[int]]:
    """The ``categories`` and ``offsets`` arrays, the string tables (stored under ``path``)
    of the columns whose categories are strings, and the columns whose categories are
    integers (integer input beyond 2**53 is compared with them as integers: ``params``)."""
    slots, strings, integers = [], [], []
    for i, cats in enumerate(est.categories_):
        cats = np.asarray(cats)
        if cats.dtype.kind in "US" or (
            cats.dtype.kind == "O" and any(isinstance(c, str) for c in cats)
        ):
            strings.append(_string_table(est, ctx, f"{path}/strings_{i}", i, cats))
            slots.append(np.full(len(cats), np.nan))
        else:
            numbers_of, integral = _numeric_categories(est, i, cats)
            slots.append(numbers_of)
            if integral:
                integers.append(i)
    if strings:
        ctx.takes_strings = True
    arrays = {
        "categories": np.concatenate(slots),
        "offsets": np.cumsum([0, *map(len, slots)]).astype(np.int64),
    }
    return arrays, strings, integers


def _string_table(est: Any, ctx: Context, base: str, column: int, cats: np.ndarray) -> dict:
    """Column ``column``'s string categories as a vocabulary of positions; None and NaN by
    position (scikit-learn puts them last, None first)."""
    entry: dict[str, Any] = {"column": column, "none": None, "nan": None}
    vocabulary: dict[str, int] = {}
    for position, value in enumerate(cats.tolist()):
        if isinstance(value, str) and position == len(vocabulary):
            vocabulary[value] = position
        elif value is None and entry["none"] is None:
            entry["none"] = position
        elif isinstance(value, float) and math.isnan(value) and entry["nan"] is None:
            entry["nan"] = position
        else:
            raise unsupported(
                est,
                f"the categories of column {column} ({cats[:6].tolist()!r}...), which mix "
                "strings with other values or put a missing value before a string",
                "give the column strings only (missing values as None or NaN), or numbers",
            )
    arrays = build_vocabulary(vocabulary)
    entry["arrays"] = {role: ctx.builder.add(f"{base}/{role}", a) for role, a in arrays.items()}
    return entry


def _numeric_categories(est: Any, column: int, cats: np.ndarray) -> tuple[np.ndarray, bool]:
    """Column ``column``'s categories as float64, and whether they are integers (scikit-learn
    then compares integer input as integers); UnsupportedModelError if they are not numbers
    (or would not stay distinct and sorted as doubles, or exact)."""
    cats = np.asarray(cats)
    integers = cats.tolist() if cats.dtype.kind in "iu" else None
    if cats.dtype.kind == "O" and all(
        isinstance(c, numbers.Real) and not isinstance(c, bool) for c in cats
    ):
        if all(isinstance(c, numbers.Integral) for c in cats):
            integers = [int(c) for c in cats]  # Python ints, compared as integers
        cats = cats.astype(np.float64)
    if cats.dtype.kind not in "biuf":
        kinds = sorted({type(c).__name__ for c in cats.tolist()})
        numbers_and_none = cats.dtype.kind == "O" and all(
            c is None or (isinstance(c, numbers.Real) and not isinstance(c, bool))
            for c in cats.tolist()
        )
        raise unsupported(
            est,
            f"categories of types {kinds} in column {column}",
            "a column of numbers takes NaN as its missing value, not None (refit on "
            "X[column].astype(float))"
            if numbers_and_none
            else "give each column numbers, or strings (strings take None or NaN as missing)",
        )
    out = cats.astype(np.float64)
    if integers is not None and any(
        int(f) != c for f, c in zip(out.tolist(), integers, strict=True) if abs(c) > 2**53
    ):
        raise unsupported(
            est,
            f"integer categories of column {column} beyond 2**53 that are not exact doubles",
            "use integers of at most 2**53 in magnitude, or strings",
        )
    finite = out[~np.isnan(out)]
    if not np.all(np.diff(finite) > 0) or np.isnan(out[: len(finite)]).any():
        raise unsupported(
            est,
            f"categories of column {column} that are not distinct doubles",
            "use integers of at most 2**53 in magnitude, or strings",
        )
    return out, integers is not None
