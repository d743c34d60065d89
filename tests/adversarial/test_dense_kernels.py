"""Linear-model and MLP images with hostile shapes and values, and hostile inputs, through both
kernels (numpy and the compiled dense kernel, modelshelf/_kernels/dense.c).

Loading checks the shapes the spec relates (coef against intercept and classes, layers that
chain); the kernel checks them again when it is made and checks every input and output array
at each call. Here real images get arrays of other shapes, dtypes and layouts, and edge values
(NaN, infinities, 1e300, -0.0) in their weights; each must load and predict on both kernels
with the same outcome, to the bit (NaN payloads included: the kernel runs numpy's own loops),
or fail with ModelshelfError, never a crash or a bad read (the sanitizer build,
scripts/sanitize.sh, runs this module).
Inputs of the wrong width, no rows, another dtype, byte order or layout take the same path.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelshelf
from modelshelf.errors import ModelshelfError
from modelshelf.image import Image
from tests.kernels import KERNELS, require, same_bits, using

from . import _raw
from ._fuzz import SCALE, SETTINGS

METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function")
EDGES = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e300, -1e300, 5e-324, 1.0]


def _fit() -> dict[str, tuple[Image, np.ndarray]]:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    X, y = load_digits(return_X_y=True)
    X, y = X[:200], y[:200]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = {
            "logreg": LogisticRegression(max_iter=20).fit(X, y),
            "logreg-binary": LogisticRegression(max_iter=20).fit(X, y % 2),
            "linreg": LinearRegression().fit(X, y),
            "mlp-relu": MLPClassifier(hidden_layer_sizes=(12, 6), max_iter=20).fit(X, y),
            "mlp-tanh-reg": MLPRegressor(
                hidden_layer_sizes=(7,), activation="tanh", max_iter=20
            ).fit(X, y),
        }
    return {name: (Image.open(modelshelf.compile(est)), X[:20]) for name, est in models.items()}


@pytest.fixture(scope="module")
def images() -> dict[str, tuple[Image, np.ndarray]]:
    for kernel in KERNELS:
        require(kernel)
    return _fit()


def _outcome(image: bytes, X: Any, kernel: str) -> list[Any] | str:
    """Every method's output on 1, 3 and 16 rows, or the typed error that stopped it."""
    try:
        with using(kernel):
            model = modelshelf.load(image)
        outputs = []
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            for method in METHODS:
                if hasattr(model, method):
                    outputs += [getattr(model, method)(X[:n]) for n in (1, 3, 16)]
        return outputs
    except ModelshelfError as exc:
        return type(exc).__name__


def _agree(image: bytes, X: Any) -> None:
    expected, actual = _outcome(image, X, "numpy"), _outcome(image, X, "compiled")
    if isinstance(expected, str) or isinstance(actual, str):
        assert actual == expected
    else:
        assert same_bits(actual, expected)


def _ref(image: Image, role: str) -> str:
    """The array name of ``role``: as it is, or as its transpose ("<role>.T": scikit-learn >=
    1.9 keeps LogisticRegression's coef_ column-major, and the image keeps its order)."""
    refs = image.manifest["model"]["arrays"]
    return str(refs[role] if role in refs else refs[f"{role}.T"])


def _replaced(image: Image, **arrays: np.ndarray) -> bytes:
    table = {n: np.array(a) for n, a in image.arrays.items()}
    for role, value in arrays.items():
        table[_ref(image, role)] = value
    return _raw.assemble(list(table.items()), image.manifest)


@pytest.mark.parametrize(
    ("name", "role", "shape"),
    [
        ("logreg", "coef", (10, 0)),
        ("logreg", "coef", (0, 64)),
        ("logreg", "coef", (9, 64)),
        ("logreg", "coef", (10, 65)),
        ("logreg", "intercept", (0,)),
        ("logreg", "intercept", (11,)),
        ("logreg-binary", "coef", (1, 1)),
        ("linreg", "coef", (0,)),
        ("linreg", "coef", (3, 64)),
        ("linreg", "intercept", (2,)),
        ("mlp-relu", "coef_0", (64, 0)),
        ("mlp-relu", "coef_1", (13, 6)),
        ("mlp-relu", "coef_2", (6, 11)),
        ("mlp-relu", "intercept_1", (5,)),
        ("mlp-tanh-reg", "coef_0", (63, 7)),
    ],
)
def test_hostile_shapes(
    images: dict[str, tuple[Image, np.ndarray]], name: str, role: str, shape: tuple[int, ...]
) -> None:
    image, X = images[name]
    _agree(_replaced(image, **{role: np.ones(shape)}), X)


