"""CatBoost models to tree specs, from their JSON export (``save_model(format="json")``),
never from pickles or the binary format.

CatBoost grows oblivious trees: every node of a level tests the same split, and a row's leaf
index is the sum of ``(x > border) << level`` over the levels. Each such tree becomes a full
binary tree (level ``j`` tests ``splits[j]``), whose leaf reached by the bits ``b_j`` holds
``leaf_values[sum b_j << j]``: the runtime walks it with the same rule (``x > threshold`` goes
right). CatBoost rounds inputs to float32 and compares them with float32 borders; a NaN goes
where its feature's ``nan_value_treatment`` says ("AsFalse", and "AsIs" where the training
data had none: left; "AsTrue": right). Leaf values are summed in float64, then the bias is
added; binary probabilities are ``1 / (1 + exp(-raw))``, multiclass ones a softmax.

Refused, with the option named: categorical features (CatBoost turns them into target
statistics computed from hashed strings), text and embedding features, non-symmetric trees
(``grow_policy`` other than SymmetricTree), a scale other than 1 (``sum_models``,
``set_scale_and_bias``), and losses whose prediction is not one of the above.

The converters register only when catboost imports.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np

from ..errors import UnsupportedModelError
from ._context import Context, converter
from .trees import ForestBuilder, Tree, forest_spec

# loss function -> what predict() applies to the raw sums (CatBoostRegressor's default
# prediction type is RawFormulaVal for these, Exponent for the count and positive losses)
REGRESSION_LINKS = {
    **dict.fromkeys(
        ("RMSE", "MAE", "Quantile", "MAPE", "Huber", "Lq", "Expectile", "LogLinQuantile"),
        "identity",
    ),
    **dict.fromkeys(("Poisson", "Tweedie"), "exp"),
}
CLASSIFICATION_LOSSES = ("Logloss", "CrossEntropy", "MultiClass")
NAN_RIGHT = {"AsFalse": False, "AsIs": False, "AsTrue": True}


def export(model: Any) -> dict[str, Any]:
    """The model's JSON export (CatBoost writes it only to a file)."""
    with tempfile.TemporaryDirectory(prefix="modelshelf-catboost-") as tmp:
        path = os.path.join(tmp, "model.json")
        model.save_model(path, format="json")
        with open(path, encoding="utf-8") as fh:
            loaded: dict[str, Any] = json.load(fh)
            return loaded


def parse(doc: dict[str, Any], name: str) -> tuple[ForestBuilder, dict[str, Any]]:
    """The trees of a JSON export as a forest, and the facts: number of outputs, bias."""
    features = doc.get("features_info", {})
    options = {
        "categorical_features": "cat_features",
        "text_features": "text_features",
        "embedding_features": "embedding_features",
    }
    for kind, option in options.items():
        if features.get(kind):
            what = kind.replace("_", " ")
            raise UnsupportedModelError(
                f"{name} with {what} ({option}) is not supported: CatBoost computes them from "
                "hashed values (one-hot splits on CityHash values of the strings, target "
                "statistics over hashes of feature combinations); encode them as numbers before "
                "training (for example with OrdinalEncoder), or compile a scikit-learn or "
                "LightGBM model"
            )
    if "oblivious_trees" not in doc:
        raise UnsupportedModelError(
            f"{name} with grow_policy other than 'SymmetricTree' (non-symmetric trees) is not "
            "supported: train with the default grow_policy"
        )
    scale, biases = doc.get("scale_and_bias", [1.0, [0.0]])
    if scale != 1:
        raise UnsupportedModelError(
            f"{name} with a scale of {scale} (sum_models or set_scale_and_bias) is not supported"
        )
    floats = features.get("float_features", [])
    n_features = 1 + max((int(f["flat_feature_index"]) for f in floats), default=-1)
    column = {int(f["feature_index"]): int(f["flat_feature_index"]) for f in floats}
    nan_right = {
        int(f["feature_index"]): NAN_RIGHT[str(f.get("nan_value_treatment", "AsIs"))]
        for f in floats
    }
    n_outputs = len(biases)
    builder = ForestBuilder(
        n_features, threshold_dtype=np.float32, value_dtype=np.float64, input_cast="float32"
    )
    for tree in doc["oblivious_trees"]:
        for group, full in enumerate(_expand(tree, column, nan_right, n_outputs, name)):
            builder.add(full, group)
    bias = np.asarray(biases, dtype=np.float64)
    return builder, {"n_groups": n_outputs, "base": bias, "n_features": n_features}


