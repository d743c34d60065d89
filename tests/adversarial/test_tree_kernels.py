"""Tree images with hostile array contents, through both kernels (numpy and compiled).

Loading checks only what the array table and params say (docs/format.md, "Rules"); the node
arrays' contents are read at predict time, where every index must be checked. Here real
images (categorical splits, NaN, float32 and float64, leaf tables) get a few values of one
forest array overwritten with edge values, are resealed, and predict on both kernels: each
must return or raise ModelshelfError, never an IndexError, a crash or a bad read (the
sanitizer build, scripts/sanitize.sh, runs this module). Where the mutation leaves every
index alone (leaf values, base, category tables, thresholds of inline leaves), both kernels
must also agree: the same outputs, or both an error. (Out-of-range indices may give numpy and
the compiled kernel different outcomes: numpy wraps some negative indices, the kernel refuses
them; neither reads outside an array.) Manifest mutations of the same images predict too.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelshelf
from modelshelf import _kernels
from modelshelf.errors import ModelshelfError
from modelshelf.image import Image
from tests.cases import trees
from tests.kernels import KERNELS, require, using

from . import _raw
from ._fuzz import SCALE, SETTINGS, consume, mutated_manifest

pytestmark = pytest.mark.slow  # fits four small ensembles first

BASES = ("lgbm-clf-categorical", "xgb-clf-categorical", "forest-rf-clf-nan", "hgb-clf-categorical")
# Arrays whose values are indices into other arrays or the working matrix: mutating them may
# make the two kernels disagree (see above), never read out of bounds.
INDEX_ROLES = {"feature", "child", "roots"}


def _fit() -> dict[str, tuple[Image, np.ndarray]]:
    cases = {c.id: c for c in trees.CASES}
    out = {}
    for name in BASES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est, X = cases[name].fit()
        out[name] = (Image.open(modelshelf.compile(est)), np.asarray(X, dtype=np.float64)[:40])
    return out


@pytest.fixture(scope="module")
def images() -> dict[str, tuple[Image, np.ndarray]]:
    for kernel in KERNELS:
        require(kernel)
    return _fit()


def _outcome(image: bytes, X: np.ndarray, kernel: str) -> list[Any] | str:
    """Every method's output, or the name of the typed error that stopped it."""
    try:
        with using(kernel):
            model = modelshelf.load(image)
        outputs = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # overflow in a link of mutated leaf values
            for method in ("predict", "predict_proba", "decision_function"):
                if hasattr(model, method):
                    outputs.append(getattr(model, method)(X))
        return outputs
    except ModelshelfError as exc:
        return type(exc).__name__


def _edge_values(draw: st.DrawFn, arr: np.ndarray) -> Any:
    n = max(len(arr), 1)
    if arr.dtype.kind == "f":
        return draw(
            st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, 0.5, 1e300, -1e300, n])
            | st.floats(-1e6, 1e6, width=32)
        )
    info = np.iinfo(arr.dtype)
    edges = [-1, 0, 1, n - 1, n, n + 1, 2 * n, info.max, info.min, -n, -n - 1]
    return draw(
        st.sampled_from([e for e in edges if info.min <= e <= info.max])
        | st.integers(max(info.min, -2 * n), min(info.max, 2 * n))
    )


@st.composite
def _mutant(draw: st.DrawFn, images: dict[str, tuple[Image, np.ndarray]]) -> tuple[str, bytes, str]:
    name = draw(st.sampled_from(BASES))
    image, _ = images[name]
    refs = image.manifest["model"]["arrays"]
    role = draw(st.sampled_from(sorted(refs)))
    arrays = {n: np.array(a) for n, a in image.arrays.items()}  # writable copies
    target = arrays[refs[role]].reshape(-1)
    if len(target):
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(target) - 1))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # 1e300 into float32 overflows to inf
                target[at] = _edge_values(draw, target)
    return name, _raw.assemble(list(arrays.items()), image.manifest), role


def _same(a: list[Any] | str, b: list[Any] | str) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return len(a) == len(b) and all(
        x.dtype == y.dtype and np.array_equal(x, y, equal_nan=x.dtype.kind == "f")
        for x, y in zip(a, b, strict=True)
    )


@settings(SETTINGS, max_examples=300 * SCALE)
@given(data=st.data())
def test_hostile_node_arrays(images: dict[str, tuple[Image, np.ndarray]], data: Any) -> None:
    name, mutant, role = data.draw(_mutant(images))
    X = images[name][1]
    outcomes = [_outcome(mutant, X, kernel) for kernel in KERNELS]
    image = images[name][0]
    payload_rows = "leaf_values" in image.manifest["model"]["arrays"]
    if role not in INDEX_ROLES and not (role == "threshold" and payload_rows):
        assert _same(*outcomes), f"{name}: {role} mutated, kernels disagree: {outcomes}"


@settings(SETTINGS, max_examples=100 * SCALE)
@given(data=st.data())
def test_hostile_node_arrays_under_threads(
    images: dict[str, tuple[Image, np.ndarray]], data: Any
) -> None:
    """The rows split over 3 threads (any batch split, whatever its size) refuse a mutant as
    one thread does, with a typed error raised after the join, or give the same outputs."""
    name, mutant, role = data.draw(_mutant(images))
    X = images[name][1]
    one = _outcome(mutant, X, "compiled")
    assert _kernels.BUILT is not None
    block, pairs = _kernels.BUILT._tune()
    _kernels.BUILT._tune(0, 1)
    modelshelf.set_threads(3)
    try:
        threaded = _outcome(mutant, X, "compiled")
    finally:
        _kernels.BUILT._tune(block, pairs)
        modelshelf.set_threads(1)
    assert _same(one, threaded), f"{name}: {role} mutated, 1 and 3 threads disagree"


@settings(SETTINGS, max_examples=150 * SCALE)
@given(data=st.data())
def test_manifest_mutations_predict(images: dict[str, tuple[Image, np.ndarray]], data: Any) -> None:
    name = data.draw(st.sampled_from(BASES))
    image, X = images[name]
    arrays = list(image.arrays.items())
    manifest = data.draw(mutated_manifest(image.manifest, [n for n, _ in arrays]))
    mutant = _raw.assemble(arrays, manifest)
    if consume(mutant) != "ok":
        return
    for kernel in KERNELS:
        _outcome(mutant, X, kernel)  # only typed errors escape


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_writable_source_changed_after_load_does_not_reach_the_kernel(
    images: dict[str, tuple[Image, np.ndarray]], kernel: str
) -> None:
    """The compiled walk checks every node index once (a model's first large batch or second
    call) and trusts them after: a bytearray its caller overwrites with hostile indices after
    that must not reach it (load copies writable memory), and the outputs stay the same."""
    image, X = images["forest-rf-clf-nan"]
    source = bytearray(image.buffer)
    with using(kernel):
        model = modelshelf.load(source)
    before = [model.predict_proba(X), model.predict_proba(X)]  # checked, then trusted
    child = image.arrays["model/child"]
    start = child.ctypes.data - np.frombuffer(image.buffer, dtype=np.uint8).ctypes.data
    hostile = np.full(child.shape, np.iinfo(child.dtype).max, dtype=child.dtype)
    source[start : start + child.nbytes] = hostile.tobytes()
    np.testing.assert_array_equal(model.predict_proba(X), before[1], strict=True)
    np.testing.assert_array_equal(before[0], before[1], strict=True)
