"""Pipeline and ColumnTransformer executors: where NaN may go, errors, hand-made manifests.

Exactness over datasets lives in tests/cases/compose.py. Here: which inputs with NaN pass and
which raise, step by step and column by column, exactly as in scikit-learn; errors naming the
input columns they concern; column selections images cannot represent; malformed manifests.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import Normalizer, OneHotEncoder, StandardScaler

import modelshelf
from modelshelf.errors import (
    FeatureCountError,
    ManifestError,
    NonFiniteInputError,
    UnknownCategoryError,
    UnsupportedModelError,
)
from modelshelf.image import ImageBuilder
from tests.cases._case import dataset

X_CLF, Y_CLF, _ = dataset("random_clf")
X_CAT, Y_CAT, _ = dataset("random_cat")


def _run(est: Any, method: str, X: np.ndarray) -> np.ndarray | None:
    """scikit-learn's result, or None if it rejects X."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = getattr(est, method)(X)
    except ValueError:
        return None
    return np.asarray(out.toarray() if hasattr(out, "toarray") else out)


def _with_nan(X: np.ndarray, *cells: tuple[int, int]) -> np.ndarray:
    out = X[:20].copy()
    for cell in cells:
        out[cell] = np.nan
    return out


def scaled_logreg() -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression())


def columns(*parts: tuple[str, Any, list[int]], remainder: Any = "drop") -> ColumnTransformer:
    return ColumnTransformer(list(parts), remainder=remainder)


# (id, estimator factory, method, data, NaN cells, does scikit-learn accept it?)
NAN_FLOWS: list[tuple[str, Callable[[], Any], str, np.ndarray, list[tuple[int, int]], bool]] = [
    ("scaler-logreg", scaled_logreg, "predict_proba", X_CLF, [(1, 1)], False),
    (
        "imputer-logreg",
        lambda: make_pipeline(SimpleImputer(), LogisticRegression()),
        "predict_proba",
        X_CLF,
        [(1, 1), (4, 0)],
        True,
    ),
    (
        "scaler-imputer-logreg",
        lambda: make_pipeline(StandardScaler(), SimpleImputer(), LogisticRegression()),
        "predict",
        X_CLF,
        [(1, 1)],
        True,
    ),
    (
        "scaler-pca",
        lambda: make_pipeline(StandardScaler(), PCA(3)),
        "transform",
        X_CLF,
        [(1, 1)],
        False,
    ),
    (
        "scaler-passthrough",
        lambda: Pipeline([("s", StandardScaler()), ("p", "passthrough")]),
        "transform",
        X_CLF,
        [(1, 1)],
        True,
    ),
    ("only-passthrough", lambda: Pipeline([("p", None)]), "transform", X_CLF, [(1, 1)], True),
    (
        "zero-marker-imputer-after-scaler",
        lambda: make_pipeline(StandardScaler(), SimpleImputer(missing_values=0.0)),
        "transform",
        X_CLF,
        [(1, 1)],
        False,
    ),
    (
        "columns-nan-in-dropped",
        lambda: columns(("s", StandardScaler(), [0, 1]), ("n", Normalizer(), [2, 3])),
        "transform",
        X_CLF,
        [(2, 5), (3, 11)],
        True,
    ),
    (
        "columns-nan-in-normalizer",
        lambda: columns(("s", StandardScaler(), [0, 1]), ("n", Normalizer(), [2, 3])),
        "transform",
        X_CLF,
        [(2, 3)],
        False,
    ),
    (
        "columns-nan-in-scaler",
        lambda: columns(("s", StandardScaler(), [0, 1]), ("n", Normalizer(), [2, 3])),
        "transform",
        X_CLF,
        [(2, 0)],
        True,
    ),
    (
        "columns-nan-in-passthrough",
        lambda: columns(("n", Normalizer(), [0, 1]), remainder="passthrough"),
        "transform",
        X_CLF,
        [(2, 7)],
        True,
    ),
    (
        "columns-passthrough-logreg",
        lambda: make_pipeline(
            columns(("n", Normalizer(), [0, 1]), remainder="passthrough"), LogisticRegression()
        ),
        "predict",
        X_CLF,
        [(2, 7)],
        False,
    ),
    (
        "columns-dropped-logreg",
        lambda: make_pipeline(columns(("n", Normalizer(), [0, 1])), LogisticRegression()),
        "predict",
        X_CLF,
        [(2, 7)],
        True,
    ),
    (
        "columns-all-reject",
        lambda: columns(("n", Normalizer(), list(range(12)))),
        "transform",
        X_CLF,
        [(2, 7)],
        False,
    ),
    (
        "columns-nested-imputer",
        lambda: make_pipeline(
            columns(
                ("i", make_pipeline(SimpleImputer(), Normalizer()), [0, 1]),
                ("n", Normalizer(), [2, 3]),
            ),
            LogisticRegression(),
        ),
        "predict",
        X_CLF,
        [(2, 0), (5, 1)],
        True,
    ),
    (
        "columns-nested-rejecting-pipeline",
        lambda: columns(
            ("p", make_pipeline(StandardScaler(), PCA(1)), [0, 1]), ("s", StandardScaler(), [2])
        ),
        "transform",
        X_CLF,
        [(2, 0)],
        False,
    ),
    (
        "onehot-nan-unseen-after-scaler",
        lambda: columns(("c", OneHotEncoder(handle_unknown="ignore"), [0, 1, 2])),
        "transform",
        X_CAT,
        [(2, 1)],
        True,
    ),
]


