"""float32 input through the transformer executors of issue 10, point 2 (issue 10, point 5).

scikit-learn keeps float32 input float32 in most transformers (and computes some steps in
float64 before storing back). A Model's input layer (``runtime._input``) reads every input as
float64 today; these executors are fed float32 directly here, to show that they already give
scikit-learn's dtype and values once that layer passes float32 through.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.decomposition import TruncatedSVD
from sklearn.impute import KNNImputer, MissingIndicator
from sklearn.preprocessing import (
    Binarizer,
    KBinsDiscretizer,
    PolynomialFeatures,
    PowerTransformer,
    QuantileTransformer,
    SplineTransformer,
    TargetEncoder,
)

import modelshelf
from modelshelf.image import Image
from modelshelf.runtime import build
from tests.cases._case import dataset

X, Y, X_TEST = dataset("random_reg")
X = X[:, :4]
X_TEST = X_TEST[:, :4] * 1.3  # partly beyond the training range
POSITIVE = np.abs(X) + 0.1
WITH_NAN = dataset("random_nan")[0][:, :4]

TRANSFORMERS: list[tuple[str, Callable[[], Any], np.ndarray, np.ndarray]] = [
    ("poly", lambda: PolynomialFeatures(3), X, X_TEST),
    ("binarizer", Binarizer, X, X_TEST),
    ("indicator", lambda: MissingIndicator(features="all"), WITH_NAN, WITH_NAN),
    ("tsvd", lambda: TruncatedSVD(2, random_state=0), X, X_TEST),
    ("kbins-onehot-dense", lambda: KBinsDiscretizer(encode="onehot-dense"), X, X_TEST),
    ("kbins-ordinal", lambda: KBinsDiscretizer(encode="ordinal"), X, X_TEST),
    ("target", TargetEncoder, np.round(X), np.round(X_TEST)),
    ("knn", KNNImputer, WITH_NAN, WITH_NAN),
    ("power-yeo-johnson", PowerTransformer, X, X_TEST),
    ("power-box-cox", lambda: PowerTransformer(method="box-cox"), POSITIVE, POSITIVE * 1.2),
    ("quantile-uniform", lambda: QuantileTransformer(n_quantiles=50), X, X_TEST),
    (
        "quantile-normal",
        lambda: QuantileTransformer(n_quantiles=50, output_distribution="normal"),
        X,
        X_TEST,
    ),
    *[
        (f"spline-{mode}", lambda mode=mode: SplineTransformer(extrapolation=mode), X, X_TEST)
        for mode in ("constant", "linear", "continue", "periodic")
    ],
]


@pytest.mark.parametrize(
    ("name", "make", "train", "test"), TRANSFORMERS, ids=[t[0] for t in TRANSFORMERS]
)
def test_float32_input_gives_scikit_learns_dtype_and_values(
    name: str, make: Callable[[], Any], train: np.ndarray, test: np.ndarray
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = make().fit(train, (np.arange(len(train)) % 2) if name == "target" else None)
    image = Image.open(modelshelf.compile(est))
    executor = build(image.manifest["model"], image.arrays)
    test32 = test.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = est.transform(test32)
    actual = executor.transform(test32)  # type: ignore[attr-defined]
    assert actual.dtype == expected.dtype
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6)
