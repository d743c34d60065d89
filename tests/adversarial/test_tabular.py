"""Hostile category tables (tabular input, format 1.1): whatever a manifest or a table's
contents say, loading raises ManifestError or builds a model, and a DataFrame prediction
returns or raises a ModelshelfError; it never reads outside an array or crashes otherwise.

Tables are checked at load in O(number of tables) (kinds, shapes, the vocabulary's runs), never
category by category: contents that stay in range (unsorted values, odd codes) may give wrong
predictions for a hostile image, never unsafe reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import modelshelf
from modelshelf.errors import ModelshelfError, UnknownCategoryError

from . import _raw
from ._fuzz import SCALE, SETTINGS, consume, mutated_manifest
from .generate import tabular_model


def frame(numbers: list[float], strings: list[str | None], codes: list[int]) -> pd.DataFrame:
    n = len(numbers)
    return pd.DataFrame(
        {
            "a": pd.Categorical(numbers, categories=[30.0, 20.0, 10.0, 99.0]),
            "b": pd.Categorical(strings, categories=["c", "b", "a"]),
            "c": pd.Categorical(codes, categories=[2, 1, 0]),
            "d": np.linspace(0.0, 1.0, n),
        }
    )


def _predict(data: bytes, X: Any) -> str:
    if consume(data) != "ok":
        return "refused"
    model = modelshelf.load(data)
    try:
        out = model.predict_proba(X)
    except ModelshelfError:
        return "refused"
    assert out.shape == (len(X), 3)
    return "ok"


def test_tabular_base_is_a_working_model() -> None:
    """Each ``tabular_*`` hostile file breaks one thing in this model: it loads and recodes."""
    arrays, manifest = tabular_model()
    model = modelshelf.load(_raw.assemble(arrays, manifest), verify=True)
    X = frame([10.0, 30.0], ["a", "c"], [0, 2])
    # numbers: 10 -> code 1, 30 -> 0; strings: a -> 1, c -> 2; codes: the DataFrame's own
    # (categories [2, 1, 0]: 0 is code 2, 2 is code 0).
    codes = np.array([[1.0, 1.0, 2.0, 0.0], [0.0, 2.0, 0.0, 1.0]])
    base = modelshelf.load(_raw.base_image())
    np.testing.assert_allclose(model.predict_proba(X), base.predict_proba(codes))
    with pytest.raises(UnknownCategoryError, match=r"column 'b' has categories .*\['zz'\]"):
        model.predict(X.assign(b=pd.Categorical(["zz", "a"])))


@settings(SETTINGS, max_examples=300 * SCALE)
@given(data=st.data())
def test_table_manifest_mutations(data: st.DataObject) -> None:
    arrays, manifest = tabular_model()
    sub = {"input": manifest["input"], "model": {"kind": "x"}}  # mutate the input only
    mutated = data.draw(mutated_manifest(sub, [n for n, _ in arrays]))
    if not isinstance(mutated, dict) or not isinstance(mutated.get("input"), dict):
        return
    manifest = {**manifest, "input": mutated["input"]}
    X = frame([10.0, 30.0], ["a", "c"], [0, 2])
    assert _predict(_raw.assemble(arrays, manifest), X) in ("ok", "refused")


_TABLE_ARRAYS = [name for name, _ in tabular_model()[0] if name.startswith("input/")]


@settings(SETTINGS, max_examples=300 * SCALE)
@given(data=st.data())
def test_table_content_mutations(data: st.DataObject) -> None:
    """Any values of any integer or float dtype, of any small shape, in any table array."""
    arrays, manifest = tabular_model()
    name = data.draw(st.sampled_from(_TABLE_ARRAYS))
    dtype = data.draw(st.sampled_from(["<i8", "<i4", "<u1", "<f8", "<f4"]))
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=5))
    hostile = data.draw(hnp.arrays(dtype, shape))
    arrays = [(n, hostile if n == name else a) for n, a in arrays]
    X = frame([10.0, 30.0, 99.0], ["a", "c", "b"], [0, 2, 1])
    assert _predict(_raw.assemble(arrays, manifest), X) in ("ok", "refused")
