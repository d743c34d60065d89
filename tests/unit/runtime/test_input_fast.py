"""The fast input check (runtime/_input.py ``ready_float64``, its compiled twin ``float_input``
in _kernels/input.c, and ``all_finite`` under ``check_finite``) against the full checks: on
any input, either it says "the full checks decide" or it returns exactly what they return, and
it does say "valid" for the common case; a model with the fast check predicts, and refuses
with the same error and message, as the same model without it, under both kernels."""

from __future__ import annotations

import gc
import math
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import modelshelf
from modelshelf import _kernels
from modelshelf.errors import InputError
from modelshelf.runtime import as_float_matrix, check_finite
from modelshelf.runtime._input import ready_float64
from tests.kernels import KERNELS, require, same_bits, using

N_FEATURES = 4
SPECIALS = (math.nan, math.inf, -math.inf, 1.7e308, -1.7e308, -0.0, 5e-324)
LAYOUTS = ("C", "F", "strided", "readonly", "unaligned", "subclass", "1-D", "3-D", "list")
DTYPES = ("<f8", ">f8", "<f4", "<f2", "<i8", "|b1")


class Sub(np.ndarray):
    """An ndarray subclass: the fast checks leave it to the full ones."""


def _unaligned(values: np.ndarray) -> np.ndarray:
    buffer = np.zeros(values.size * values.itemsize + 1, dtype=np.uint8)
    out = buffer[1:].view(values.dtype).reshape(values.shape)
    out[...] = values
    return out


def _laid_out(values: np.ndarray, layout: str) -> Any:
    if layout == "F":
        return np.asfortranarray(values)
    if layout == "strided":
        wide = np.zeros((values.shape[0], 2 * values.shape[1]), dtype=values.dtype)
        wide[:, ::2] = values
        return wide[:, ::2]
    if layout == "readonly":
        values.flags.writeable = False
        return values
    if layout == "unaligned":
        return _unaligned(values)
    if layout == "subclass":
        return values.view(Sub)
    if layout == "1-D":
        return values.reshape(-1)
    if layout == "3-D":
        return values[None]
    if layout == "list":
        return values.tolist()
    return np.ascontiguousarray(values)


@st.composite
def inputs(draw: st.DrawFn, n_features: int = N_FEATURES) -> Any:
    """2-D inputs of about the model's width in every dtype and layout, NaN, infinities and
    extremes anywhere: mostly what the fast path takes, and every way of missing it."""
    rows = draw(st.integers(0, 4))
    cols = draw(st.sampled_from((n_features, n_features, n_features, 0, 1, n_features + 1)))
    finite = st.floats(-1e6, 1e6, allow_nan=False)
    elements = st.one_of(finite, finite, finite, st.sampled_from(SPECIALS))
    values = draw(hnp.arrays(np.float64, (rows, cols), elements=elements))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    with np.errstate(all="ignore"):  # float16 of 1e6 is inf, as a caller's cast would make it
        if dtype.kind in "ib":
            values = np.where(np.isfinite(values), np.clip(values, -1e6, 1e6), 0.0)
        values = values.astype(dtype)
    return _laid_out(values, draw(st.sampled_from(LAYOUTS)))


def _outcome(fn: Callable[[], Any]) -> Any:
    """The result, or the error's type and message."""
    try:
        return fn()
    except InputError as exc:
        return (type(exc), str(exc))


def _checkers() -> list[Callable[[Any, int, bool], np.ndarray | None]]:
    native = _kernels.BUILT
    return [ready_float64] if native is None else [ready_float64, native.float_input]


def _common_case(X: Any, n_features: int | None) -> bool:
    """What every fast check must take: an exact C-ordered native float64 matrix, aligned, of
    the right width, with rows, all finite."""
    return (
        type(X) is np.ndarray
        and X.dtype == np.float64
        and X.dtype.isnative
        and X.ndim == 2
        and X.flags.c_contiguous
        and X.flags.aligned
        and X.shape[0] > 0
        and (n_features is None or X.shape[1] == n_features)
        and bool(np.isfinite(X).all())
    )