@pytest.mark.parametrize(
    ("make", "method", "X", "cells", "accepted"),
    [flow[1:] for flow in NAN_FLOWS],
    ids=[flow[0] for flow in NAN_FLOWS],
)
def test_nan_flows_as_in_scikit_learn(
    make: Callable[[], Any],
    method: str,
    X: np.ndarray,
    cells: list[tuple[int, int]],
    accepted: bool,
) -> None:
    y = Y_CAT if X is X_CAT else Y_CLF
    est = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    model = modelshelf.load(modelshelf.compile(est))
    X_nan = _with_nan(X, *cells)
    expected = _run(est, method, X_nan)
    assert (expected is not None) == accepted, "scikit-learn's behaviour changed"
    if expected is None:
        with pytest.raises(NonFiniteInputError, match="NaN"):
            getattr(model, method)(X_nan)
    else:
        out = getattr(model, method)(X_nan)
        np.testing.assert_array_equal(out.toarray() if hasattr(out, "toarray") else out, expected)


def test_nan_error_names_the_transformer_and_its_columns() -> None:
    est = columns(("s", StandardScaler(), [0, 1]), ("norm", Normalizer(), [2, 3])).fit(X_CLF)
    model = modelshelf.load(modelshelf.compile(est))
    with pytest.raises(NonFiniteInputError, match=r"transformer 'norm' \(input columns \[2, 3\]\)"):
        model.transform(_with_nan(X_CLF, (0, 3)))


def test_unknown_category_names_the_input_column() -> None:
    est = columns(("num", StandardScaler(), [3, 4]), ("cat", OneHotEncoder(), [0, 1, 2]))
    est.fit(X_CAT)
    model = modelshelf.load(modelshelf.compile(est))
    X_bad = X_CAT[:10].copy()
    X_bad[6, 1] = 12.0
    with pytest.raises(UnknownCategoryError, match=r"transformer 'cat': input column 1: value 12"):
        model.transform(X_bad)


def test_unknown_category_in_a_nested_encoder_is_still_named() -> None:
    inner = make_pipeline(OneHotEncoder(sparse_output=False), StandardScaler())
    est = make_pipeline(columns(("cat", inner, [2, 0])), LogisticRegression()).fit(X_CAT, Y_CAT)
    model = modelshelf.load(modelshelf.compile(est))
    X_bad = X_CAT[:10].copy()
    X_bad[6, 0] = -1.0
    with pytest.raises(UnknownCategoryError, match=r"transformer 'cat': column 1: value -1\.0"):
        model.predict(X_bad)


def test_wrong_width_inside_a_pipeline_without_a_feature_count() -> None:
    # A pipeline starting with 'passthrough' has no n_features_in_: the steps check widths.
    est = Pipeline([("p", "passthrough"), ("s", StandardScaler())]).fit(X_CLF)
    assert not hasattr(est, "n_features_in_")
    model = modelshelf.load(modelshelf.compile(est))
    with pytest.raises(ValueError):
        est.transform(X_CLF[:, :5])
    with pytest.raises(FeatureCountError, match="expects 12 features per sample, got 5"):
        model.transform(X_CLF[:, :5])


def test_outputs_never_alias_the_input() -> None:
    for est in (
        Pipeline([("p", "passthrough")]).fit(X_CLF),
        ColumnTransformer([("p", "passthrough", slice(0, 12))]).fit(X_CLF),
    ):
        model = modelshelf.load(modelshelf.compile(est))
        X = X_CLF.copy()
        out = model.transform(X)
        np.testing.assert_array_equal(out, X)
        assert not np.shares_memory(out, X)


