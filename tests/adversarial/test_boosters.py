"""The boosting kinds and fields of issue 10 point 3 meet nonsense specs: XGBoost gblinear
(``boosted_linear_*``), multi:softmax's index rule, LightGBM's linear leaves (``linear_*``).

test_family_specs.py covers each kind through a bounded corpus, which these may fall outside
of; here each has its own base image. A mutant must load or raise ManifestError, and one that
loads must predict (with each kernel built) or raise ManifestError: a linear leaf's columns
and terms are read at predict time, through bounds-checked gathers.
"""

from __future__ import annotations

import contextlib
import warnings

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from hypothesis import given, settings
from hypothesis import strategies as st

import modelshelf
from modelshelf.errors import ModelshelfError
from modelshelf.image import Image
from tests.cases._case import dataset
from tests.kernels import using

from . import _raw
from ._fuzz import BUILT_KERNELS, SCALE, SETTINGS, consume, mutated_manifest

pytestmark = pytest.mark.slow  # fits four small boosters first


def _images() -> dict[str, Image]:
    X, y, _ = dataset("random_nan")
    Xi, yi, _ = dataset("iris")
    fitted = {
        "gblinear-classifier": xgb.XGBClassifier(n_estimators=3, booster="gblinear").fit(X, y),
        "gblinear-booster": xgb.train(
            {"booster": "gblinear", "nthread": 1}, xgb.DMatrix(X, y), num_boost_round=2
        ),
        "softmax": xgb.XGBClassifier(n_estimators=2, max_depth=2, objective="multi:softmax").fit(
            Xi, yi
        ),
        "linear-tree": lgb.LGBMRegressor(
            n_estimators=3, num_leaves=4, linear_tree=True, verbose=-1
        ).fit(X, y.astype(float)),
    }
    return {name: Image.open(modelshelf.compile(est)) for name, est in fitted.items()}


@pytest.fixture(scope="module")
def images() -> dict[str, Image]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _images()


ROWS = np.vstack([dataset("random_nan")[2][:3], np.full((1, 12), np.nan)])


@settings(SETTINGS, max_examples=300 * SCALE)
@given(data=st.data())
def test_booster_spec_mutations(images: dict[str, Image], data: st.DataObject) -> None:
    image = images[data.draw(st.sampled_from(sorted(images)))]
    arrays = list(image.arrays.items())
    manifest = data.draw(mutated_manifest(image.manifest, [n for n, _ in arrays]))
    mutant = _raw.assemble(arrays, manifest)
    if consume(mutant) != "ok":
        return
    for kernel in BUILT_KERNELS:
        with using(kernel):
            model = modelshelf.load(mutant)
        rows = ROWS[:, : getattr(model, "n_features_in_", None) or 12]
        for method in ("predict", "predict_proba", "decision_function"):
            if hasattr(model, method):
                # ManifestError for what loading could not check; other typed errors (a feature
                # count the mutant changed) are fine too: never an IndexError or a TypeError.
                with contextlib.suppress(ModelshelfError):
                    getattr(model, method)(rows)
