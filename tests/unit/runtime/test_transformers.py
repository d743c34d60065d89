"""Feature transformer executors: the edges the exactness matrix cannot reach.

Exactness over datasets lives in tests/cases/transformers.py; these tests cover which inputs
with NaN each transformer accepts (as scikit-learn does), MissingIndicator's error on new
missing columns, the refusals, and hand-made manifests whose counts would explode an output.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.decomposition import NMF, MiniBatchNMF, TruncatedSVD
from sklearn.impute import KNNImputer, MissingIndicator
from sklearn.preprocessing import (
    Binarizer,
    KBinsDiscretizer,
    PolynomialFeatures,
    TargetEncoder,
)

import modelshelf
from modelshelf.errors import (
    ManifestError,
    NonFiniteInputError,
    UnknownCategoryError,
    UnsupportedModelError,
)
from modelshelf.image import ImageBuilder
from tests.cases._case import dataset
from tests.cases.transformers import nan_in_fitted_columns, target

CLEAN, Y, _ = dataset("random_clf")
WITH_NAN = dataset("random_nan")[0]

TRANSFORMERS: list[tuple[str, Callable[[], Any], np.ndarray]] = [
    ("poly", PolynomialFeatures, CLEAN),
    ("binarizer", Binarizer, CLEAN),
    ("indicator-nan", lambda: MissingIndicator(features="all"), WITH_NAN),
    ("indicator-zero", lambda: MissingIndicator(missing_values=0.0), np.round(CLEAN)),
    ("tsvd", lambda: TruncatedSVD(3, random_state=0), CLEAN),
    ("kbins", KBinsDiscretizer, CLEAN),
    ("target", TargetEncoder, np.round(CLEAN)),
    ("knn-nan", KNNImputer, WITH_NAN),
    ("knn-zero", lambda: KNNImputer(missing_values=0.0), np.round(CLEAN)),
]


@pytest.mark.parametrize(("name", "make", "X"), TRANSFORMERS, ids=[t[0] for t in TRANSFORMERS])
def test_nan_passes_or_raises_as_in_scikit_learn(
    name: str, make: Callable[[], Any], X: np.ndarray
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = make().fit(X, Y)
    model = modelshelf.load(modelshelf.compile(est))
    probe = X[:5].copy()
    probe[0, 0] = np.nan
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = est.transform(probe)
    except ValueError:
        with pytest.raises(NonFiniteInputError):
            model.transform(probe)
        return
    actual = model.transform(probe)
    dense = getattr(expected, "toarray", lambda: expected)()
    np.testing.assert_allclose(getattr(actual, "toarray", lambda: actual)(), dense, rtol=1e-12)


def test_missing_indicator_raises_on_new_missing_columns() -> None:
    X, _, X_test = nan_in_fitted_columns()
    est = MissingIndicator().fit(X)
    model = modelshelf.load(modelshelf.compile(est))
    probe = X_test[:3].copy()
    probe[1, 9] = np.nan
    with pytest.raises(ValueError, match=r"\[9\] have missing values"):
        est.transform(probe)
    with pytest.raises(NonFiniteInputError, match=r"\[9\] have missing values"):
        model.transform(probe)
    relaxed = modelshelf.load(modelshelf.compile(MissingIndicator(error_on_new=False).fit(X)))
    assert relaxed.transform(probe).shape == (3, 6)


def test_nmf_shuffle_without_a_seed_is_refused_with_the_way_out() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = NMF(2, shuffle=True, max_iter=20).fit(np.abs(CLEAN))
    with pytest.raises(UnsupportedModelError, match=r"NMF: shuffle=True.*integer random_state"):
        modelshelf.compile(est)


@pytest.mark.parametrize("batch", [1, 7, 100])
def test_nmf_answers_per_batch_as_scikit_learn(batch: int) -> None:
    """W depends on the batch (the stopping rule sums over it): each batch size matches."""
    X = np.abs(CLEAN)
    for est in (NMF(3, max_iter=300), NMF(3, solver="mu"), MiniBatchNMF(3, random_state=0)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X)
            expected = est.transform(X[:batch])
        model = modelshelf.load(modelshelf.compile(est))
        np.testing.assert_allclose(model.transform(X[:batch]), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    ("make", "value", "message"),
    [
        (lambda: NMF(2, max_iter=50), -1.0, "Negative values"),
        (lambda: NMF(2, solver="mu", max_iter=50), -1.0, "Negative values"),
        (lambda: NMF(2, solver="mu", beta_loss=0, max_iter=50), 0.0, "may diverge"),
    ],
)
def test_nmf_refuses_what_scikit_learn_refuses(
    make: Callable[[], Any], value: float, message: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = make().fit(np.abs(CLEAN) + 0.5)
    model = modelshelf.load(modelshelf.compile(est))
    probe = np.abs(CLEAN[:3]) + 0.5
    probe[1, 2] = value
    with pytest.raises(ValueError, match=message):
        est.transform(probe)
    with pytest.raises(UnknownCategoryError, match=message):
        model.transform(probe)


@pytest.mark.parametrize(
    ("make", "option"),
    [
        (lambda: KNNImputer(metric=lambda a, b, **kw: 0.0), "metric="),
        (lambda: KNNImputer(weights=lambda d: d), "callable weights"),
    ],
)
def test_knn_imputer_code_options_are_refused(make: Callable[[], Any], option: str) -> None:
    with pytest.raises(UnsupportedModelError, match=f"KNNImputer: .*{option}"):
        modelshelf.compile(make().fit(WITH_NAN))


def test_target_encoder_labels_follow_the_target() -> None:
    X, y, _ = target("multiclass")()
    model = modelshelf.load(modelshelf.compile(TargetEncoder().fit(X, y)))
    np.testing.assert_array_equal(model.classes_, np.unique(y))
    X, y, _ = target("continuous")()
    with pytest.raises(AttributeError):
        _ = modelshelf.load(modelshelf.compile(TargetEncoder().fit(X, y))).classes_


def _load(kind: str, params: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
    builder = ImageBuilder()
    refs = {role: builder.add(role, value) for role, value in (arrays or {}).items()}
    spec = {"kind": kind, "arrays": refs, "params": params}
    modelshelf.load(builder.build({"model": spec, "input": {}, "metadata": {}}))


NMF_PARAMS = {
    "solver": "cd",
    "beta": 2.0,
    "tol": 0.0,
    "max_iter": 5,
    "l1_reg": 0.0,
    "l2_reg": 0.0,
    "shuffle_seed": None,
}
POLY = {"n_features": 4, "min_degree": 0, "interaction_only": False, "include_bias": True}


@pytest.mark.parametrize(
    ("kind", "params", "arrays", "message"),
    [
        ("polynomial_features", {**POLY, "max_degree": 65}, None, "degrees"),
        ("polynomial_features", {**POLY, "max_degree": 2, "min_degree": 3}, None, "degrees"),
        ("polynomial_features", {**POLY, "max_degree": 64, "n_features": 4096}, None, "columns"),
        ("polynomial_features", {**POLY, "max_degree": 2, "n_features": 0}, None, "n_features"),
        (
            "kbins_discretizer",
            {"encode": "ordinal", "dtype": "float64"},
            {"edges": np.zeros(3), "offsets": np.array([0, 2, 1])},
            "offsets",
        ),
        (
            "target_encoder",
            {},
            {
                "categories": np.arange(3.0),
                "offsets": np.array([0, 3]),
                "encodings": np.zeros((2, 1)),
                "unknown": np.zeros(1),
            },
            "one row per category",
        ),
        (
            "missing_indicator",
            {"n_features": 3, "missing_values": None, "error_on_new": True, "sparse": False},
            {"features": np.array([0, 3])},
            "indices",
        ),
        (
            "knn_imputer",
            {"missing_values": None, "n_neighbors": 0, "weights": "uniform"},
            {"fit_X": np.zeros((3, 2)), "means": np.zeros(2), "valid": np.array([0, 1])},
            "n_neighbors",
        ),
        (
            "knn_imputer",
            {"missing_values": None, "n_neighbors": 2, "weights": "uniform"},
            {"fit_X": np.zeros((3, 2)), "means": np.zeros(3), "valid": np.array([0, 1])},
            "means",
        ),
        (
            "nmf",
            {**NMF_PARAMS, "max_iter": 2**40},
            {"components": np.ones((2, 3))},
            "max_iter",
        ),
        (
            "nmf",
            {**NMF_PARAMS, "shuffle_seed": -1},
            {"components": np.ones((2, 3))},
            "shuffle_seed",
        ),
        (
            "nmf",
            {**NMF_PARAMS, "beta": 1.0},
            {"components": np.ones((2, 3))},
            "Frobenius",
        ),
    ],
)
def test_inconsistent_manifests_are_refused(
    kind: str, params: dict[str, Any], arrays: dict[str, np.ndarray] | None, message: str
) -> None:
    with pytest.raises(ManifestError, match=message):
        _load(kind, params, arrays)
