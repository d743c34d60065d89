"""Inputs the session's probes found answered otherwise than the library (each test fails
before its fix): 64-bit integer IDs in encoders, pd.NA in a nullable boolean column beside a
category column, float16 input."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

import modelshelf
from modelshelf.errors import UnsupportedModelError

B = 2**53
# exact doubles all, as the encoders' categories must be (compile refuses others)
IDS = np.array([B, B + 2, 5, 2**62, -(2**60), 1234567890123456768], dtype=np.int64)
UNSEEN = np.array([B + 1, B + 3, 2**62 + 1, -(2**60) - 1, 1234567890123456769], dtype=np.int64)


def _both(est, X):  # type: ignore[no-untyped-def]
    return est.transform(X), modelshelf.load(modelshelf.compile(est)).transform(X)


@pytest.mark.parametrize(
    "as_input",
    [
        lambda a: a.reshape(-1, 1),
        lambda a: a.astype(object).reshape(-1, 1),
        lambda a: pd.DataFrame({"id": a}),
    ],
    ids=["int64", "objects", "frame"],
)
def test_an_unseen_64_bit_id_is_unknown_though_its_double_is_a_category(as_input) -> None:  # type: ignore[no-untyped-def]
    """An unseen ID that rounds to a fitted one as a double was given that one's code."""
    fit = as_input(IDS)
    ordinal = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1).fit(fit)
    one_hot = OneHotEncoder(handle_unknown="ignore").fit(fit)
    for est in (ordinal, one_hot):
        for X in (as_input(UNSEEN), as_input(IDS), as_input(np.concatenate([IDS, UNSEEN]))):
            expected, got = _both(est, X)
            expected = expected.toarray() if hasattr(expected, "toarray") else expected
            got = got.toarray() if hasattr(got, "toarray") else got
            assert np.array_equal(expected, got), (type(est).__name__, X)


def test_an_id_column_in_a_pipeline_with_other_numbers() -> None:
    train = pd.DataFrame({"x": np.arange(24, dtype=float), "id": np.repeat(IDS, 4)})
    pipe = make_pipeline(
        ColumnTransformer(
            [("id", OneHotEncoder(handle_unknown="ignore"), ["id"])], remainder="passthrough"
        ),
        LogisticRegression(),
    ).fit(train, np.arange(24) % 2)
    model = modelshelf.load(modelshelf.compile(pipe))
    for query in (
        pd.DataFrame({"x": np.zeros(len(UNSEEN)), "id": UNSEEN}),
        pd.DataFrame({"id": UNSEEN, "x": np.ones(len(UNSEEN))}),  # another order: by name
        train,
    ):
        assert np.array_equal(pipe.predict_proba(query), model.predict_proba(query))


def test_integer_categories_a_double_cannot_hold_are_refused_at_compile() -> None:
    est = OrdinalEncoder().fit(np.array([[1234567890123456789], [7]], dtype=np.int64))
    with pytest.raises(UnsupportedModelError, match="beyond 2\\*\\*53"):
        modelshelf.compile(est)


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_pd_na_in_a_nullable_boolean_column_beside_a_category_column(library: str) -> None:
    """Refused 'values that do not convert to float: NAType' (the libraries read it as
    missing, as the same model does without the category column)."""
    rng = np.random.RandomState(0)
    n = 300
    df = pd.DataFrame(
        {
            "visits": pd.array(rng.randint(0, 10, n), dtype="Int64"),
            "active": pd.array(rng.rand(n) > 0.5, dtype="boolean"),
            "plan": pd.Categorical(rng.choice(["free", "pro", "team"], n)),
        }
    )
    df.loc[0:9, "visits"] = pd.NA
    df.loc[20:29, "active"] = pd.NA
    y = ((df.plan == "pro") ^ df.active.fillna(False).astype(bool)).astype(int)
    if library == "xgboost":
        import xgboost

        est = xgboost.XGBClassifier(n_estimators=5, enable_categorical=True).fit(df, y)
    else:
        import lightgbm

        est = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(df, y)
    model = modelshelf.load(modelshelf.compile(est))
    assert np.array_equal(est.predict_proba(df), model.predict_proba(df))


