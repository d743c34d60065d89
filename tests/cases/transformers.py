"""Exactness cases: PolynomialFeatures, Binarizer, MissingIndicator, TruncatedSVD,
KBinsDiscretizer, TargetEncoder, KNNImputer, NMF, MiniBatchNMF.

Ids start with the family: poly, binarizer, indicator, tsvd, kbins, target, knn, nmf.
"""

from __future__ import annotations

import functools

import numpy as np
from sklearn.decomposition import NMF, MiniBatchNMF, TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import KNNImputer, MissingIndicator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    Binarizer,
    KBinsDiscretizer,
    PolynomialFeatures,
    TargetEncoder,
)

from ._case import Case, dataset
from .preprocessing import cat_columns, categories, empty_column, int_counts
from .text import labelled

Data = tuple[np.ndarray, np.ndarray | None, np.ndarray]


@functools.cache
def counts_with_new_zeros() -> Data:
    """random_counts where the held-out rows have zeros only in columns that had some."""
    X, y, X_test = dataset("random_counts")
    seen = (X == 0).any(axis=0)
    X_test = X_test.copy()
    X_test[:, ~seen] = np.maximum(X_test[:, ~seen], 1)
    return X, y, X_test


@functools.cache
def nan_in_fitted_columns() -> Data:
    """random_nan with NaN only in columns 0-5 at fit, and in the same ones held out."""
    X, y, X_test = dataset("random_nan")
    X, X_test = X.copy(), X_test.copy()
    X[:, 6:] = np.nan_to_num(X[:, 6:])
    X_test[:, 6:] = np.nan_to_num(X_test[:, 6:])
    return X, y, X_test


@functools.cache
def sparse_nan() -> Data:
    """random_nan with 40% missing, and held-out rows missing everything, or all but one."""
    X, y, X_test = dataset("random_nan")
    rng = np.random.default_rng(9)
    X, X_test = X.copy(), X_test.copy()
    X[rng.uniform(size=X.shape) < 0.3] = np.nan
    X_test[:3] = np.nan
    X_test[3:6, 1:] = np.nan
    return X, y, X_test


@functools.cache
def positive_counts() -> Data:
    """random_counts plus 0.5: no zeros, for the beta losses that refuse them."""
    X, y, X_test = dataset("random_counts")
    return X + 0.5, y, X_test + 0.5


def small(name: str, columns: int = 4) -> Data:
    X, y, X_test = dataset(name)
    return X[:, :columns], y, X_test[:, :columns]


def _target(kind: str, *, unknown: bool = False, nan: bool = False) -> Data:
    X, _, X_test = categories(unknown=unknown, nan=nan)()
    rng = np.random.default_rng(11)
    signal = X[:, 0] + np.nan_to_num(X[:, 2]) / 5 + rng.normal(size=len(X))
    if kind == "continuous":
        y = signal
    elif kind == "binary":
        y = (signal > 1).astype(np.int64)
    else:
        y = np.digitize(signal, [0.5, 1.5, 2.5])
    return X, y, X_test


def target(kind: str, **kw: bool) -> functools.partial[Data]:
    return functools.partial(_target, kind, **kw)


POLY: list[Case] = [
    Case("poly-2-iris", PolynomialFeatures, "iris"),
    *[
        Case(
            f"poly-{d}-{'inter' if inter else 'full'}-{'bias' if bias else 'nobias'}",
            functools.partial(
                PolynomialFeatures, degree=d, interaction_only=inter, include_bias=bias
            ),
            functools.partial(small, "random_reg", 5),
        )
        for d in (1, 3, (2, 3), (0, 2), (3, 3))
        for inter in (False, True)
        for bias in (True, False)
        if d != (0, 2) or bias
    ],
    Case("poly-0-iris", lambda: PolynomialFeatures(0), "iris"),
    Case("poly-order-F-diabetes", lambda: PolynomialFeatures(order="F"), "diabetes"),
    Case("poly-inter-4-iris", lambda: PolynomialFeatures(6, interaction_only=True), "iris"),
]

