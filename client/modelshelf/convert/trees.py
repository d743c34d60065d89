"""scikit-learn trees and ensembles to tree specs, and ``ForestBuilder``, which lays out the
trees of every library (xgb.py and lgbm.py use it too) as runtime/trees_forest.py reads them.

A converter describes each tree as a ``Tree``: library node ids, with each split already stated
in the runtime's terms (go to the second child iff ``x > threshold``; NaN to the second child iff
``missing_right``). The builder orders the trees by the class (or target) they score, renumbers
nodes level by level across all trees (every root, then every level-1 node, ...) so that
siblings are adjacent and a traversal step reads one compact region, turns leaves into
self-loops on the sentinel column, and stores the leaf outputs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    IsolationForest,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import (
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    ExtraTreeClassifier,
    ExtraTreeRegressor,
)
from sklearn.utils import get_tags

from ..errors import UnsupportedModelError
from ..runtime import METHODS
from ._context import Context, converter, encode_labels, unsupported

_MAX_F32_INDEX = 1 << 24  # leaf rows stored in float32 thresholds must be exact integers


@dataclass
class Tree:
    """One tree in the library's node ids; node i is a leaf iff ``left[i] < 0``.

    ``values`` rows of leaves are the outputs (one column per output); other rows are ignored.
    ``linear``, if given, maps every leaf to its linear model (constant, input columns,
    coefficients), LightGBM's ``linear_tree``; ``values`` then holds the outputs used when one
    of those inputs is missing.
    """

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_right: np.ndarray
    values: np.ndarray
    linear: dict[int, tuple[float, np.ndarray, np.ndarray]] | None = None


class ForestBuilder:
    """Collects trees and categorical splits; ``arrays()`` lays them out for the runtime.

    ``threshold_dtype`` is the precision of comparisons (thresholds must be representable in
    it); ``input_cast`` how inputs are rounded before comparing ("float32" for scikit-learn
    trees and XGBoost). Leaf outputs sit in the threshold slot when one value of
    ``threshold_dtype`` holds them exactly, else in a ``leaf_values`` table.
    """

    def __init__(
        self,
        n_features: int,
        *,
        threshold_dtype: Any,
        value_dtype: Any = np.float64,
        width: int = 1,
        input_cast: str = "float64",
        category_cast: str = "trunc",
    ) -> None:
        self.n_features = n_features
        self.threshold_dtype = np.dtype(threshold_dtype)
        self.value_dtype = np.dtype(value_dtype)
        self.width = width
        self.input_cast = input_cast
        self.category_cast = category_cast
        self.inline = width == 1 and self.value_dtype == self.threshold_dtype
        self.float32_range = False  # the library refuses values float32 makes infinite
        self.trees: list[tuple[int, Tree]] = []
        self.cat_columns: list[int] = []
        self.cat_sets: list[np.ndarray] = []

    def categorical(self, column: int, categories: Any) -> int:
        """Register a split sending categories in ``categories`` to the second child; returns
        the working-matrix column its nodes must read (with threshold 0.5)."""
        cats = np.unique(np.asarray(categories, dtype=np.int64))
        if len(cats) and (cats[0] < 0 or cats[-1] >= 1 << 31):
            raise UnsupportedModelError(f"category {cats[0]} or {cats[-1]} is out of range")
        words = np.zeros((int(cats[-1]) // 32 + 1) if len(cats) else 1, dtype=np.uint32)
        np.bitwise_or.at(words, cats // 32, (np.uint32(1) << (cats % 32).astype(np.uint32)))
        self.cat_columns.append(column)
        self.cat_sets.append(words)
        return self.n_features + len(self.cat_columns)

    def add(self, tree: Tree, group: int = 0) -> None:
        self.trees.append((group, tree))

    def arrays(self, n_groups: int = 1) -> tuple[dict[str, Any], dict[str, Any]]:
        """The spec's arrays and params (``feature``, ``threshold``, ..., ``depth``, ...)."""
        trees = sorted(self.trees, key=lambda item: item[0])  # stable: keeps library order
        if trees and not 0 <= trees[0][0] <= trees[-1][0] < n_groups:
            raise UnsupportedModelError(f"tree groups outside 0..{n_groups - 1}")
        groups = np.searchsorted([g for g, _ in trees], np.arange(n_groups + 1)).tolist()
        n_leaves = sum(int((t.left < 0).sum()) for _, t in trees)
        linear = any(t.linear is not None for _, t in trees)
        if linear and not all(t.linear is not None for _, t in trees):
            raise UnsupportedModelError("a forest mixes linear and constant leaves")
        inline = self.inline and not linear  # linear leaves are rows of the leaf tables
        tdtype = self.threshold_dtype
        if not inline and tdtype == np.float32 and n_leaves > _MAX_F32_INDEX:
            tdtype = np.dtype(np.float64)  # float32 thresholds are exact in float64 too
        levels = [_levels(tree.left, tree.right) for _, tree in trees]
        positions, level_offsets = _level_order(trees, levels)
        offset = level_offsets[-1]
        if offset >= 1 << 31:
            raise UnsupportedModelError(f"{offset} tree nodes exceed the 2**31 limit")
        depth = max((len(lv) - 1 for lv in levels), default=0)
        feature = np.empty(offset, dtype=np.int64)
        threshold = np.empty(offset, dtype=np.float64)
        child = np.empty(offset, dtype=np.int64)
        missing = np.zeros(offset, dtype=bool)
        leaf_rows, leaf_count = [], 0
        models: list[tuple[float, np.ndarray, np.ndarray]] = []
        for (_, tree), tree_levels, pos in zip(trees, levels, positions, strict=True):
            order = np.concatenate(tree_levels)
            at = pos[order]
            leaf = tree.left[order] < 0
            child[at] = np.where(leaf, at, pos[np.where(leaf, 0, tree.left[order])])
            feature[at] = np.where(leaf, self.n_features, tree.feature[order])
            values = tree.threshold[order].astype(np.float64)
            leaves = order[leaf]
            if inline:
                values[leaf] = tree.values[leaves, 0]
            else:
                values[leaf] = np.arange(leaf_count, leaf_count + len(leaves))
                leaf_rows.append(tree.values[leaves])
            if tree.linear is not None:
                models.extend(tree.linear[i] for i in leaves.tolist())
            leaf_count += len(leaves)
            threshold[at] = values
            missing[at] = np.where(leaf, False, tree.missing_right[order])
        roots = [int(pos[0]) for pos in positions]
        arrays: dict[str, Any] = {
            "feature": feature.astype(np.int32),
            "threshold": _exact(threshold, tdtype),
            "child": child.astype(np.int32),
            "missing": np.packbits(missing, bitorder="little") if missing.any() else None,
            "roots": np.asarray(roots, dtype=np.int32),
            "level_offsets": np.asarray(level_offsets, dtype=np.int32),
            "leaf_values": None
            if inline
            else _exact(np.concatenate(leaf_rows), self.value_dtype, check=False),
        }
        if linear:
            arrays.update(_linear_leaves(models, self.n_features))
        params: dict[str, Any] = {
            "n_features": self.n_features,
            "depth": depth,
            "groups": groups,
            "input_cast": self.input_cast,
        }
        if self.float32_range:
            params["float32_range"] = True
        if self.cat_columns:
            arrays["cat_column"] = np.asarray(self.cat_columns, dtype=np.int32)
            sizes = [len(w) for w in self.cat_sets]
            arrays["cat_offsets"] = np.cumsum([0, *sizes]).astype(np.int32)
            arrays["cat_words"] = np.concatenate(self.cat_sets)
            params["category_cast"] = self.category_cast
        return arrays, params


