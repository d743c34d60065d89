"""Preprocessing executors: the edges the exactness matrix cannot reach.

Exactness over datasets lives in tests/cases/preprocessing.py; these tests cover which inputs
with NaN or infinity each transformer accepts (as scikit-learn does), unknown categories
(errors and warnings), zero-copy loading, untouched inputs, hand-made manifests and the
options images cannot represent.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import (
    MaxAbsScaler,
    MinMaxScaler,
    Normalizer,
    OneHotEncoder,
    RobustScaler,
    StandardScaler,
)

import modelshelf
from modelshelf.errors import (
    ManifestError,
    NonFiniteInputError,
    UnknownCategoryError,
    UnsupportedModelError,
)
from modelshelf.image import ImageBuilder
from tests.cases._case import dataset
from tests.cases.preprocessing import categories


def _fitted(make: Callable[[], Any], X: np.ndarray) -> Any:
    est = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X)


def _dense(a: Any) -> np.ndarray:
    return np.asarray(a.toarray() if hasattr(a, "toarray") else a)


def _same(actual: Any, expected: Any) -> None:
    """Equal values in the same dtype, sparse exactly where scikit-learn's output is."""
    assert hasattr(actual, "toarray") == hasattr(expected, "toarray"), (actual, expected)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    np.testing.assert_array_equal(_dense(actual), _dense(expected))