BINARIZER: list[Case] = [
    Case("binarizer-random_reg", Binarizer, "random_reg"),
    Case("binarizer-threshold-iris", lambda: Binarizer(threshold=2.5), "iris"),
    Case("binarizer-int-threshold-counts", lambda: Binarizer(threshold=2), "random_counts"),
]

INDICATOR: list[Case] = [
    Case("indicator-missing-only-nan", MissingIndicator, nan_in_fitted_columns),
    Case("indicator-all-nan", lambda: MissingIndicator(features="all"), "random_nan"),
    Case(
        "indicator-no-error-on-new",
        lambda: MissingIndicator(error_on_new=False),
        nan_in_fitted_columns,
    ),
    Case(
        "indicator-zero-marker",
        lambda: MissingIndicator(missing_values=0),
        counts_with_new_zeros,
    ),
    Case(
        "indicator-zero-marker-all-sparse",
        lambda: MissingIndicator(missing_values=0, features="all", sparse=True),
        "random_counts",
    ),
    Case("indicator-sparse-nan", lambda: MissingIndicator(sparse=True), nan_in_fitted_columns),
]

TSVD: list[Case] = [
    Case("tsvd-digits", lambda: TruncatedSVD(10, random_state=0), "digits"),
    Case("tsvd-arpack-wine", lambda: TruncatedSVD(3, algorithm="arpack"), "wine"),
    Case("tsvd-random_reg", lambda: TruncatedSVD(5, random_state=0), "random_reg"),
    # latent semantic analysis: the projection takes a vectorizer's sparse output as it is
    Case(
        "tsvd-tfidf-text",
        lambda: make_pipeline(TfidfVectorizer(), TruncatedSVD(5, random_state=0)),
        labelled,  # type: ignore[arg-type]
    ),
    Case(
        "tsvd-tfidf-logreg-text",
        lambda: make_pipeline(
            TfidfVectorizer(), TruncatedSVD(8, random_state=0), LogisticRegression()
        ),
        labelled,  # type: ignore[arg-type]
    ),
]

KBINS: list[Case] = [
    Case("kbins-onehot-random_reg", KBinsDiscretizer, "random_reg"),
    *[
        Case(
            f"kbins-{encode}-{strategy}",
            functools.partial(
                KBinsDiscretizer, n_bins=4, encode=encode, strategy=strategy, random_state=0
            ),
            "diabetes",
        )
        for encode in ("onehot", "onehot-dense", "ordinal")
        for strategy in ("uniform", "quantile", "kmeans")
    ],
    Case(
        "kbins-ordinal-float32",
        lambda: KBinsDiscretizer(7, encode="ordinal", dtype=np.float32),
        "breast_cancer",
        rtol=1e-6,
    ),
    Case(
        "kbins-onehot-float32",
        lambda: KBinsDiscretizer(5, encode="onehot", dtype=np.float32),
        "wine",
        rtol=1e-6,
    ),
    Case(
        "kbins-per-feature-quantile-averaged",
        lambda: KBinsDiscretizer(
            [2, 3, 4, 5], encode="ordinal", quantile_method="averaged_inverted_cdf"
        ),
        "iris",
    ),
    Case("kbins-constant-column-digits", lambda: KBinsDiscretizer(3, encode="ordinal"), "digits"),
]

TARGET: list[Case] = [
    Case("target-continuous", TargetEncoder, target("continuous")),
    Case("target-binary", TargetEncoder, target("binary", unknown=True)),
    Case("target-multiclass", TargetEncoder, target("multiclass", unknown=True, nan=True)),
    Case(
        "target-continuous-unknown-nan",
        lambda: TargetEncoder(smooth=3.0),
        target("continuous", unknown=True, nan=True),
    ),
    Case(
        "target-binary-given-type",
        lambda: TargetEncoder(target_type="binary", smooth=0.5),
        target("binary"),
    ),
    Case("target-random_cat", lambda: TargetEncoder(cv=3), cat_columns),
]