def _linear_leaves(
    models: list[tuple[float, np.ndarray, np.ndarray]], n_features: int
) -> dict[str, np.ndarray]:
    """The linear models of the leaves, row by row of the leaf table: ``linear_const``, and
    row r's terms at ``linear_offsets[r]`` to ``linear_offsets[r + 1]`` of ``linear_feature``
    and ``linear_coeff``."""
    features = [np.asarray(f, dtype=np.int64) for _, f, _ in models]
    if any(len(f) and (f.min() < 0 or f.max() >= n_features) for f in features):
        raise UnsupportedModelError(f"a linear leaf reads a column outside 0..{n_features - 1}")
    sizes = [len(f) for f in features]
    if sum(sizes) >= 1 << 31:
        raise UnsupportedModelError(f"{sum(sizes)} linear leaf terms exceed the 2**31 limit")
    empty = np.zeros(0)
    return {
        "linear_const": np.asarray([c for c, _, _ in models], dtype=np.float64),
        "linear_offsets": np.cumsum([0, *sizes]).astype(np.int32),
        "linear_feature": np.concatenate([empty, *features]).astype(np.int32),
        "linear_coeff": np.concatenate([empty, *(np.asarray(c) for _, _, c in models)]),
    }


def _levels(left: np.ndarray, right: np.ndarray) -> list[np.ndarray]:
    """A tree's node ids level by level, breadth-first, each node's two children side by side."""
    levels = [np.zeros(1, dtype=np.int64)]
    total = 1
    while True:
        frontier = levels[-1]
        inner = frontier[left[frontier] >= 0]
        if not len(inner):
            break
        kids = np.empty(2 * len(inner), dtype=np.int64)
        kids[0::2], kids[1::2] = left[inner], right[inner]
        total += len(kids)
        if total > len(left):
            raise UnsupportedModelError("a tree's children do not form a tree (cycle)")
        levels.append(kids)
    return levels