def test_the_compiled_check_is_built_where_required() -> None:
    require("compiled")


@settings(max_examples=400, deadline=None)
@given(X=inputs(), width=st.sampled_from((N_FEATURES, None)), allow_nan=st.booleans())
def test_fast_checks_return_what_the_full_checks_return(
    X: Any, width: int | None, allow_nan: bool
) -> None:
    before = X.copy() if isinstance(X, np.ndarray) else None
    full = _outcome(lambda: as_float_matrix(X, width, allow_nan=allow_nan))
    for check in _checkers():
        fast = check(X, -1 if width is None else width, allow_nan)
        if fast is None:
            assert not _common_case(X, width), f"{check} sent the common case to the full checks"
            continue
        assert isinstance(full, np.ndarray), f"{check} took an input the full checks refuse: {full}"
        assert type(fast) is np.ndarray and not fast.flags.writeable
        assert fast.shape == full.shape and fast.strides == full.strides
        owner = X if X.base is None else X.base  # numpy makes a view's base the memory's owner
        assert same_bits(fast, full) and (fast is X or fast.base is owner)
    if before is not None:
        assert same_bits(X, before)  # nobody wrote into the caller's array


@settings(max_examples=300, deadline=None)
@given(
    values=hnp.arrays(
        st.sampled_from((np.float64, np.float32)),
        hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5),
        elements=st.one_of(st.floats(-10, 10, width=32), st.sampled_from(SPECIALS[:3])),
    ),
    layout=st.sampled_from(("C", "F", "strided")),
    allow_nan=st.booleans(),
)
def test_all_finite_agrees_with_the_counts(
    values: np.ndarray, layout: str, allow_nan: bool
) -> None:
    arr = values if values.ndim != 2 or layout == "C" else _laid_out(values, layout)
    n_inf, n_nan = int(np.isinf(arr).sum()), int(np.isnan(arr).sum())
    refused = n_inf > 0 or (n_nan > 0 and not allow_nan)
    outcome = _outcome(lambda: check_finite(arr, allow_nan=allow_nan))
    if refused:
        assert isinstance(outcome, tuple), "check_finite let a non-finite value through"
        count = n_inf if n_inf else n_nan
        assert f"in {count} cell(s)" in outcome[1]
    else:
        assert outcome is None
    native = _kernels.BUILT
    if native is not None:
        contiguous = arr.flags.c_contiguous or arr.flags.f_contiguous
        assert native.all_finite(arr, allow_nan) is (contiguous and not refused)


def test_the_compiled_checks_take_their_arguments_or_say_what_they_take() -> None:
    require("compiled")
    native = _kernels.BUILT
    assert native is not None
    X = np.zeros((2, 3))
    with pytest.raises(TypeError, match="takes 3 or 4 arguments, got 2"):
        native.float_input(X, 3)
    with pytest.raises(TypeError, match="takes 3 or 4 arguments, got 5"):
        native.float_input(X, 3, False, True, 1)
    with pytest.raises(TypeError, match="takes 2 arguments, got 1"):
        native.all_finite(X)
    with pytest.raises(TypeError):
        native.float_input(X, "3", False)
    assert native.float_input(X, 3, False).base is X
    assert native.float_input(X, 2, False) is None
    assert native.float_input(X, 2**70, False) is None  # a hostile manifest's width
    assert native.all_finite([1.0, math.inf], False) is False  # not an array: count and decide


