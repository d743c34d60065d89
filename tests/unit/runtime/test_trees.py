"""The tree runtime on hand-written images: layout semantics (docs/format.md, tree ensembles),
summation order, categorical columns, manifest faults, and a reference interpreter run on
random forests deep and wide enough to exercise compaction and row blocks. Every test runs on
both kernels, numpy and compiled (tests/kernels.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import modelshelf
from modelshelf.errors import FeatureCountError, ManifestError
from modelshelf.image import ImageBuilder
from modelshelf.runtime import trees_forest

pytestmark = pytest.mark.usefixtures("kernel")

S = 2  # the sentinel column of two-feature models


def image(kind: str, arrays: dict[str, Any], params: dict[str, Any]) -> bytes:
    builder = ImageBuilder()
    refs = {role: builder.add(f"m/{role}", a) for role, a in arrays.items() if a is not None}
    manifest = {
        "model": {"kind": kind, "arrays": refs, "params": params},
        "input": {"type": "numeric", "n_features": None, "feature_names": None},
        "metadata": {},
    }
    return builder.build(manifest)


def two_trees(**overrides: Any) -> dict[str, Any]:
    """Tree 0: x0 > 0.5 ? (x1 > -1 ? 30 : 20) : 10, NaN at the root goes right.
    Tree 1: a single leaf, 100."""
    arrays = {
        "feature": np.array([0, S, 1, S, S, S], np.int32),
        "threshold": np.array([0.5, 10.0, -1.0, 20.0, 30.0, 100.0]),
        "child": np.array([1, 1, 3, 3, 4, 5], np.int32),
        "missing": np.packbits([1, 0, 0, 0, 0, 0], bitorder="little"),
        "roots": np.array([0, 5], np.int32),
    }
    arrays.update(overrides)
    return arrays


REGRESSOR = {
    "n_features": 2,
    "depth": 2,
    "link": "identity",
    "methods": ["predict", "decision_function"],
    "allow_nan": True,
}


def regressor(arrays: dict[str, Any] | None = None, **params: Any) -> modelshelf.Model:
    return modelshelf.load(image("boosted_regressor", arrays or two_trees(), REGRESSOR | params))


def test_splits_leaves_and_missing_values() -> None:
    model = regressor()
    X = np.array([[0, 5], [1, 5], [1, -2], [np.nan, -2], [0.5, 0], [1, np.nan], [1, -1]])
    assert model.predict(X).tolist() == [110, 130, 120, 120, 110, 120, 120]
    assert model.decision_function(X).tolist() == model.predict(X).tolist()
    assert not hasattr(model, "predict_proba")


def test_absent_missing_array_sends_nan_to_the_first_child() -> None:
    model = regressor(two_trees(missing=None))
    assert model.predict(np.array([[np.nan, 5.0]])).tolist() == [110]


def test_groups_base_and_divisor() -> None:
    params = {"groups": [0, 1, 2], "divisor": 4}
    model = regressor(two_trees(base=np.array([1.0, 2.0])), **params)
    X = np.array([[1.0, 5.0]])
    assert model.decision_function(X).tolist() == [[31.0, 102.0]]  # raw: never divided
    assert model.predict(X).tolist() == [[31.0 / 4, 102.0 / 4]]


def test_leaf_values_table() -> None:
    arrays = two_trees(
        threshold=np.array([0.5, 0, -1.0, 1, 2, 3], np.float32),
        leaf_values=np.array([[1.0, -1], [2, -2], [3, -3], [4, -4]]),
    )
    params = {"n_features": 2, "depth": 2, "allow_nan": False, "divisor": 2}
    model = modelshelf.load(image("tree_regressor", arrays, params))
    out = model.predict(np.array([[0.0, 0.0], [1.0, 5.0]]))
    assert out.tolist() == [[2.5, -2.5], [3.5, -3.5]]
    assert out.dtype == np.float64


def test_float32_inputs_compare_after_rounding() -> None:
    t = np.float32(0.1)  # 0.1 in float64 is above float32(0.1)
    arrays = two_trees(threshold=np.array([t, 10, -1, 20, 30, 100], np.float32))
    model = regressor(arrays, input_cast="float32")
    X = np.array([[0.1, -5.0], [np.nextafter(np.float64(t), 1), -5.0]])
    # float32(0.1) == t goes left; the next float64 rounds back to t: left too.
    assert model.predict(X).tolist() == [110, 110]
    assert regressor(arrays, input_cast="float64").predict(X).tolist() == [110, 120]


def test_sums_follow_tree_order_to_the_last_bit() -> None:
    rng = np.random.default_rng(0)
    n_trees = 40
    values = rng.normal(size=n_trees) * 10.0 ** rng.integers(-8, 8, size=n_trees)
    arrays = {
        "feature": np.full(n_trees, 1, np.int32),
        "threshold": values,
        "child": np.arange(n_trees, dtype=np.int32),
        "roots": np.arange(n_trees, dtype=np.int32),
        "base": np.array([0.1]),
    }
    model = regressor(arrays, n_features=1, depth=0)
    expected = 0.1
    for v in values:
        expected += v
    assert model.predict(np.zeros((3, 1))).tolist() == [expected] * 3


def categorical_model(cast: str) -> modelshelf.Model:
    arrays = two_trees(
        feature=np.array([3, S, 1, S, S, S], np.int32),  # the root reads category column 0
        cat_column=np.array([0], np.int32),
        cat_offsets=np.array([0, 2], np.int32),
        cat_words=np.array([(1 << 0) | (1 << 3), 1 << 8], np.uint32),  # {0, 3, 40}
    )
    return regressor(arrays, category_cast=cast)


@pytest.mark.parametrize(
    ("cast", "expected"),
    [
        ("trunc", [130, 130, 130, 130, 110, 110, 110, 110, 110, 130, 110]),
        ("floor", [130, 110, 130, 130, 110, 110, 110, 110, 110, 130, 110]),
    ],
)
def test_categorical_splits(cast: str, expected: list[float]) -> None:
    # In the set: the second child. NaN: the node's missing flag (right). Out of range: first.
    values = [0, -0.5, 3.9, 40, 41, 1, -1, 1e10, 64, np.nan, -1e300]
    X = np.column_stack([values, np.full(len(values), 5.0)])
    assert categorical_model(cast).predict(X).tolist() == expected


def test_encoded_categories() -> None:
    arrays = two_trees(
        feature=np.array([3, S, 1, S, S, S], np.int32),
        cat_column=np.array([0], np.int32),
        cat_offsets=np.array([0, 1], np.int32),
        cat_words=np.array([0b110], np.uint32),  # codes 1 and 2
        encode_column=np.array([0], np.int32),
        encode_offsets=np.array([0, 3], np.int32),
        encode_values=np.array([-2.5, 0.0, 7.0]),
        missing=np.zeros(1, np.uint8),  # unknown and NaN: first child
    )
    model = regressor(arrays, category_cast="trunc")
    X = np.column_stack([[-2.5, 0.0, -0.0, 7.0, 1.0, np.nan, 2.0], np.full(7, 5.0)])
    assert model.predict(X).tolist() == [110, 130, 130, 130, 110, 110, 110]
    assert np.isnan(X[5, 0]) and X[1, 0] == 0.0  # the caller's X is untouched


@pytest.mark.parametrize("role", ["cat_column", "encode_column", "zero_missing"])
def test_category_and_missing_columns_are_input_columns(role: str) -> None:
    # Column 3 of the working matrix is the category column itself, not written yet when it
    # would be read: out of range for every column role, never a read of np.empty's leftovers.
    arrays = two_trees(
        feature=np.array([3, S, 1, S, S, S], np.int32),
        cat_column=np.array([0], np.int32),
        cat_offsets=np.array([0, 1], np.int32),
        cat_words=np.array([0b110], np.uint32),
    )
    arrays[role] = np.array([3], np.int32)
    if role == "encode_column":
        arrays["encode_offsets"] = np.array([0, 1], np.int32)
        arrays["encode_values"] = np.array([1.0])
    model = regressor(arrays, category_cast="trunc")
    with pytest.raises(ManifestError, match="out-of-range"):
        model.predict(np.array([[1.0, 5.0]]))


def test_zero_as_missing() -> None:
    model = regressor(two_trees(zero_missing=np.array([0], np.int32)))
    X = np.column_stack([[1e-36, -1e-35, 2e-35, -1.0, 1.0], np.full(5, 5.0)])
    X.setflags(write=False)  # the kernel works on its own copy
    assert model.predict(X).tolist() == [130, 130, 110, 110, 130]
    assert X[0, 0] == 1e-36


def test_wrong_width_is_a_feature_count_error() -> None:
    with pytest.raises(FeatureCountError, match="expects 2 features"):
        regressor().predict(np.zeros((1, 3)))


def test_views_not_copies() -> None:
    model = regressor()
    forest = model._executor.forest  # type: ignore[union-attr]
    for role in ("feature", "threshold", "child", "missing", "roots"):
        arr = getattr(forest, role)
        assert arr is model.image.arrays[f"m/{role}"]
        assert not arr.flags.writeable


def test_out_of_range_indices_are_manifest_errors() -> None:
    model = regressor(two_trees(child=np.array([1, 1, 99, 3, 4, 5], np.int32)))
    with pytest.raises(ManifestError, match="out-of-range"):
        model.predict(np.array([[1.0, 5.0]]))


@pytest.mark.parametrize(
    ("arrays", "params", "message"),
    [
        (two_trees(child=np.array([1, 1], np.int32)), {}, "'child' must hold 6"),
        (two_trees(missing=np.zeros(6, np.uint8)), {}, "one bit per node into 1 uint8"),
        (two_trees(feature=np.zeros(6)), {}, "expected kind 'i'"),
        (two_trees(roots=None), {}, "missing array 'roots'"),
        (two_trees(), {"groups": [0, 1]}, "groups must be offsets"),
        (two_trees(), {"groups": [0, 2, 1, 2]}, "groups must be offsets"),
        (two_trees(), {"depth": 7}, "depth 7 is impossible"),
        (two_trees(), {"depth": -1}, "must be >= 0"),
        (two_trees(), {"n_features": 1 << 70}, "is above"),  # hypothesis found it: C ssize_t
        (two_trees(), {"n_features": 1 << 31}, "is above"),
        (two_trees(base=np.zeros(3)), {}, "one base per output"),
        (two_trees(), {"link": "cube"}, "not one of"),
        (two_trees(), {"methods": ["predict_proba"]}, "cannot provide"),
        (two_trees(), {"divisor": 0}, "divisor must be positive"),
        (two_trees(cat_column=np.zeros(1, np.int32)), {}, "missing array 'cat_offsets'"),
        (two_trees(level_offsets=np.array([0, 2, 4], np.int32)), {}, "level_offsets must rise"),
        (two_trees(level_offsets=np.array([0, 2, 1, 6], np.int32)), {}, "level_offsets must"),
        (two_trees(level_offsets=np.array([0, 2, 4, 7], np.int32)), {}, "from 0 to 6 nodes"),
    ],
)
def test_manifest_faults(arrays: dict[str, Any], params: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        regressor(arrays, **params)


def test_classifier_label_count_must_match_leaves() -> None:
    params = REGRESSOR | {"link": "sigmoid", "label_rule": "raw_gt_0", "methods": ["predict"]}
    arrays = two_trees(classes=np.array([0, 1, 2]))
    with pytest.raises(ManifestError, match="3 classes need 3 sums"):
        modelshelf.load(image("boosted_classifier", arrays, params))


# -- random forests against a reference interpreter of the layout ---------------------------


def random_forest(rng: np.random.Generator, n_trees: int, n_features: int, max_depth: int):
    feature, threshold, child, missing, roots = [], [], [], [], []
    depth = 0
    for _ in range(n_trees):
        root = len(feature)
        roots.append(root)
        queue = [(root, 0)]
        feature.append(0), threshold.append(0.0), child.append(0), missing.append(0)
        while queue:
            node, level = queue.pop(0)
            depth = max(depth, level)
            if level < max_depth and rng.uniform() < 0.8:
                first = len(feature)
                feature[node] = int(rng.integers(n_features))
                threshold[node] = float(rng.normal())
                child[node] = first
                missing[node] = int(rng.integers(2))
                for k in range(2):
                    feature.append(0), threshold.append(0.0), child.append(0), missing.append(0)
                    queue.append((first + k, level + 1))
            else:
                feature[node], child[node] = n_features, node
                threshold[node] = float(rng.normal() * 10.0 ** rng.integers(-3, 3))
    arrays = {
        "feature": np.array(feature, np.int32),
        "threshold": np.array(threshold),
        "child": np.array(child, np.int32),
        "missing": np.packbits(missing, bitorder="little"),
        "roots": np.array(roots, np.int32),
    }
    return arrays, depth


def reference(arrays: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    f, t, c = (arrays[k].tolist() for k in ("feature", "threshold", "child"))
    m = np.unpackbits(arrays["missing"], bitorder="little").tolist()
    out = []
    for row in X.tolist():
        total = 0.0
        for node in arrays["roots"].tolist():
            while c[node] != node:
                x = row[f[node]]
                node = c[node] + (m[node] if x != x else int(x > t[node]))
            total += t[node]
        out.append(total)
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_forests_match_the_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_trees = 40
    arrays, depth = random_forest(rng, n_trees, 5, max_depth=11)
    model = regressor(arrays, n_features=5, depth=depth)
    n = trees_forest._BLOCK // n_trees * 2 + 7  # three row blocks
    X = rng.normal(size=(n, 5))
    X[rng.uniform(size=X.shape) < 0.1] = np.nan
    before = X.copy()
    expected = reference(arrays, X)
    assert np.array_equal(model.predict(X), expected)
    assert np.array_equal(X, before, equal_nan=True)
    assert np.array_equal(model.predict(X[:1]), expected[:1])


def plan_one_row(model: modelshelf.Model, levels: int, nodes: int) -> None:
    """Force how a model walks one row: ``levels`` levels by table over ``nodes`` nodes."""
    forest = model._executor.forest  # type: ignore[union-attr]
    forest.table_levels, forest.table_nodes = levels, nodes


@pytest.mark.parametrize("by_table", [True, False])
def test_both_single_row_kernels_match_the_reference(by_table: bool) -> None:
    rng = np.random.default_rng(3)
    arrays, depth = random_forest(rng, 30, 4, max_depth=9)
    model = regressor(arrays, n_features=4, depth=depth)
    plan_one_row(model, depth if by_table else 0, len(arrays["feature"]))
    X = rng.normal(size=(60, 4))
    X[rng.uniform(size=X.shape) < 0.15] = np.nan
    expected = reference(arrays, X)
    assert np.array_equal([model.predict(X[i : i + 1])[0] for i in range(len(X))], expected)


@pytest.mark.parametrize("by_table", [True, False])
def test_both_kernels_report_out_of_range_children(by_table: bool) -> None:
    model = regressor(two_trees(child=np.array([1, 1, 99, 3, 4, 5], np.int32)))
    plan_one_row(model, 2 if by_table else 0, 6)
    with pytest.raises(ManifestError, match="out-of-range"):
        model.predict(np.array([[1.0, 5.0]]))


def test_one_row_plan_follows_the_cost_model() -> None:
    # Without level offsets the table covers every node or none; small forests take it.
    forest = regressor()._executor.forest  # type: ignore[union-attr]
    assert (forest.table_levels, forest.table_nodes) == (2, 6)
    rng = np.random.default_rng(4)
    arrays, depth = random_forest(rng, 2, 3, max_depth=12)
    wide = {k: np.tile(v, 4000) if k != "roots" else v for k, v in arrays.items()}
    wide["missing"] = np.zeros((len(wide["feature"]) + 7) // 8, np.uint8)
    forest = regressor(wide, n_features=3, depth=depth)._executor.forest  # type: ignore[union-attr]
    assert forest.table_levels == 0  # 4000 times the nodes, two trees: walk them


def test_sums_of_several_outputs_follow_tree_order_to_the_last_bit() -> None:
    # Several rows and outputs: summed by a reduction over trees, which must add in order.
    rng = np.random.default_rng(1)
    n_trees, width = 300, 3
    rows = rng.normal(size=(n_trees, width)) * 10.0 ** rng.integers(-8, 8, size=(n_trees, 1))
    arrays = {
        "feature": np.full(n_trees, 1, np.int32),
        "threshold": np.arange(n_trees, dtype=np.float64),  # leaf j holds row j
        "child": np.arange(n_trees, dtype=np.int32),
        "roots": np.arange(n_trees, dtype=np.int32),
        "leaf_values": rows,
    }
    params = REGRESSOR | {"n_features": 1, "depth": 0, "divisor": n_trees}
    model = modelshelf.load(image("tree_regressor", arrays, params))
    expected = np.zeros(width)
    for r in rows:
        expected += r
    assert np.array_equal(model.predict(np.zeros((4, 1))), np.tile(expected / n_trees, (4, 1)))


def _numpy_plan(forest: Any, level_offsets: np.ndarray) -> tuple[int, int]:
    """The one-row plan as numpy computed it before it moved to Python lists (a reference)."""
    step_saved = (
        trees_forest._WALK_STEP
        + trees_forest._WALK_PAIR * len(forest.roots)
        - trees_forest._TABLE_STEP
    )
    nodes = level_offsets[1 : forest.depth + 1]
    cost = nodes * trees_forest._TABLE_NODE - np.arange(1, forest.depth + 1) * step_saved
    best = int(cost.argmin())
    fits = cost[best] + trees_forest._TABLE_FIXED < 0
    return (best + 1, int(nodes[best])) if fits else (0, 0)


def test_one_row_plan_is_numpys_plan() -> None:
    """The load plans one row's table levels over a list of Python ints: the same choice, to
    the level, as the numpy cost model over the array, on level sizes from a handful of nodes
    (no table) to many (a table), ties included."""
    model = regressor()
    forest = model._executor.forest  # type: ignore[union-attr]
    rng = np.random.default_rng(7)
    seen = set()
    for trial in range(400):
        depth = int(rng.integers(1, 30))
        scale = [1, 10, 1000, 100000][trial % 4]
        sizes = rng.integers(0, scale, depth + 1)
        if trial % 5 == 0:
            # levels growing by exactly the nodes a level saves (500 roots): equal costs,
            # the first of them wins
            sizes[0], sizes[1:] = trial % 3, (4000 + 6 * 500 - 300) / 2.5
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
        forest.depth = depth
        for n_roots in (1, 500):
            forest.roots = np.zeros(n_roots, np.int32)
            got = forest._plan_one_row(offsets.tolist())
            assert got == _numpy_plan(forest, offsets), (depth, n_roots, offsets.tolist())
            assert all(type(v) is int for v in got)
            seen.add(got == (0, 0))
    assert seen == {True, False}  # both outcomes were exercised
