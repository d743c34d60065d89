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

Categorical features (``cat_features``) add a ``catboost_features`` step before the trees
(convert/cboost_ctr.py): it hashes the categories as CatBoost does and computes the one-hot
indicators and CTR values the trees split on; the image is then a pipeline of the two.

Refused, with the option named: text and embedding features, non-symmetric trees
(``grow_policy`` other than SymmetricTree), a scale other than 1 (``sum_models``,
``set_scale_and_bias``), CTR types outside runtime/catboost_ctr.py, and losses whose
prediction is not one of the above.

The converters register only when catboost imports.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import UnsupportedModelError
from ._context import Context, converter
from .cboost_ctr import ctr_layout, features_spec
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


def _refuse_text(option: str, name: str) -> UnsupportedModelError:
    what = option.replace("_", " ")
    return UnsupportedModelError(
        f"{name} with {what} ({option}) is not supported: CatBoost computes them with its own "
        "tokenizers and estimators; turn them into numbers (or categories) before training, or "
        "compile a scikit-learn pipeline that does"
    )


def export(model: Any) -> dict[str, Any]:
    """The model's JSON export (CatBoost writes it only to a file, and refuses to for text and
    embedding features: those are refused first)."""
    for option in ("text_features", "embedding_features"):
        getter = getattr(model, f"get_{option[:-1]}_indices", None)
        if getter is not None and len(getter()):
            raise _refuse_text(option, type(model).__name__)
    with tempfile.TemporaryDirectory(prefix="modelshelf-catboost-") as tmp:
        path = os.path.join(tmp, "model.json")
        model.save_model(path, format="json")
        with open(path, encoding="utf-8") as fh:
            loaded: dict[str, Any] = json.load(fh)
            return loaded


def parse(doc: dict[str, Any], name: str) -> tuple[ForestBuilder, dict[str, Any]]:
    """The trees of a JSON export as a forest, and the facts: number of outputs, bias, and
    the ``catboost_features`` layout when the model has categorical features."""
    features = doc.get("features_info", {})
    for option in ("text_features", "embedding_features"):
        if features.get(option):
            raise _refuse_text(option, name)
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
    cats = features.get("categorical_features", [])
    n_features = 1 + max((int(f["flat_feature_index"]) for f in floats + cats), default=-1)
    layout = ctr_layout(doc, name) if cats else None
    if layout is None:
        column = {int(f["feature_index"]): int(f["flat_feature_index"]) for f in floats}
        width = n_features
    else:
        column = {int(f["feature_index"]): i for i, f in enumerate(floats)}
        width = layout.n_out
    nan_right = {
        int(f["feature_index"]): NAN_RIGHT[str(f.get("nan_value_treatment", "AsIs"))]
        for f in floats
    }

    def place(split: dict[str, Any]) -> tuple[int, float, bool]:
        kind = split.get("split_type")
        if kind == "FloatFeature":
            index = int(split["float_feature_index"])
            return column[index], float(np.float32(split["border"])), nan_right[index]
        if layout is not None:
            return layout.place(split)
        raise UnsupportedModelError(f"{name}: a split of type {kind!r} is not supported")

    n_outputs = len(biases)
    builder = ForestBuilder(
        width, threshold_dtype=np.float32, value_dtype=np.float64, input_cast="float32"
    )
    for tree in doc["oblivious_trees"]:
        for group, full in enumerate(_expand(tree, place, n_outputs, name)):
            builder.add(full, group)
    bias = np.asarray(biases, dtype=np.float64)
    # fitted on a DataFrame, the features carry its column names (CatBoost matches a frame's
    # columns by them); on an array their ids are empty
    ids = [
        str(f.get("feature_id", "")) for f in sorted(floats, key=lambda f: f["flat_feature_index"])
    ]
    names = ids if layout is None and len(ids) == n_features and all(ids) else None
    facts = {
        "n_groups": n_outputs, "base": bias, "n_features": n_features, "layout": layout,
        "feature_names": names,
    }  # fmt: skip
    return builder, facts


