"""Exactness cases: DataFrames in, columns selected by name, string categories (issue 10).

The ``customers`` table mixes what a real one holds: floats with NaN, a nullable ``Int64``
column with ``pd.NA``, integers, a pandas 3 ``str`` column with missing values, a
``category`` column of strings, an ``object`` column with None, and a ``category`` of numbers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler

from ._case import Case

Data = tuple[pd.DataFrame, np.ndarray, pd.DataFrame]

PLANS = ["basic", "plus", "pro", "team", "enterprise"]
COUNTRIES = ["de", "fr", "it", "es", "pl", "ßü"]  # non-ASCII too
CHANNELS = ["web", "shop", "phone"]
NUM, CAT = ["age", "income"], ["plan", "country"]


def customers(*, unknown: bool = False, regression: bool = False) -> Callable[[], Data]:
    """The customers table, 400 training rows and 150 held-out ones; with ``unknown`` the
    held-out rows also hold plans, countries and channels never seen in training."""

    @functools.cache
    def make() -> Data:
        rng = np.random.default_rng(11)
        n = 550
        age = rng.normal(45, 12, n).round(1)
        age[rng.uniform(size=n) < 0.08] = np.nan
        income = rng.integers(20, 200, n) * 1000
        income_missing = rng.uniform(size=n) < 0.1
        plan = rng.choice(PLANS, n, p=[0.45, 0.25, 0.15, 0.1, 0.05]).astype(object)
        plan[rng.uniform(size=n) < 0.06] = np.nan
        country = rng.choice(COUNTRIES, n, p=[0.4, 0.25, 0.15, 0.1, 0.07, 0.03]).astype(object)
        country[rng.uniform(size=n) < 0.05] = np.nan
        channel = rng.choice(CHANNELS, n, p=[0.6, 0.3, 0.1]).astype(object)
        channel[rng.uniform(size=n) < 0.05] = None
        tier = rng.choice([1, 2, 3], n, p=[0.5, 0.3, 0.2])
        visits = rng.poisson(4, n)
        score = (
            (np.nan_to_num(age, nan=45) - 45) / 12
            + (income - 100_000) / 60_000
            + np.select([plan == "pro", plan == "basic"], [1.0, -0.8], 0.2)
            + np.select([country == "de", country == "fr"], [0.6, -0.4], 0.0)
            + 0.3 * (tier - 2)
            + rng.normal(size=n) * 0.5
        )
        X = pd.DataFrame(
            {
                "age": age,
                "income": pd.array(np.where(income_missing, None, income), dtype="Int64"),
                "visits": visits,
                "plan": pd.Series(plan, dtype="str"),
                "country": pd.Categorical(country, categories=COUNTRIES[::-1]),
                "channel": pd.Series(channel, dtype=object),
                "tier": pd.Categorical(tier),
            }
        )
        y = score if regression else (score > 0).astype(np.int64)
        train, test = X.iloc[:400], X.iloc[400:].copy()
        if unknown:
            test.loc[test.index[::6], "plan"] = "free"
            country = test["country"].cat.add_categories(["nl"])
            country[test.index[::7]] = "nl"
            test["country"] = country
            test.loc[test.index[::9], "channel"] = "fax"
        return train, y[:400], test

    return make


def string_columns() -> Data:
    """The customers' string columns alone (unseen strings in the held-out rows)."""
    X, y, test = customers(unknown=True)()
    columns = ["plan", "country", "channel"]
    return X[columns], y, test[columns]


def logreg() -> LogisticRegression:
    return LogisticRegression(max_iter=3000)


def recipe(**onehot: Any) -> ColumnTransformer:
    """The tutorial's column transformer (issue 10), with OneHotEncoder options."""
    return ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), NUM),
            ("cat", OneHotEncoder(**{"handle_unknown": "ignore", **onehot}), CAT),
        ]
    )


def ordinal(**options: Any) -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("ord", OrdinalEncoder(**options), ["plan", "country", "channel"]),
            ("num", SimpleImputer(strategy="median"), ["age", "income", "visits"]),
        ]
    )


