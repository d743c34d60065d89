"""Exactness cases: CatBoost (oblivious trees from its JSON export). CatBoost compares float32
inputs with float32 borders and sums leaf values in float64, as the runtime does: default
tolerances.

Categorical features (issue 10, point 3): the ``shop`` table has string categories of low and
high cardinality (some longer than 64 bytes, some not ASCII), integer categories, and floats
with NaN; its held-out rows hold categories never seen in training. ``one_hot_max_size`` decides
which features become one-hot splits and which CTRs; ``max_ctr_complexity`` above 1 lets CTRs
combine categorical features with each other and with float splits.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import catboost as cb
import numpy as np
import pandas as pd

from ._case import Case

_CB = {
    "iterations": 40,
    "depth": 4,
    "verbose": 0,
    "thread_count": 1,
    "random_seed": 0,
    "allow_writing_files": False,  # no catboost_info/ in the working directory
}
CATS = ["plan", "country", "city", "tier"]
Data = tuple[Any, Any, Any]


def shop(target: str = "binary", *, frame: bool = True) -> Callable[[], Data]:
    """500 training rows and 160 held-out ones; ``target`` is binary, multiclass or
    regression; ``frame=False`` gives numpy object arrays (columns by position)."""

    @functools.cache
    def make() -> Data:
        rng = np.random.default_rng(7)
        n = 660
        plan = rng.choice(["basic", "plus", "pro", "team"], n, p=[0.4, 0.3, 0.2, 0.1])
        country = rng.choice(["de", "fr", "it", "ßü", "日本"], n)
        # high cardinality: 150 cities, a few with names longer than 64 bytes
        names = [f"city-{i}" + ("-x" * 40 if i % 25 == 0 else "") for i in range(150)]
        city = np.asarray(names, dtype=object)[rng.zipf(1.3, n) % 150]
        tier = rng.integers(1, 6, n)
        age = rng.normal(40, 10, n).round(1)
        age[rng.uniform(size=n) < 0.1] = np.nan
        spend = rng.gamma(2.0, 50.0, n)
        effect = {c: rng.normal() for c in names}
        score = (
            np.select([plan == "pro", plan == "basic"], [1.0, -0.7], 0.2)
            + np.where(country == "ßü", 1.2, 0.0)
            + np.array([effect[c] for c in city]) * 0.8
            + 0.4 * (tier == 3)
            + (np.nan_to_num(age, nan=40) - 40) / 15
            + (spend - 100) / 100 * (plan == "team")
            + rng.normal(size=n) * 0.3
        )
        X = pd.DataFrame(
            {
                "age": age,
                "plan": plan.astype(object),
                "spend": spend,
                "country": pd.Series(country, dtype="category"),
                "city": city,
                "tier": tier,
            }
        )
        if target == "binary":
            y: Any = (score > 0).astype(np.int64)
        elif target == "multiclass":
            y = np.array(["low", "mid", "high"])[np.digitize(score, [-0.5, 0.7])]
        else:
            y = score
        train, test = X.iloc[:500], X.iloc[500:].copy()
        test.loc[test.index[::5], "city"] = "atlantis"  # unseen categories
        test.loc[test.index[::7], "plan"] = "free"
        test.loc[test.index[::9], "tier"] = 42
        if not frame:
            return train.to_numpy(dtype=object), y[:500], test.to_numpy(dtype=object)
        return train, y[:500], test

    return make


@functools.cache
def tiny() -> Data:
    """60 rows: CatBoost grows some trees without a split (``"splits": null`` in its export)."""
    rng = np.random.default_rng(1)
    X = pd.DataFrame(
        {"color": rng.choice(["red", "green", "blue"], 60), "size": rng.uniform(0, 10, 60)}
    )
    y = ((X["color"] == "red") ^ (X["size"] > 5)).to_numpy()
    test = X.copy()
    test.loc[:4, "color"] = "purple"
    return X, y, test


def cat(model: type, **options: Any) -> Callable[[], Any]:
    params = {**_CB, "depth": 6, "cat_features": CATS, **options}
    if "frame" in params:
        params.pop("frame")
        params["cat_features"] = [1, 3, 4, 5]
    return lambda: model(**params)


CASES = [
    Case(
        "catboost-cat-clf-splitless-trees",
        lambda: cb.CatBoostClassifier(**{**_CB, "iterations": 20, "depth": 3}, cat_features=[0]),
        tiny,
    ),
    Case("catboost-clf-breast_cancer", lambda: cb.CatBoostClassifier(**_CB), "breast_cancer"),
    Case("catboost-clf-strlabels", lambda: cb.CatBoostClassifier(**_CB), "random_strlabels"),
    Case(
        "catboost-clf-multi-iris",
        lambda: cb.CatBoostClassifier(**_CB, loss_function="MultiClass"),
        "iris",
    ),
    Case("catboost-clf-nan-min", lambda: cb.CatBoostClassifier(**_CB), "random_nan"),
    Case(
        "catboost-clf-nan-max",
        lambda: cb.CatBoostClassifier(**_CB, nan_mode="Max"),
        "random_nan",
    ),
    Case("catboost-reg-diabetes", lambda: cb.CatBoostRegressor(**_CB), "diabetes"),
    Case(
        "catboost-reg-depth8-mae",
        lambda: cb.CatBoostRegressor(**{**_CB, "depth": 8}, loss_function="MAE"),
        "random_reg",
    ),
    Case(
        "catboost-reg-poisson",
        lambda: cb.CatBoostRegressor(**_CB, loss_function="Poisson"),
        "random_counts",
    ),
    # Categorical features: CTRs only (one_hot_max_size=1), simple and combined.
    Case("catboost-cat-clf-ctr", cat(cb.CatBoostClassifier, one_hot_max_size=1), shop()),
    Case(
        "catboost-cat-clf-combinations",
        cat(cb.CatBoostClassifier, max_ctr_complexity=4, iterations=80),
        shop(),
    ),
    # One-hot splits for the low-cardinality features, CTRs for the others, both combined.
    Case(
        "catboost-cat-clf-onehot",
        cat(cb.CatBoostClassifier, one_hot_max_size=6, max_ctr_complexity=3, iterations=80),
        shop(),
    ),
    Case(
        "catboost-cat-clf-onehot-all",
        cat(cb.CatBoostClassifier, one_hot_max_size=255),
        shop(),
    ),
    Case(
        "catboost-cat-clf-crossentropy",
        cat(cb.CatBoostClassifier, loss_function="CrossEntropy", max_ctr_complexity=2),
        shop(),
    ),
    Case(
        "catboost-cat-clf-multiclass",
        cat(cb.CatBoostClassifier, loss_function="MultiClass", max_ctr_complexity=3),
        shop("multiclass"),
    ),
    Case(
        "catboost-cat-clf-ctr-types",
        cat(
            cb.CatBoostClassifier,
            simple_ctr=["Borders", "Buckets", "Counter", "BinarizedTargetMeanValue"],
            combinations_ctr=["Buckets", "Counter"],
            max_ctr_complexity=2,
        ),
        shop(),
    ),
    Case(
        "catboost-cat-clf-multiclass-buckets",
        cat(
            cb.CatBoostClassifier,
            loss_function="MultiClass",
            simple_ctr=["Buckets:Prior=0.3", "Borders:TargetBorderCount=2"],
        ),
        shop("multiclass"),
    ),
    # Counter with a prior: an unseen category counts 0 of the whole denominator.
    Case(
        "catboost-cat-clf-counter-prior",
        cat(
            cb.CatBoostClassifier,
            simple_ctr=["Counter:Prior=0.7/1"],
            combinations_ctr=["Counter:Prior=1.5/1"],
            max_ctr_complexity=2,
        ),
        shop(),
    ),
    Case(
        "catboost-cat-clf-numpy",
        cat(cb.CatBoostClassifier, frame=False, one_hot_max_size=4, max_ctr_complexity=2),
        shop(frame=False),
    ),
    Case(
        "catboost-cat-reg-rmse",
        cat(cb.CatBoostRegressor, max_ctr_complexity=3),
        shop("regression"),
    ),
    Case(
        "catboost-cat-reg-mae-numpy",
        cat(cb.CatBoostRegressor, frame=False, loss_function="MAE", one_hot_max_size=5),
        shop("regression", frame=False),
    ),
    Case(
        "catboost-cat-reg-mean-ctr",
        cat(
            cb.CatBoostRegressor,
            simple_ctr=["BinarizedTargetMeanValue", "Counter", "Borders:TargetBorderCount=3"],
            max_ctr_complexity=2,
        ),
        shop("regression"),
    ),
]