def test_within_float32_finds_what_float32_makes_infinite_in_any_cell() -> None:
    """``within_float32`` (scikit-learn's trees): a finite value of 2**128 - 2**103 or more in
    magnitude, which float32 rounds to infinity, anywhere, sends X to the Python checks; the
    largest below it, NaN (with ``allow_nan``) and the numpy twin agree."""
    require("compiled")
    native = _kernels.BUILT
    assert native is not None
    beyond = 2.0**128 - 2.0**103
    with np.errstate(over="ignore"):
        assert np.isinf(np.float32(beyond)) and np.isfinite(np.float32(np.nextafter(beyond, 0)))
    for n in (1, 7, 8, 9, 33):
        for pos in range(n):
            for value, refused in (
                (beyond, True),
                (-1e308, True),
                (np.nextafter(beyond, 0), False),
            ):
                X = np.ones((1, n))
                X[0, pos] = value
                for ready in (native.float_input, ready_float64):
                    got = ready(X, n, False, True)
                    assert (got is None) is refused, (n, pos, value, ready)
                assert native.float_input(X, n, False) is not None  # not asked: answered
    X = np.array([[np.nan, 1.0]])
    assert native.float_input(X, 2, True, True) is not None
    assert ready_float64(X, 2, True, True) is None  # the numpy twin sends NaN to the checks


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_scan_finds_a_value_in_every_lane_and_the_tail(dtype: Any) -> None:
    """The compiled scan reads 8 cells at a time, then the rest one by one: any cell counts."""
    require("compiled")
    native = _kernels.BUILT
    assert native is not None
    info = np.finfo(dtype)
    for n in range(1, 34):
        for pos in range(n):
            arr = np.zeros(n, dtype=dtype)
            for value in (math.nan, math.inf, -math.inf):
                arr[pos] = value
                assert native.all_finite(arr, False) is False, (n, pos, value)
                assert native.all_finite(arr, True) is math.isnan(value), (n, pos, value)
            for value in (info.max, -info.max, info.smallest_subnormal, -0.0):
                arr[pos] = value
                assert native.all_finite(arr, False) is True, (n, pos, value)


def test_large_inputs_are_scanned_whole() -> None:
    """Above the size where the scan lets other threads run, a NaN in the last cell is found."""
    X = np.zeros((3000, 40))
    X[-1, -1] = math.nan
    for check in _checkers():
        assert check(X, 40, False) is None
        assert check(X, 40, True) is not None or check is ready_float64
    X[-1, -1] = -math.inf
    for check in _checkers():
        assert check(X, 40, True) is None


# A model with and without the fast check, for each kind of root: a classifier refusing NaN,
# one accepting it, a pipeline that lets NaN in and then refuses it, a float32-keeping scaler.
def _fitted() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, N_FEATURES))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    X_nan = X.copy()
    X_nan[::7, 2] = math.nan
    return {
        "logreg": LogisticRegression().fit(X, y),
        "hgb": HistGradientBoostingClassifier(max_iter=3).fit(X_nan, y),
        "scaled": make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y),
        "scaler": StandardScaler().fit(X),
    }


class Images(dict[str, bytes]):
    def __repr__(self) -> str:  # hypothesis prints its arguments: names, not bytes
        return f"<images {sorted(self)}>"


@pytest.fixture(scope="module")
def images() -> Images:
    return Images({name: modelshelf.compile(est) for name, est in _fitted().items()})


def _method(name: str) -> str:
    return "transform" if name == "scaler" else "predict_proba"


@pytest.mark.parametrize("kernel", KERNELS)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(X=inputs(), name=st.sampled_from(("logreg", "hgb", "scaled", "scaler")))
def test_models_answer_and_refuse_as_without_the_fast_check(
    images: dict[str, bytes], kernel: str, X: Any, name: str
) -> None:
    with using(kernel):
        fast = modelshelf.load(images[name])
        full = modelshelf.load(images[name])
    full._ready = None  # before the first call binds the method: the full checks only
    method = _method(name)
    with np.errstate(all="ignore"):  # extremes overflow in the models, with either check
        got = _outcome(lambda: getattr(fast, method)(X))
        expected = _outcome(lambda: getattr(full, method)(X))
    if isinstance(expected, tuple):
        assert got == expected
    else:
        assert same_bits(got, expected)


