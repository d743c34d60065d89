"""The compiled dense kernel (modelshelf/_kernels/dense.c) against the numpy runtime, to the
last bit: linear classifiers (both links), regressors and MLPs on random shapes across
``_math.matmul``'s blocks (whole, row blocks, one-row column blocks); the row reductions of its
softmax against numpy's, by hypothesis; and the inputs it leaves to numpy. (The exactness
matrix runs real models through both kernels; tests/adversarial/test_dense_kernels.py feeds
them hostile arrays.)"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelshelf import _kernels
from modelshelf.runtime import _math
from modelshelf.runtime.linear import LinearClassifier, LinearRegressor
from modelshelf.runtime.neural import MLPClassifier, MLPRegressor
from tests.kernels import require, same_bits, using

ROWS = (1, 2, 7, 31, 32, 33, 409, 410, 1000, 5000)


@pytest.fixture(autouse=True)
def _compiled() -> None:
    require("compiled")


def _pair(make: Any) -> tuple[Any, Any]:
    """The same executor on the numpy path and on the compiled kernel."""
    with using("numpy"):
        reference = make()
    with using("compiled"):
        compiled = make()
    return reference, compiled


def _counting(executor: Any) -> list[bool]:
    """Wraps the executor's kernel to record whether each call computed (not None)."""
    kernel, calls = executor.kernel, []

    class Counting:
        def affine(self, X: Any, *args: int) -> Any:
            result = kernel.affine(X, *args)
            calls.append(result is not None)
            return result

        def __call__(self, X: Any, *args: bool) -> Any:
            result = kernel(X, *args)
            calls.append(result is not None)
            return result

    executor.kernel = Counting()
    return calls


def _classifier(rng: np.random.Generator, k: int, n_classes: int, proba: str) -> Any:
    n_scores = 1 if n_classes == 2 else n_classes
    coef = rng.normal(size=(n_scores, k)) * rng.choice([1e-3, 1.0, 30.0])
    intercept = rng.normal(size=n_scores)
    classes = np.arange(n_classes)
    return lambda: LinearClassifier(coef, intercept, classes, proba)


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("proba", ["logistic", "softmax", "ovr", "modified_huber"])
def test_linear_classifier_equals_numpy(rows: int, proba: str) -> None:
    rng = np.random.default_rng([rows, len(proba)])
    for k, n_classes in ((64, 10), (1, 2), (800, 20), (int(rng.integers(1, 801)), 3)):
        n_classes = int(n_classes) if rows < 1000 else min(n_classes, 4)
        reference, compiled = _pair(_classifier(rng, k, n_classes, proba))
        X = rng.normal(size=(rows, k)) * rng.choice([1e-2, 1.0, 1e2])
        calls = _counting(compiled)
        for method in ("decision_function", "predict", "predict_proba", "predict_log_proba"):
            expected, actual = getattr(reference, method)(X), getattr(compiled, method)(X)
            assert same_bits(actual, expected), (method, rows, k, n_classes)
        assert calls and all(calls), "the kernel left every call to numpy"


@pytest.mark.parametrize("rows", ROWS)
def test_linear_regressor_equals_numpy(rows: int) -> None:
    rng = np.random.default_rng(rows)
    k = int(rng.integers(1, 801))
    shapes = [((k,), ()), ((k,), (1,)), ((1, k), (1,)), ((5, k), (5,)), ((3, k), (1,))]
    for coef_shape, intercept_shape in shapes:
        coef, intercept = rng.normal(size=coef_shape), rng.normal(size=intercept_shape)
        reference, compiled = _pair(lambda c=coef, i=intercept: LinearRegressor(c, i))
        X = rng.normal(size=(rows, k))
        calls = _counting(compiled)
        assert same_bits(compiled.predict(X), reference.predict(X)), (coef_shape, rows)
        assert calls == [True]