def _sk_transform(est: Any, X: np.ndarray) -> np.ndarray | None:
    """scikit-learn's output, or None if it rejects X."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _dense(est.transform(X))
    except ValueError:
        return None


CLEAN = dataset("random_reg")[0]
CATS = categories(nan=True)()

TRANSFORMERS: list[tuple[str, Callable[[], Any], np.ndarray]] = [
    ("standard", StandardScaler, CLEAN),
    ("minmax-clip", lambda: MinMaxScaler(clip=True), CLEAN),
    ("maxabs", MaxAbsScaler, CLEAN),
    ("robust", RobustScaler, CLEAN),
    ("normalizer", Normalizer, CLEAN),
    ("imputer-nan", SimpleImputer, CLEAN),
    ("imputer-nan-indicator", lambda: SimpleImputer(add_indicator=True), dataset("random_nan")[0]),
    ("imputer-zero", lambda: SimpleImputer(missing_values=0.0), np.round(CLEAN)),
    ("pca", lambda: PCA(3), CLEAN),
    ("onehot-nan-seen", lambda: OneHotEncoder(handle_unknown="ignore"), CATS[0]),
]


@pytest.mark.parametrize(("name", "make", "X"), TRANSFORMERS, ids=[t[0] for t in TRANSFORMERS])
def test_nan_passes_or_raises_as_in_scikit_learn(
    name: str, make: Callable[[], Any], X: np.ndarray
) -> None:
    est = _fitted(make, X)
    model = modelshelf.load(modelshelf.compile(est))
    X_nan = X[:20].copy()
    X_nan[3, 1] = np.nan
    X_nan[7, 0] = np.nan
    expected = _sk_transform(est, X_nan)
    if expected is None:
        with pytest.raises(NonFiniteInputError, match="NaN"):
            model.transform(X_nan)
    else:
        np.testing.assert_array_equal(_dense(model.transform(X_nan)), expected)  # NaN included
    X_inf = X[:20].copy()
    X_inf[2, 1] = np.inf
    assert _sk_transform(est, X_inf) is None
    with pytest.raises(NonFiniteInputError, match="infinity"):
        model.transform(X_inf)


def test_nan_acceptance_is_what_scikit_learn_does() -> None:
    # The parametrized test above must see both outcomes, or it would prove little.
    accepted = {
        name
        for name, make, X in TRANSFORMERS
        if _sk_transform(_fitted(make, X), np.where(np.eye(len(X), X.shape[1]), np.nan, X))
        is not None
    }
    assert accepted == {
        "standard",
        "minmax-clip",
        "maxabs",
        "robust",
        "imputer-nan",
        "imputer-nan-indicator",
        "onehot-nan-seen",
    }


@pytest.mark.parametrize(("name", "make", "X"), TRANSFORMERS, ids=[t[0] for t in TRANSFORMERS])
def test_kernels_leave_input_alone_and_views_are_zero_copy(
    name: str, make: Callable[[], Any], X: np.ndarray
) -> None:
    est = _fitted(make, X)
    model = modelshelf.load(modelshelf.compile(est))
    X_in = np.array(X[:30])
    before = X_in.copy()
    out = model.transform(X_in)
    np.testing.assert_array_equal(X_in, before)
    assert not np.shares_memory(out, X_in)
    # Every array the executor holds is one of the image's read-only views, not a copy.
    stored = [a for a in model.image.arrays.values() if a.size]
    held = [v for v in vars(model._executor).values() if isinstance(v, np.ndarray) and v.size]
    for arr in held:  # or the transpose of one (a column-major array, stored as "<role>.T")
        assert any(
            arr is view or (arr.base is view and arr.T.flags.c_contiguous) for view in stored
        ), name
        assert not arr.flags.writeable


def test_unknown_category_raises_naming_column_and_value() -> None:
    X, _, _ = categories()()
    est = _fitted(OneHotEncoder, X)
    model = modelshelf.load(modelshelf.compile(est))
    X_bad = X[:10].copy()
    X_bad[4, 2] = 7.0
    with pytest.raises(ValueError, match="unknown categories"):
        est.transform(X_bad)
    with pytest.raises(UnknownCategoryError, match=r"column 2: value 7\.0 is not one of the 4"):
        model.transform(X_bad)
    X_bad[4, 2] = np.nan  # NaN is a category; this encoder never saw it
    with pytest.raises(UnknownCategoryError, match="column 2: value nan"):
        model.transform(X_bad)


def test_several_unknown_values_are_listed() -> None:
    X, _, _ = categories()()
    model = modelshelf.load(modelshelf.compile(_fitted(OneHotEncoder, X)))
    X_bad = X[:10].copy()
    X_bad[:3, 0] = [40.0, -3.0, 40.0]
    with pytest.raises(UnknownCategoryError, match=r"value -3\.0 .*\[-3\.0, 40\.0\]"):
        model.transform(X_bad)


@pytest.mark.parametrize(
    "make",
    [
        lambda: OneHotEncoder(drop="first", handle_unknown="ignore"),
        lambda: OneHotEncoder(drop="first", max_categories=3, handle_unknown="infrequent_if_exist"),
        lambda: OneHotEncoder(handle_unknown="warn", min_frequency=20),
        lambda: OneHotEncoder(handle_unknown="warn"),
    ],
    ids=["drop-ignore", "drop-infrequent", "warn-infrequent", "warn-zeros"],
)
def test_unknown_categories_warn_as_in_scikit_learn(make: Callable[[], Any]) -> None:
    X, _, X_test = categories(unknown=True, nan=True)()
    est = _fitted(make, X)
    model = modelshelf.load(modelshelf.compile(est))
    with pytest.warns(UserWarning, match="Found unknown categories") as sk_record:
        expected = est.transform(X_test)
    with pytest.warns(UserWarning, match="Found unknown categories") as record:
        actual = model.transform(X_test)
    _same(actual, expected)
    assert str(record[0].message) == str(sk_record[0].message)
    # Without unknown values, no warning.
    known = X[:20]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _same(model.transform(known), est.transform(known))


def test_string_categories_compile_from_object_arrays() -> None:
    X = np.array([["a", 1], ["b", 2], ["a", 3]], dtype=object)
    est = OneHotEncoder().fit(X)
    model = modelshelf.load(modelshelf.compile(est))
    _same(model.transform(X), est.transform(X))


def test_mixed_type_categories_are_refused_naming_the_way_out() -> None:
    X = np.array([["a", 1], [2.5, 2], ["a", 3]], dtype=object)
    est = OneHotEncoder().fit(X.astype(str))
    est.categories_[0] = np.array(["a", 2.5], dtype=object)  # scikit-learn refuses it at fit
    with pytest.raises(UnsupportedModelError, match=r"column 0 .* strings only") as info:
        modelshelf.compile(est)
    assert str(info.value).startswith("OneHotEncoder: ")


def test_object_numeric_categories_compile() -> None:
    X = np.array([[1, 2.5], [3, 2.5], [1, -1.0]], dtype=object)
    est = OneHotEncoder().fit(X)
    model = modelshelf.load(modelshelf.compile(est))
    X_num = X.astype(np.float64)
    _same(model.transform(X_num), est.transform(X))


@pytest.mark.parametrize(
    ("make", "X", "match"),
    [
        (
            lambda: SimpleImputer(missing_values=None, strategy="most_frequent"),
            np.array([[1.0], [None], [1.0]], dtype=object),
            "missing_values=None on strings cannot be compiled; mark them with NaN",
        ),
        (
            lambda: SimpleImputer(missing_values=np.inf),
            np.array([[1.0], [2.0]]),
            "missing_values=inf",
        ),
    ],
    ids=["none-marker", "inf-marker"],
)
def test_imputer_options_images_cannot_hold(
    make: Callable[[], Any], X: np.ndarray, match: str
) -> None:
    try:
        est = _fitted(make, X)
    except ValueError:
        pytest.fail("scikit-learn itself refused the fit; the case proves nothing")
    with pytest.raises(UnsupportedModelError, match=match):
        modelshelf.compile(est)


def test_imputer_on_ints_truncates_fill_values_like_scikit_learn() -> None:
    X = np.array([[0, 1], [3, 1], [4, 2], [4, 0]])
    est = SimpleImputer(missing_values=0, strategy="constant", fill_value=np.int64(-2)).fit(X)
    model = modelshelf.load(modelshelf.compile(est))
    np.testing.assert_array_equal(model.transform(X), est.transform(X))


def test_pca_without_invertible_covariance_has_no_score_samples() -> None:
    # A full-rank PCA of data with a constant column has a singular covariance: scikit-learn's
    # score_samples raises, and the image leaves score_samples out (transform still works).
    X = np.column_stack([CLEAN[:, :3], np.ones(len(CLEAN))])
    est = PCA().fit(X)
    with pytest.raises(np.linalg.LinAlgError):
        est.score_samples(X)
    model = modelshelf.load(modelshelf.compile(est))
    assert not hasattr(model, "score_samples")
    np.testing.assert_array_equal(model.transform(X), est.transform(X))


def test_pca_with_ill_conditioned_covariance_compiles_quietly() -> None:
    # scikit-learn warns (LinAlgWarning) when it inverts; compile must not fail under -W error.
    X = np.column_stack([CLEAN[:, :3], CLEAN[:, :1] * 2])
    est = PCA().fit(X)
    model = modelshelf.load(modelshelf.compile(est))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = est.score_samples(X)
    np.testing.assert_array_equal(model.score_samples(X), expected)


def _image(spec: dict[str, Any], arrays: dict[str, np.ndarray], n_features: int = 2) -> bytes:
    builder = ImageBuilder()
    for name, value in arrays.items():
        builder.add(name, value)
    manifest = {
        "model": spec,
        "input": {"type": "numeric", "n_features": n_features, "feature_names": None},
        "metadata": {"name": "hand-made"},
    }
    return builder.build(manifest)


def _spec(kind: str, arrays: dict[str, str], **params: Any) -> dict[str, Any]:
    return {"kind": kind, "arrays": arrays, "params": params}


ONEHOT = {
    "categories": np.array([0.0, 1.0, 5.0]),
    "offsets": np.array([0, 2, 3]),
    "codes": np.array([0, 1, 2]),
    "unknown": np.array([-1, -1]),
}
ONEHOT_REFS = {k: k for k in ONEHOT}


def _onehot(**params: Any) -> dict[str, Any]:
    return _spec(
        "one_hot_encoder", ONEHOT_REFS, **{"n_out": 3, "handle_unknown": "error", **params}
    )


@pytest.mark.parametrize(
    ("spec", "arrays", "match"),
    [
        (_spec("scaler", {"scale": "s"}, n_features=2), {"s": np.ones(3)}, "must hold 2 values"),
        (_spec("scaler", {}, n_features=2, clip=[1, 0]), {}, "low <= high"),
        (_spec("scaler", {}, n_features=2, clip=[0, True]), {}, "clip must be"),
        (_spec("normalizer", {}, n_features=2, norm="l3"), {}, "not one of"),
        (
            _spec("simple_imputer", {"fill": "f"}, n_features=2, missing_values="NaN"),
            {"f": np.zeros(2)},
            "missing_values",
        ),
        (
            _spec("simple_imputer", {"fill": "f", "keep": "k"}, n_features=2, missing_values=None),
            {"f": np.zeros(1), "k": np.array([2])},
            "keep indices must be < 2",
        ),
        (
            _spec("simple_imputer", {"fill": "f", "keep": "k"}, n_features=2, missing_values=None),
            {"f": np.zeros(1), "k": np.array([0.5])},
            "expected kind 'iu'",
        ),
        (
            _spec("pca", {"components": "c", "offset": "o", "precision": "p"}),
            {"c": np.ones((1, 2)), "o": np.zeros(1), "p": np.eye(3)},
            "precision must be 2 x 2",
        ),
        (
            _spec("pca", {"components": "c", "offset": "o"}),
            {"c": np.ones((1, 2)), "o": np.zeros(2)},
            "must hold 1 values",
        ),
        (_onehot(n_out=2), ONEHOT, r"codes must lie in \[-1, n_out=2\)"),
        (_onehot(), {**ONEHOT, "offsets": np.array([0, 3, 3])}, "every column having one"),
        (_onehot(), {**ONEHOT, "offsets": np.array([1, 2, 3])}, "offsets must rise from 0"),
        (_onehot(), {**ONEHOT, "codes": np.array([0.0, 1.0, 2.0])}, "expected kind 'i'"),
        (_onehot(), {**ONEHOT, "unknown": np.array([-1, -1, -1])}, "must hold 2 values"),
        (_onehot(), {**ONEHOT, "unknown": np.array([-2, -1])}, "unknown must lie"),
        (_onehot(handle_unknown="raise"), ONEHOT, "not one of"),
    ],
)
def test_malformed_manifests_are_rejected(
    spec: dict[str, Any], arrays: dict[str, np.ndarray], match: str
) -> None:
    with pytest.raises(ManifestError, match=match):
        modelshelf.load(_image(spec, arrays))


def test_hand_made_one_hot_encoder() -> None:
    # Column 0 categories {0, 1}, column 1 {5}; unknown in column 1 sets the column-0 code 1.
    arrays = {**ONEHOT, "unknown": np.array([-1, 1])}
    model = modelshelf.load(_image(_onehot(handle_unknown="ignore"), arrays))
    out = model.transform(np.array([[1.0, 5.0], [0.0, 6.0], [2.0, 5.0]]))
    np.testing.assert_array_equal(out, [[0, 1, 1], [1, 1, 0], [0, 0, 1]])


@pytest.mark.parametrize(
    "make",
    [StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler, lambda: PCA(3, whiten=True)],
    ids=["standard", "minmax", "maxabs", "robust", "pca-whiten"],
)
def test_fitted_on_float32_matches_on_float64_input(make: Callable[[], Any]) -> None:
    # Fitted arrays are float32; scikit-learn upcasts them against float64 input, as the image
    # stores them. Results must agree bit for bit, PCA's score_samples included.
    est = make().fit(CLEAN.astype(np.float32))
    model = modelshelf.load(modelshelf.compile(est))
    X = CLEAN[:40]
    np.testing.assert_array_equal(model.transform(X), est.transform(X))
    if hasattr(est, "score_samples"):
        np.testing.assert_array_equal(model.score_samples(X), est.score_samples(X))
