"""Pipelines and column transformers to specs whose children are specs."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from ._context import Context, converter, unsupported


def _is(step: Any, word: str) -> bool:
    return isinstance(step, str) and step == word


@converter(Pipeline)
def _pipeline(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    steps = []
    for i, (_, step) in enumerate(est.steps):
        if step is None or _is(step, "passthrough"):
            continue  # scikit-learn skips them, in every method
        steps.append(ctx.convert(step, f"{path}/{i}"))
    params: dict[str, Any] = {"steps": steps}
    last = est.steps[-1][1]
    if last is None or _is(last, "passthrough"):
        params["final"] = "passthrough"
    return ctx.spec("pipeline", path, params=params)


@converter(ColumnTransformer)
def _column_transformer(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    n = int(est.n_features_in_)
    # transformers_ holds fitted transformers; a 'passthrough' there has become a fitted
    # FunctionTransformer, so the unfitted list tells which parts pass columns through.
    given = {name: trans for name, trans, _ in est.transformers}
    given["remainder"] = est.remainder
    weights = est.transformer_weights or {}
    parts: list[dict[str, Any]] = []
    arrays: dict[str, np.ndarray] = {}
    for name, fitted, columns in est.transformers_:
        if _is(fitted, "drop") or _is(given.get(name), "drop"):
            continue
        # One scalar column (a name or an index) hands the transformer a 1-D column: the
        # documents of a text vectorizer, scikit-learn's way of vectorizing a text column.
        one_column = isinstance(columns, str | int | np.integer) and not isinstance(columns, bool)
        if one_column and not _takes_documents(fitted):
            raise unsupported(
                est,
                f"transformer {name!r} takes the single column {columns!r}, which scikit-learn "
                "hands it as a 1-D column (only a text vectorizer, or a pipeline that starts "
                "with one, reads a 1-D column)",
                f"select [{columns!r}] to give it a 2-D column",
            )
        indices = _column_indices(est, name, columns, n)
        if indices.size == 0:
            continue  # scikit-learn neither fits nor calls a transformer without columns
        i = len(parts)
        child = None
        if not _is(given.get(name), "passthrough"):
            child = ctx.convert(fitted, f"{path}/{i}")
        weight = weights.get(name)
        part: dict[str, Any] = {
            "name": name,
            "transformer": child,
            "weight": None if weight is None else float(weight),
        }
        if one_column:
            part["one_column"] = True
        parts.append(part)
        arrays[f"columns_{i}"] = indices
    params: dict[str, Any] = {"n_features": n, "parts": parts}
    if getattr(est, "sparse_output_", False):
        # fixed at fit (sparse parts and a density below sparse_threshold): the parts are
        # stacked as a sparse matrix at every transform
        params["stack"] = "sparse"
    if _pandas_output(est):
        # scikit-learn then keeps passed-through columns in a DataFrame, pd.NA included
        params["pandas_output"] = True
    return ctx.spec("column_transformer", path, arrays=arrays, params=params)


def _pandas_output(est: Any) -> bool:
    """Whether ``set_output(transform="pandas")`` applies to ``est`` (directly, or through
    the pipeline it is a step of: set_output configures the steps)."""
    from sklearn.utils._set_output import _get_output_config

    try:
        return bool(_get_output_config("transform", est)["dense"] == "pandas")
    except (AttributeError, KeyError, TypeError, ValueError):  # another scikit-learn's internals
        return False


def _takes_documents(transformer: Any) -> bool:
    """A text vectorizer, or a pipeline whose first step is one: it reads a 1-D column."""
    from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer

    while isinstance(transformer, Pipeline):
        steps = [s for _, s in transformer.steps if s is not None and not _is(s, "passthrough")]
        if not steps:
            return False
        transformer = steps[0]
    return isinstance(transformer, CountVectorizer | HashingVectorizer)  # Tfidf: a Count


def _column_indices(est: Any, name: str, key: Any, n: int) -> np.ndarray:
    """The input column indices ``key`` selects, as scikit-learn resolved them at fit time:
    names (a DataFrame's), ``make_column_selector`` and other callables, ints, slices of
    either, boolean masks. Images store the indices; names are checked on the whole input."""
    if isinstance(key, str | int | np.integer) and not isinstance(key, bool):
        key = [key]  # one column (a text vectorizer's documents: see the caller)
    resolved = getattr(est, "_transformer_to_input_indices", {}).get(name)
    if resolved is not None:
        return np.asarray(resolved, dtype=np.int64).reshape(-1)
    return _resolve(est, name, key, n)


def _resolve(est: Any, name: str, key: Any, n: int) -> np.ndarray:
    """``key`` resolved by hand (scikit-learn without ``_transformer_to_input_indices``)."""
    names = [str(c) for c in getattr(est, "feature_names_in_", [])]
    if isinstance(key, slice):
        if isinstance(key.start, str) or isinstance(key.stop, str):
            # A slice of names includes its end, as DataFrame.loc does.
            lo = 0 if key.start is None else names.index(key.start)
            hi = n if key.stop is None else names.index(key.stop) + 1
            return np.arange(lo, hi, dtype=np.int64)
        return np.arange(n, dtype=np.int64)[key]
    values = list(key)
    if not values:
        return np.zeros(0, dtype=np.int64)
    if all(isinstance(v, str) for v in values):
        missing = [v for v in values if v not in names]
        if missing:
            raise unsupported(
                est,
                f"transformer {name!r} selects columns {missing[:8]}, which are not among the "
                "fitted feature names",
                "fit it on a DataFrame that has them",
            )
        return np.asarray([names.index(v) for v in values], dtype=np.int64)
    arr = np.asarray(values)
    if arr.dtype.kind == "b" and arr.shape == (n,):
        return np.flatnonzero(arr).astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise unsupported(
            est,
            f"transformer {name!r}'s column selection {key!r}",
            "select columns by names, indices, a slice, a boolean mask or make_column_selector",
        )
    return np.arange(n, dtype=np.int64)[arr]  # negative indices count from the end
