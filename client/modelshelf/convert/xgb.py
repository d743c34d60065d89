"""XGBoost models to tree specs, from their JSON dumps (``Booster.save_raw("json")``), never
from pickles.

XGBoost rounds inputs to float32 and sends ``x < split_condition`` left, NaN to the node's
default side. In float32, ``x < s`` iff ``x <= nextafter(s, -inf)``, so the runtime's rule
(``x > threshold`` goes right) holds with that threshold, exactly. A categorical split sends
the categories it lists right, every other value left (negative, fractional below zero, unseen,
too large: XGBoost treats them all as "not in the set", and so does the runtime). Margins are
summed in float32, starting from the base margin, tree after tree, as XGBoost does.

``dart`` weighs each tree's contribution (``parse``); ``gblinear`` is a linear model
(``boosted_linear_*`` kinds, runtime/boosted_linear.py). XGBClassifier's ``binary:logitraw``
reports the margins as probabilities and labels where they exceed 0.5; ``multi:softmax``
predicts int32 class indices and its predict_proba is scipy's softmax of the margins. XGBRanker
predicts raw scores, like a regressor.

The converters register only when xgboost imports.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np

from ..errors import UnsupportedModelError
from ._context import Context, category, converter, unsupported
from .trees import ForestBuilder, Tree, forest_spec, methods_of

# objective: (what predict applies to the margins, how base_score becomes a margin)
OBJECTIVES: dict[str, tuple[str, str]] = {
    "reg:squarederror": ("identity", "identity"),
    "reg:squaredlogerror": ("identity", "identity"),
    "reg:pseudohubererror": ("identity", "identity"),
    "reg:absoluteerror": ("identity", "identity"),
    "reg:quantileerror": ("identity", "identity"),
    "reg:logistic": ("sigmoid", "logit"),
    "binary:logistic": ("sigmoid", "logit"),
    "binary:logitraw": ("identity", "identity"),
    "count:poisson": ("exp", "log"),
    "reg:gamma": ("exp", "log"),
    "reg:tweedie": ("exp", "log"),
    "multi:softprob": ("softmax", "identity"),
    "multi:softmax": ("argmax", "identity"),
    "rank:pairwise": ("identity", "identity"),
    "rank:ndcg": ("identity", "identity"),
    "rank:map": ("identity", "identity"),
}


def _learner(booster: Any) -> dict[str, Any]:
    learner: dict[str, Any] = json.loads(bytes(booster.save_raw("json")))["learner"]
    return learner


def _facts(learner: dict[str, Any]) -> dict[str, Any]:
    """What every booster kind shares: objective, link, groups, base margins (float32),
    feature names and types."""
    facts = learner["learner_model_param"]
    objective = learner["objective"]["name"]
    if objective not in OBJECTIVES:
        raise UnsupportedModelError(f"XGBoost objective {objective!r} is not supported")
    link, base_link = OBJECTIVES[objective]
    n_groups = max(int(facts["num_class"]), int(facts.get("num_target", "1")), 1)
    return {
        "objective": objective,
        "link": link,
        "n_groups": n_groups,
        "n_features": int(facts["num_feature"]),
        "base": _base_margin(facts["base_score"], base_link, n_groups),
        "feature_names": learner.get("feature_names") or None,
        "feature_types": learner.get("feature_types") or [],
    }


def parse(
    learner: dict[str, Any], iterations: int | None = None, *, inplace: bool = False
) -> tuple[ForestBuilder, dict[str, Any]]:
    """The trees of a booster's JSON ``learner`` (its first ``iterations`` rounds, or all)
    and its facts: objective, link, number of groups, base margins (float32).

    ``dart`` weighs each tree: its leaf values become what XGBoost adds to the margin for
    them, ``float32(leaf * weight)`` through ``Booster.predict`` (a DMatrix), and
    ``float32((float32(base + leaf) - base) * weight)`` through ``inplace_predict`` (what the
    scikit-learn wrappers call), which starts each tree from the base margin.
    """
    gbm = learner["gradient_booster"]
    if gbm["name"] not in ("gbtree", "dart"):
        raise UnsupportedModelError(f"XGBoost booster={gbm['name']!r} is not supported")
    dart = gbm["name"] == "dart"
    model = gbm["gbtree"]["model"] if dart else gbm["model"]
    facts = _facts(learner)
    trees, info = model["trees"], model["tree_info"]
    weights = np.asarray(gbm["weight_drop"], dtype=np.float32) if dart else None
    if weights is not None and len(weights) != len(trees):
        raise UnsupportedModelError(f"XGBoost dart: {len(weights)} weights for {len(trees)} trees")
    if iterations is not None:
        stop = model["iteration_indptr"][iterations]
        trees, info = trees[:stop], info[:stop]
    builder = ForestBuilder(
        facts["n_features"],
        threshold_dtype=np.float32,
        value_dtype=np.float32,
        input_cast="float32",
        category_cast="floor",  # a category is int(x) for x >= 0; x < 0 is invalid
    )
    base = facts["base"]
    for i, (tree, group) in enumerate(zip(trees, info, strict=True)):
        parsed = _tree(tree, builder)
        if weights is not None:
            value, start = parsed.values, base[int(group)] if inplace else None
            if start is not None:
                value = (start + value) - start
            parsed.values = value * weights[i]
        builder.add(parsed, int(group))
    return builder, {**facts, "cats": model.get("cats", {}).get("enc") or []}


def _describe_input(
    est: Any, ctx: Context, path: str, builder: ForestBuilder, facts: dict[str, Any]
) -> None:
    """Feature names, and the training categories XGBoost (3.1+) keeps in the model and
    recodes a DataFrame's category columns with (an unseen category is an error, as there);
    without them (older models, or fitted on an array) XGBoost reads a category column's own
    codes, and numbers as codes."""
    n_features = builder.n_features
    names = facts["feature_names"]
    label = names if names and len(names) == n_features else [str(j) for j in range(n_features)]
    types, cats = facts["feature_types"], facts["cats"]
    columns = {j for j, t in enumerate(types) if t == "c"} | set(builder.cat_columns)
    if cats and len(cats) != n_features:
        raise UnsupportedModelError(f"XGBoost categories for {len(cats)} of {n_features} features")
    categories = [
        category(est, j, label[j], _categories(est, label[j], cats[j]) if cats else None, "error")
        for j in sorted(columns)
    ]
    ctx.describe_input(est, path, feature_names=names, categories=categories)


def _categories(est: Any, name: str, enc: dict[str, Any]) -> list[Any] | None:
    """One feature's training categories from the model's ``cats``: numbers, or strings as
    byte values cut at offsets; None if it recorded none (a ``codes`` table)."""
    values = enc.get("values", [])
    if "type" in enc:
        return list(values)
    offsets = enc.get("offsets", [])
    if not offsets:
        return None
    if (
        offsets[0] != 0
        or offsets[-1] != len(values)
        or any(b < a for a, b in itertools.pairwise(offsets))
    ):
        raise UnsupportedModelError(f"XGBoost feature {name!r}: malformed category offsets")
    if any(not 0 <= v < 128 for v in values):
        # XGBoost 3.x writes one signed byte per character into its JSON: non-ASCII
        # categories do not survive it, so the model's own recoding is not known exactly.
        raise UnsupportedModelError(
            f"{type(est).__name__}: categorical feature {name!r} has non-ASCII string "
            "categories, which XGBoost's model JSON does not keep; use ASCII strings or "
            "integers as categories"
        )
    text = bytes(values).decode("ascii")
    return [text[a:b] for a, b in itertools.pairwise(offsets)]


def _tree(tree: dict[str, Any], builder: ForestBuilder) -> Tree:
    if int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
        raise UnsupportedModelError("XGBoost multi_strategy='multi_output_tree' is not supported")
    left = np.asarray(tree["left_children"], dtype=np.int64)
    condition = np.asarray(tree["split_conditions"], dtype=np.float32)
    feature = np.asarray(tree["split_indices"], dtype=np.int64)
    threshold = np.nextafter(condition, np.float32(-np.inf))
    default_left = np.asarray(tree["default_left"], dtype=bool)
    # Categorical splits: the listed categories go right (XGBoost's Decision() is "not in set").
    segments = zip(
        tree["categories_nodes"], tree["categories_segments"], tree["categories_sizes"], strict=True
    )
    for node, start, size in segments:
        categories = tree["categories"][start : start + size]
        feature[node] = builder.categorical(int(feature[node]), categories)
        threshold[node] = 0.5
    return Tree(
        left=left,
        right=np.asarray(tree["right_children"], dtype=np.int64),
        feature=feature,
        threshold=threshold,
        missing_right=~default_left,
        values=condition.reshape(-1, 1),  # a leaf's split_condition is its value
    )


def _base_margin(text: str, link: str, n_groups: int) -> np.ndarray:
    values = np.asarray(json.loads(text) if text.startswith("[") else [float(text)], np.float32)
    if len(values) == 1:
        values = np.repeat(values, n_groups)
    if len(values) != n_groups:
        raise UnsupportedModelError(f"{len(values)} base scores for {n_groups} outputs")
    one = np.float32(1)
    # XGBoost's ProbToMargin in float32 arithmetic; logf is correctly rounded, so take the
    # float64 log and round it (numpy's float32 log may be one ulp off).
    with np.errstate(divide="ignore"):
        if link == "logit":  # -log(1 / p - 1)
            return (-np.log((one / values - one).astype(np.float64))).astype(np.float32)
        if link == "log":
            return np.log(values.astype(np.float64)).astype(np.float32)
    return values


def _spec(
    est: Any, ctx: Context, kind: str, path: str, builder: ForestBuilder, facts: dict[str, Any],
    params: dict[str, Any], labels: Any = None,
) -> dict[str, Any]:  # fmt: skip
    _describe_input(est, ctx, path, builder, facts)
    return forest_spec(
        ctx, kind, path, builder, n_groups=facts["n_groups"], arrays={"base": facts["base"]},
        params={"allow_nan": True, **params}, labels=labels,
    )  # fmt: skip


def _linear_spec(
    est: Any, ctx: Context, kind: str, path: str, learner: dict[str, Any], params: dict[str, Any],
    labels: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """``gblinear``: per group, ``float32(bias + base)``, then ``+= float32(x * w)`` over the
    row's present features in column order, all in float32 (gblinear.cc's ``Pred``). Every
    group starts from the first base margin, as XGBoost's does."""
    facts = _facts(learner)
    n_features, n_groups = facts["n_features"], facts["n_groups"]
    weights = np.asarray(learner["gradient_booster"]["model"]["weights"], dtype=np.float32)
    if weights.shape != ((n_features + 1) * n_groups,):
        raise UnsupportedModelError(
            f"XGBoost gblinear: {len(weights)} weights for {n_features} features and "
            f"{n_groups} outputs"
        )
    weights = weights.reshape(n_features + 1, n_groups)
    if "c" in facts["feature_types"]:
        raise unsupported(est, "booster='gblinear' with categorical features")
    ctx.describe_input(est, path, feature_names=facts["feature_names"])
    return ctx.spec(
        kind,
        path,
        arrays={"coef": weights[:n_features], "intercept": weights[n_features] + facts["base"][0]},
        params={"n_features": n_features, "allow_nan": True, **params},
        labels=labels,
    )


