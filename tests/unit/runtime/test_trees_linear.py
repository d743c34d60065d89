"""Linear leaves (LightGBM's linear_tree) and XGBoost's gblinear on hand-written images:
the terms in order, the leaf value when an input is NaN, tiny inputs read as 0, float32 sums,
and manifest faults."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import modelshelf
from modelshelf.errors import FeatureCountError, ManifestError

from .test_trees import REGRESSOR, image, two_trees


def linear_trees(**overrides: Any) -> dict[str, Any]:
    """``two_trees`` with its leaves (10, 20, 30, 100) as rows of a table, and linear models:
    1 + 1e36·x0; 5; 0 + 3·x1 + 1·x0; 100."""
    arrays = two_trees(
        threshold=np.array([0.5, 0.0, -1.0, 1.0, 2.0, 3.0]),
        leaf_values=np.array([[10.0], [20.0], [30.0], [100.0]]),
        linear_const=np.array([1.0, 5.0, 0.0, 100.0]),
        linear_offsets=np.array([0, 1, 1, 3, 3], np.int32),
        linear_feature=np.array([0, 1, 0], np.int32),
        linear_coeff=np.array([1e36, 3.0, 1.0]),
    )
    arrays.update(overrides)
    return arrays


def test_linear_leaves() -> None:
    model = modelshelf.load(image("boosted_regressor", linear_trees(), REGRESSOR))
    X = np.array([[0.0, 5.0], [1e-36, 5.0], [0.25, 5.0], [1.0, 5.0], [1.0, -2.0], [np.nan, 5.0]])
    expected = [101, 101, 1 + 1e36 * 0.25 + 100, 0 + 15.0 + 1.0 + 100, 105, 30 + 100]
    assert model.predict(X).tolist() == expected
    for i in range(len(X)):  # one row at a time walks by table: the same leaves
        assert model.predict(X[i : i + 1]).tolist() == [expected[i]]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"leaf_values": None}, "need a leaf_values table"),
        ({"linear_offsets": np.array([0, 1, 3], np.int32)}, "one more than linear_const"),
        ({"linear_offsets": np.array([0, 1, 1, 3, 4], np.int32)}, "from 0 to 3 terms"),
        ({"linear_coeff": np.ones(3, np.float32)}, "float64"),
        ({"linear_coeff": np.ones(2)}, "one linear_coeff per linear_feature"),
        ({"linear_feature": None}, "missing array 'linear_feature'"),
    ],
)
def test_linear_leaf_faults(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        modelshelf.load(image("boosted_regressor", linear_trees(**overrides), REGRESSOR))


def test_linear_leaf_out_of_range_column_is_a_manifest_error() -> None:
    arrays = linear_trees(linear_feature=np.array([0, 7, 0], np.int32))
    with pytest.raises(ManifestError, match="linear_feature must name input columns"):
        modelshelf.load(image("boosted_regressor", arrays, REGRESSOR))  # checked at load


LINEAR = {"n_features": 3, "link": "identity", "methods": ["predict"], "allow_nan": True}


def gblinear(coef: Any, intercept: Any, **params: Any) -> modelshelf.Model:
    arrays = {"coef": coef, "intercept": intercept}
    return modelshelf.load(image("boosted_linear_regressor", arrays, LINEAR | params))


def test_gblinear_sums_in_float32_in_column_order() -> None:
    coef = np.array([[1.0], [1e-8], [-1.0]], np.float32)
    model = gblinear(coef, np.array([0.5], np.float32))
    X = np.array([[1e8, 1.0, -1e8], [np.nan, 3.0, 2.0], [0.1, 0.2, 0.3]])
    out = model.predict(X)
    assert out.dtype == np.float32
    for row, got in zip(X, out, strict=True):
        s = np.float32(0.5)
        for x, w in zip(row.astype(np.float32), coef[:, 0], strict=True):
            if not np.isnan(x):
                s = np.float32(s + np.float32(x * w))
        assert got == s
    assert model.predict(X[:1])[0] == out[0]
    with pytest.raises(FeatureCountError, match="expects 3 features"):
        model.predict(np.zeros((1, 2)))


@pytest.mark.parametrize(
    ("coef", "intercept", "message"),
    [
        (np.zeros((3, 1)), np.zeros(1, np.float32), "float32 weights"),
        (np.zeros((2, 1), np.float32), np.zeros(1, np.float32), "coef must be"),
        (np.zeros((3, 2), np.float32), np.zeros(1, np.float32), "coef must be"),
        (np.zeros(3, np.float32), np.zeros(1, np.float32), "1 dimensions"),
    ],
)
def test_gblinear_faults(coef: Any, intercept: Any, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        gblinear(coef, intercept)
