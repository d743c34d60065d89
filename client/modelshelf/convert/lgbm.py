"""LightGBM models to tree specs, from their text dumps (``Booster.model_to_string()``), never
from pickles.

LightGBM compares float64 inputs ``x <= threshold`` (left), with a missing type per node:

- NaN: NaN goes to the default side.
- None: NaN is read as 0.0, so it goes where 0.0 goes (right iff threshold < 0).
- Zero: NaN and every |x| <= 1e-35 go to the default side. The runtime turns such values of
  those features into NaN first (``zero_missing``), which makes this the NaN rule.

Every |x| <= 1e-35 (kZeroThreshold) is 0.0 to LightGBM's predictor: a threshold within that
band is moved to the band's edge on its side of 0, so that the raw comparison agrees.

A categorical split sends ``int(x)`` (truncated toward zero) left iff its bit is set; negative
values, NaN and categories beyond the bitset go right: unseen categories are not an error.
Leaf outputs are summed in float64 in tree order; ``average_output`` (random forest mode)
divides by the number of iterations. ``linear_tree`` leaves hold a linear model of the input
(runtime/trees_linear.py computes them as LightGBM's ``Tree::Predict``). LGBMRanker predicts
raw scores, like a regressor.

The converters register only when lightgbm imports.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..errors import UnsupportedModelError
from ._context import Context, category, converter
from .trees import ForestBuilder, Tree, forest_spec, methods_of

_IDENTITY = (
    *("regression", "regression_l1", "huber", "fair", "quantile", "mape"),
    *("lambdarank", "rank_xendcg"),
)
LINKS = {
    **dict.fromkeys(_IDENTITY, "identity"),
    **dict.fromkeys(("poisson", "gamma", "tweedie"), "libm_exp"),  # LightGBM calls C's exp
    **dict.fromkeys(("binary", "cross_entropy"), "sigmoid"),
    "multiclass": "libm_softmax",
    "multiclassova": "ovr_sigmoid",
}
_MISSING_NONE, _MISSING_ZERO, _MISSING_NAN = 0, 1, 2
_ZERO_THRESHOLD = float(np.float32(1e-35))  # LightGBM's kZeroThreshold, a float
_BELOW_ZERO_BAND = float(np.nextafter(-_ZERO_THRESHOLD, -np.inf))


def parse(text: str) -> tuple[ForestBuilder, dict[str, Any]]:
    """The trees of a ``model_to_string()`` dump, and its facts (link, groups, divisor)."""
    header, blocks = _sections(text)
    tokens = header.get("objective", "").split()
    if not tokens or tokens[0] not in LINKS or "sqrt" in tokens[1:]:
        raise UnsupportedModelError(f"LightGBM objective {' '.join(tokens)!r} is not supported")
    options = dict(t.split(":", 1) for t in tokens[1:] if ":" in t)
    n_groups = int(header["num_tree_per_iteration"])
    n_features = int(header["max_feature_idx"]) + 1
    builder = ForestBuilder(n_features, threshold_dtype=np.float64, category_cast="trunc")
    splits: list[np.ndarray] = []  # (feature, missing type) of every numeric split
    for i, block in enumerate(blocks):
        builder.add(_tree(block, builder, splits), i % n_groups)
    kinds = np.concatenate(splits, axis=1) if splits else np.zeros((2, 0), np.int64)
    zero_features = np.unique(kinds[0, kinds[1] == _MISSING_ZERO])
    # The runtime turns |x| <= 1e-35 into NaN for a whole feature: LightGBM sets one missing
    # type per feature, but check that no split on such a feature reads those values otherwise.
    if np.isin(kinds[0, kinds[1] != _MISSING_ZERO], zero_features).any():
        raise UnsupportedModelError("a feature mixes LightGBM's zero-as-missing with other rules")
    facts = {
        "feature_names": header.get("feature_names", "").split(" "),
        "categorical": _categorical_features(text, builder),
        "pandas_categorical": _pandas_categorical(text),
        "objective": tokens[0],
        "link": LINKS[tokens[0]],
        "sigmoid_scale": float(options.get("sigmoid", 1.0)),
        "n_groups": n_groups,
        "divisor": len(blocks) // n_groups if "average_output" in header else 1,
        "zero_missing": zero_features.astype(np.int32),
    }
    return builder, facts


def _categorical_features(text: str, builder: ForestBuilder) -> list[int]:
    """The features fitted as categorical (the ``categorical_feature`` parameter LightGBM
    writes as indices), and any feature a categorical split reads."""
    found = set(builder.cat_columns)
    for line in text[text.rfind("\nparameters:") :].splitlines():
        if line.startswith("[categorical_feature:"):
            listed = line.removeprefix("[categorical_feature:").rstrip("]").strip()
            try:
                found.update(int(t) for t in listed.split(",") if t.strip())
            except ValueError as exc:
                raise UnsupportedModelError(f"LightGBM categorical_feature {listed!r}") from exc
    return sorted(found)


def _pandas_categorical(text: str) -> list[list[Any]] | None:
    """The categories of the pandas category columns the model was fitted on, in column order
    (``pandas_categorical:`` at the end of the dump), or None."""
    at = text.rfind("\npandas_categorical:")
    if at < 0:
        return None
    line = text[at + 1 :].split("\n", 1)[0].removeprefix("pandas_categorical:")
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise UnsupportedModelError(f"LightGBM pandas_categorical is not JSON: {exc}") from exc
    if value is not None and not (
        isinstance(value, list) and all(isinstance(v, list) for v in value)
    ):
        raise UnsupportedModelError("LightGBM pandas_categorical is not a list of lists")
    return value


def _describe_input(
    est: Any, ctx: Context, path: str, builder: ForestBuilder, facts: dict[str, Any]
) -> None:
    """Feature names (not LightGBM's own ``Column_<i>``), and the training categories of
    pandas category columns, with which LightGBM recodes a DataFrame's (an unseen category
    is missing); fitted on an array, LightGBM reads a category column's own codes."""
    n_features = builder.n_features
    names = facts["feature_names"]
    if len(names) != n_features or names == [f"Column_{j}" for j in range(n_features)]:
        names = None
    label = names or [str(j) for j in range(n_features)]
    columns, recorded = facts["categorical"], facts["pandas_categorical"]
    if recorded == []:
        # Fitted on a DataFrame without category columns: its categorical features were
        # columns of codes, and LightGBM reads them as such (a category column is an error).
        columns = []
    elif recorded is not None and len(recorded) != len(columns):
        # LightGBM pairs them by position: the i-th category column of a DataFrame with the
        # i-th list. An ordered category column (read as numbers) or categorical_feature
        # naming a non-category column breaks the pairing with the features.
        raise UnsupportedModelError(
            f"{type(est).__name__}: LightGBM recorded the categories of {len(recorded)} pandas "
            f"category columns but the model has {len(columns)} categorical features, and "
            "pairs them by position (an ordered category column, a category column left out "
            "of categorical_feature, or categorical_feature naming another column breaks the "
            "pairing), so which categories belong to which feature is unknown; fit with the "
            "unordered category columns as the categorical features (categorical_feature='auto')"
        )
    categories = [
        category(est, j, label[j], None if recorded is None else recorded[i], "missing")
        for i, j in enumerate(columns)
    ]
    ctx.describe_input(est, path, feature_names=names, categories=categories)