def test_float16_is_refused_where_scikit_learn_computes_in_float16() -> None:
    """A dtype-keeping first step computes in float16 in scikit-learn; modelshelf widened it
    to float64 and answered otherwise (a label in 400 differed after a scaler)."""
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    from modelshelf.errors import InputTypeError

    rng = np.random.RandomState(0)
    X = rng.randn(400, 3) * 5 + 3
    y = (X[:, 0] + X[:, 1] > 6).astype(int)
    for est in (
        StandardScaler().fit(X),
        MinMaxScaler().fit(X),
        make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y),
    ):
        model = modelshelf.load(modelshelf.compile(est))
        for X16 in (X.astype(np.float16), pd.DataFrame(X.astype(np.float16))):
            with pytest.raises(InputTypeError, match="float16"):
                (model.transform if hasattr(est, "transform") else model.predict)(X16)
        assert np.array_equal(  # the way out the message gives
            (est.transform if hasattr(est, "transform") else est.predict)(X.astype(np.float32)),
            (model.transform if hasattr(est, "transform") else model.predict)(X.astype(np.float32)),
        )
    # a model scikit-learn widens anyway (its check_array): float16 is read as float64 there
    lr = LogisticRegression().fit(X, y)
    X16 = X.astype(np.float16)
    assert np.array_equal(
        lr.predict_proba(X16), modelshelf.load(modelshelf.compile(lr)).predict_proba(X16)
    )


def test_a_multi_label_xgboost_classifier_is_refused_with_the_way_out() -> None:
    """Refused saying 'the image built for it would not load (2 classes need 1 sums, the
    trees give 3)': an internal message, no way out."""
    import xgboost
    from sklearn.multioutput import MultiOutputClassifier

    rng = np.random.RandomState(0)
    X = rng.randn(200, 4)
    Y = (X[:, :3] > 0).astype(int)
    est = xgboost.XGBClassifier(n_estimators=4).fit(X, Y)
    with pytest.raises(UnsupportedModelError, match=r"multi-label target .3 label columns.*Multi"):
        modelshelf.compile(est)
    wrapped = MultiOutputClassifier(xgboost.XGBClassifier(n_estimators=4)).fit(X, Y)
    model = modelshelf.load(modelshelf.compile(wrapped))
    assert np.array_equal(wrapped.predict(X), model.predict(X))


def test_ids_fitted_as_python_ints_and_as_floats_compare_as_scikit_learn_does() -> None:
    """A second probe: Python-int categories (an object column) beyond 2**53 compiled with
    their rounded doubles (seen IDs came out unknown); float categories queried with int64
    IDs were compared as integers, where scikit-learn promotes them to doubles."""
    objects = np.array([B, B + 2, 2**60], dtype=object).reshape(-1, 1)
    est = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1).fit(objects)
    query = np.array([B + 2, 2**60, B + 1, 2**60 + 1], dtype=object).reshape(-1, 1)
    expected, got = _both(est, query)
    assert np.array_equal(expected, got)
    inexact = np.array([2**60 + 1, 7], dtype=object).reshape(-1, 1)
    with pytest.raises(UnsupportedModelError, match="beyond 2\\*\\*53"):
        modelshelf.compile(OrdinalEncoder().fit(inexact))
    ids = np.array([[2**60 + 1], [2**60], [5]], dtype=np.int64)
    for wrap in (lambda a: a, lambda a: pd.DataFrame({"id": a.ravel()})):
        floats = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
        floats.fit(wrap(np.array([[2.0**60], [5.0]])))
        expected, got = _both(floats, wrap(ids))
        assert np.array_equal(expected, got), (expected, got)


