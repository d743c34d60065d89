"""Exactness cases: trees and tree ensembles (scikit-learn, XGBoost, LightGBM).

scikit-learn's trees and ensembles compute in float64 after rounding inputs to float32, as the
runtime does: default tolerances. XGBoost computes in float32 and LightGBM compares and sums in
float64 but exponentiates with libm: rtol 1e-6 (the images agree bit for bit on our machines,
but numpy's exp may differ from a C library's by an ulp).

``categorical`` has a strong categorical signal so that every library actually splits on
categories, NaN in every column, and test rows holding categories never seen in training
(negative, fractional, huge): each library's own rule for those is reproduced, not an error.
"""

from __future__ import annotations

import numpy as np
import xgboost as xgb
from lightgbm import LGBMClassifier, LGBMRanker, LGBMRegressor
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

from ._case import Case, dataset

UNSEEN = [-1.0, -0.5, 0.5, 2.9, 10.0, 12.0, 1e9, 3e9, -3e9, np.nan]


def categorical() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Columns 0-1: categories 0..9; 2-4 numeric; 5% NaN; the test set adds unseen values."""
    rng = np.random.default_rng(7)
    n = 500
    cats = rng.integers(0, 10, size=(n, 2)).astype(np.float64)
    num = rng.normal(size=(n, 3))
    effect = rng.normal(size=(2, 10)) * 2
    score = effect[0, cats[:, 0].astype(int)] + effect[1, cats[:, 1].astype(int)] + num[:, 0]
    y = (score + rng.normal(size=n) * 0.3 > 0).astype(np.int64)
    X = np.hstack([cats, num])
    X[rng.uniform(size=X.shape) < 0.05] = np.nan
    X_test = X[400:].copy()
    X_test[: len(UNSEEN), 0] = UNSEEN
    X_test[len(UNSEEN) : 2 * len(UNSEEN), 1] = UNSEEN
    return X[:400], y[:400], X_test


def categorical_reg() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y, X_test = categorical()
    rng = np.random.default_rng(8)
    return X, y * 3.0 + np.nan_to_num(X[:, 3]) + rng.normal(size=len(y)), X_test


def counts_target() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """diabetes with its (positive) target, for Poisson and gamma losses."""
    return dataset("diabetes")


def zeros() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """30% exact zeros, for LightGBM's zero_as_missing; tests also hold tiny values and NaN."""
    rng = np.random.default_rng(9)
    X = rng.normal(size=(500, 4))
    X[rng.uniform(size=X.shape) < 0.3] = 0.0
    y = (X[:, 0] + (X[:, 1] == 0) + rng.normal(size=500) * 0.2 > 0.5).astype(np.int64)
    X_test = X[400:].copy()
    X_test[:6, 1] = [np.nan, 1e-36, -1e-36, 1e-35, 2e-35, -0.0]
    return X[:400], y[:400], X_test