def test_callable_column_selection_compiles() -> None:
    est = make_pipeline(
        ColumnTransformer([("s", StandardScaler(), lambda X: [0, 5])], remainder="drop"),
        LinearRegression(),
    ).fit(X_CLF, Y_CLF)
    model = modelshelf.load(modelshelf.compile(est))
    np.testing.assert_allclose(model.predict(X_CLF), est.predict(X_CLF), rtol=1e-12)


@pytest.mark.parametrize("key", [3, "a", np.int64(1)])
def test_a_single_column_selection_is_refused_naming_the_list(key: Any) -> None:
    """scikit-learn hands a transformer selected by one name or index a 1-D column."""
    est = ColumnTransformer([("s", StandardScaler(), [0, 1])]).fit(X_CLF)
    name, fitted, _ = est.transformers_[0]
    est.transformers_[0] = (name, fitted, key)
    with pytest.raises(UnsupportedModelError, match=r"single column .* select \[") as info:
        modelshelf.compile(est)
    message = str(info.value)
    assert message.startswith("ColumnTransformer: transformer 's' takes the single column")
    assert "not supported" not in message and len(message) < 300


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


SCALER = {"kind": "scaler", "params": {"n_features": 1}}
LINREG = {"kind": "linear_regressor", "arrays": {"coef": "w", "intercept": "b"}}


def _columns(*parts: dict[str, Any], n: int = 2) -> dict[str, Any]:
    refs = {f"columns_{i}": f"c{i}" for i in range(len(parts))}
    return {
        "kind": "column_transformer",
        "arrays": refs,
        "params": {"n_features": n, "parts": list(parts)},
    }


def _part(transformer: Any = None, **extra: Any) -> dict[str, Any]:
    return {"name": "p", "transformer": transformer, "weight": None, **extra}


@pytest.mark.parametrize(
    ("spec", "arrays", "match"),
    [
        ({"kind": "pipeline", "params": {"steps": []}}, {}, "no final step"),
        (
            {"kind": "pipeline", "params": {"steps": [LINREG, SCALER]}},
            {"w": np.ones(2), "b": np.zeros(1)},
            r"step 0 \(linear_regressor\) cannot transform",
        ),
        (
            {"kind": "pipeline", "params": {"steps": [SCALER], "final": "identity"}},
            {},
            "not one of",
        ),
        (_columns(_part()), {"c0": np.array([2])}, r"select columns in \[0, 2\)"),
        (_columns(_part()), {"c0": np.array([], dtype=np.int64)}, "select columns"),
        (_columns(_part()), {"c0": np.array([0.0])}, "expected kind 'iu'"),
        (_columns(_part(weight=True)), {"c0": np.array([0])}, "weight must be a number"),
        (_columns(_part(name=3)), {"c0": np.array([0])}, "name must be a string"),
        ({**_columns(_part()), "arrays": {}}, {}, "missing array 'columns_0'"),
        (
            _columns(_part(LINREG)),
            {"c0": np.array([0, 1]), "w": np.ones(2), "b": np.zeros(1)},
            r"parts\[0\] \(linear_regressor\) cannot transform",
        ),
        (
            _columns(_part({"kind": "nope"})),
            {"c0": np.array([0])},
            r"parts\[0\]\.transformer: unknown model kind",
        ),
    ],
)
def test_malformed_manifests_are_rejected(
    spec: dict[str, Any], arrays: dict[str, np.ndarray], match: str
) -> None:
    with pytest.raises(ManifestError, match=match):
        modelshelf.load(_image(spec, arrays))


def test_hand_made_column_transformer() -> None:
    # Columns [1] through a scaler (x - 1) * 2... as center 1, scale 0.5; columns [0, 0] as is.
    scaler = {
        "kind": "scaler",
        "arrays": {"center": "m", "scale": "s"},
        "params": {"n_features": 1},
    }
    spec = _columns(_part(scaler, weight=10), _part())
    arrays = {"c0": np.array([1]), "c1": np.array([0, 0]), "m": np.ones(1), "s": np.full(1, 0.5)}
    model = modelshelf.load(_image(spec, arrays))
    out = model.transform(np.array([[3.0, 2.0], [4.0, np.nan]]))
    np.testing.assert_array_equal(out, [[20.0, 3.0, 3.0], [np.nan, 4.0, 4.0]])