def _level_order(
    trees: list[tuple[int, Tree]], levels: list[list[np.ndarray]]
) -> tuple[list[np.ndarray], list[int]]:
    """Every tree's node positions when all trees are laid out level by level: every root, then
    every tree's level-1 nodes, and so on (within a level, trees in order). Siblings stay
    adjacent; a traversal step then reads one compact region, which keeps batches in cache.
    Also the offsets where each level starts, and the total."""
    positions = [np.full(len(tree.left), -1, dtype=np.int64) for _, tree in trees]
    offsets = [0]
    for k in range(max((len(lv) for lv in levels), default=0)):
        offset = offsets[-1]
        for tree_levels, pos in zip(levels, positions, strict=True):
            if k < len(tree_levels):
                ids = tree_levels[k]
                pos[ids] = np.arange(offset, offset + len(ids))
                offset += len(ids)
        offsets.append(offset)
    return positions, offsets


def _exact(values: np.ndarray, dtype: np.dtype, *, check: bool = True) -> np.ndarray:
    out = values.astype(dtype)
    if check and not np.array_equal(out, values, equal_nan=True):
        raise AssertionError(f"values are not exact in {dtype}")  # a converter bug
    return out


def round_down_f32(t: np.ndarray) -> np.ndarray:
    """The largest float32 <= t: ``float32(x) <= t`` iff ``float32(x) <= round_down_f32(t)``."""
    with np.errstate(over="ignore"):
        t32 = np.asarray(t, dtype=np.float64).astype(np.float32)
    above = t32.astype(np.float64) > t
    t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
    return t32