KNN: list[Case] = [
    Case("knn-nan", KNNImputer, "random_nan"),
    Case("knn-distance-nan", lambda: KNNImputer(weights="distance"), "random_nan"),
    Case("knn-1-sparse-nan", lambda: KNNImputer(n_neighbors=1), sparse_nan),
    Case(
        "knn-7-distance-sparse-nan",
        lambda: KNNImputer(n_neighbors=7, weights="distance"),
        sparse_nan,
    ),
    Case("knn-more-than-rows", lambda: KNNImputer(n_neighbors=500), "random_nan"),
    Case("knn-indicator-nan", lambda: KNNImputer(add_indicator=True), sparse_nan),
    Case("knn-empty-dropped", lambda: KNNImputer(add_indicator=True), empty_column),
    Case("knn-empty-kept", lambda: KNNImputer(keep_empty_features=True), empty_column),
    Case("knn-zero-marker-int", lambda: KNNImputer(missing_values=0), int_counts),
    Case(
        "knn-zero-marker-distance-indicator",
        lambda: KNNImputer(missing_values=0, weights="distance", add_indicator=True),
        "random_counts",
    ),
    Case("knn-nothing-missing-iris", KNNImputer, "iris"),
]

NMF_CASES: list[Case] = [
    Case("nmf-counts", lambda: NMF(4, max_iter=500), "random_counts"),
    Case("nmf-digits", lambda: NMF(10, max_iter=100), "digits"),
    Case("nmf-random-init-counts", lambda: NMF(3, init="random", random_state=0), "random_counts"),
    Case(
        "nmf-regularized-counts",
        lambda: NMF(5, alpha_W=0.01, l1_ratio=0.3, max_iter=300),
        "random_counts",
    ),
    Case(
        "nmf-l1-shuffle-digits",
        lambda: NMF(6, alpha_W=0.001, alpha_H=0.0, l1_ratio=1.0, shuffle=True, random_state=3),
        "digits",
    ),
    Case("nmf-tol0-binary", lambda: NMF(2, tol=0.0, max_iter=30), "random_binary"),
    # the multiplicative-update solver, every beta loss (positive data where beta <= 0)
    *[
        Case(
            f"nmf-mu-{loss}",
            functools.partial(NMF, 4, solver="mu", beta_loss=loss, max_iter=200),
            "digits" if loss in ("frobenius", "kullback-leibler", 1.5) else positive_counts,
        )
        for loss in ("frobenius", "kullback-leibler", "itakura-saito", 1.5, 0.5, 3.0)
    ],
    Case(
        "nmf-mu-kl-regularized",
        lambda: NMF(3, solver="mu", beta_loss=1, alpha_W=0.01, l1_ratio=0.5, max_iter=100),
        "random_counts",
    ),
    Case("nmf-mu-tol0", lambda: NMF(3, solver="mu", tol=0.0, max_iter=25), "random_counts"),
    Case("minibatch-nmf-digits", lambda: MiniBatchNMF(5, random_state=0), "digits"),
    *[
        Case(
            f"minibatch-nmf-{loss}",
            functools.partial(
                MiniBatchNMF, 3, beta_loss=loss, random_state=0, transform_max_iter=50
            ),
            positive_counts,
        )
        for loss in ("kullback-leibler", "itakura-saito", 2.5)
    ],
    Case(
        "minibatch-nmf-regularized",
        lambda: MiniBatchNMF(4, alpha_W=0.005, l1_ratio=0.2, random_state=0),
        "random_counts",
    ),
]

CASES: list[Case] = [
    POLY[0],
    BINARIZER[0],
    INDICATOR[0],
    TSVD[0],
    KBINS[0],
    TARGET[0],
    KNN[0],
    NMF_CASES[0],
    *POLY[1:],
    *BINARIZER[1:],
    *INDICATOR[1:],
    *TSVD[1:],
    *KBINS[1:],
    *TARGET[1:],
    *KNN[1:],
    *NMF_CASES[1:],
]
