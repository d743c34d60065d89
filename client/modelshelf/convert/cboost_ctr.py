"""CatBoost's categorical features, from its JSON export, as a ``catboost_features`` step.

The export lists the categorical features (``features_info.categorical_features``, with the
hashes one-hot splits compare for those that have ``values``), the CTR features
(``features_info.ctrs``: a projection of categorical values, float splits and one-hot bits, a
CTR type, priors, shift, scale and borders) and, per projection and type, the table of counts
keyed by projection hash (``ctr_data``). Tree splits name a one-hot split by feature and value,
and a CTR split only by ``split_index``, its position in the model's list of binary features:
every float feature's borders, then every one-hot feature's values, then every CTR's borders.
Each split is checked against that position, so an export laid out otherwise is refused, never
misread. runtime/catboost_ctr.py computes the same values at prediction time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UnsupportedModelError
from ..runtime.catboost_ctr import CAT_VALUE, CTR_TYPES, EXACT_VALUE, FLOAT_SPLIT
from ._context import Context

_EMPTY_HASH = (1 << 64) - 1  # an empty bucket of CatBoost's hash table
_NAN_RIGHT = {"AsFalse": False, "AsIs": False, "AsTrue": True}


@dataclass
class Layout:
    """Everything the ``catboost_features`` step stores, and where each split reads."""

    name: str
    float_columns: list[int]
    cat_columns: list[int]
    feature_names: list[str] | None
    onehot: list[tuple[int, int]] = field(default_factory=list)
    elements: list[tuple[int, int, int]] = field(default_factory=list)
    borders: list[float] = field(default_factory=list)
    proj_offsets: list[int] = field(default_factory=lambda: [0])
    ctrs: list[tuple[int, int, int, int]] = field(default_factory=list)
    priors: list[tuple[float, float, float, float]] = field(default_factory=list)
    tables: list[tuple[np.ndarray, np.ndarray, int]] = field(default_factory=list)
    #: split_index -> (split type, one-hot (feature, value), output column, CTR border)
    bins: dict[int, tuple[str, Any, int, float]] = field(default_factory=dict)

    @property
    def n_out(self) -> int:
        return len(self.float_columns) + len(self.onehot) + len(self.ctrs)

    def place(self, split: dict[str, Any]) -> tuple[int, float, bool]:
        kind = split.get("split_type")
        entry = self.bins.get(int(split.get("split_index", -1)))
        if entry is None or entry[0] != kind:
            pass
        elif kind == "OneHotFeature":
            if entry[1] == (int(split["cat_feature_index"]), int(split["value"])):
                return entry[2], 0.5, False
        elif np.float32(split["border"]) == np.float32(entry[3]):  # OnlineCtr
            return entry[2], float(np.float32(entry[3])), False
        raise UnsupportedModelError(
            f"{self.name}: cannot place the {kind} split {split} among the model's binary "
            "features (an export laid out as this modelshelf does not know)"
        )


def ctr_layout(doc: dict[str, Any], name: str) -> Layout:
    """The ``catboost_features`` layout of a JSON export with categorical features."""
    info = doc["features_info"]
    floats = info.get("float_features", [])
    cats = info.get("categorical_features", [])
    ids = [str(f.get("feature_id", "")) for f in sorted(floats + cats, key=_flat)]
    named = len(ids) == 1 + max(_flat(f) for f in floats + cats) and all(ids)
    layout = Layout(
        name,
        float_columns=[_flat(f) for f in floats],
        cat_columns=[_flat(f) for f in cats],
        feature_names=ids if named else None,
    )
    float_at = {int(f["feature_index"]): i for i, f in enumerate(floats)}
    nan_right = {
        int(f["feature_index"]): _NAN_RIGHT[str(f.get("nan_value_treatment", "AsIs"))]
        for f in floats
    }
    cat_at = {int(f["feature_index"]): i for i, f in enumerate(cats)}
    split_index = sum(len(f.get("borders", [])) for f in floats)
    for f in cats:
        for value in f.get("values", []):
            column = len(floats) + len(layout.onehot)
            layout.onehot.append((cat_at[int(f["feature_index"])], int(value)))
            pair = (int(f["feature_index"]), int(value))
            layout.bins[split_index] = ("OneHotFeature", pair, column, 0.0)
            split_index += 1
    projections: dict[str, int] = {}
    tables: dict[str, int] = {}
    ctr_data = doc.get("ctr_data", {})
    for ctr in info.get("ctrs", []):
        ctr_type = str(ctr["ctr_type"])
        if ctr_type not in CTR_TYPES:
            raise UnsupportedModelError(
                f"{name} with the CTR type {ctr_type!r} (simple_ctr, combinations_ctr or "
                f"per_feature_ctr) is not supported; supported: {', '.join(CTR_TYPES)}"
            )
        elements = ctr["elements"]
        key = json.dumps(elements, sort_keys=True)
        if key not in projections:
            projections[key] = len(projections)
            for element in elements:
                layout.elements.append(_element(element, cat_at, float_at, nan_right, name))
                layout.borders.append(float(np.float32(element.get("border", 0.0))))
            layout.proj_offsets.append(len(layout.elements))
        identifier = str(ctr["identifier"])
        if identifier not in tables:
            if identifier not in ctr_data:
                raise UnsupportedModelError(f"{name}: the CTR {identifier} has no table")
            tables[identifier] = len(layout.tables)
            layout.tables.append(_table(ctr_data[identifier], ctr_type, name))
        target = int(ctr.get("target_border_idx", 0))
        width = layout.tables[tables[identifier]][1].shape[1]
        limit = width - 1 if ctr_type == "Borders" else width
        if ctr_type in ("Borders", "Buckets") and not 0 <= target < limit:
            raise UnsupportedModelError(
                f"{name}: a {ctr_type} CTR reads class border {target} of {width} classes"
            )
        column = layout.n_out
        layout.ctrs.append(
            (projections[key], tables[identifier], CTR_TYPES.index(ctr_type), target)
        )
        layout.priors.append(
            (
                float(ctr["prior_numerator"]),
                float(ctr["prior_denomerator"]),  # sic: CatBoost's spelling
                float(ctr["shift"]),
                float(ctr["scale"]),
            )
        )
        for border in ctr.get("borders", []):
            layout.bins[split_index] = ("OnlineCtr", None, column, float(border))
            split_index += 1
    return layout


def _flat(feature: dict[str, Any]) -> int:
    return int(feature["flat_feature_index"])


def _element(
    element: dict[str, Any],
    cat_at: dict[int, int],
    float_at: dict[int, int],
    nan_right: dict[int, bool],
    name: str,
) -> tuple[int, int, int]:
    """One projection element as (kind, feature, value)."""
    kind = element.get("combination_element")
    if kind == "cat_feature_value":
        return CAT_VALUE, cat_at[int(element["cat_feature_index"])], 0
    if kind == "cat_feature_exact_value":
        return EXACT_VALUE, cat_at[int(element["cat_feature_index"])], int(element["value"])
    if kind == "float_feature":
        index = int(element["float_feature_index"])
        return FLOAT_SPLIT, float_at[index], int(nan_right[index])
    raise UnsupportedModelError(f"{name}: a CTR combination element {kind!r} is not supported")


def _table(data: dict[str, Any], ctr_type: str, name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """A CTR table: sorted hashes (uint64), their rows of counts (float64), the denominator."""
    stride = int(data["hash_stride"])
    flat = data["hash_map"]
    if stride < 2 or len(flat) % stride:
        raise UnsupportedModelError(f"{name}: a CTR table of stride {stride} is malformed")
    rows = [flat[i : i + stride] for i in range(0, len(flat), stride)]
    rows = [row for row in rows if int(row[0]) != _EMPTY_HASH]
    hashes = np.array([int(row[0]) for row in rows], dtype=np.uint64)
    values = np.array([[float(v) for v in row[1:]] for row in rows], dtype=np.float64)
    values = values.reshape(len(rows), stride - 1)
    order = np.argsort(hashes, kind="stable")
    if len(hashes) > 1 and np.any(np.diff(hashes[order]) == 0):
        raise UnsupportedModelError(f"{name}: a {ctr_type} CTR table repeats a hash")
    return hashes[order], values[order], int(data.get("counter_denominator", 0))


def features_spec(ctx: Context, path: str, layout: Layout, n_features: int) -> dict[str, Any]:
    """The ``catboost_features`` component (docs/format.md, "CatBoost features")."""
    width = max((v.shape[1] for _, v, _ in layout.tables), default=1)
    hashes = [h for h, _, _ in layout.tables]
    padded = [np.pad(v, ((0, 0), (0, width - v.shape[1]))) for _, v, _ in layout.tables]
    offsets = np.cumsum([0] + [len(h) for h in hashes])
    arrays = {
        "float_columns": np.asarray(layout.float_columns, dtype=np.int64),
        "cat_columns": np.asarray(layout.cat_columns, dtype=np.int64),
        "onehot": np.asarray(layout.onehot, dtype=np.int64).reshape(-1, 2),
        "proj_elements": np.asarray(layout.elements, dtype=np.int64).reshape(-1, 3),
        "proj_borders": np.asarray(layout.borders, dtype=np.float32),
        "proj_offsets": np.asarray(layout.proj_offsets, dtype=np.int64),
        "ctr_features": np.asarray(layout.ctrs, dtype=np.int64).reshape(-1, 4),
        "ctr_priors": np.asarray(layout.priors, dtype=np.float32).reshape(-1, 4),
        "table_offsets": offsets.astype(np.int64),
        "table_hashes": np.concatenate(hashes) if hashes else np.zeros(0, np.uint64),
        "table_values": np.concatenate(padded) if padded else np.zeros((0, 1)),
        "table_info": np.asarray(
            [(v.shape[1], d) for _, v, d in layout.tables], dtype=np.int64
        ).reshape(-1, 2),
    }
    params = {"n_features": n_features, "n_projections": len(layout.proj_offsets) - 1}
    return ctx.spec("catboost_features", path, arrays=arrays, params=params)