def methods_of(est: Any) -> list[str]:
    """The prediction methods ``est`` offers (sklearn hides some with ``available_if``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [m for m in METHODS if hasattr(est, m)]


def forest_spec(
    ctx: Context,
    kind: str,
    path: str,
    builder: ForestBuilder,
    *,
    n_groups: int = 1,
    arrays: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    labels: Any = None,
) -> dict[str, Any]:
    tree_arrays, tree_params = builder.arrays(n_groups)
    return ctx.spec(
        kind,
        path,
        arrays={**tree_arrays, **(arrays or {})},
        params={**tree_params, **(params or {})},
        labels=labels,
    )


# -- scikit-learn ----------------------------------------------------------------------------


def _sklearn_tree(
    tree: Any,
    values: np.ndarray,
    features: np.ndarray | None = None,
    scale: float = 1.0,
    nan: bool = True,
) -> Tree:
    """A fitted ``tree_``: float32 inputs compared ``<=`` float64 thresholds. Without ``nan``
    (the estimator rejects NaN) no missing directions are stored."""
    left = tree.children_left.astype(np.int64)
    feature = tree.feature.astype(np.int64)
    if features is not None:  # the tree saw a subset of the columns (IsolationForest)
        feature = np.where(left >= 0, features[np.maximum(feature, 0)], 0)
    return Tree(
        left=left,
        right=tree.children_right.astype(np.int64),
        feature=feature,
        threshold=round_down_f32(tree.threshold),
        missing_right=(tree.missing_go_to_left == 0) & nan,
        values=values * scale if scale != 1.0 else values,
    )


def _sklearn_builder(n_features: int, width: int, *, refuses_beyond: bool = True) -> ForestBuilder:
    """Trees compared in float32, as scikit-learn's; ``refuses_beyond``: its validation refuses
    values that float32 makes infinite (all but IsolationForest, which does not check)."""
    builder = ForestBuilder(
        n_features, threshold_dtype=np.float32, width=width, input_cast="float32"
    )
    builder.float32_range = refuses_beyond
    return builder


@converter(
    DecisionTreeClassifier, ExtraTreeClassifier, RandomForestClassifier, ExtraTreesClassifier
)
def _tree_classifier(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    trees = getattr(est, "estimators_", [est])
    n_classes = np.atleast_1d(est.n_classes_).tolist()
    builder = _sklearn_builder(est.n_features_in_, sum(n_classes))
    for t in trees:
        value = t.tree_.value
        builder.add(
            _sklearn_tree(t.tree_, np.hstack([value[:, k, :c] for k, c in enumerate(n_classes)]))
        )
    params: dict[str, Any] = {
        "methods": methods_of(est),
        "allow_nan": bool(get_tags(est).input_tags.allow_nan),
        "divisor": len(trees),
        "n_outputs": len(n_classes),
    }
    arrays: dict[str, Any] = {}
    labels = est.classes_ if len(n_classes) == 1 else None
    if labels is None:
        for k, classes in enumerate(est.classes_):
            encoded = encode_labels(np.asarray(classes))
            target = arrays if isinstance(encoded, np.ndarray) else params
            target[f"classes_{k}"] = encoded
    return forest_spec(
        ctx, "tree_classifier", path, builder, arrays=arrays, params=params, labels=labels
    )


@converter(DecisionTreeRegressor, ExtraTreeRegressor, RandomForestRegressor, ExtraTreesRegressor)
def _tree_regressor(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    trees = getattr(est, "estimators_", [est])
    builder = _sklearn_builder(est.n_features_in_, est.n_outputs_)
    for t in trees:
        builder.add(_sklearn_tree(t.tree_, t.tree_.value[:, :, 0]))
    params = {"allow_nan": bool(get_tags(est).input_tags.allow_nan), "divisor": len(trees)}
    return forest_spec(ctx, "tree_regressor", path, builder, params=params)


def _link(loss: Any) -> tuple[str, float]:
    from sklearn._loss import link

    inverse = type(loss.link)
    table = {
        link.IdentityLink: ("identity", 1.0),
        link.LogLink: ("exp", 1.0),
        link.LogitLink: ("sigmoid", 1.0),
        link.HalfLogitLink: ("sigmoid", 2.0),  # the exponential loss: expit(2 * raw)
        link.MultinomialLogit: ("softmax", 1.0),
    }
    if inverse not in table:
        raise UnsupportedModelError(f"the link function {inverse.__name__} is not supported")
    return table[inverse]


@converter(GradientBoostingClassifier, GradientBoostingRegressor)
def _gradient_boosting(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    init = est.init_
    if not (
        (isinstance(init, str) and init == "zero")
        or type(init) in (DummyClassifier, DummyRegressor)
    ):
        raise unsupported(  # its predictions vary with X
            est, f"init={type(init).__name__}", "use init=None (a Dummy estimator) or 'zero'"
        )
    n_features = est.n_features_in_
    base = est._raw_predict_init(np.zeros((1, n_features), dtype=np.float32))[0]
    stages = est.estimators_[: est.n_estimators_]
    builder = _sklearn_builder(n_features, 1)
    for stage in stages:
        for k, t in enumerate(stage):
            values = t.tree_.value[:, :, 0]
            builder.add(_sklearn_tree(t.tree_, values, scale=est.learning_rate, nan=False), k)
    link, scale = _link(est._loss)
    params: dict[str, Any] = {
        "methods": methods_of(est),
        "link": link,
        "sigmoid_scale": scale,
        "allow_nan": False,
    }
    arrays = {"base": base.astype(np.float64)}
    n_groups = stages.shape[1]
    if isinstance(est, GradientBoostingClassifier):
        params["label_rule"] = "raw_ge_0" if n_groups == 1 else "argmax_raw"
        return forest_spec(
            ctx, "boosted_classifier", path, builder, n_groups=n_groups, arrays=arrays,
            params=params, labels=est.classes_,
        )  # fmt: skip
    return forest_spec(ctx, "boosted_regressor", path, builder, arrays=arrays, params=params)


@converter(HistGradientBoostingClassifier, HistGradientBoostingRegressor)
def _hist_gradient_boosting(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    n_features = est.n_features_in_
    columns = np.arange(n_features)
    encode: dict[int, np.ndarray] = {}
    if est._preprocessor is not None:
        # Fitting put the categorical columns first (OrdinalEncoder), then the numeric ones.
        categorical = np.flatnonzero(est.is_categorical_)
        columns = np.concatenate([categorical, np.flatnonzero(~est.is_categorical_)])
        encoder = est._preprocessor.named_transformers_["encoder"]
        for column, known in zip(categorical.tolist(), encoder.categories_, strict=True):
            known = np.asarray(known)
            if known.dtype.kind not in "iuf":
                raise unsupported(
                    est, f"categories of dtype {known.dtype}", "encode them as numbers first"
                )
            known = known.astype(np.float64)
            encode[column] = known[~np.isnan(known)]
    builder = ForestBuilder(n_features, threshold_dtype=np.float64)
    for iteration in est._predictors:
        for k, predictor in enumerate(iteration):
            builder.add(_hist_tree(predictor, columns, builder), k)
    link, scale = _link(est._loss)
    arrays: dict[str, Any] = {"base": est._baseline_prediction.reshape(-1).astype(np.float64)}
    if encode:
        arrays["encode_column"] = np.asarray(list(encode), dtype=np.int32)
        arrays["encode_offsets"] = np.cumsum([0] + [len(v) for v in encode.values()]).astype(
            np.int32
        )
        arrays["encode_values"] = np.concatenate(list(encode.values()))
    params: dict[str, Any] = {
        "methods": methods_of(est),
        "link": link,
        "sigmoid_scale": scale,
        "allow_nan": True,
    }
    n_groups = est.n_trees_per_iteration_
    if isinstance(est, HistGradientBoostingClassifier):
        if len(est.classes_) < 2:
            raise UnsupportedModelError(
                f"HistGradientBoostingClassifier fitted on one class ({est.classes_.tolist()}) "
                "is not supported: scikit-learn gives it two probability columns for one class "
                "label; fit it on at least two classes"
            )
        params["label_rule"] = "raw_gt_0" if n_groups == 1 else "argmax_raw"
        return forest_spec(
            ctx, "boosted_classifier", path, builder, n_groups=n_groups, arrays=arrays,
            params=params, labels=est.classes_,
        )  # fmt: skip
    return forest_spec(ctx, "boosted_regressor", path, builder, arrays=arrays, params=params)


def _hist_tree(predictor: Any, columns: np.ndarray, builder: ForestBuilder) -> Tree:
    nodes = predictor.nodes
    leaf = nodes["is_leaf"].astype(bool)
    left = np.where(leaf, -1, nodes["left"].astype(np.int64))
    right = np.where(leaf, -1, nodes["right"].astype(np.int64))
    feature = columns[nodes["feature_idx"]]
    threshold = nodes["num_threshold"].astype(np.float64)
    missing_right = nodes["missing_go_to_left"] == 0
    for i in np.flatnonzero(nodes["is_categorical"].astype(bool) & ~leaf).tolist():
        bits = predictor.raw_left_cat_bitsets[nodes["bitset_idx"][i]]
        codes = np.flatnonzero(np.unpackbits(bits.astype("<u4").view(np.uint8), bitorder="little"))
        # Categories in the bitset go left: swap the children so that they are the second.
        feature[i] = builder.categorical(int(feature[i]), codes)
        threshold[i] = 0.5
        left[i], right[i] = right[i], left[i]
        missing_right[i] = not missing_right[i]
    return Tree(left, right, feature, threshold, missing_right, nodes["value"].reshape(-1, 1))


@converter(IsolationForest)
def _isolation_forest(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    from sklearn.ensemble._iforest import _average_path_length

    subsample = est._max_features != est.n_features_in_
    builder = _sklearn_builder(est.n_features_in_, 1, refuses_beyond=False)  # no check there
    for t, features, depths, average in zip(
        est.estimators_,
        est.estimators_features_,
        est._decision_path_lengths,
        est._average_path_length_per_tree,
        strict=True,
    ):
        values = (depths + average - 1.0).reshape(-1, 1)  # sklearn's expression, in its order
        builder.add(_sklearn_tree(t.tree_, values, np.asarray(features) if subsample else None))
    denominator = len(est.estimators_) * float(_average_path_length([est._max_samples])[0])
    params = {"denominator": denominator, "offset": float(est.offset_)}
    return forest_spec(ctx, "isolation_forest", path, builder, params=params)
