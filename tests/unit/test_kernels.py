"""The compiled kernels (modelshelf/_kernels): which one serves, and the tree kernel against
the numpy runtime to the last bit over every dtype combination, leaf tables, groups and base
values, plus its index checks. (The exactness matrix runs real models through both kernels;
tests/adversarial/test_tree_kernels.py feeds them hostile arrays.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import modelshelf
from modelshelf import _kernels
from modelshelf.errors import ManifestError
from modelshelf.runtime import trees_forest
from tests.kernels import REQUIRE_ENV, require, same_bits, using
from tests.unit.runtime.test_trees import REGRESSOR, image, random_forest, two_trees


def test_built_where_required() -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        assert _kernels.BUILT is not None, "the compiled kernels are required but not built"
    assert _kernels.mode() in _kernels.MODES


PROBE = """
import json, logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(name)s %(message)s")
from modelshelf import _kernels
print(json.dumps({"mode": _kernels.mode(), "built": _kernels.BUILT is not None}))
"""


def _probe(value: str | None) -> tuple[dict[str, Any], list[str]]:
    env = {k: v for k, v in os.environ.items() if k != _kernels.ENV}
    if value is not None:
        env[_kernels.ENV] = value
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, check=True, capture_output=True, text=True
    ).stdout.splitlines()
    lines = [line for line in out if line.startswith("modelshelf._kernels")]
    return json.loads(out[-1]), lines


def test_the_environment_forces_numpy_and_import_logs_one_line() -> None:
    state, lines = _probe("numpy")
    assert state["mode"] == "numpy" and len(lines) == 1, lines
    state, lines = _probe(None)
    assert len(lines) == 1, lines
    assert state["mode"] == ("compiled" if state["built"] else "numpy")
    assert ("kernels: compiled" in lines[0]) == state["built"], lines


STALE = """
import json, sys, types
stale = types.ModuleType("modelshelf._kernels._native")  # an extension of another checkout
stale.__file__ = "/old/_native.so"
if sys.argv[1] != "none":
    stale.INTERFACE = int(sys.argv[1])
sys.modules["modelshelf._kernels._native"] = stale
import numpy as np
import modelshelf
from modelshelf import _kernels
from modelshelf.runtime.neural import MLPClassifier
mlp = MLPClassifier([(np.ones((3, 1)), np.zeros(1))], "relu", "binary", np.arange(2))
print(json.dumps({"mode": _kernels.mode(), "built": _kernels.BUILT is not None,
                  "proba": mlp.predict_proba(np.ones((2, 3))).tolist()}))
