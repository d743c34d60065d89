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
        indices = _column_indices(est, name, columns, n)
        if indices.size == 0:
            continue  # scikit-learn neither fits nor calls a transformer without columns
        i = len(parts)
        child = None
        if not _is(given.get(name), "passthrough"):
            child = ctx.convert(fitted, f"{path}/{i}")
        weight = weights.get(name)
        parts.append(
            {
                "name": name,
                "transformer": child,
                "weight": None if weight is None else float(weight),
            }
        )
        arrays[f"columns_{i}"] = indices
    return ctx.spec(
        "column_transformer", path, arrays=arrays, params={"n_features": n, "parts": parts}
    )


def _column_indices(est: Any, name: str, key: Any, n: int) -> np.ndarray:
    """The input column indices ``key`` selects: ints, slices and boolean masks; no names."""
    names = unsupported(
        est, f"selecting columns by name (transformer {name!r}: {key!r}); select by index"
    )
    if isinstance(key, slice):
        if isinstance(key.start, str) or isinstance(key.stop, str):
            raise names
        return np.arange(n, dtype=np.int64)[key]
    if isinstance(key, str):
        raise names
    if np.isscalar(key):
        # One scalar column hands the transformer a 1-D array (a text column, typically).
        raise unsupported(est, f"a scalar column selection (transformer {name!r}: {key!r})")
    values = list(key)
    if any(isinstance(v, str) for v in values):
        raise names
    if not values:
        return np.zeros(0, dtype=np.int64)
    arr = np.asarray(values)
    if arr.dtype.kind == "b":
        if arr.shape != (n,):
            raise unsupported(est, f"a boolean column mask of shape {arr.shape}, not ({n},)")
        return np.flatnonzero(arr).astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise unsupported(est, f"column selection {key!r} (transformer {name!r})")
    return np.arange(n, dtype=np.int64)[arr]  # negative indices count from the end