def _expand(
    tree: dict[str, Any],
    place: Callable[[dict[str, Any]], tuple[int, float, bool]],
    n_outputs: int,
    name: str,
) -> list[Tree]:
    """One oblivious tree as full binary trees, one per output (nodes in breadth-first order:
    node i has children 2i+1 and 2i+2; level j tests ``splits[j]``)."""
    splits = tree.get("splits") or []  # a tree without splits (one leaf) has null
    if not isinstance(splits, list):
        raise UnsupportedModelError(f"{name}: splits of a tree are {type(splits).__name__}")
    depth = len(splits)
    placed = [place(split) for split in splits]
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
    for j, (col, border, nan_right) in enumerate(placed):
        at = (level == j) & ~is_leaf
        feature[at] = col
        threshold[at] = np.float32(border)
        missing_right[at] = nan_right
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


def _compose(
    est: Any,
    ctx: Context,
    kind: str,
    path: str,
    builder: ForestBuilder,
    facts: dict[str, Any],
    params: dict[str, Any],
    labels: Any = None,
) -> dict[str, Any]:
    """The forest's spec; with categorical features, a pipeline of the ``catboost_features``
    step (which reads the table) and the forest (which reads what that step computes)."""
    layout = facts["layout"]
    if layout is None:
        if facts["feature_names"] is not None:  # a frame's columns then go by name, as CatBoost's
            ctx.describe_input(est, path, feature_names=facts["feature_names"])
        return forest_spec(
            ctx, kind, path, builder, n_groups=facts["n_groups"],
            arrays={"base": facts["base"]},
            params={**params, "n_features": facts["n_features"], "base_last": True},
            labels=labels,
        )  # fmt: skip
    if path != "model":
        raise UnsupportedModelError(
            f"{type(est).__name__} with cat_features at {path}: only a model "
            "compiled on its own reads categories as CatBoost does (a step before it would "
            "hand it numbers); compile the CatBoost model itself"
        )
    ctx.takes_strings = True
    steps = [
        features_spec(ctx, f"{path}/features", layout, facts["n_features"]),
        forest_spec(
            ctx, kind, f"{path}/trees", builder, n_groups=facts["n_groups"],
            arrays={"base": facts["base"]}, params={**params, "base_last": True},
            labels=labels,
        ),
    ]  # fmt: skip
    names = layout.feature_names
    if names is not None:
        ctx.describe_input(est, path, feature_names=names)
    return ctx.spec("pipeline", path, params={"steps": steps})


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
    threshold = getattr(est, "get_probability_threshold", lambda: 0.5)()
    if binary and threshold is not None and float(threshold) != 0.5:
        # its predict labels by this threshold, saved with the model: the image labels at 0.5
        raise UnsupportedModelError(
            f"{name} with a probability threshold of {threshold} (set_probability_threshold) "
            "is not supported: compile it with the default 0.5 and compare predict_proba with "
            "the threshold in your code"
        )
    params = {
        "methods": ["predict", "predict_proba", "predict_log_proba"],
        "link": "sigmoid" if binary else "softmax",
        "label_rule": "raw_gt_0" if binary else "argmax_raw",
        "label_column": not binary,  # CatBoost's multiclass predict gives a column
        "allow_nan": True,
    }
    return _compose(est, ctx, "boosted_classifier", path, builder, facts, params, classes)


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
    params = {"methods": ["predict"], "link": REGRESSION_LINKS[loss], "allow_nan": True}
    return _compose(est, ctx, "boosted_regressor", path, builder, facts, params)


try:
    import catboost
except ImportError:  # the converters need catboost; without it there is nothing to convert
    pass
else:
    converter(catboost.CatBoostClassifier)(_classifier)
    converter(catboost.CatBoostRegressor)(_regressor)