def _expand(
    tree: dict[str, Any],
    column: dict[int, int],
    nan_right: dict[int, bool],
    n_outputs: int,
    name: str,
) -> list[Tree]:
    """One oblivious tree as full binary trees, one per output (nodes in breadth-first order:
    node i has children 2i+1 and 2i+2; level j tests ``splits[j]``)."""
    splits = tree["splits"]
    depth = len(splits)
    for split in splits:
        if split.get("split_type") != "FloatFeature":
            raise UnsupportedModelError(
                f"{name}: a split of type {split.get('split_type')!r} is not supported"
            )
    values = np.asarray(tree["leaf_values"], dtype=np.float64)
    if len(values) != (n_outputs << depth):
        raise UnsupportedModelError(
            f"{name}: {len(values)} leaf values for depth {depth} and {n_outputs} outputs"
        )
    inner, n_nodes = (1 << depth) - 1, (2 << depth) - 1
    node = np.arange(n_nodes, dtype=np.int64)
    level = np.floor(np.log2(node + 1)).astype(np.int64)
    is_leaf = node >= inner
    left = np.where(is_leaf, -1, 2 * node + 1)
    right = np.where(is_leaf, -1, 2 * node + 2)
    feature = np.zeros(n_nodes, dtype=np.int64)
    threshold = np.zeros(n_nodes, dtype=np.float32)
    missing_right = np.zeros(n_nodes, dtype=bool)
    for j, split in enumerate(splits):
        index = int(split["float_feature_index"])
        at = (level == j) & ~is_leaf
        feature[at] = column[index]
        threshold[at] = np.float32(split["border"])
        missing_right[at] = nan_right[index]
    # the leaf reached by bits b_0..b_{d-1} (b_j: the level-j split went right) is leaf
    # number sum b_j << j; in breadth-first order that leaf is node inner + the bits read
    # root first, so reverse the bits of each position
    position = node[inner:] - inner
    reversed_bits = np.zeros_like(position)
    for j in range(depth):
        reversed_bits |= ((position >> (depth - 1 - j)) & 1) << j
    per_leaf = values.reshape(1 << depth, n_outputs)
    trees = []
    for k in range(n_outputs):
        leaf_values = np.zeros((n_nodes, 1), dtype=np.float64)
        leaf_values[inner:, 0] = per_leaf[reversed_bits, k]
        trees.append(Tree(left, right, feature, threshold, missing_right, leaf_values))
    return trees


def _loss(doc: dict[str, Any]) -> str:
    params = doc.get("model_info", {}).get("params", "{}")
    params = json.loads(params) if isinstance(params, str) else params
    loss = params.get("loss_function", {})
    return str(loss.get("type", "") if isinstance(loss, dict) else loss).split(":")[0]


def _classifier(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    doc = export(est)
    name = type(est).__name__
    builder, facts = parse(doc, name)
    loss = _loss(doc)
    if loss not in CLASSIFICATION_LOSSES:
        raise UnsupportedModelError(f"{name} with loss_function={loss!r} is not supported")
    classes = np.asarray(est.classes_)
    binary = facts["n_groups"] == 1
    if binary != (len(classes) == 2):
        raise UnsupportedModelError(
            f"{name}: {facts['n_groups']} raw outputs for {len(classes)} classes"
        )
    params = {
        "methods": ["predict", "predict_proba", "predict_log_proba"],
        "link": "sigmoid" if binary else "softmax",
        "label_rule": "raw_gt_0" if binary else "argmax_raw",
        "label_column": not binary,  # CatBoost's multiclass predict gives a column
        "allow_nan": True,
        "n_features": facts["n_features"],
    }
    return forest_spec(
        ctx, "boosted_classifier", path, builder, n_groups=facts["n_groups"],
        arrays={"base": facts["base"]}, params=params, labels=classes,
    )  # fmt: skip


def _regressor(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    doc = export(est)
    name = type(est).__name__
    builder, facts = parse(doc, name)
    loss = _loss(doc)
    if loss not in REGRESSION_LINKS or facts["n_groups"] != 1:
        raise UnsupportedModelError(
            f"{name} with loss_function={loss!r} ({facts['n_groups']} outputs) is not "
            f"supported; supported: {', '.join(sorted(REGRESSION_LINKS))}"
        )
    params = {
        "methods": ["predict"],
        "link": REGRESSION_LINKS[loss],
        "allow_nan": True,
        "n_features": facts["n_features"],
    }
    return forest_spec(
        ctx, "boosted_regressor", path, builder, n_groups=1,
        arrays={"base": facts["base"]}, params=params,
    )  # fmt: skip


try:
    import catboost
except ImportError:  # the converters need catboost; without it there is nothing to convert
    pass
else:
    converter(catboost.CatBoostClassifier)(_classifier)
    converter(catboost.CatBoostRegressor)(_regressor)