"""


@pytest.mark.parametrize("interface", ["none", "1", str(_kernels.INTERFACE + 1)])
def test_an_extension_of_another_version_is_refused_with_a_warning(interface: str) -> None:
    # a stale extension (a checkout updated without a rebuild) answers other calls: the numpy
    # runtime serves, and a warning says how to rebuild
    done = subprocess.run(
        [sys.executable, "-c", STALE, interface], check=True, capture_output=True, text=True
    )
    state = json.loads(done.stdout.splitlines()[-1])
    assert state["mode"] == "numpy" and not state["built"]
    assert np.allclose(
        state["proba"], [[1 - 1 / (1 + np.exp(-3))] * 1 + [1 / (1 + np.exp(-3))]] * 2
    )
    assert "built from another version" in done.stderr and "build_ext --inplace" in done.stderr


def test_use_checks_its_argument() -> None:
    with pytest.raises(ValueError, match="one of"):
        _kernels.use("fortran")


def _forest(arrays: dict[str, Any], params: dict[str, Any], kind: str, kernel: str) -> Any:
    with using(kernel):
        model = modelshelf.load(image(kind, arrays, REGRESSOR | params))
    forest = model._executor.forest  # type: ignore[union-attr]
    assert (forest.kernel is not None) == (kernel == "compiled")
    return forest


def _variant(
    rng: np.random.Generator, threshold: str, values: str | None, width: int
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """A random forest of 12 trees in three groups (the second empty) with a base, its payloads
    inline in ``threshold`` dtype or rows of a ``values`` table of ``width`` columns."""
    arrays, depth = random_forest(rng, 12, 4, max_depth=8)
    leaf = arrays["child"] == np.arange(len(arrays["child"]))
    if values is not None:
        n_leaves = int(leaf.sum())
        arrays["threshold"][leaf] = rng.permutation(n_leaves)
        table = rng.normal(size=(n_leaves, width)) * 10.0 ** rng.integers(-6, 6, (n_leaves, 1))
        arrays["leaf_values"] = table.astype(values)
    arrays["threshold"] = arrays["threshold"].astype(threshold)
    out_dtype = values or threshold
    arrays["base"] = rng.normal(size=3 * width).astype(out_dtype)
    params = {"n_features": 4, "depth": depth, "groups": [0, 5, 5, 12]}
    kind = "tree_regressor" if width > 1 else "boosted_regressor"
    return arrays, params, kind


@pytest.mark.parametrize("input_cast", ["float32", "float64"])
@pytest.mark.parametrize(
    ("threshold", "values", "width"),
    [
        ("float64", None, 1),
        ("float32", None, 1),
        ("float32", "float64", 1),
        ("float64", "float32", 3),
        ("float32", "float32", 3),
        ("float64", "float64", 3),
    ],
)
def test_compiled_sums_equal_numpy_to_the_bit(
    input_cast: str, threshold: str, values: str | None, width: int
) -> None:
    require("compiled")
    rng = np.random.default_rng(hash((input_cast, threshold, values, width)) % 2**32)
    arrays, params, kind = _variant(rng, threshold, values, width)
    params["input_cast"] = input_cast
    if kind == "tree_regressor":
        params["methods"] = ["predict"]
    numpy_forest = _forest(arrays, params, kind, "numpy")
    compiled = _forest(arrays, params, kind, "compiled")
    n = trees_forest._BLOCK // 12 * 2 + 5  # three blocks
    X = rng.normal(size=(n, 4)) * 3
    X[rng.uniform(size=X.shape) < 0.1] = np.nan
    X[0, :] = [1e300, -1e300, np.inf, -0.0]  # overflow to inf in float32, signed zero
    for rows in (X[:1], X[1:2], X[:7], X):
        expected = numpy_forest.raw(rows)
        assert expected.dtype == np.dtype(values or threshold)
        assert same_bits(compiled.raw(rows), expected)
    assert same_bits(compiled.raw(X[:0]), numpy_forest.raw(X[:0]))


def test_layouts_the_kernel_does_not_take_stay_with_numpy() -> None:
    require("compiled")
    arrays = two_trees(feature=two_trees()["feature"].astype(np.int64))
    with using("compiled"):
        model = modelshelf.load(image("boosted_regressor", arrays, REGRESSOR))
    assert model._executor.forest.kernel is None  # type: ignore[union-attr]
    assert model.predict(np.array([[1.0, 5.0]])).tolist() == [130.0]


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"roots": np.array([0, 6], np.int32)}, "root of tree 1"),
        ({"roots": np.array([-1, 5], np.int32)}, "root of tree 0"),
        ({"feature": np.array([0, 2, 7, 2, 2, 2], np.int32)}, "node 2 reads column 7"),
        ({"feature": np.array([-3, 2, 1, 2, 2, 2], np.int32)}, "node 0 reads column -3"),
        ({"child": np.array([1, 1, 5, 3, 4, 5], np.int32)}, "node 2 leads to node 6"),
        ({"child": np.array([-5, 1, 3, 3, 4, 5], np.int32)}, "node 0 leads to node -4"),
    ],
)
def test_compiled_index_checks(overrides: dict[str, Any], match: str) -> None:
    require("compiled")
    arrays = two_trees(**overrides)
    with using("compiled"):
        model = modelshelf.load(image("boosted_regressor", arrays, REGRESSOR))
    with pytest.raises(ManifestError, match=match):
        model.predict(np.array([[1.0, 5.0]]))


@pytest.mark.parametrize("payload", [-1.0, 2.0, np.nan, np.inf, 1e300])
def test_compiled_leaf_rows_are_checked(payload: float) -> None:
    require("compiled")
    arrays = two_trees(threshold=np.array([0.5, 0.0, -1.0, 1.0, payload, 1.0]))
    arrays["leaf_values"] = np.array([[1.0], [2.0]])
    with using("compiled"):
        model = modelshelf.load(image("boosted_regressor", arrays, REGRESSOR))
    assert model.predict(np.array([[0.0, 0.0]])).tolist() == [3.0]  # leaves 1 and 5: rows 0, 0
    with pytest.raises(ManifestError, match="leaf 4 holds leaf row"):
        model.predict(np.array([[1.0, 5.0]]))