@pytest.mark.parametrize("dtype", ["float32", "int64", ">f8", "float16"])
@pytest.mark.parametrize(("name", "role"), [("logreg", "coef"), ("mlp-relu", "coef_1")])
def test_other_dtypes_stay_exact(
    images: dict[str, tuple[Image, np.ndarray]], name: str, role: str, dtype: str
) -> None:
    image, X = images[name]
    original = image.arrays[_ref(image, role)]
    _agree(_replaced(image, **{role: np.asarray(original).astype(dtype)}), X)


def test_fortran_ordered_weights(images: dict[str, tuple[Image, np.ndarray]]) -> None:
    # an image stores C order; a transposed array of the transposed shape is another matrix,
    # which both kernels must read alike
    image, X = images["logreg"]
    coef = np.asarray(image.arrays[_ref(image, "coef")])
    _agree(_replaced(image, coef=np.ascontiguousarray(coef[::-1, ::-1])), X)


@settings(SETTINGS, max_examples=60 * SCALE)
@given(data=st.data())
def test_edge_values_in_weights(images: dict[str, tuple[Image, np.ndarray]], data: Any) -> None:
    name = data.draw(st.sampled_from(sorted(images)))
    image, X = images[name]
    refs = image.manifest["model"]["arrays"]
    role = data.draw(st.sampled_from(sorted(r for r in refs if r.startswith(("coef", "inter")))))
    values = np.array(image.arrays[refs[role]], dtype=np.float64).reshape(-1)
    if len(values):
        for _ in range(data.draw(st.integers(1, 6))):
            values[data.draw(st.integers(0, len(values) - 1))] = data.draw(st.sampled_from(EDGES))
    original = image.arrays[refs[role]]
    _agree(_replaced(image, **{role: values.reshape(original.shape)}), X)


@pytest.mark.parametrize("name", ["logreg", "linreg", "mlp-relu"])
def test_hostile_inputs(images: dict[str, tuple[Image, np.ndarray]], name: str) -> None:
    image, X = images[name]
    wide = np.hstack([X, X])
    strided = np.asarray(wide[:, ::2])  # a view: not C-contiguous
    odd = np.empty(X.size * 8 + 1, np.uint8)[1:].view(np.float64).reshape(X.shape)  # unaligned
    odd[:] = X
    huge = X * 1e300
    huge[0, :3] = [np.inf, -np.inf, -0.0]
    resealed = _replaced(image)
    for inputs in (
        X,
        X[:0],
        X[:, :10],
        wide,
        strided,
        np.asfortranarray(X),
        X.astype(np.float32),
        X.astype(">f8"),
        X.astype(np.int64),
        odd,
        huge,
        -X,
    ):
        _agree(resealed, inputs)


@settings(SETTINGS, max_examples=150 * SCALE)
@given(data=st.data())
def test_hostile_sparse_rows(data: Any) -> None:
    """Arbitrary index and offset arrays (out of range, negative, decreasing, huge; int32 or
    int64) and edge values into the compiled affine map of CSR rows: None, or the sums a plain
    in-order reference gives, to the bit; never a crash or a read outside the arrays."""
    require("compiled")
    k = data.draw(st.integers(1, 6), label="k")
    n = data.draw(st.integers(1, 3), label="n")
    with using("compiled"):
        kernel = modelshelf._kernels.dense(
            np.ones((k, n)) * 0.5, np.arange(n, dtype=float), 1 << 16, 32
        )
    assert kernel is not None
    itype = data.draw(st.sampled_from([np.int32, np.int64]), label="itype")
    info = np.iinfo(itype)
    ints = st.one_of(st.integers(-3, k + 3), st.sampled_from([int(info.min), int(info.max)]))
    nnz = data.draw(st.integers(0, 8), label="nnz")
    indices = np.array(data.draw(st.lists(ints, min_size=nnz, max_size=nnz)), dtype=itype)
    rows = data.draw(st.integers(0, 4), label="rows")
    indptr = np.array(data.draw(st.lists(ints, min_size=rows + 1, max_size=rows + 1)), itype)
    values = np.array(
        data.draw(st.lists(st.sampled_from(EDGES), min_size=nnz, max_size=nnz)), dtype=float
    )
    with np.errstate(all="ignore"):
        out = kernel.sparse(values, indices, indptr, 0)
    valid = (
        rows >= 1
        and indptr[0] == 0
        and indptr[-1] == nnz
        and bool(np.all(np.diff(indptr.astype(np.int64)) >= 0))
        and bool(np.all((indices >= 0) & (indices < k)))
    )
    if not valid:
        assert out is None
        return
    if out is None:  # a floating-point flag: numpy serves
        return
    expected = np.zeros((rows, n))
    for r in range(rows):
        for j in range(n):
            acc = 0.0
            for e in range(int(indptr[r]), int(indptr[r + 1])):
                acc = acc + float(values[e]) * 0.5
            expected[r, j] = acc + float(j)
    assert same_bits(out, expected)