def _is_linear(learner: dict[str, Any]) -> bool:
    return bool(learner["gradient_booster"]["name"] == "gblinear")


def _iterations(est: Any) -> int | None:
    """The rounds the wrapper predicts with: up to best_iteration after early stopping."""
    try:
        return int(est.best_iteration) + 1
    except (AttributeError, ValueError):
        return None


# XGBClassifier's predict: labels from probabilities, except multi:softmax, whose booster
# gives class indices (cast to int32); its predict_proba is scipy's softmax of the margins.
# binary:logitraw's "probabilities" are the margins themselves, labels where they exceed 0.5.
_CLASSIFIER_RULES = {
    "binary:logistic": ("sigmoid", "proba_gt_half"),
    "binary:logitraw": ("identity", "proba_gt_half"),
    "multi:softprob": ("softmax", "argmax_proba"),
    "multi:softmax": ("scipy_softmax", "argmax_raw_int32"),
}


def _check_missing(est: Any) -> None:
    """Only NaN marks missing values: ``missing`` a NaN of any float type (numpy's float32
    NaN was refused), nothing else."""
    missing = est.missing
    if isinstance(missing, bool) or not isinstance(missing, float | np.floating):
        raise unsupported(est, f"missing={missing!r} (only NaN marks missing values)")
    if not np.isnan(missing):
        raise unsupported(est, f"missing={missing!r} (only NaN marks missing values)")


