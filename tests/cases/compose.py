"""Exactness cases: pipelines and column transformers."""

from __future__ import annotations

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    MaxAbsScaler,
    MinMaxScaler,
    Normalizer,
    OneHotEncoder,
    RobustScaler,
    StandardScaler,
)

from ._case import Case
from .preprocessing import categories

CAT, NUM = [0, 1, 2], list(range(3, 12))  # random_cat: integer categories, then numbers


def logreg() -> LogisticRegression:
    return LogisticRegression(max_iter=2000)


def onehot_scaler(**kwargs: object) -> ColumnTransformer:
    return ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), CAT), ("num", StandardScaler(), NUM)],
        **kwargs,  # type: ignore[arg-type]
    )


CASES: list[Case] = [
    # Pipelines of transformers ending in a classifier or a regressor.
    Case("compose-scaler-logreg-wine", lambda: make_pipeline(StandardScaler(), logreg()), "wine"),
    Case(
        "compose-scaler-pca-logreg-digits",
        lambda: make_pipeline(StandardScaler(), PCA(30), logreg()),
        "digits",
    ),
    Case(
        "compose-scaler-pca-whiten-logreg-breast_cancer",
        lambda: make_pipeline(StandardScaler(), PCA(8, whiten=True), logreg()),
        "breast_cancer",
    ),
    Case(
        "compose-imputer-scaler-logreg-nan",
        lambda: make_pipeline(SimpleImputer(), StandardScaler(), logreg()),
        "random_nan",
    ),
    Case(
        "compose-imputer-indicator-robust-logreg-nan",
        lambda: make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True), RobustScaler(), logreg()
        ),
        "random_nan",
    ),
    Case(
        "compose-scaler-imputer-logreg-nan",  # NaN goes through the scaler, then is imputed
        lambda: make_pipeline(MinMaxScaler(), SimpleImputer(strategy="most_frequent"), logreg()),
        "random_nan",
    ),
    Case("compose-normalizer-logreg-iris", lambda: make_pipeline(Normalizer(), logreg()), "iris"),
    Case(
        "compose-maxabs-pca-logreg-multi",
        lambda: make_pipeline(MaxAbsScaler(), PCA(5), logreg()),
        "random_multi",
    ),
    Case(
        "compose-onehot-logreg",
        lambda: make_pipeline(OneHotEncoder(handle_unknown="ignore"), logreg()),
        categories(unknown=True),
    ),
    Case(
        "compose-robust-linreg-diabetes",
        lambda: make_pipeline(RobustScaler(), LinearRegression()),
        "diabetes",
    ),
    Case(
        "compose-scaler-pca-linreg-multireg",
        lambda: make_pipeline(StandardScaler(), PCA(6), LinearRegression()),
        "random_multireg",
    ),
    Case(
        "compose-imputer-linreg-nan",
        lambda: make_pipeline(SimpleImputer(), LinearRegression()),
        "random_nan",
    ),
    # Pipelines ending in a transformer: transform (and PCA's score_samples).
    Case(
        "compose-scaler-pca-transform-wine",
        lambda: make_pipeline(StandardScaler(), PCA(4)),
        "wine",
    ),
    Case(
        "compose-imputer-scaler-transform-nan",
        lambda: make_pipeline(SimpleImputer(), StandardScaler()),
        "random_nan",
    ),
    # 'passthrough' and None steps, anywhere, and nested pipelines.
    Case(
        "compose-passthrough-steps-logreg",
        lambda: Pipeline(
            [("a", "passthrough"), ("s", StandardScaler()), ("b", None), ("m", logreg())]
        ),
        "breast_cancer",
    ),
    Case(
        "compose-final-passthrough",
        lambda: Pipeline([("s", StandardScaler()), ("p", PCA(3)), ("end", "passthrough")]),
        "iris",
    ),
    Case(
        "compose-final-none",
        lambda: Pipeline([("s", RobustScaler()), ("end", None)]),
        "diabetes",
    ),
    Case("compose-only-passthrough", lambda: Pipeline([("p", "passthrough")]), "iris"),
    Case(
        "compose-nested-pipelines",
        lambda: make_pipeline(
            make_pipeline(SimpleImputer(), make_pipeline(StandardScaler(), PCA(6))),
            make_pipeline("passthrough", logreg()),
        ),
        "random_nan",
    ),
    # Column transformers, alone and ending in a classifier.
    Case("compose-columns-random_cat", onehot_scaler, "random_cat"),
    Case(
        "compose-columns-logreg-random_cat",
        lambda: make_pipeline(onehot_scaler(), logreg()),
        "random_cat",
    ),
    Case(
        "compose-columns-dense-logreg-random_cat",
        lambda: make_pipeline(onehot_scaler(sparse_threshold=0), logreg()),
        "random_cat",
    ),
    Case(
        "compose-columns-remainder-passthrough",
        lambda: ColumnTransformer(
            [("cat", OneHotEncoder(), CAT), ("scale", StandardScaler(), [4, 6])],
            remainder="passthrough",
        ),
        "random_cat",
    ),
    Case(
        "compose-columns-remainder-estimator-logreg",
        lambda: make_pipeline(
            ColumnTransformer([("cat", OneHotEncoder(), CAT)], remainder=RobustScaler()),
            logreg(),
        ),
        "random_cat",
    ),
    Case(
        "compose-columns-drop-passthrough",
        lambda: ColumnTransformer(
            [
                ("gone", "drop", [3, 4]),
                ("kept", "passthrough", [7, 5]),
                ("cat", OneHotEncoder(drop="first"), CAT),
            ]
        ),
        "random_cat",
    ),
    Case(
        "compose-columns-slices-masks",
        lambda: ColumnTransformer(
            [
                ("head", OneHotEncoder(), slice(0, 3)),
                ("mid", MinMaxScaler(), np.arange(12) % 2 == 1),
                ("tail", MaxAbsScaler(), [-1, -2, 4]),
                ("again", StandardScaler(), [True] * 4 + [False] * 8),
                ("empty", StandardScaler(), []),
                ("none", PCA(), [False] * 12),
            ]
        ),
        "random_cat",
    ),
    Case(
        "compose-columns-weights",
        lambda: ColumnTransformer(
            [("cat", OneHotEncoder(), CAT), ("pca", PCA(3), NUM)],
            transformer_weights={"cat": 2.0, "pca": 0.5},
            remainder="drop",
        ),
        "random_cat",
    ),
    Case(
        "compose-columns-nested",
        lambda: make_pipeline(
            ColumnTransformer(
                [
                    ("cat", make_pipeline(OneHotEncoder(), MaxAbsScaler()), CAT),
                    (
                        "inner",
                        ColumnTransformer([("s", StandardScaler(), [0, 1])], remainder=PCA(2)),
                        NUM,
                    ),
                ]
            ),
            logreg(),
        ),
        "random_cat",
    ),
    Case(
        "compose-columns-nan-imputed",
        lambda: make_pipeline(
            ColumnTransformer(
                [
                    ("impute", SimpleImputer(), list(range(6))),
                    ("scale-impute", make_pipeline(StandardScaler(), SimpleImputer()), [6, 7]),
                ]
            ),
            logreg(),
        ),
        "random_nan",
    ),
    Case(
        "compose-columns-linreg-diabetes",
        lambda: make_pipeline(
            ColumnTransformer(
                [("sex", OneHotEncoder(drop="if_binary"), [1]), ("num", StandardScaler(), [0, 2])],
                remainder="passthrough",
            ),
            LinearRegression(),
        ),
        "diabetes",
    ),
]
