"""String labels come in the estimator's own numpy dtype (``<U21`` stays ``<U21``), single- and
multi-output; the width an image states is bounded and checked like every other value."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

import modelshelf
from modelshelf.errors import ManifestError
from modelshelf.image import Image, ImageBuilder
from tests.kernels import using

RNG = np.random.default_rng(3)
X = RNG.normal(size=(200, 3))
SHORT = np.array(["neg", "zero", "pos"])[np.digitize(X[:, 0], [-0.5, 0.5])]


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
@pytest.mark.parametrize("dtype", ["<U3", "<U4", "<U21", "<U300", object])
@pytest.mark.parametrize(
    "make",
    [
        lambda: DecisionTreeClassifier(max_depth=3, random_state=0),
        lambda: RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0),
        lambda: LogisticRegression(max_iter=300),
    ],
)
def test_predictions_keep_the_estimators_label_dtype(make, dtype, kernel: str) -> None:
    y = SHORT.astype(dtype)
    est = make().fit(X, y)
    with using(kernel):
        got = modelshelf.load(modelshelf.compile(est)).predict(X[:20])
    expected = est.predict(X[:20])
    assert got.dtype == expected.dtype and np.array_equal(got, expected)


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
@pytest.mark.parametrize("dtype", ["<U4", "<U21"])
def test_multi_output_labels_keep_the_dtype_of_y(dtype: str, kernel: str) -> None:
    Y = np.column_stack([SHORT, np.where(X[:, 1] > 0, "1", "0")]).astype(dtype)
    for est in (
        DecisionTreeClassifier(max_depth=4, random_state=0),
        RandomForestClassifier(n_estimators=3, max_depth=4, random_state=0),
    ):
        est.fit(X, Y)
        with using(kernel):
            got = modelshelf.load(modelshelf.compile(est)).predict(X[:20])
        expected = est.predict(X[:20])
        assert got.dtype == expected.dtype and np.array_equal(got, expected), type(est)


def test_an_image_with_width_is_format_1_2_and_one_without_keeps_its_minor() -> None:
    est = LogisticRegression().fit(X, SHORT)
    assert Image(modelshelf.compile(est)).version == (1, 2)
    numeric = LogisticRegression().fit(X, SHORT == "pos")
    assert Image(modelshelf.compile(numeric)).version == (1, 0)
    # scikit-learn's trees refuse values float32 makes infinite: float32_range, 1.4
    tree = DecisionTreeClassifier(max_depth=2).fit(X, SHORT == "pos")
    assert Image(modelshelf.compile(tree)).version == (1, 4)


def _with_width(image: bytes, width: object) -> bytes:
    opened = Image(image)
    manifest = copy.deepcopy(opened.manifest)
    manifest["model"]["params"]["classes"]["width"] = width
    builder = ImageBuilder()
    for name, array in opened.arrays.items():
        builder.add(name, array)
    return builder.build(manifest)


@pytest.mark.parametrize(
    ("width", "says"),
    [
        (4, None),  # the longest label ("zero"): accepted
        (2, "width must be an integer from the longest label (4) to 4096, found 2"),
        (0, "found 0"),
        (-1, "found -1"),
        (4097, "found 4097"),
        (1e3, "found 1000.0"),
        (True, "found True"),
        ("21", "found '21'"),
        (10**20, "found 100000000000000000000"),
        (None, None),  # no width: as wide as the longest, as images before 1.2
    ],
)
def test_a_stated_width_is_checked(width: object, says: str | None) -> None:
    est = DecisionTreeClassifier(max_depth=2).fit(X, SHORT.astype("<U21"))
    changed = _with_width(modelshelf.compile(est), width)
    if says is None:
        assert modelshelf.load(changed).predict(X[:3]).dtype == np.dtype("<U4")
        return
    with pytest.raises(ManifestError, match=re.escape(says)):
        modelshelf.load(changed)