def test_float16_is_widened_where_scikit_learn_widens_it() -> None:
    """KBinsDiscretizer reads float16 as float64 in scikit-learn: refused after the fix above
    (a second probe), though the answer is the same."""
    from sklearn.preprocessing import KBinsDiscretizer

    rng = np.random.RandomState(0)
    X = rng.randn(300, 3)
    y = (X[:, 0] > 0).astype(int)
    for est in (
        KBinsDiscretizer(encode="ordinal", n_bins=5, quantile_method="averaged_inverted_cdf"),
        make_pipeline(
            KBinsDiscretizer(n_bins=4, quantile_method="averaged_inverted_cdf"),
            LogisticRegression(),
        ),
    ):
        est.fit(X, y)
        model = modelshelf.load(modelshelf.compile(est))
        X16 = X.astype(np.float16)
        method = "transform" if hasattr(est, "transform") else "predict_proba"
        expected, got = getattr(est, method)(X16), getattr(model, method)(X16)
        expected = expected.toarray() if hasattr(expected, "toarray") else expected
        got = got.toarray() if hasattr(got, "toarray") else got
        assert expected.dtype == got.dtype and np.array_equal(expected, got)


def test_one_row_predictions_of_multi_output_linear_models_are_bit_identical() -> None:
    """scikit-learn 1.9 keeps LogisticRegression's coef_ column-major; the image kept it
    row-major, and numpy's one-row product took another BLAS route: 57-135 rows in 150 differed
    in the last bit (batches agreed). The image keeps the estimator's memory order now."""
    from sklearn.datasets import load_diabetes, load_iris
    from sklearn.linear_model import Ridge, RidgeClassifier
    from sklearn.svm import LinearSVC

    X, y = load_iris(return_X_y=True)
    Xd, yd = load_diabetes(return_X_y=True)
    for est, XX, yy, method in (
        (LogisticRegression(max_iter=500), X, y, "predict_proba"),
        (LinearSVC(), X, y, "decision_function"),
        (RidgeClassifier(), X, y, "decision_function"),
        (Ridge(), Xd, np.c_[yd, -yd], "predict"),
    ):
        est.fit(XX, yy)
        model = modelshelf.load(modelshelf.compile(est))
        ours, theirs = getattr(model, method), getattr(est, method)
        differ = [
            i
            for i in range(len(XX))
            if not np.array_equal(ours(XX[i : i + 1]), theirs(XX[i : i + 1]))
        ]
        assert differ == [], (type(est).__name__, len(differ))
        assert np.array_equal(ours(XX), theirs(XX))


NULLABLE = pd.DataFrame(
    {
        "a": [1.0, 2.0, 3.0, 4.0] * 5,
        "b": pd.array([1, 2, None, 4] * 5, dtype="Int64"),
        "c": pd.array([1.5, None, 2.0, 4.0] * 5, dtype="Float64"),
        "d": pd.array([True, None, False, True] * 5, dtype="boolean"),
    }
)

FILL = {"b": 0, "c": 0.0, "d": False}


@pytest.mark.parametrize(
    ("make", "passed"),
    [
        (
            lambda: ColumnTransformer([("s", StandardScaler(), ["a"])], remainder="passthrough"),
            "bcd",
        ),
        (
            lambda: ColumnTransformer(
                [("s", StandardScaler(), ["a", "b", "c"]), ("p", "passthrough", ["d"])]
            ),
            "d",
        ),
        (
            lambda: make_pipeline(
                ColumnTransformer([("s", StandardScaler(), ["a", "b"])], remainder="passthrough"),
                HistGradientBoostingRegressor(max_iter=3),
            ),
            "cd",
        ),
    ],
    ids=["remainder", "explicit", "in-a-pipeline"],
)
def test_pd_na_passed_through_a_column_transformer_is_refused_as_scikit_learn_does(
    make: Any, passed: str
) -> None:
    """scikit-learn refuses a nullable column holding pd.NA that a part passes through to its
    numpy output (ValueError); the model answered it as NaN. Scaled columns (NaN accepted)
    and a filled passthrough column are answered as before."""
    est = make().fit(NULLABLE.fillna(FILL), np.arange(len(NULLABLE), dtype=float))
    model = modelshelf.load(modelshelf.compile(est))
    method = "transform" if hasattr(est, "transform") else "predict"
    with pytest.raises(ValueError, match=r"pandas\.NA"):
        getattr(est, method)(NULLABLE)
    with pytest.raises(modelshelf.InputTypeError, match=f"column '{passed[0]}' .* holds pd.NA"):
        getattr(model, method)(NULLABLE)
    filled = NULLABLE.assign(**{c: NULLABLE[c].fillna(FILL[c]) for c in passed})
    np.testing.assert_allclose(
        np.asarray(getattr(model, method)(filled), dtype=float),
        np.asarray(getattr(est, method)(filled), dtype=float),
    )