def queries(X: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """XGBRanker's query ids: consecutive groups of 20 rows."""
    return {"qid": np.arange(len(X)) // 20}


def query_sizes(X: np.ndarray, y: np.ndarray) -> dict[str, list[int]]:
    """LGBMRanker's query groups: the sizes of the same groups."""
    return {"group": np.bincount(np.arange(len(X)) // 20).tolist()}


def early_stopping(X: np.ndarray, y: np.ndarray) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """An evaluation set for early stopping: the last quarter of the training rows (fitting
    still sees all of them), so that best_iteration falls before the last round."""
    return {"eval_set": [(X[-len(X) // 4 :], y[-len(X) // 4 :])], "verbose": False}


_F32 = {"rtol": 1e-6, "atol": 1e-9}
_XGB = {"n_estimators": 15, "max_depth": 4, "n_jobs": 1}
_DART = {**_XGB, "booster": "dart", "rate_drop": 0.3, "random_state": 0}
_LINEAR = {"n_estimators": 15, "n_jobs": 1, "booster": "gblinear"}
_XGB_CAT = {**_XGB, "enable_categorical": True, "feature_types": ["c", "c", "q", "q", "q"]}
_LGBM = {"n_estimators": 15, "num_leaves": 15, "verbose": -1, "n_jobs": 1}
_LINEAR_TREE = {**_LGBM, "linear_tree": True}
_LGBM_CAT = {**_LGBM, "categorical_feature": [0, 1], "min_data_per_group": 5, "cat_smooth": 1}
_HGB = {"max_iter": 15, "random_state": 0}

CASES: list[Case] = [
    # single trees
    Case("tree-clf-iris", lambda: DecisionTreeClassifier(random_state=0), "iris"),
    Case("tree-clf-nan", lambda: DecisionTreeClassifier(random_state=0), "random_nan"),
    Case("tree-clf-strlabels", lambda: DecisionTreeClassifier(max_depth=5), "random_strlabels"),
    Case("tree-reg-diabetes", lambda: DecisionTreeRegressor(random_state=0), "diabetes"),
    Case("tree-reg-multi", lambda: DecisionTreeRegressor(max_depth=6), "random_multireg"),
    Case("tree-extra-clf-wine", lambda: ExtraTreeClassifier(random_state=0), "wine"),
    Case("tree-extra-reg-nan", lambda: ExtraTreeRegressor(random_state=0), "random_nan"),
    # forests
    Case(
        "forest-rf-clf-digits",
        lambda: RandomForestClassifier(n_estimators=20, random_state=0),
        "digits",
    ),
    Case(
        "forest-rf-clf-nan",
        lambda: RandomForestClassifier(n_estimators=15, min_samples_leaf=3, random_state=0),
        "random_nan",
    ),
    Case(
        "forest-rf-clf-strlabels",
        lambda: RandomForestClassifier(n_estimators=10, random_state=0),
        "random_strlabels",
    ),
    Case(
        "forest-rf-reg-diabetes",
        lambda: RandomForestRegressor(n_estimators=15, random_state=0),
        "diabetes",
    ),
    Case(
        "forest-rf-reg-multi",
        lambda: RandomForestRegressor(n_estimators=10, random_state=0),
        "random_multireg",
    ),
    Case(
        "forest-et-clf-breast_cancer",
        lambda: ExtraTreesClassifier(n_estimators=15, random_state=0),
        "breast_cancer",
    ),
    Case(
        "forest-et-clf-nan",
        lambda: ExtraTreesClassifier(n_estimators=10, random_state=0),
        "random_nan",
    ),
    Case(
        "forest-et-reg-diabetes",
        lambda: ExtraTreesRegressor(n_estimators=10, random_state=0),
        "diabetes",
    ),
    # gradient boosting
    Case(
        "gb-clf-breast_cancer",
        lambda: GradientBoostingClassifier(n_estimators=20, random_state=0),
        "breast_cancer",
    ),
    Case(
        "gb-clf-multi-iris",
        lambda: GradientBoostingClassifier(n_estimators=15, random_state=0),
        "iris",
    ),
    Case(
        "gb-clf-exponential",
        lambda: GradientBoostingClassifier(loss="exponential", n_estimators=15, random_state=0),
        "random_clf",
    ),
    Case(
        "gb-clf-zero-init-strlabels",
        lambda: GradientBoostingClassifier(init="zero", n_estimators=10, random_state=0),
        "random_strlabels",
    ),
    Case(
        "gb-clf-early-stopping",
        lambda: GradientBoostingClassifier(
            n_estimators=200, n_iter_no_change=3, subsample=0.8, random_state=0
        ),
        "random_clf",
    ),
    Case(
        "gb-reg-diabetes",
        lambda: GradientBoostingRegressor(n_estimators=20, random_state=0),
        "diabetes",
    ),
    Case(
        "gb-reg-huber",
        lambda: GradientBoostingRegressor(loss="huber", n_estimators=15, random_state=0),
        "random_reg",
    ),
    Case(
        "gb-reg-quantile",
        lambda: GradientBoostingRegressor(
            loss="quantile", alpha=0.8, n_estimators=15, random_state=0
        ),
        "random_reg",
    ),
    # histogram gradient boosting
    Case("hgb-clf-breast_cancer", lambda: HistGradientBoostingClassifier(**_HGB), "breast_cancer"),
    Case("hgb-clf-multi-wine", lambda: HistGradientBoostingClassifier(**_HGB), "wine"),
    Case("hgb-clf-nan", lambda: HistGradientBoostingClassifier(**_HGB), "random_nan"),
    Case(
        "hgb-clf-random_cat",
        lambda: HistGradientBoostingClassifier(categorical_features=[0, 1, 2], **_HGB),
        "random_cat",
    ),
    Case(
        "hgb-clf-categorical",
        lambda: HistGradientBoostingClassifier(categorical_features=[0, 1], **_HGB),
        categorical,
    ),
    Case(
        "hgb-clf-strlabels",
        lambda: HistGradientBoostingClassifier(**_HGB),
        "random_strlabels",
    ),
    Case("hgb-reg-diabetes", lambda: HistGradientBoostingRegressor(**_HGB), "diabetes"),
    Case(
        "hgb-reg-poisson",
        lambda: HistGradientBoostingRegressor(loss="poisson", **_HGB),
        counts_target,
    ),
    Case(
        "hgb-reg-categorical",
        lambda: HistGradientBoostingRegressor(categorical_features=[0, 1], **_HGB),
        categorical_reg,
    ),
    # isolation forest
    Case(
        "iforest-nan",
        lambda: IsolationForest(n_estimators=20, random_state=0),
        "random_nan",
    ),
    Case(
        "iforest-features-contamination",
        lambda: IsolationForest(
            n_estimators=20, max_features=0.5, contamination=0.1, random_state=0
        ),
        "breast_cancer",
    ),
    # XGBoost
    Case("xgb-clf-breast_cancer", lambda: xgb.XGBClassifier(**_XGB), "breast_cancer", **_F32),
    Case("xgb-clf-multi-iris", lambda: xgb.XGBClassifier(**_XGB), "iris", **_F32),
    Case("xgb-clf-nan", lambda: xgb.XGBClassifier(**_XGB), "random_nan", **_F32),
    Case(
        "xgb-clf-categorical",
        lambda: xgb.XGBClassifier(max_cat_to_onehot=1, **_XGB_CAT),
        categorical,
        **_F32,
    ),
    Case(
        "xgb-clf-onehot-categorical",
        lambda: xgb.XGBClassifier(max_cat_to_onehot=32, **_XGB_CAT),
        categorical,
        **_F32,
    ),
    Case("xgb-rf-clf-wine", lambda: xgb.XGBRFClassifier(**_XGB), "wine", **_F32),
    Case("xgb-reg-diabetes", lambda: xgb.XGBRegressor(**_XGB), "diabetes", **_F32),
    Case("xgb-reg-multi", lambda: xgb.XGBRegressor(**_XGB), "random_multireg", **_F32),
    Case(
        "xgb-reg-poisson",
        lambda: xgb.XGBRegressor(objective="count:poisson", **_XGB),
        counts_target,
        **_F32,
    ),
    Case(
        "xgb-reg-logistic",
        lambda: xgb.XGBRegressor(objective="reg:logistic", **_XGB),
        "random_clf",
        **_F32,
    ),
    Case("xgb-dart-clf-breast_cancer", lambda: xgb.XGBClassifier(**_DART), "breast_cancer", **_F32),
    Case("xgb-dart-clf-nan", lambda: xgb.XGBClassifier(**_DART), "random_nan", **_F32),
    Case("xgb-dart-clf-multi-iris", lambda: xgb.XGBClassifier(**_DART), "iris", **_F32),
    Case(
        "xgb-dart-clf-early-stopping",
        lambda: xgb.XGBClassifier(**{**_DART, "n_estimators": 60}, early_stopping_rounds=3),
        "random_clf",
        fit_params=early_stopping,
        **_F32,
    ),
    Case("xgb-dart-reg-diabetes", lambda: xgb.XGBRegressor(**_DART), "diabetes", **_F32),
    Case(
        "xgb-linear-clf-breast_cancer",
        lambda: xgb.XGBClassifier(**_LINEAR),
        "breast_cancer",
        **_F32,
    ),
    Case("xgb-linear-clf-nan", lambda: xgb.XGBClassifier(**_LINEAR), "random_nan", **_F32),
    Case("xgb-linear-clf-multi-iris", lambda: xgb.XGBClassifier(**_LINEAR), "iris", **_F32),
    Case("xgb-linear-reg-diabetes", lambda: xgb.XGBRegressor(**_LINEAR), "diabetes", **_F32),
    Case(
        "xgb-linear-reg-poisson",
        lambda: xgb.XGBRegressor(objective="count:poisson", **_LINEAR),
        counts_target,
        **_F32,
    ),
    Case(
        "xgb-clf-logitraw",
        lambda: xgb.XGBClassifier(objective="binary:logitraw", **_XGB),
        "random_nan",
        **_F32,
    ),
    Case(
        "xgb-clf-softmax-iris",
        lambda: xgb.XGBClassifier(objective="multi:softmax", **_XGB),
        "iris",
        **_F32,
    ),
    Case("xgb-ranker", lambda: xgb.XGBRanker(**_XGB), "random_counts", fit_params=queries, **_F32),
    Case(
        "xgb-ranker-pairwise-linear",
        lambda: xgb.XGBRanker(objective="rank:pairwise", **_LINEAR),
        "random_counts",
        fit_params=queries,
        **_F32,
    ),
    # LightGBM
    Case("lgbm-clf-breast_cancer", lambda: LGBMClassifier(**_LGBM), "breast_cancer", **_F32),
    Case("lgbm-clf-multi-iris", lambda: LGBMClassifier(**_LGBM), "iris", **_F32),
    Case(
        "lgbm-clf-ova-wine",
        lambda: LGBMClassifier(objective="multiclassova", **_LGBM),
        "wine",
        **_F32,
    ),
    Case("lgbm-clf-nan", lambda: LGBMClassifier(**_LGBM), "random_nan", **_F32),
    Case("lgbm-clf-strlabels", lambda: LGBMClassifier(**_LGBM), "random_strlabels", **_F32),
    Case("lgbm-clf-categorical", lambda: LGBMClassifier(**_LGBM_CAT), categorical, **_F32),
    Case(
        "lgbm-clf-zero-as-missing",
        lambda: LGBMClassifier(zero_as_missing=True, **_LGBM),
        zeros,
        **_F32,
    ),
    Case(
        "lgbm-rf-clf",
        lambda: LGBMClassifier(boosting_type="rf", bagging_freq=1, bagging_fraction=0.7, **_LGBM),
        "breast_cancer",
        **_F32,
    ),
    Case("lgbm-reg-diabetes", lambda: LGBMRegressor(**_LGBM), "diabetes", **_F32),
    Case(
        "lgbm-reg-poisson",
        lambda: LGBMRegressor(objective="poisson", **_LGBM),
        counts_target,
        **_F32,
    ),
    Case("lgbm-reg-categorical", lambda: LGBMRegressor(**_LGBM_CAT), categorical_reg, **_F32),
    Case("lgbm-linear-reg-diabetes", lambda: LGBMRegressor(**_LINEAR_TREE), "diabetes", **_F32),
    Case("lgbm-linear-reg-nan", lambda: LGBMRegressor(**_LINEAR_TREE), "random_nan", **_F32),
    Case(
        "lgbm-linear-reg-categorical",
        lambda: LGBMRegressor(**{**_LGBM_CAT, "linear_tree": True}),
        categorical_reg,
        **_F32,
    ),
    Case("lgbm-linear-clf-zeros", lambda: LGBMClassifier(**_LINEAR_TREE), zeros, **_F32),
    Case("lgbm-linear-clf-multi-iris", lambda: LGBMClassifier(**_LINEAR_TREE), "iris", **_F32),
    Case(
        "lgbm-linear-reg-lambda",
        lambda: LGBMRegressor(linear_lambda=0.5, **_LINEAR_TREE),
        "random_reg",
        **_F32,
    ),
    Case(
        "lgbm-ranker", lambda: LGBMRanker(**_LGBM), "random_counts", fit_params=query_sizes, **_F32
    ),
    Case(
        "lgbm-ranker-xendcg",
        lambda: LGBMRanker(objective="rank_xendcg", **_LGBM),
        "random_counts",
        fit_params=query_sizes,
        **_F32,
    ),
]
