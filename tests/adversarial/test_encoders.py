"""Hostile encoders on strings and hostile pandas output (issue 10): whatever the encoders'
specs, string tables or ``output`` say, loading raises ManifestError or builds a model, and a
DataFrame transform returns or raises a ModelshelfError; it never reads outside an array or
crashes otherwise.

Like the category tables, string tables are checked at load in O(number of columns) (slots,
the vocabulary's runs), never string by string: contents that stay in range may give wrong
answers for a hostile image, never unsafe reads.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

import modelshelf
from modelshelf.errors import ManifestError, ModelshelfError
from modelshelf.image import Image

from . import _raw
from ._fuzz import SCALE, SETTINGS, consume, mutated_manifest

TRAIN = pd.DataFrame(
    {
        "plan": ["basic", "pro", None, "pro", "team", "basic"],
        "city": pd.Series(["köln", "paris", "rome", np.nan, "köln", "rome"], dtype="str"),
        "n": [1.0, 2.0, 3.0, 1.0, np.nan, 2.0],
    }
)
TEST = pd.DataFrame(
    {
        "plan": ["pro", "free", None, "basic"],
        "city": pd.Series(["rome", np.nan, "oslo", "köln"], dtype="str"),
        "n": [2.0, 7.0, np.nan, 1.0],
    }
)


@functools.cache
def _base() -> tuple[list[tuple[str, np.ndarray]], dict[str, Any]]:
    """A column transformer with both encoders on strings, numbers and missing values, and
    pandas output: its arrays and manifest."""
    est = ColumnTransformer(
        [
            ("oh", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["plan", "city"]),
            ("ord", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), [0, 2]),
        ]
    ).set_output(transform="pandas")
    image = Image.open(modelshelf.compile(est.fit(TRAIN)))
    return list(image.arrays.items()), image.manifest


def _transform(data: bytes) -> str:
    if consume(data) != "ok":
        return "refused"
    model = modelshelf.load(data)
    try:
        with warnings.catch_warnings():
            # a mutated manifest may ask for scikit-learn's warning about unknown values
            warnings.filterwarnings("ignore", "Found unknown categories", UserWarning)
            out = model.transform(TEST)
    except ModelshelfError:
        return "refused"
    assert len(out) == len(TEST)
    return "ok"


def test_base_is_a_working_model() -> None:
    arrays, manifest = _base()
    model = modelshelf.load(_raw.assemble(arrays, manifest), verify=True)
    out = model.transform(TEST)
    assert isinstance(out, pd.DataFrame) and out.shape == (4, 10)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m.update(output=[]), "output must be"),
        (lambda m: m.update(output={"transform": "polars", "columns": []}), "output must be"),
        (lambda m: m["output"].update(columns="abc"), "output columns must list"),
        (lambda m: m["output"].update(columns=[1, 2]), "output columns must list"),
        (lambda m: m["input"].update(type="tabular", categories=None), "non-empty list"),
        (lambda m: _oh(m)["params"].update(strings={}), "parameter 'strings'"),
        (lambda m: _oh(m)["params"]["strings"].append("x"), "more than the 2 columns"),
        (lambda m: _oh(m)["params"]["strings"][0].update(column=2), "column 2 is invalid"),
        (lambda m: _oh(m)["params"]["strings"][1].update(column=0), "column 0 is invalid"),
        (lambda m: _oh(m)["params"]["strings"][0].update(none=4), "none and nan must be < 4"),
        (lambda m: _oh(m)["params"]["strings"][0].update(nan=True), "parameter 'nan'"),
        (lambda m: _oh(m)["params"]["strings"][0].pop("arrays"), "missing array 'terms'"),
        (lambda m: _oh(m)["params"].update(n_out=2**63 - 1), "n_out must lie in"),
        (lambda m: _oh(m)["params"].update(n_out=-1), "n_out must lie in"),
        (lambda m: _ord(m)["params"].update(dtype="complex128"), "parameter 'dtype'"),
        (lambda m: _ord(m)["params"].update(handle_unknown="ignore"), "handle_unknown"),
        # hypothesis found it: a width of 2**63 reached np.zeros as a ValueError
        (lambda m: m["model"]["params"].update(n_features=2**63), "'n_features' must be in"),
        (lambda m: m["model"]["params"].update(n_features=-3), "'n_features' must be in"),
    ],
)
def test_hostile_encoder_fields_are_refused_at_load(edit: Any, match: str) -> None:
    import copy

    arrays, manifest = _base()
    manifest = copy.deepcopy(manifest)
    edit(manifest)
    with pytest.raises(ManifestError, match=match):
        modelshelf.load(_raw.assemble(arrays, manifest))


def test_output_names_must_match_the_transform() -> None:
    import copy

    arrays, manifest = _base()
    manifest = copy.deepcopy(manifest)
    manifest["output"]["columns"] = manifest["output"]["columns"][:3]
    model = modelshelf.load(_raw.assemble(arrays, manifest))
    with pytest.raises(ManifestError, match="output names 3 columns"):
        model.transform(TEST)


def _part(manifest: dict[str, Any], i: int) -> dict[str, Any]:
    part: dict[str, Any] = manifest["model"]["params"]["parts"][i]["transformer"]
    return part


def _oh(manifest: dict[str, Any]) -> dict[str, Any]:
    return _part(manifest, 0)


def _ord(manifest: dict[str, Any]) -> dict[str, Any]:
    return _part(manifest, 1)


@settings(SETTINGS, max_examples=300 * SCALE)
@given(data=st.data())
def test_encoder_manifest_mutations(data: st.DataObject) -> None:
    arrays, manifest = _base()
    mutated = data.draw(mutated_manifest(manifest, [n for n, _ in arrays]))
    if not isinstance(mutated, dict):
        return
    assert _transform(_raw.assemble(arrays, mutated)) in ("ok", "refused")


@settings(SETTINGS, max_examples=300 * SCALE)
@given(data=st.data())
def test_encoder_array_mutations(data: st.DataObject) -> None:
    """Any values of any integer or float dtype, of any small shape, in any encoder array."""
    arrays, manifest = _base()
    name = data.draw(st.sampled_from([n for n, _ in arrays]))
    dtype = data.draw(st.sampled_from(["<i8", "<i4", "<u1", "<f8", "<f4"]))
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=6))
    hostile = data.draw(hnp.arrays(dtype, shape))
    mutated = [(n, hostile if n == name else a) for n, a in arrays]
    assert _transform(_raw.assemble(mutated, manifest)) in ("ok", "refused")


@pytest.mark.parametrize(
    "fill_values",
    [["a"], "ab", [True, "b", "c"], [None, "b", "c"], [{"a": 1}, "b", "c"]],
    ids=["short", "string", "bool", "null", "object"],
)
def test_hostile_string_fill_values_are_refused(fill_values: Any) -> None:
    from sklearn.impute import SimpleImputer

    est = SimpleImputer(strategy="most_frequent").fit(TRAIN[["plan", "city"]].assign(n="x"))
    image = Image.open(modelshelf.compile(est))
    manifest = {**image.manifest}
    manifest["model"] = {**manifest["model"], "params": {**manifest["model"]["params"]}}
    manifest["model"]["params"]["fill_values"] = fill_values
    with pytest.raises(ManifestError, match="fill_values"):
        modelshelf.load(_raw.assemble(list(image.arrays.items()), manifest))