def test_pd_na_passed_through_to_pandas_output_inside_a_pipeline_is_answered() -> None:
    """With set_output(transform="pandas") on the pipeline, its column transformer keeps the
    passed-through column in a DataFrame and scikit-learn answers; the model refused it (the
    pandas output was looked for at the root only)."""
    est = make_pipeline(
        ColumnTransformer([("s", StandardScaler(), ["a"])], remainder="passthrough"),
        HistGradientBoostingRegressor(max_iter=3),
    ).set_output(transform="pandas")
    est.fit(NULLABLE.fillna(FILL), np.arange(len(NULLABLE), dtype=float))
    model = modelshelf.load(modelshelf.compile(est))
    np.testing.assert_allclose(model.predict(NULLABLE), est.predict(NULLABLE))


def _layout_cases() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    T = rng.normal(size=(200, 8)) * 2
    ints = np.round(T).astype(np.int64)
    return {
        "int32-fortran": np.asfortranarray(ints.astype(np.int32)),
        "float32-fortran": np.asfortranarray(T.astype(np.float32)),
        "big-endian-fortran": np.asfortranarray(T.astype(">f8")),
        "float32-broadcast-row": np.broadcast_to(T[5].astype(np.float32), (60, 8)),
        "float64-broadcast-row": np.broadcast_to(T[5], (60, 8)),
        "int64-frame": pd.DataFrame(ints),
        "float32-frame": pd.DataFrame(T.astype(np.float32)),
        "float64-fortran": np.asfortranarray(T),
    }


@functools.cache
def _linear_models() -> dict[str, tuple[Any, str]]:
    from sklearn.linear_model import PoissonRegressor, Ridge, SGDRegressor

    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 8))
    y = X @ rng.normal(size=8) + rng.normal(size=300)
    return {
        "ridge": (Ridge().fit(X, y), "predict"),
        "logistic-binary": (LogisticRegression().fit(X, y > 0), "decision_function"),
        "logistic-3": (LogisticRegression().fit(X, np.digitize(y, [-1, 1])), "predict_proba"),
        "sgd": (SGDRegressor(random_state=0).fit(X, y), "predict"),
        "poisson": (PoissonRegressor().fit(X, np.exp(y / 5)), "predict"),
        "scaler-ridge": (make_pipeline(StandardScaler(), Ridge()).fit(X, y), "predict"),
    }


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("layout", list(_layout_cases()))
@pytest.mark.parametrize("model", list(_linear_models()))
def test_a_converted_input_is_multiplied_in_the_layout_scikit_learn_multiplies(
    model: str, layout: str
) -> None:
    """A probe: Ridge and a binary LogisticRegression (a 1-D coef: gemv, whose sums depend
    on X's layout) answered a Fortran-ordered int32, float32 or big-endian array, an int64 or
    float32 DataFrame (pandas hands it Fortran-ordered), a broadcast row, with other last bits
    than scikit-learn (18 of 21 cases). Linear models keep such X as it is and numpy's matmul
    casts it into a C-ordered copy; the door converted it keeping its layout."""
    est, method = _linear_models()[model]
    X = _layout_cases()[layout]
    got = getattr(modelshelf.load(modelshelf.compile(est)), method)(X)
    expected = getattr(est, method)(X)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)