def _layers(rng: np.random.Generator, widths: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [
        (rng.normal(size=(a, b)) / np.sqrt(a), rng.normal(size=b))
        for a, b in itertools.pairwise(widths)
    ]


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
def test_mlp_equals_numpy(rows: int, activation: str) -> None:
    rng = np.random.default_rng([rows, len(activation)])
    cases: list[tuple[list[int], str, int]] = [
        ([784, 160, 1], "binary", 2),  # ~1 MB: one-row column blocks, row blocks
        ([int(rng.integers(1, 200)), 7, 1, 4], "multiclass", 4),  # a hidden width of 1
        ([12, 9, 5], "multilabel", 5),
    ]
    for widths, target, n_classes in cases:
        layers = _layers(rng, widths)
        X = rng.normal(size=(rows, widths[0])) * 3
        classes = np.arange(n_classes)
        reference, compiled = _pair(
            lambda la=layers, t=target, c=classes: MLPClassifier(la, activation, t, c)
        )
        calls = _counting(compiled)
        for method in ("predict", "predict_proba", "predict_log_proba"):
            expected, actual = getattr(reference, method)(X), getattr(compiled, method)(X)
            assert same_bits(actual, expected), (method, widths, target)
        assert calls and all(calls)
        for output in ("identity", "exp"):
            small = [(c / 4, b / 4) for c, b in layers]  # exp of the outputs stays finite
            reference, compiled = _pair(lambda s=small, o=output: MLPRegressor(s, activation, o))
            assert same_bits(compiled.predict(X), reference.predict(X)), (widths, output)


def _branch(rows: int, k: int, n: int) -> str:
    """Which of _math.matmul's branches ``rows`` x ``k`` times ``k`` x ``n`` takes."""
    if rows * k * n <= _math.SINGLE_THREAD_CELLS:
        return "whole"
    if _math.row_block(rows, k, n):
        return "row blocks"
    columns = _math.SINGLE_THREAD_CELLS // k >= _math.MIN_BLOCK_ROWS
    return "column blocks" if rows == 1 and columns else "left to BLAS"


@pytest.mark.parametrize(
    ("rows", "k", "n", "branch"),
    [
        (1, 64, 10, "whole"),
        (1000, 64, 10, "row blocks"),
        (770, 64, 10, "row blocks"),  # blocks of 384 rows (409 in whole 48s), then 2 rows
        (769, 64, 10, "row blocks"),  # a single row left goes with the block before
        (1000, 8, 683, "left to BLAS"),  # 47 rows per block: fewer than 48
        (1, 700, 401, "column blocks"),
        (1, 300000, 1, "left to BLAS"),  # a column wider than the cells
        (3, 784, 160, "left to BLAS"),
    ],
)
def test_every_block_plan_equals_numpy(rows: int, k: int, n: int, branch: str) -> None:
    assert _branch(rows, k, n) == branch
    rng = np.random.default_rng([rows, k, n])
    coef, intercept = rng.normal(size=(n, k)), rng.normal(size=n)
    reference, compiled = _pair(lambda: LinearRegressor(coef, intercept))
    X = rng.normal(size=(rows, k))
    calls = _counting(compiled)
    assert same_bits(compiled.predict(X), reference.predict(X))
    assert calls == [True]
    if n > 2:
        clf = _pair(lambda: LinearClassifier(coef, intercept, np.arange(n), "logistic"))
        assert same_bits(clf[1].predict_proba(X), clf[0].predict_proba(X))


SPECIAL = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, np.inf, -np.inf, 1.0, -1.0]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.integers(1, 64),
    m=st.integers(1, 400),
    seed=st.integers(0, 2**32 - 1),
    spread=st.sampled_from([0, 3, 30, 300]),
    specials=st.lists(st.sampled_from(SPECIAL), max_size=40),
)
def test_row_reductions_are_numpys(
    rows: int, m: int, seed: int, spread: int, specials: list[float]
) -> None:
    # random signs and magnitudes (10^-spread .. 10^spread, subnormals at 300), then -0.0,
    # subnormals and infinities at random places: the sums are numpy's pairwise sums
    rng = np.random.default_rng(seed)
    X = rng.choice([-1.0, 1.0], size=(rows, m)) * 10.0 ** rng.uniform(-spread, spread, (rows, m))
    for value in specials:
        X[rng.integers(rows), rng.integers(m)] = value
    assert _kernels.BUILT is not None
    with np.errstate(all="ignore"):
        assert same_bits(_kernels.BUILT.dense_rows(X, 0), X.sum(axis=1, keepdims=True)[:, 0])
        # the maxima of finite rows, equal up to the sign of a zero: the softmax subtracts them
        # and exp(+0) == exp(-0) (its shift and output are held to numpy's bits below)
        finite = np.isfinite(X).all(axis=1)
        maxima = _kernels.BUILT.dense_rows(X, 1)[finite]
        assert np.array_equal(maxima, X.max(axis=1)[finite])


