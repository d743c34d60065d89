"""Exactness cases: scalers, Normalizer, SimpleImputer, PCA, OneHotEncoder."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import (
    MaxAbsScaler,
    MinMaxScaler,
    Normalizer,
    OneHotEncoder,
    RobustScaler,
    StandardScaler,
)

from ._case import Case, dataset

Data = tuple[np.ndarray, np.ndarray | None, np.ndarray]


@functools.cache
def zero_rows() -> Data:
    """random_reg with some all-zero and some tiny rows, for the normalizer's zero-norm rule."""
    X, y, X_test = dataset("random_reg")
    X_test = X_test.copy()
    X_test[:5] = 0.0
    X_test[5:8] = 1e-17
    return X, y, X_test


@functools.cache
def empty_column() -> Data:
    """random_nan whose column 4 has no value at all in the training rows."""
    X, y, X_test = dataset("random_nan")
    X = X.copy()
    X[:, 4] = np.nan
    return X, y, X_test


@functools.cache
def int_counts() -> Data:
    """random_counts as integers: zero is the missing marker; fill values are cast to int."""
    X, y, X_test = dataset("random_counts")
    return X.astype(np.int64), y, X_test.astype(np.int64)


def categories(*, unknown: bool = False, nan: bool = False) -> Callable[[], Data]:
    """Skewed categorical columns: 5 levels, a binary one, and non-integer levels (with NaN).

    With ``unknown`` the held-out rows also hold values never seen in training.
    """

    @functools.cache
    def make() -> Data:
        rng = np.random.default_rng(7)
        n = 400
        levels2 = np.array([-1.0, 2.5, 10.0, np.nan if nan else 11.0])
        X = np.column_stack(
            [
                rng.choice(5, size=n, p=[0.5, 0.25, 0.15, 0.06, 0.04]),
                rng.choice(2, size=n, p=[0.8, 0.2]),
                rng.choice(levels2, size=n, p=[0.4, 0.3, 0.2, 0.1]),
                rng.choice(3, size=n, p=[0.6, 0.35, 0.05]) * 10.0,
            ]
        ).astype(np.float64)
        y = (X[:, 0] + rng.normal(size=n) > 1).astype(np.int64)
        X_train, X_test = X[:300], X[300:].copy()
        if unknown:
            X_test[::7, 0] = 9.0
            X_test[::11, 2] = -5.0
            X_test[::13, 3] = 35.0
        return X_train, y[:300], X_test

    return make


def cat_columns() -> Data:
    """The integer categories of random_cat (its columns 0-2)."""
    X, y, X_test = dataset("random_cat")
    return X[:, :3], y, X_test[:, :3]


BUNDLED = ["iris", "wine", "breast_cancer", "digits", "diabetes"]

