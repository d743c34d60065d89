"""Power, quantile and spline executors: the edges the exactness matrix cannot reach.

Exactness over datasets lives in tests/cases/nonlinear.py; these tests cover the inverse normal
CDF against SciPy's, the errors scikit-learn raises (Box-Cox on non-positive data, splines
beyond their knots with extrapolation="error"), NaN, the refusals and hand-made manifests.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from scipy import stats
from sklearn.preprocessing import PowerTransformer, QuantileTransformer, SplineTransformer

import modelshelf
from modelshelf.errors import (
    ManifestError,
    NonFiniteInputError,
    UnknownCategoryError,
    UnsupportedModelError,
)
from modelshelf.image import ImageBuilder
from modelshelf.runtime._ndtri import norm_ppf
from tests.cases._case import dataset
from tests.cases.nonlinear import positive

X, _, X_TEST = dataset("random_reg")


def test_norm_ppf_matches_scipy_over_every_range() -> None:
    rng = np.random.default_rng(0)
    q = np.concatenate(
        [
            rng.uniform(size=20_000),
            10.0 ** -rng.uniform(0, 300, size=5_000),  # the far lower tail
            1 - 10.0 ** -rng.uniform(0, 16, size=5_000),  # the upper tail
            [0.0, 1.0, 0.5, np.nan, -0.5, 1.5, np.exp(-2), 1 - np.exp(-2), 1e-300],
        ]
    )
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(norm_ppf(q), stats.norm.ppf(q), rtol=1e-14, atol=0)


def test_box_cox_refuses_non_positive_values_like_scikit_learn() -> None:
    train, _, test = positive()
    est = PowerTransformer(method="box-cox").fit(train)
    model = modelshelf.load(modelshelf.compile(est))
    probe = test[:4].copy()
    probe[2, 1] = 0.0
    with pytest.raises(ValueError, match="strictly positive"):
        est.transform(probe)
    with pytest.raises(UnknownCategoryError, match="strictly positive"):
        model.transform(probe)


def test_spline_error_extrapolation_raises_beyond_the_knots() -> None:
    est = SplineTransformer(extrapolation="error").fit(X[:, :2])
    model = modelshelf.load(modelshelf.compile(est))
    probe = X_TEST[:3, :2].copy()
    probe[1, 1] = X[:, 1].max() + 1
    with pytest.raises(ValueError, match="beyond the limits of the knots"):
        est.transform(probe)
    with pytest.raises(UnknownCategoryError, match="beyond the limits of the knots"):
        model.transform(probe)


@pytest.mark.parametrize(
    ("make", "accepts"),
    [
        (PowerTransformer, True),
        (QuantileTransformer, True),
        (SplineTransformer, False),
        (lambda: SplineTransformer(handle_missing="zeros"), True),
    ],
)
def test_nan_passes_or_raises_as_in_scikit_learn(make: Any, accepts: bool) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = make().fit(X)
    model = modelshelf.load(modelshelf.compile(est))
    probe = X_TEST[:4].copy()
    probe[1, 3] = np.nan
    if not accepts:
        with pytest.raises(ValueError):
            est.transform(probe)
        with pytest.raises(NonFiniteInputError):
            model.transform(probe)
        return
    np.testing.assert_allclose(model.transform(probe), est.transform(probe), rtol=1e-12)


def test_sparse_spline_output_is_refused() -> None:
    est = SplineTransformer(sparse_output=True).fit(X)
    with pytest.raises(UnsupportedModelError, match="sparse_output=True"):
        modelshelf.compile(est)


def _load(kind: str, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    builder = ImageBuilder()
    refs = {role: builder.add(role, value) for role, value in arrays.items()}
    spec = {"kind": kind, "arrays": refs, "params": params}
    modelshelf.load(builder.build({"model": spec, "input": {}, "metadata": {}}))


SPLINE = {"degree": 3, "n_splines": 4, "extrapolation": "continue", "include_bias": True}


@pytest.mark.parametrize(
    ("kind", "params", "arrays", "message"),
    [
        (
            "spline_transformer",
            {**SPLINE, "zeros_for_missing": False},
            {"knots": np.zeros((2, 7))},
            "basis functions",
        ),
        (
            "spline_transformer",
            {**SPLINE, "extrapolation": "periodic", "zeros_for_missing": False},
            {"knots": np.zeros((2, 8))},
            "cannot fold",
        ),
        (
            "spline_transformer",
            {**SPLINE, "extrapolation": "linear", "zeros_for_missing": False},
            {"knots": np.zeros((2, 8)), "f_min": np.zeros((2, 4)), "f_max": np.zeros((2, 4))},
            "fp_min",
        ),
        (
            "spline_transformer",
            {**SPLINE, "degree": 65, "zeros_for_missing": False},
            {"knots": np.zeros((1, 8))},
            "degree",
        ),
        (
            "quantile_transformer",
            {"distribution": "normal", "clip": [1.0, -1.0]},
            {"quantiles": np.zeros((3, 2)), "references": np.zeros(3)},
            "clip",
        ),
        (
            "quantile_transformer",
            {"distribution": "uniform", "clip": [-1.0, 1.0]},
            {"quantiles": np.zeros((3, 2)), "references": np.zeros(4)},
            "references",
        ),
        (
            "power_transformer",
            {"method": "box-cox"},
            {"lambdas": np.zeros(3), "mean": np.zeros(3)},
            "mean and scale",
        ),
    ],
)
def test_inconsistent_manifests_are_refused(
    kind: str, params: dict[str, Any], arrays: dict[str, np.ndarray], message: str
) -> None:
    with pytest.raises(ManifestError, match=message):
        _load(kind, params, arrays)
