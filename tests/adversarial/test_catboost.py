"""CatBoost's categorical input layer (``catboost_features``, issue 10 point 3) meets hostile
images: every index, offset, count and shape it reads is checked at load (ManifestError), and
contents that stay in range (an unsorted table, nonsense priors) give wrong values, never an
unsafe read or a crash. Mutated manifests load or raise ManifestError; loaded ones predict or
raise a typed error.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable
from typing import Any

import catboost as cb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelshelf
from modelshelf.errors import ManifestError, ModelshelfError
from modelshelf.image import Image

from . import _raw
from ._fuzz import SCALE, SETTINGS, consume, mutated_manifest

pytestmark = pytest.mark.slow  # fits a small CatBoost model first


def _data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(3)
    n = 300
    X = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "a": rng.choice(["p", "q", "r"], n).astype(object),
            "b": rng.choice([f"v{i}" for i in range(20)], n).astype(object),
            "c": rng.integers(0, 8, n),
        }
    )
    y = ((X["a"] == "p") ^ (X["b"] < "v5") ^ (X["x"] > 0)).to_numpy().astype(int)
    return X, y


ROWS = pd.DataFrame({"x": [0.1, np.nan], "a": ["p", "zz"], "b": ["v1", "v99"], "c": [3, 77]})


@pytest.fixture(scope="module")
def image() -> Image:
    X, y = _data()
    est = cb.CatBoostClassifier(
        iterations=12, depth=4, verbose=0, thread_count=1, random_seed=0,
        allow_writing_files=False, cat_features=["a", "b", "c"], one_hot_max_size=3,
        max_ctr_complexity=3,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    img = Image.open(modelshelf.compile(est))
    model = modelshelf.load(img)
    np.testing.assert_allclose(model.predict_proba(ROWS), est.predict_proba(ROWS), rtol=1e-12)
    return img


def _features(manifest: dict[str, Any]) -> dict[str, Any]:
    step: dict[str, Any] = manifest["model"]["params"]["steps"][0]
    assert step["kind"] == "catboost_features"
    return step


def _with(image: Image, role: str, change: Callable[[np.ndarray], np.ndarray]) -> bytes:
    """The image with the array playing ``role`` replaced by ``change(array)``."""
    name = _features(image.manifest)["arrays"][role]
    arrays = [
        (n, change(np.array(a)) if n == name else np.array(a)) for n, a in image.arrays.items()
    ]
    return _raw.assemble(arrays, image.manifest)


def _set(at: Any, value: Any) -> Callable[[np.ndarray], np.ndarray]:
    def change(arr: np.ndarray) -> np.ndarray:
        arr[at] = value
        return arr

    return change


HOSTILE: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "float column past the input": ("float_columns", _set(0, 4)),
    "negative categorical column": ("cat_columns", _set(0, -1)),
    "one-hot feature past the categorical ones": ("onehot", _set((0, 0), 3)),
    "one-hot rows of three": ("onehot", lambda a: np.zeros((len(a), 3), a.dtype)),
    "unknown element kind": ("proj_elements", _set((0, 0), 3)),
    "categorical element past the features": ("proj_elements", _set((0, 1), 99)),
    "borders of float64": ("proj_borders", lambda a: a.astype(np.float64)),
    "one border short": ("proj_borders", lambda a: a[:-1]),
    "offsets not from 0": ("proj_offsets", _set(0, 1)),
    "offsets past the elements": ("proj_offsets", _set(-1, 10**6)),
    "offsets falling": ("proj_offsets", lambda a: a[::-1].copy()),
    "CTR of an absent projection": ("ctr_features", _set((0, 0), 10**6)),
    "CTR of an absent table": ("ctr_features", _set((0, 1), -1)),
    "CTR of an unknown type": ("ctr_features", _set((0, 2), 6)),
    "CTR reading past its row": ("ctr_features", _set((0, 3), 50)),
    "priors of float64": ("ctr_priors", lambda a: a.astype(np.float64)),
    "one prior row short": ("ctr_priors", lambda a: a[:-1]),
    "table offsets past the rows": ("table_offsets", _set(-1, 10**9)),
    "table offsets falling": ("table_offsets", _set(1, -5)),
    "signed hashes": ("table_hashes", lambda a: a.astype(np.int64)),
    "one hash short": ("table_hashes", lambda a: a[:-1]),
    "table of width 0": ("table_info", _set((0, 0), 0)),
    "table wider than the values": ("table_info", _set((0, 0), 99)),
    "values of one dimension": ("table_values", lambda a: a[:, 0].copy()),
    "rows wider than any model's": ("table_values", lambda a: np.zeros((0, 1 << 17))),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_arrays_are_refused_at_load(image: Image, case: str) -> None:
    role, change = HOSTILE[case]
    with pytest.raises(ManifestError):
        modelshelf.load(_with(image, role, change))


@pytest.mark.parametrize(
    ("param", "value"), [("n_features", 0), ("n_features", 2**40), ("n_projections", 10**6)]
)
def test_hostile_counts_are_refused_at_load(image: Image, param: str, value: int) -> None:
    manifest = copy.deepcopy(image.manifest)
    _features(manifest)["params"][param] = value
    arrays = [(n, np.array(a)) for n, a in image.arrays.items()]
    with pytest.raises(ManifestError):
        modelshelf.load(_raw.assemble(arrays, manifest))


@pytest.mark.parametrize(
    ("role", "change"),
    [
        ("table_hashes", lambda a: a[::-1].copy()),  # unsorted: lookups miss, nothing breaks
        ("table_values", lambda a: np.full_like(a, np.nan)),
        ("table_values", lambda a: np.full_like(a, np.inf)),
        ("ctr_priors", lambda a: np.zeros_like(a)),  # 0 / 0
        ("proj_borders", lambda a: np.full_like(a, np.nan)),
    ],
)
def test_contents_in_range_give_values_never_crashes(
    image: Image, role: str, change: Callable[[np.ndarray], np.ndarray]
) -> None:
    model = modelshelf.load(_with(image, role, change))
    assert model.predict_proba(ROWS).shape == (2, 2)


@settings(SETTINGS, max_examples=300 * SCALE)
@given(data=st.data())
def test_catboost_spec_mutations(image: Image, data: st.DataObject) -> None:
    arrays = list(image.arrays.items())
    manifest = data.draw(mutated_manifest(image.manifest, [n for n, _ in arrays]))
    mutant = _raw.assemble(arrays, manifest)
    if consume(mutant) != "ok":
        return
    model = modelshelf.load(mutant)
    for method in ("predict", "predict_proba"):
        if hasattr(model, method):
            with contextlib.suppress(ModelshelfError):
                getattr(model, method)(ROWS)