CASES: list[Case] = [
    # Scalers, on every bundled dataset and random ones.
    *[Case(f"prep-standard-{d}", StandardScaler, d) for d in [*BUNDLED, "random_reg"]],
    Case("prep-standard-nomean-wine", lambda: StandardScaler(with_mean=False), "wine"),
    Case("prep-standard-nostd-diabetes", lambda: StandardScaler(with_std=False), "diabetes"),
    Case(
        "prep-standard-neither-iris",
        lambda: StandardScaler(with_mean=False, with_std=False),
        "iris",
    ),
    Case("prep-standard-nan", StandardScaler, "random_nan"),
    *[Case(f"prep-minmax-{d}", MinMaxScaler, d) for d in ["iris", "digits", "random_multi"]],
    Case("prep-minmax-range-wine", lambda: MinMaxScaler(feature_range=(-2, 3)), "wine"),
    Case(
        "prep-minmax-clip-breast_cancer",
        lambda: MinMaxScaler(feature_range=(-1, 0.5), clip=True),
        "breast_cancer",
    ),
    Case("prep-minmax-clip-digits", lambda: MinMaxScaler(clip=True), "digits"),
    Case("prep-minmax-nan", MinMaxScaler, "random_nan"),
    *[Case(f"prep-maxabs-{d}", MaxAbsScaler, d) for d in ["wine", "diabetes", "random_reg"]],
    Case("prep-maxabs-clip-random_reg", lambda: MaxAbsScaler(clip=True), "random_reg"),
    Case("prep-maxabs-nan", MaxAbsScaler, "random_nan"),
    *[Case(f"prep-robust-{d}", RobustScaler, d) for d in ["diabetes", "breast_cancer", "digits"]],
    Case("prep-robust-nocenter-wine", lambda: RobustScaler(with_centering=False), "wine"),
    Case("prep-robust-noscale-iris", lambda: RobustScaler(with_scaling=False), "iris"),
    Case(
        "prep-robust-quantile-unit-random_reg",
        lambda: RobustScaler(quantile_range=(10, 80), unit_variance=True),
        "random_reg",
    ),
    Case("prep-robust-nan", RobustScaler, "random_nan"),
    # Normalizer: every norm; rows of zero (or tiny) norm stay as they are.
    *[
        Case(f"prep-normalizer-{norm}-{d}", functools.partial(Normalizer, norm=norm), d)
        for norm in ("l1", "l2", "max")
        for d in ("iris", "digits")
    ],
    *[
        Case(
            f"prep-normalizer-{norm}-zero-rows", functools.partial(Normalizer, norm=norm), zero_rows
        )
        for norm in ("l1", "l2", "max")
    ],
    # SimpleImputer: every strategy, NaN or a number as marker, indicator, empty columns.
    *[
        Case(f"prep-imputer-{s}-nan", functools.partial(SimpleImputer, strategy=s), "random_nan")
        for s in ("mean", "median", "most_frequent", "constant")
    ],
    Case(
        "prep-imputer-constant-fill-nan",
        lambda: SimpleImputer(strategy="constant", fill_value=-7.5),
        "random_nan",
    ),
    *[
        Case(
            f"prep-imputer-{s}-indicator-nan",
            functools.partial(SimpleImputer, strategy=s, add_indicator=True),
            "random_nan",
        )
        for s in ("mean", "median")
    ],
    *[
        Case(
            f"prep-imputer-{s}-empty-{'kept' if keep else 'dropped'}",
            functools.partial(
                SimpleImputer, strategy=s, keep_empty_features=keep, add_indicator=True
            ),
            empty_column,
        )
        for s in ("mean", "median", "most_frequent", "constant")
        for keep in (False, True)
    ],
    Case(
        "prep-imputer-zero-marker-counts", lambda: SimpleImputer(missing_values=0), "random_counts"
    ),
    Case(
        "prep-imputer-zero-marker-indicator-int",
        lambda: SimpleImputer(missing_values=0, strategy="most_frequent", add_indicator=True),
        int_counts,
    ),
    Case(
        "prep-imputer-median-int",
        lambda: SimpleImputer(missing_values=0, strategy="median"),
        int_counts,
    ),
    Case("prep-imputer-mean-iris", SimpleImputer, "iris"),  # nothing missing: identity
    # PCA: transform and score_samples, whitened or not, every solver.
    Case("prep-pca-iris", PCA, "iris"),
    Case("prep-pca-20-digits", lambda: PCA(20), "digits"),
    Case("prep-pca-whiten-wine", lambda: PCA(5, whiten=True), "wine"),
    Case("prep-pca-whiten-95-breast_cancer", lambda: PCA(0.95, whiten=True), "breast_cancer"),
    Case("prep-pca-diabetes", lambda: PCA(4), "diabetes"),
    Case("prep-pca-arpack-random_reg", lambda: PCA(3, svd_solver="arpack"), "random_reg"),
    Case(
        "prep-pca-randomized-whiten-random_multi",
        lambda: PCA(6, svd_solver="randomized", whiten=True, random_state=0),
        "random_multi",
    ),
    Case("prep-pca-eigh-random_clf", lambda: PCA(4, svd_solver="covariance_eigh"), "random_clf"),
    Case("prep-pca-all-random_reg", PCA, "random_reg"),
    # OneHotEncoder: numeric categories, every unknown mode, drops, infrequent grouping.
    Case("prep-onehot-random_cat", OneHotEncoder, cat_columns),
    Case("prep-onehot-dense-random_cat", lambda: OneHotEncoder(sparse_output=False), cat_columns),
    Case("prep-onehot-int32-random_cat", lambda: OneHotEncoder(dtype=np.int32), cat_columns),
    Case("prep-onehot-skewed", OneHotEncoder, categories()),
    Case("prep-onehot-nan-category", OneHotEncoder, categories(nan=True)),
    Case(
        "prep-onehot-ignore-unknown",
        lambda: OneHotEncoder(handle_unknown="ignore"),
        categories(unknown=True, nan=True),
    ),
    Case("prep-onehot-drop-first", lambda: OneHotEncoder(drop="first"), categories()),
    Case("prep-onehot-drop-if_binary", lambda: OneHotEncoder(drop="if_binary"), categories()),
    Case(
        "prep-onehot-drop-explicit",
        lambda: OneHotEncoder(drop=[2, 1, 10.0, 20]),
        categories(),
    ),
    Case(
        "prep-onehot-drop-nan",
        lambda: OneHotEncoder(drop=[0, 0, np.nan, 0]),
        categories(nan=True),
    ),
    # With a drop, unknown values make scikit-learn (and modelshelf) warn; the unit tests
    # compare those under pytest.warns, the matrix runs them on known values.
    Case(
        "prep-onehot-drop-first-ignore",
        lambda: OneHotEncoder(drop="first", handle_unknown="ignore"),
        categories(),
    ),
    Case(
        "prep-onehot-min_frequency-int",
        lambda: OneHotEncoder(min_frequency=20),
        categories(nan=True),
    ),
    Case(
        "prep-onehot-min_frequency-float",
        lambda: OneHotEncoder(min_frequency=0.1, handle_unknown="infrequent_if_exist"),
        categories(unknown=True),
    ),
    Case(
        "prep-onehot-max_categories",
        lambda: OneHotEncoder(max_categories=3, handle_unknown="infrequent_if_exist"),
        categories(unknown=True, nan=True),
    ),
    Case(
        "prep-onehot-max_categories-1",
        lambda: OneHotEncoder(max_categories=1, handle_unknown="infrequent_if_exist"),
        categories(unknown=True),
    ),
    Case(
        "prep-onehot-infrequent-ignore",
        lambda: OneHotEncoder(min_frequency=30, handle_unknown="ignore"),
        categories(unknown=True),
    ),
    Case(
        "prep-onehot-infrequent-drop-first",
        lambda: OneHotEncoder(max_categories=3, drop="first", handle_unknown="infrequent_if_exist"),
        categories(),
    ),
    Case(
        "prep-onehot-infrequent-drop-if_binary",
        lambda: OneHotEncoder(min_frequency=70, drop="if_binary"),
        categories(),
    ),
    Case(
        "prep-onehot-infrequent-drop-explicit",
        lambda: OneHotEncoder(max_categories=3, drop=[0, 0, -1.0, 0]),
        categories(),
    ),
    Case(
        "prep-onehot-categories-given",
        lambda: OneHotEncoder(
            categories=[[0, 1, 2, 3, 4, 5], [0, 1], [-1, 2.5, 10, 11], [0, 10, 20]]
        ),
        categories(),
    ),
]
