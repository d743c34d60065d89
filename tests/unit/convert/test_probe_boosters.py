"""Boosters with less common settings, found by sweeping objectives, options and inputs at
split thresholds against each library: each answered something the library does not, or was
refused although it is exact."""

from __future__ import annotations

import numpy as np
import pytest

import modelshelf
from modelshelf.errors import FeatureNamesError, UnsupportedModelError

lgb = pytest.importorskip("lightgbm")
xgb = pytest.importorskip("xgboost")
catboost = pytest.importorskip("catboost")
pd = pytest.importorskip("pandas")

RNG = np.random.default_rng(0)


def test_lightgbm_reads_the_zero_band_as_zero() -> None:
    """LightGBM's predictor reads every |x| <= kZeroThreshold (1e-35 as a float) as 0.0; the
    split between the negative bins and zero has the threshold -kZeroThreshold, so an input of
    exactly that value went left in the image and right in LightGBM."""
    X = RNG.normal(size=(600, 2))
    X[RNG.random(600) < 0.3, 0] = 0.0
    y = np.where(X[:, 0] < 0, -1.0, np.where(X[:, 0] == 0, 5.0, 1.0)) + X[:, 1]
    est = lgb.LGBMRegressor(n_estimators=5, num_leaves=4, verbose=-1).fit(X, y)
    assert "threshold=-1.0000000180025095e-35" in est.booster_.model_to_string()
    zero = float(np.float32(1e-35))
    band = [-zero, np.nextafter(-zero, -1), np.nextafter(-zero, 1), -0.0, 0.0, zero / 2, zero]
    rows = np.column_stack([np.array([*band, np.nextafter(zero, 1), -1e-30]), np.full(9, 0.5)])
    model = modelshelf.load(modelshelf.compile(est))
    np.testing.assert_array_equal(model.predict(rows), est.predict(rows))


def test_a_catboost_probability_threshold_is_refused() -> None:
    """set_probability_threshold is saved with the model and decides its labels; the image
    labelled at 0.5 (346 of 1,000 labels differed)."""
    X = RNG.normal(size=(200, 3))
    est = catboost.CatBoostClassifier(iterations=5, verbose=0).fit(X, X[:, 0] > 0)
    modelshelf.compile(est)
    est.set_probability_threshold(0.8)
    with pytest.raises(UnsupportedModelError, match=r"probability threshold of 0\.8"):
        modelshelf.compile(est)


def test_a_numeric_catboost_model_fitted_on_a_frame_reads_columns_by_name() -> None:
    """The image recorded no names: a frame with its columns in another order was read by
    position (wrong answers; CatBoost matches names), renamed columns were accepted."""
    frame = pd.DataFrame(RNG.normal(size=(200, 3)), columns=["a", "b", "c"])
    est = catboost.CatBoostRegressor(iterations=5, verbose=0).fit(frame, frame["a"] * 2)
    model = modelshelf.load(modelshelf.compile(est))
    np.testing.assert_array_equal(model.predict(frame), est.predict(frame))
    for other in (frame[["c", "b", "a"]], frame.set_axis(["x", "y", "z"], axis=1)):
        with pytest.raises(FeatureNamesError):
            model.predict(other)
    np.testing.assert_array_equal(model.predict(frame.to_numpy()), est.predict(frame))


@pytest.mark.parametrize("missing", [np.float32("nan"), np.float64("nan"), float("nan")])
def test_xgboost_takes_a_nan_of_any_float_type_as_missing(missing: object) -> None:
    """missing=np.float32('nan') was refused as "not NaN" (an isinstance check on float)."""
    X = RNG.normal(size=(100, 3))
    X[::7, 1] = np.nan
    est = xgb.XGBRegressor(n_estimators=3, missing=missing).fit(X, X[:, 0])
    model = modelshelf.load(modelshelf.compile(est))
    np.testing.assert_array_equal(model.predict(X), est.predict(X))


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize(
    "given",
    ["int64", "uint32", "big-endian", "list", "frame", "float32", "linear-tree-big-endian"],
)
def test_lightgbm_rounds_other_numpy_dtypes_to_float32_as_lightgbm_does(given: str) -> None:
    """A probe: LightGBM casts a numpy array of any dtype but native float32/float64 to
    float32 before predicting (_np2d_to_np1d), so integers above 2**24 and big-endian doubles
    take other branches there; modelshelf read them as float64 (135 of 400 rows differed).
    A DataFrame is read as float64 by both."""
    rng = np.random.default_rng(0)
    ints = (2**25 + rng.integers(0, 200, size=(400, 2))).astype(np.int64)
    if given == "linear-tree-big-endian":
        X = rng.normal(size=(300, 4))
        est = lgb.LGBMRegressor(n_estimators=5, linear_tree=True, verbose=-1)
        est.fit(X, rng.normal(size=300))
        rows: object = rng.normal(size=(50, 4)).astype(">f8")
    else:
        y = (ints[:, 0] % 2 == 1) * 1.0 + (ints[:, 0] > 2**25 + 100) + rng.normal(size=400) * 0.01
        est = lgb.LGBMRegressor(n_estimators=10, min_child_samples=2, verbose=-1)
        est.fit(ints.astype(np.float64), y)
        rows = {
            "int64": ints,
            "uint32": ints.astype(np.uint32),
            "big-endian": ints.astype(">f8"),
            "list": ints.tolist(),
            "frame": pd.DataFrame(ints),
            "float32": ints.astype(np.float32),
        }[given]
    model = modelshelf.load(modelshelf.compile(est))
    expected = est.predict(rows)
    assert np.array_equal(model.predict(rows), expected)
    if given in ("int64", "big-endian"):  # the case is real: float64 would answer otherwise
        assert not np.array_equal(est.predict(np.asarray(rows, dtype=np.float64)), expected)
