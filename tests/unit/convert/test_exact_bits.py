"""Probabilities and links to the bit, on both kernels: where the library calls the C library's
exp (scipy's expit, LightGBM) the image does too; where it calls numpy's (scikit-learn's softmax
and log link), numpy's. numpy's own exp differs from libm's in the last bit on a few percent of
values on CPUs with AVX-512 (as this test machine's), which a tolerance would hide."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import catboost
import lightgbm
import numpy as np
import pytest
import xgboost
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from sklearn.linear_model import LogisticRegression, PoissonRegressor, SGDClassifier
from sklearn.neural_network import MLPClassifier, MLPRegressor

import modelshelf
from tests.kernels import same_bits, using

# short fits: the models need not converge, only be what the library predicts
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

RNG = np.random.default_rng(0)
X = RNG.normal(size=(1500, 6))
Y2 = (X[:, 0] + X[:, 1] ** 2 > 1).astype(int)
Y3 = np.digitize(X[:, 0], [-0.5, 0.5])
POSITIVE = np.exp(X[:, 0] / 2) + 0.1
_CB = {"iterations": 20, "verbose": 0, "allow_writing_files": False, "thread_count": 1}

CASES: dict[str, tuple[Callable[[], Any], str]] = {
    # scipy's expit (libm's exp)
    "LogisticRegression binary": (lambda: LogisticRegression().fit(X, Y2), "predict_proba"),
    "SGDClassifier log_loss": (
        lambda: SGDClassifier(loss="log_loss", random_state=0).fit(X, Y2),
        "predict_proba",
    ),
    "HistGradientBoosting binary": (
        lambda: HistGradientBoostingClassifier(max_iter=20).fit(X, Y2),
        "predict_proba",
    ),
    "GradientBoosting exponential": (
        lambda: GradientBoostingClassifier(n_estimators=20, loss="exponential").fit(X, Y2),
        "predict_proba",
    ),
    "MLPClassifier binary": (
        lambda: MLPClassifier(hidden_layer_sizes=(16,), max_iter=60, random_state=0).fit(X, Y2),
        "predict_proba",
    ),
    "MLPRegressor logistic": (
        lambda: MLPRegressor(
            hidden_layer_sizes=(16,), activation="logistic", max_iter=60, random_state=0
        ).fit(X, X[:, 0]),
        "predict",
    ),
    "CalibratedClassifierCV sigmoid": (
        lambda: CalibratedClassifierCV(LogisticRegression(), method="sigmoid").fit(X, Y2),
        "predict_proba",
    ),
    # LightGBM (libm's exp)
    "LightGBM binary": (
        lambda: lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(X, Y2),
        "predict_proba",
    ),
    "LightGBM multiclass": (
        lambda: lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(X, Y3),
        "predict_proba",
    ),
    "LightGBM multiclassova": (
        lambda: lightgbm.LGBMClassifier(objective="multiclassova", n_estimators=20, verbose=-1).fit(
            X, Y3
        ),
        "predict_proba",
    ),
    "LightGBM gamma": (
        lambda: lightgbm.LGBMRegressor(objective="gamma", n_estimators=20, verbose=-1).fit(
            X, POSITIVE
        ),
        "predict",
    ),
    "CatBoost binary": (lambda: catboost.CatBoostClassifier(**_CB).fit(X, Y2), "predict_proba"),
    # numpy's exp (scikit-learn's softmax and log link), unchanged
    "LogisticRegression multinomial": (lambda: LogisticRegression().fit(X, Y3), "predict_proba"),
    "HistGradientBoosting multiclass": (
        lambda: HistGradientBoostingClassifier(max_iter=20).fit(X, Y3),
        "predict_proba",
    ),
    "HistGradientBoosting poisson": (
        lambda: HistGradientBoostingRegressor(loss="poisson", max_iter=20).fit(X, POSITIVE),
        "predict",
    ),
    "PoissonRegressor": (lambda: PoissonRegressor().fit(X, POSITIVE), "predict"),
    # XGBoost: float32, its expf taken as numpy's float64 exp rounded
    "XGBoost binary": (
        lambda: xgboost.XGBClassifier(n_estimators=20, n_jobs=1).fit(X, Y2),
        "predict_proba",
    ),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def fitted(request: pytest.FixtureRequest) -> tuple[str, Any, bytes, np.ndarray]:
    make, method = CASES[request.param]
    est = make()
    return method, est, modelshelf.compile(est), getattr(est, method)(X)


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
def test_outputs_are_the_librarys_to_the_bit(
    fitted: tuple[str, Any, bytes, np.ndarray], kernel: str
) -> None:
    method, est, image, expected = fitted
    with using(kernel):
        got = getattr(modelshelf.load(image), method)(X)
    differ = int(np.sum(np.asarray(got) != expected))
    assert same_bits(got, expected), f"{type(est).__name__}: {differ} values differ"


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
def test_xgboost_float32_links_call_the_c_librarys_expf(kernel: str) -> None:
    """XGBoost's Sigmoid, Softmax and exp call expf, which glibc does not round correctly:
    ``float32(exp(float64(x)))`` differed on 1-3 cells of these."""
    rng = np.random.default_rng(1)
    X2 = rng.normal(size=(2000, 4))
    binary = xgboost.XGBClassifier(n_estimators=20, max_depth=4, n_jobs=1)
    binary.fit(X2, (X2[:, 0] + rng.normal(size=2000) > 0).astype(int))
    poisson = xgboost.XGBRegressor(
        objective="count:poisson", n_estimators=20, max_depth=4, n_jobs=1
    )
    poisson.fit(X2, np.exp(X2[:, 0]))
    X3 = rng.normal(size=(600, 4))
    X3[rng.uniform(size=X3.shape) < 0.08] = np.nan
    s = np.nan_to_num(X3[:, 0]) * 2 + np.sin(np.nan_to_num(X3[:, 1]))
    softprob = xgboost.XGBClassifier(
        objective="multi:softprob", n_estimators=15, max_depth=3, n_jobs=1
    ).fit(X3, np.digitize(s, [-1, 0, 1]))
    for est, method, rows in (
        (binary, "predict_proba", X2),
        (poisson, "predict", X2),
        (softprob, "predict_proba", X3),
    ):
        with using(kernel):
            got = getattr(modelshelf.load(modelshelf.compile(est)), method)(rows)
        expected = getattr(est, method)(rows)
        assert same_bits(got, expected), f"{est.objective}: {int(np.sum(got != expected))} differ"