CASES: list[Case] = [
    # The tutorial recipe: transform, and a classifier after it; unknown strings ignored.
    Case("frames-recipe", recipe, customers(unknown=True)),
    Case("frames-recipe-logreg", lambda: make_pipeline(recipe(), logreg()), customers()),
    Case(
        "frames-recipe-logreg-unknown",
        lambda: make_pipeline(recipe(), logreg()),
        customers(unknown=True),
    ),
    Case("frames-recipe-dense", lambda: recipe(sparse_output=False), customers(unknown=True)),
    # Every way of selecting columns scikit-learn resolves at fit time.
    Case(
        "frames-selectors",
        lambda: make_pipeline(
            ColumnTransformer(
                [
                    ("num", SimpleImputer(), make_column_selector(dtype_include="number")),
                    (
                        "cat",
                        OneHotEncoder(handle_unknown="ignore"),
                        make_column_selector(dtype_exclude="number"),
                    ),
                ]
            ),
            logreg(),
        ),
        customers(unknown=True),
    ),
    Case(
        "frames-selectors-pattern-slice-mask",
        lambda: ColumnTransformer(
            [
                ("names", MinMaxScaler(), slice("visits", "visits")),
                ("pattern", OneHotEncoder(), make_column_selector(pattern="^(plan|channel)$")),
                ("mask", SimpleImputer(), [True, True, False, False, False, False, False]),
                ("ints", OneHotEncoder(), [6]),
            ],
            remainder="drop",
        ),
        customers(),
    ),
    Case(
        "frames-remainder-passthrough-by-name",
        lambda: make_pipeline(
            ColumnTransformer(
                [
                    (
                        "cat",
                        OneHotEncoder(handle_unknown="ignore"),
                        ["plan", "channel", "country", "tier"],
                    )
                ],
                remainder=SimpleImputer(),
            ),
            logreg(),
        ),
        customers(unknown=True),
    ),
    # OneHotEncoder on strings: every handle_unknown, drop and infrequent option.
    Case("frames-onehot-error", lambda: recipe(handle_unknown="error"), customers()),
    Case("frames-onehot-drop-first", lambda: recipe(drop="first"), customers()),
    Case(
        "frames-onehot-drop-if_binary",
        lambda: ColumnTransformer([("c", OneHotEncoder(drop="if_binary"), ["channel", "tier"])]),
        customers(),
    ),
    Case(
        "frames-onehot-drop-explicit",
        lambda: recipe(handle_unknown="error", drop=["pro", "fr"]),
        customers(),
    ),
    Case(
        "frames-onehot-min_frequency",
        lambda: recipe(min_frequency=30, handle_unknown="infrequent_if_exist"),
        customers(unknown=True),
    ),
    Case(
        "frames-onehot-max_categories",
        lambda: recipe(max_categories=3, handle_unknown="infrequent_if_exist"),
        customers(unknown=True),
    ),
    # "warn" warns on unknown values (as scikit-learn): test_frames compares the warnings.
    Case(
        "frames-onehot-warn-infrequent",
        lambda: recipe(min_frequency=30, handle_unknown="warn"),
        customers(),
    ),
    Case(
        "frames-onehot-infrequent-ignore",
        lambda: recipe(min_frequency=0.1, handle_unknown="ignore"),
        customers(unknown=True),
    ),
    Case(
        "frames-onehot-categories-given",
        lambda: ColumnTransformer(
            [("p", OneHotEncoder(categories=[PLANS], handle_unknown="ignore"), ["plan"])]
        ),
        customers(unknown=True),
    ),
    # Strings imputed before the encoder (NaN is missing; None is a category of its own).
    Case(
        "frames-impute-strings-logreg",
        lambda: make_pipeline(
            ColumnTransformer(
                [
                    ("num", make_pipeline(SimpleImputer(), StandardScaler()), NUM),
                    (
                        "cat",
                        make_pipeline(
                            SimpleImputer(strategy="most_frequent"),
                            OneHotEncoder(handle_unknown="ignore"),
                        ),
                        [*CAT, "channel"],
                    ),
                ]
            ),
            logreg(),
        ),
        customers(unknown=True),
    ),
    Case(
        "frames-impute-strings-constant-ordinal",
        lambda: make_pipeline(
            SimpleImputer(strategy="constant", fill_value="none"),
            OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
        ),
        string_columns,
    ),
    # OrdinalEncoder: missing values, unknown values, infrequent grouping, dtypes.
    Case("frames-ordinal", ordinal, customers()),
    Case(
        "frames-ordinal-unknown-hgb",
        lambda: make_pipeline(
            ordinal(handle_unknown="use_encoded_value", unknown_value=np.nan),
            HistGradientBoostingClassifier(max_iter=20, random_state=0),
        ),
        customers(unknown=True),
    ),
    Case(
        "frames-ordinal-encoded-values-logreg",
        lambda: make_pipeline(
            ordinal(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2),
            logreg(),
        ),
        customers(unknown=True),
    ),
    Case(
        "frames-ordinal-infrequent",
        lambda: ordinal(
            max_categories=3,
            handle_unknown="use_encoded_value",
            unknown_value=99,
            encoded_missing_value=-1,
            dtype=np.int32,
        ),
        customers(unknown=True),
    ),
    Case(
        "frames-ordinal-min_frequency-forest",
        lambda: make_pipeline(
            ordinal(min_frequency=40, encoded_missing_value=-1, dtype=np.float32),
            RandomForestRegressor(n_estimators=10, random_state=0),
        ),
        customers(regression=True),
    ),
    Case(
        "frames-recipe-linreg",
        lambda: make_pipeline(recipe(drop="first"), LinearRegression()),
        customers(regression=True),
    ),
]