def _classifier(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    _check_missing(est)
    learner = _learner(est.get_booster())
    objective = learner["objective"]["name"]
    targets = int(learner["learner_model_param"].get("num_target", "1"))
    if targets > 1:  # fitted on a label matrix: one binary model per column
        raise unsupported(
            est,
            f"a multi-label target ({targets} label columns)",
            "wrap it in sklearn.multioutput.MultiOutputClassifier(XGBClassifier(...)) and fit "
            "that: it compiles, one model per label",
        )
    if objective not in _CLASSIFIER_RULES or objective.startswith("multi:") != (est.n_classes_ > 2):
        raise unsupported(est, f"objective={objective!r} for {est.n_classes_} classes")
    link, rule = _CLASSIFIER_RULES[objective]
    params = {"methods": methods_of(est), "link": link, "label_rule": rule}
    if _is_linear(learner):  # the wrapper predicts with every round
        kind = "boosted_linear_classifier"
        return _linear_spec(est, ctx, kind, path, learner, params, est.classes_)
    builder, facts = parse(learner, _iterations(est), inplace=True)
    return _spec(est, ctx, "boosted_classifier", path, builder, facts, params, est.classes_)


def _regressor(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    """XGBRegressor, XGBRFRegressor, and XGBRanker, whose predict gives the raw scores."""
    _check_missing(est)
    learner = _learner(est.get_booster())
    objective = learner["objective"]["name"]
    link = OBJECTIVES.get(objective, ("", ""))[0]
    if link in ("softmax", "argmax", "sigmoid") and objective != "reg:logistic":
        raise unsupported(est, f"objective={objective!r} in a regressor")
    if _is_linear(learner):
        params = {"methods": methods_of(est), "link": _facts(learner)["link"]}
        return _linear_spec(est, ctx, "boosted_linear_regressor", path, learner, params)
    builder, facts = parse(learner, _iterations(est), inplace=True)
    params = {"methods": methods_of(est), "link": facts["link"]}
    return _spec(est, ctx, "boosted_regressor", path, builder, facts, params)


def _booster(booster: Any, ctx: Context, path: str) -> dict[str, Any]:
    """A bare Booster: ``predict`` as ``Booster.predict`` (all rounds), and the margins
    (``output_margin=True``) as ``decision_function``, the scikit-learn name for raw scores."""
    learner = _learner(booster)
    if _is_linear(learner):
        params = {"methods": ["predict", "decision_function"], "link": _facts(learner)["link"]}
        return _linear_spec(booster, ctx, "boosted_linear_regressor", path, learner, params)
    builder, facts = parse(learner)
    params = {"methods": ["predict", "decision_function"], "link": facts["link"]}
    return _spec(booster, ctx, "boosted_regressor", path, builder, facts, params)


try:
    import xgboost
except ImportError:  # the converters need xgboost; without it there is nothing to convert
    pass
else:
    converter(xgboost.XGBClassifier, xgboost.XGBRFClassifier)(_classifier)
    converter(xgboost.XGBRegressor, xgboost.XGBRFRegressor, xgboost.XGBRanker)(_regressor)
    converter(xgboost.Booster)(_booster)