def _sections(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The header's ``key=value`` lines (a bare key is a flag), and one dict per tree."""
    header: dict[str, str] = {}
    blocks: list[dict[str, str]] = []
    current = header
    for line in text.splitlines():
        line = line.strip()
        if line == "end of trees":
            break
        if line.startswith("Tree="):
            current = {}
            blocks.append(current)
        elif line:
            key, _, value = line.partition("=")
            current[key] = value
    if "num_tree_per_iteration" not in header or "max_feature_idx" not in header:
        raise UnsupportedModelError("not a LightGBM model dump (no tree header)")
    return header, blocks


def _numbers(block: dict[str, str], key: str, dtype: Any) -> np.ndarray:
    return np.asarray(block[key].split(), dtype=np.float64).astype(dtype)


def _linear(block: dict[str, str], n_leaves: int) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """``linear_tree``: every leaf's constant, input columns and coefficients."""
    const = _numbers(block, "leaf_const", np.float64)
    counts = _numbers(block, "num_features", np.int64)
    features = _numbers(block, "leaf_features", np.int64) if counts.sum() else np.zeros(0)
    coeff = _numbers(block, "leaf_coeff", np.float64) if counts.sum() else np.zeros(0)
    if not (
        len(const) == len(counts) == n_leaves
        and (counts >= 0).all()
        and len(features) == len(coeff) == counts.sum()
    ):
        raise UnsupportedModelError("LightGBM linear leaves: malformed leaf_const/leaf_features")
    bounds = np.cumsum([0, *counts.tolist()])
    return [
        (float(const[j]), features[bounds[j] : bounds[j + 1]], coeff[bounds[j] : bounds[j + 1]])
        for j in range(n_leaves)
    ]


def _tree(block: dict[str, str], builder: ForestBuilder, splits: list[np.ndarray]) -> Tree:
    leaf_value = _numbers(block, "leaf_value", np.float64)
    n_leaves = int(block["num_leaves"])
    n_inner = n_leaves - 1
    linear = None
    if block.get("is_linear", "0") != "0":
        linear = dict(enumerate(_linear(block, n_leaves), start=n_inner))  # leaf j is n_inner + j
    if n_inner == 0:  # a single leaf: no split lines at all
        none = np.full(1, -1, dtype=np.int64)
        return Tree(
            none, none, np.zeros(1, np.int64), np.zeros(1), np.zeros(1, bool), leaf_value[:, None],
            linear,
        )  # fmt: skip

    def node_ids(children: np.ndarray) -> np.ndarray:
        return np.where(children >= 0, children, n_inner + ~children)  # leaf j is ~j

    left = node_ids(_numbers(block, "left_child", np.int64))
    right = node_ids(_numbers(block, "right_child", np.int64))
    feature = _numbers(block, "split_feature", np.int64)
    threshold = _numbers(block, "threshold", np.float64)
    decision = _numbers(block, "decision_type", np.int64)
    default_left = (decision & 2) != 0
    missing_type = (decision >> 2) & 3
    missing_right = ~default_left
    none = missing_type == _MISSING_NONE
    missing_right[none] = threshold[none] < 0  # NaN reads as 0.0
    numeric = (decision & 1) == 0
    # LightGBM reads every |x| <= kZeroThreshold as 0.0 before any split: a threshold within
    # that band compares as its side of 0 does (x = -1e-35 exactly went left of -1e-35)
    band = numeric & (threshold >= -_ZERO_THRESHOLD) & (threshold < _ZERO_THRESHOLD)
    threshold[band] = np.where(threshold[band] < 0, _BELOW_ZERO_BAND, _ZERO_THRESHOLD)
    splits.append(np.stack([feature[numeric], missing_type[numeric]]))

    categorical = np.flatnonzero(decision & 1).tolist()
    if categorical:
        bounds = _numbers(block, "cat_boundaries", np.int64)
        words = _numbers(block, "cat_threshold", np.uint32)
    for i in categorical:
        index = int(threshold[i])
        bits = words[bounds[index] : bounds[index + 1]].astype("<u4").view(np.uint8)
        categories = np.flatnonzero(np.unpackbits(bits, bitorder="little"))
        # Categories in the bitset go left: swap the children so that they are the second.
        feature[i] = builder.categorical(int(feature[i]), categories)
        threshold[i] = 0.5
        left[i], right[i] = right[i], left[i]
        missing_right[i] = False  # NaN goes right (LightGBM's right, now the first child)

    values = np.zeros((n_inner + n_leaves, 1))
    values[n_inner:, 0] = leaf_value
    pad = np.full(n_leaves, -1, dtype=np.int64)
    return Tree(
        left=np.concatenate([left, pad]),
        right=np.concatenate([right, pad]),
        feature=np.concatenate([feature, np.zeros(n_leaves, np.int64)]),
        threshold=np.concatenate([threshold, np.zeros(n_leaves)]),
        missing_right=np.concatenate([missing_right, np.zeros(n_leaves, bool)]),
        values=values,
        linear=linear,
    )


def _spec(
    est: Any, ctx: Context, kind: str, path: str, builder: ForestBuilder, facts: dict[str, Any],
    params: dict[str, Any], labels: Any = None,
) -> dict[str, Any]:  # fmt: skip
    _describe_input(est, ctx, path, builder, facts)
    zero = facts["zero_missing"]
    params = {
        "allow_nan": True, "link": facts["link"], "sigmoid_scale": facts["sigmoid_scale"],
        "divisor": facts["divisor"],
        # LightGBM casts a numpy array of any other dtype than float32/float64 (ints, a
        # big-endian float64) to float32 before predicting (basic._np2d_to_np1d)
        "numpy_float32": True, **params,
    }  # fmt: skip
    arrays = {"zero_missing": zero if len(zero) else None}
    return forest_spec(
        ctx, kind, path, builder, n_groups=facts["n_groups"], arrays=arrays, params=params,
        labels=labels,
    )  # fmt: skip


def _classifier(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    builder, facts = parse(est.booster_.model_to_string())
    if facts["objective"] not in ("binary", "multiclass", "multiclassova"):
        raise UnsupportedModelError(f"LGBMClassifier objective {facts['objective']!r}")
    params = {"methods": methods_of(est), "label_rule": "argmax_proba"}
    return _spec(est, ctx, "boosted_classifier", path, builder, facts, params, est.classes_)


def _regressor(est: Any, ctx: Context, path: str) -> dict[str, Any]:
    """LGBMRegressor, and LGBMRanker, whose predict gives the raw scores."""
    builder, facts = parse(est.booster_.model_to_string())
    return _spec(est, ctx, "boosted_regressor", path, builder, facts, {"methods": methods_of(est)})


def _booster(booster: Any, ctx: Context, path: str) -> dict[str, Any]:
    """A bare Booster: ``predict`` as ``Booster.predict`` (best iteration, else all), the raw
    scores (``raw_score=True``) as ``decision_function``, the scikit-learn name for them."""
    builder, facts = parse(booster.model_to_string())
    params = {"methods": ["predict", "decision_function"]}
    return _spec(booster, ctx, "boosted_regressor", path, builder, facts, params)


try:
    import lightgbm
except ImportError:  # the converters need lightgbm; without it there is nothing to convert
    pass
else:
    converter(lightgbm.LGBMClassifier)(_classifier)
    converter(lightgbm.LGBMRegressor, lightgbm.LGBMRanker)(_regressor)
    converter(lightgbm.Booster)(_booster)