@pytest.mark.parametrize("kernel", KERNELS)
def test_the_check_is_chosen_with_the_kernels_at_load(
    images: dict[str, bytes], kernel: str
) -> None:
    with using(kernel):
        model = modelshelf.load(images["logreg"])
    native = _kernels.BUILT
    expected = ready_float64 if kernel == "numpy" or native is None else native.float_input
    assert model._ready is expected


def test_methods_are_bound_once_and_absent_ones_stay_absent(images: dict[str, bytes]) -> None:
    model = modelshelf.load(images["logreg"])
    predict = model.predict_proba
    assert model.predict_proba is predict
    assert predict.__name__ == "predict_proba" and "Class probabilities" in (predict.__doc__ or "")
    scaler = modelshelf.load(images["scaler"])
    assert not hasattr(scaler, "predict") and not hasattr(scaler, "predict")
    assert type(model).predict_proba.__doc__ == predict.__doc__


class Proxy:
    """A DataFrame without ``to_numpy``: read through ``np.asarray`` and column by column, as
    every DataFrame was before ``to_numpy`` served the numeric ones."""

    def __init__(self, frame: Any) -> None:
        self._frame = frame
        self.columns, self.dtypes, self.iloc = frame.columns, frame.dtypes, frame.iloc

    def items(self) -> Any:
        return self._frame.items()

    def __len__(self) -> int:
        return len(self._frame)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self._frame.__array__(dtype, copy)


COLUMN_DTYPES = ("float64", "float32", "int64", "bool", "Int64", "Float64", "boolean", "object")


@st.composite
def frames(draw: st.DrawFn) -> Any:
    pd = pytest.importorskip("pandas")
    rows = draw(st.integers(1, 3))
    columns = {}
    for j in range(draw(st.integers(1, 4))):
        dtype = draw(st.sampled_from(COLUMN_DTYPES))
        values = draw(
            st.lists(st.sampled_from((0.0, 1.0, -2.5, math.nan)), min_size=rows, max_size=rows)
        )
        if dtype in ("bool", "boolean"):
            values = [v if math.isnan(v) else float(v != 0) for v in values]
        if dtype in ("int64", "bool"):
            values = [0.0 if math.isnan(v) else v for v in values]
        if dtype in ("Int64", "boolean"):
            values = [None if math.isnan(v) else int(v) for v in values]
        if dtype == "object":
            values = [draw(st.sampled_from(("a", 1.5, None))) for _ in values]
        columns[draw(st.sampled_from((f"c{j}", j)))] = pd.Series(values).astype(dtype)
    return pd.DataFrame(columns)


@settings(max_examples=200, deadline=None)
@given(frame=frames(), allow_nan=st.booleans())
def test_dataframes_read_as_through_numpy(frame: Any, allow_nan: bool) -> None:
    width = frame.shape[1]
    with np.errstate(all="ignore"):
        got = _outcome(lambda: as_float_matrix(frame, width, allow_nan=allow_nan))
        expected = _outcome(lambda: as_float_matrix(Proxy(frame), width, allow_nan=allow_nan))
    if isinstance(expected, tuple):
        assert got == expected
    else:
        assert same_bits(got, expected)


@pytest.mark.parametrize("name", ["logreg", "scaled", "scaler"])
def test_a_model_whose_methods_were_used_is_freed_with_its_last_reference(
    images: dict[str, bytes], name: str
) -> None:
    """The methods stored on a model refer to nothing that refers back to it: dropping it frees
    it (and ends a daemon lease on its image) at once, not when the cycle collector runs."""
    model = modelshelf.load(images[name])
    getattr(model, _method(name))(np.zeros((1, N_FEATURES)))
    gone = weakref.ref(model)
    gc.disable()
    try:
        del model
        assert gone() is None, gc.get_referrers(gone())
    finally:
        gc.enable()