@settings(max_examples=100, deadline=None)
@given(
    rows=st.integers(1, 40),
    m=st.integers(2, 20),
    scale=st.sampled_from([1e-3, 1.0, 50.0, 800.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_softmax_equals_numpy(rows: int, m: int, scale: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 100))
    reference, compiled = _pair(_classifier(rng, k, m, "softmax"))
    X = rng.normal(size=(rows, k)) * scale
    X[rng.random(X.shape) < 0.1] = -0.0
    assert same_bits(compiled.predict_proba(X), reference.predict_proba(X))


def test_inputs_it_does_not_take_go_to_numpy() -> None:
    rng = np.random.default_rng(7)
    reference, compiled = _pair(_classifier(rng, 16, 3, "logistic"))
    X = rng.normal(size=(9, 16))
    odd = np.empty(X.size * 8 + 1, np.uint8)[1:].view(np.float64).reshape(X.shape)
    odd[:] = X
    sub = X.view(type("Sub", (np.ndarray,), {}))  # a subclass: numpy's result keeps its type
    for inputs in (X[:0], X.astype(np.float32), X.astype(">f8"), odd, sub):
        assert compiled.kernel.affine(inputs, 0) is None
        assert same_bits(compiled.predict_proba(inputs), reference.predict_proba(inputs))
    # any strides of an aligned float64 array: numpy's loop reads them as numpy does
    for inputs in (np.asfortranarray(X), np.hstack([X, X])[:, ::2], X[::-1], X[:, ::-1]):
        assert compiled.kernel.affine(inputs, 0) is not None
        assert same_bits(compiled.predict_proba(inputs), reference.predict_proba(inputs))


def test_floating_point_errors_go_to_numpy_and_warn_there() -> None:
    rng = np.random.default_rng(3)
    coef = rng.normal(size=(3, 4))
    intercept = np.array([np.inf, -np.inf, 0.0])
    reference, compiled = _pair(lambda: LinearClassifier(coef, intercept, np.arange(3), "softmax"))
    X = rng.normal(size=(2, 4))
    X[0, 0] = np.inf  # inf - inf: numpy warns "invalid value"
    assert compiled.kernel.affine(X, 1) is None
    with pytest.warns(RuntimeWarning):
        actual = compiled.predict_proba(X)
    with np.errstate(all="ignore"):
        assert same_bits(actual, reference.predict_proba(X))


def test_other_dtypes_have_no_dense_kernel() -> None:
    coef32 = np.ones((2, 3), np.float32)
    with using("compiled"):
        assert LinearClassifier(coef32, np.zeros(2), np.arange(2), "ovr").kernel is None
        assert LinearRegressor(np.ones(3, np.int64), np.zeros(())).kernel is None
        mlp = MLPRegressor([(np.ones((3, 2)), np.ones(2, np.float32))], "relu", "identity")
        assert mlp.kernel is None
        assert LinearRegressor(np.ones(3), np.zeros(())).kernel is not None
    with using("numpy"):
        assert LinearRegressor(np.ones(3), np.zeros(())).kernel is None


def test_an_overflow_before_a_relu_goes_to_numpy_and_warns_there() -> None:
    # numpy's maximum loop clears every floating-point flag when it returns: the kernel tests
    # the product's flags before the relu, as numpy warns right after its matmul
    layers = [(np.full((2, 3), 1e300), np.zeros(3)), (np.ones((3, 1)), np.zeros(1))]
    reference, compiled = _pair(lambda: MLPRegressor(layers, "relu", "identity"))
    X = np.full((4, 2), 1e10)
    assert compiled.kernel(X) is None
    with pytest.warns(RuntimeWarning, match="overflow"):
        actual = compiled.predict(X)
    with np.errstate(all="ignore"):
        assert same_bits(actual, reference.predict(X))


def test_an_overflow_in_the_softmax_shift_goes_to_numpy_and_warns_there() -> None:
    # scores 1e308 and -1e308: x - max overflows in the second class; numpy warns
    coef = np.zeros((3, 2))
    intercept = np.array([1e308, -1e308, 0.0])
    reference, compiled = _pair(lambda: LinearClassifier(coef, intercept, np.arange(3), "softmax"))
    X = np.ones((5, 2))
    assert compiled.kernel.affine(X, 1) is None
    with pytest.warns(RuntimeWarning, match="overflow"):
        actual = compiled.predict_proba(X)
    with np.errstate(all="ignore"):
        assert same_bits(actual, reference.predict_proba(X))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_softmax_of_scores_that_are_not_finite_goes_to_numpy(bad: float) -> None:
    # an image's weights may hold NaN or inf (no flag is raised on the way): numpy's maximum
    # propagates NaN as it does, so such rows are numpy's to compute
    rng = np.random.default_rng(5)
    coef = rng.normal(size=(4, 6))
    coef[2, 3] = bad
    reference, compiled = _pair(
        lambda: LinearClassifier(coef, np.zeros(4), np.arange(4), "softmax")
    )
    X = np.abs(rng.normal(size=(50, 6)))
    assert compiled.kernel.affine(X, 1) is None
    with np.errstate(all="ignore"):
        assert same_bits(compiled.predict_proba(X), reference.predict_proba(X))


@pytest.fixture
def threads() -> Iterator[None]:
    yield
    _kernels.set_threads(1)


@pytest.mark.usefixtures("threads")
@pytest.mark.parametrize("n_threads", [2, 3, 8])
@pytest.mark.parametrize("rows", [410, 768, 769, 770, 1000, 5000])
@pytest.mark.parametrize("proba", ["logistic", "softmax", "ovr"])
def test_threads_split_row_blocks_to_one_threads_bits(
    n_threads: int, rows: int, proba: str
) -> None:
    # 64 x 10 weights: blocks of 384 rows (SINGLE_THREAD_CELLS // 640 in 48s), 2 classes: one
    # score (blocks of 4,080 rows)
    rng = np.random.default_rng(rows * 7 + n_threads)
    n_classes = 2 if proba == "logistic" else 10
    reference, compiled = _pair(_classifier(rng, 64, n_classes, proba))
    X = rng.normal(size=(rows, 64)) * 4
    _kernels.set_threads(n_threads)
    kernel = compiled.kernel
    block = _math.row_block(rows, 64, 1 if n_classes == 2 else n_classes)
    blocks = rows // block + (rows % block > 1) if block else 1
    assert kernel._threads(X, n_threads) == min(n_threads, blocks)
    calls = _counting(compiled)
    assert same_bits(compiled.predict_proba(X), reference.predict_proba(X))
    assert same_bits(compiled.decision_function(X), reference.decision_function(X))
    assert all(calls)
    # strided inputs stay on one thread (numpy's loop may copy them), with the same bits
    wide = np.hstack([X, X])[:, ::2]
    assert kernel._threads(wide, n_threads) == 1
    assert same_bits(compiled.predict_proba(wide), reference.predict_proba(wide))


@pytest.mark.usefixtures("threads")
def test_a_floating_point_error_in_another_threads_rows_goes_to_numpy() -> None:
    # flags are per thread: the intercept's add overflows in the last block's rows only, which
    # the second thread computes (scores ~1e308 + 1.7e308); numpy warns "overflow in add"
    rng = np.random.default_rng(11)
    coef, classes = rng.uniform(1, 2, (10, 64)), np.arange(10)
    intercept = np.full(10, 1.7e308)
    reference, compiled = _pair(lambda: LinearClassifier(coef, intercept, classes, "softmax"))
    X = rng.normal(size=(1000, 64))
    X[-1, :] = 1e306
    _kernels.set_threads(2)
    assert compiled.kernel._threads(X, 2) == 2
    assert compiled.kernel.affine(X[:-1], 0, 2) is not None
    assert compiled.kernel.affine(X, 0, 2) is None
    with pytest.warns(RuntimeWarning, match="overflow encountered in add"):
        actual = compiled.decision_function(X)
    with np.errstate(all="ignore"):
        assert same_bits(actual, reference.decision_function(X))


def test_the_thread_count_is_checked_and_capped_in_c() -> None:
    rng = np.random.default_rng(2)
    reference, compiled = _pair(_classifier(rng, 64, 10, "softmax"))
    X = rng.normal(size=(2000, 64))
    for bad in (0, -1):
        with pytest.raises(ValueError, match="threads"):
            compiled.kernel.affine(X, 1, bad)
    with pytest.raises(TypeError):
        compiled.kernel.affine(X, 1, 2.0)
    # whoever passes more than modelshelf.set_threads allows gets at most one per block
    assert compiled.kernel._threads(X, 10**6) == 6  # 5 blocks of 384 rows and 80
    assert same_bits(compiled.kernel.affine(X, 1, 10**6), reference.predict_proba(X))


@pytest.mark.usefixtures("threads")
def test_the_worker_pool_serves_concurrent_callers_and_forked_children() -> None:
    # one call uses the pool at a time (the others run their parts on their own thread), and a
    # forked child starts without the parent's workers: same bits everywhere
    import os
    import threading

    rng = np.random.default_rng(4)
    reference, compiled = _pair(_classifier(rng, 64, 10, "softmax"))
    X = rng.normal(size=(3000, 64))
    expected = reference.predict_proba(X)
    _kernels.set_threads(3)
    assert same_bits(compiled.predict_proba(X), expected)  # the pool starts here
    pid = os.fork()
    if pid == 0:  # the child: no workers until its first threaded call
        os._exit(0 if same_bits(compiled.predict_proba(X), expected) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    results: list[bool] = []

    def call() -> None:
        results.extend(same_bits(compiled.predict_proba(X), expected) for _ in range(20))

    callers = [threading.Thread(target=call) for _ in range(4)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join()
    assert results == [True] * 80


def test_a_binary_mlp_gets_its_pair_of_probabilities_from_the_kernel() -> None:
    # [1 - p, p] written by the kernel (neural.py's np.vstack([1 - p, p]).T, C-ordered): the
    # same values; a pair of a layer with more than one output is refused
    rng = np.random.default_rng(8)
    layers = _layers(rng, [30, 12, 1])
    reference, compiled = _pair(lambda: MLPClassifier(layers, "relu", "binary", np.arange(2)))
    X = rng.normal(size=(300, 30)) * 3
    pair = compiled.kernel(X, True)
    assert pair is not None and pair.shape == (300, 2) and pair.flags.c_contiguous
    assert same_bits(compiled.predict_proba(X), reference.predict_proba(X))
    assert same_bits(compiled.predict_proba(X[:1]), reference.predict_proba(X[:1]))
    wide = _kernels.dense_forward(_layers(rng, [30, 3]), "relu", "expit", 1 << 18, 32)
    assert wide is not None
    with pytest.raises(ValueError, match="one output"):
        wide(X, True)


def _csr(rng: np.random.Generator, rows: int, k: int, density: float, index: Any) -> Any:
    """A random CSRMatrix of ``rows`` x ``k`` (some rows empty), its indices of dtype ``index``."""
    from modelshelf.runtime._sparse import CSRMatrix

    mask = rng.random((rows, k)) < density
    mask[rng.random(rows) < 0.1] = False  # empty rows: their sums are 0.0, then the intercept
    r, c = np.nonzero(mask)
    data = rng.normal(size=len(r)) * rng.choice([1e-2, 1.0, 1e3], size=len(r))
    indptr = np.zeros(rows + 1, dtype=index)
    np.cumsum(np.bincount(r, minlength=rows), out=indptr[1:])
    return CSRMatrix(data, c.astype(index), indptr, (rows, k))


@pytest.mark.parametrize("rows", (1, 2, 33, 1000))
@pytest.mark.parametrize("index", (np.int32, np.int64))
def test_sparse_rows_equal_numpy(rows: int, index: Any) -> None:
    """CSR rows (a one-hot encoding, a text vectorizer's) through the compiled affine map: each
    output the row's products added in index order, as CSRMatrix @ W sums them, to the bit;
    the one-row path (value by value) and the batch path (bincount) alike."""
    rng = np.random.default_rng([rows, np.dtype(index).itemsize])
    for k, n_classes, density in ((40, 2, 0.1), (300, 5, 0.02), (7, 33, 0.5), (1, 2, 1.0)):
        for proba in ("logistic", "softmax", "ovr"):
            reference, compiled = _pair(_classifier(rng, k, n_classes, proba))
            X = _csr(rng, rows, k, density, index)
            calls = _counting_sparse(compiled)
            for method in ("decision_function", "predict", "predict_proba"):
                expected, actual = getattr(reference, method)(X), getattr(compiled, method)(X)
                assert same_bits(actual, expected), (method, rows, k, n_classes, proba)
            n_scores = 1 if n_classes == 2 else n_classes
            assert all(calls) == (n_scores <= 32) and calls, (calls, n_scores)
    for coef_shape, intercept_shape in (((50,), ()), ((3, 50), (3,)), ((1, 50), (1,))):
        coef, intercept = rng.normal(size=coef_shape), rng.normal(size=intercept_shape)
        reference, compiled = _pair(lambda c=coef, i=intercept: LinearRegressor(c, i))
        X = _csr(rng, rows, 50, 0.2, index)
        assert same_bits(compiled.predict(X), reference.predict(X)), coef_shape


def _counting_sparse(executor: Any) -> list[bool]:
    kernel, calls = executor.kernel, []

    class Counting:
        def sparse(self, *args: Any) -> Any:
            result = kernel.sparse(*args)
            calls.append(result is not None)
            return result

    executor.kernel = Counting()
    return calls


def test_sparse_rows_it_does_not_take_go_to_numpy() -> None:
    """Out-of-range indices or offsets, other dtypes, another width: None from the kernel, and
    the numpy path answers (or refuses) as it would alone."""
    from modelshelf.errors import ManifestError
    from modelshelf.runtime._sparse import CSRMatrix

    rng = np.random.default_rng(11)
    reference, compiled = _pair(_classifier(rng, 6, 3, "logistic"))
    kernel = compiled.kernel
    good = _csr(rng, 4, 6, 0.5, np.int64)
    assert kernel.sparse(good.data, good.indices, good.indptr, 1) is not None
    bad_index = good.indices.copy()
    bad_index[0] = 6  # one past W's rows
    assert kernel.sparse(good.data, bad_index, good.indptr, 0) is None
    assert kernel.sparse(good.data, -1 - good.indices, good.indptr, 0) is None
    for indptr in ([1, 2, 3, 4, len(good.data)], [0, 3, 2, 4, len(good.data)], [0, 1, 2, 3, 99]):
        assert kernel.sparse(good.data, good.indices, np.array(indptr), 0) is None
    assert kernel.sparse(good.data.astype(np.float32), good.indices, good.indptr, 0) is None
    assert kernel.sparse(good.data, good.indices.astype(np.int16), good.indptr, 0) is None
    assert kernel.sparse(good.data[::2], good.indices[::2], good.indptr, 0) is None
    assert kernel.sparse(good.data, good.indices, good.indptr[:1], 0) is None  # no rows
    wide = CSRMatrix(good.data, good.indices, good.indptr, (4, 7))  # another width
    with pytest.raises(ManifestError, match="weights take 6 inputs"):  # a step's rows: the image
        compiled.predict_proba(wide)
    with pytest.raises(ValueError, match="link"):
        kernel.sparse(good.data, good.indices, good.indptr, 99)
    data = good.data.copy()
    data[0] = 1e308  # the product overflows: numpy warns, so numpy serves
    X = CSRMatrix(data, good.indices, good.indptr, good.shape)
    coef = np.full((3, 6), 10.0)
    reference, compiled = _pair(lambda: LinearClassifier(coef, np.zeros(3), np.arange(3), "ovr"))
    assert compiled.kernel.sparse(X.data, X.indices, X.indptr, 0) is None
    with np.errstate(all="ignore"):
        assert same_bits(compiled.decision_function(X), reference.decision_function(X))
