"""Exactness cases: CatBoost (oblivious trees from its JSON export). CatBoost compares float32
inputs with float32 borders and sums leaf values in float64, as the runtime does: default
tolerances."""

from __future__ import annotations

import catboost as cb

from ._case import Case

_CB = {
    "iterations": 40,
    "depth": 4,
    "verbose": 0,
    "thread_count": 1,
    "random_seed": 0,
    "allow_writing_files": False,  # no catboost_info/ in the working directory
}

CASES = [
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
]
