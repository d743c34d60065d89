"""DataFrame recipes found by an independent probe: a text column inside a ColumnTransformer,
TargetEncoder and MissingIndicator on strings, and frames whose columns cannot be read by name
(repeated or partly non-string names) or whose values cannot be the fitted strings (numbers,
dates): each predicts as scikit-learn does, or is refused with what to do."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.impute import MissingIndicator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler, TargetEncoder

import modelshelf
from modelshelf.errors import FeatureNamesError, InputTypeError, UnsupportedModelError
from tests.kernels import same_bits, using

RNG = np.random.default_rng(0)
WORDS = np.array(["good film", "bad plot", "great acting", "boring", "loved it", "awful end"])
FRAME = pd.DataFrame(
    {
        "review": WORDS[RNG.integers(0, 6, 200)],
        "age": RNG.normal(40, 10, 200),
        "plan": RNG.choice(["basic", "pro"], 200).astype(object),
        "title": WORDS[RNG.integers(0, 6, 200)],
    }
)
LIKED = np.isin(FRAME["review"], ["good film", "great acting", "loved it"]).astype(int)


@pytest.fixture(scope="module")
def reviews() -> tuple[object, bytes]:
    """scikit-learn's recipe: a text vectorizer given one column by name."""
    columns = ColumnTransformer(
        [
            ("text", TfidfVectorizer(), "review"),
            ("num", StandardScaler(), ["age"]),
            ("cat", OneHotEncoder(), ["plan"]),
        ]
    )
    est = make_pipeline(columns, LogisticRegression()).fit(FRAME, LIKED)
    return est, modelshelf.compile(est)


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
def test_a_text_column_in_a_column_transformer_predicts_as_scikit_learn(
    reviews: tuple[object, bytes], kernel: str
) -> None:
    est, image = reviews
    with using(kernel):
        model = modelshelf.load(image)
        assert same_bits(model.predict_proba(FRAME), est.predict_proba(FRAME))  # type: ignore[attr-defined]
        shuffled = FRAME[["plan", "title", "age", "review"]]  # by name, extra columns ignored
        assert same_bits(model.predict(shuffled), est.predict(shuffled))  # type: ignore[attr-defined]


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
def test_a_text_column_by_index_and_through_a_pipeline(kernel: str) -> None:
    columns = ColumnTransformer(
        [
            ("words", CountVectorizer(), 0),
            ("topics", make_pipeline(TfidfVectorizer(), TruncatedSVD(2, random_state=0)), "title"),
        ]
    )
    est = make_pipeline(columns, LogisticRegression()).fit(FRAME, LIKED)
    with using(kernel):
        model = modelshelf.load(modelshelf.compile(est))
        assert same_bits(model.predict_proba(FRAME), est.predict_proba(FRAME))


def test_a_number_in_the_text_column_names_the_part(reviews: tuple[object, bytes]) -> None:
    model = modelshelf.load(reviews[1])
    bad = FRAME.iloc[:3].copy()
    bad["review"] = [1.5, "fine", "ok"]
    with pytest.raises(InputTypeError, match=r"transformer 'text' .*document 0 is float"):
        model.predict(bad)


def test_a_single_column_for_anything_but_text_is_refused_saying_why() -> None:
    est = ColumnTransformer([("s", StandardScaler(), ["age"])]).fit(FRAME)
    est.transformers_[0] = ("s", est.transformers_[0][1], "age")
    with pytest.raises(UnsupportedModelError, match=r"only a text vectorizer.*select \['age'\]"):
        modelshelf.compile(est)


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
@pytest.mark.parametrize("target", ["continuous", "binary", "multiclass"])
def test_target_encoder_on_strings_is_exact(kernel: str, target: str) -> None:
    X = pd.DataFrame(
        {
            "city": RNG.choice(["oslo", "paris", "rome", None], 300).astype(object),
            "n": RNG.integers(0, 5, 300),
        }
    )
    y = {
        "continuous": RNG.normal(size=300),
        "binary": (RNG.random(300) > 0.5).astype(int),
        "multiclass": RNG.integers(0, 3, 300),
    }[target]
    est = TargetEncoder(random_state=0).fit(X, y)
    unseen = pd.DataFrame({"city": ["oslo", "berlin", None, np.nan], "n": [0, 9, 1, 2]})
    with using(kernel):
        model = modelshelf.load(modelshelf.compile(est))
        for rows in (X, unseen):
            assert same_bits(model.transform(rows), est.transform(rows))
    numbers = pd.DataFrame({"city": [5, 6], "n": [0, 1]}).astype({"city": object})
    with pytest.raises(InputTypeError, match=r"column 'city': expected strings .* got 5"):
        model.transform(numbers)


def test_missing_indicator_on_strings_transforms_as_scikit_learn() -> None:
    X = pd.DataFrame({"a": ["x", None, np.nan, "y"] * 5, "b": [1.0, np.nan, 2.0, 3.0] * 5})
    est = MissingIndicator(features="all").fit(X)
    model = modelshelf.load(modelshelf.compile(est))
    assert same_bits(model.transform(X), est.transform(X))


@pytest.mark.parametrize(
    ("value", "kind"),
    [(pd.Timestamp("2024-01-01"), "Timestamp"), (7, "int"), (2.5, "float"), (True, "bool")],
)
def test_a_number_or_a_date_where_strings_were_fitted_is_refused(
    reviews: tuple[object, bytes], value: object, kind: str
) -> None:
    rows = FRAME.iloc[:3].copy()
    rows["plan"] = pd.Series([value] * 3, dtype=object, index=rows.index)
    with pytest.raises(InputTypeError, match=rf"column 'plan': expected strings .* type {kind}"):
        modelshelf.load(reviews[1]).predict(rows)


def test_pandas_na_in_a_string_column_is_still_an_unknown_category() -> None:
    est = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(FRAME[["plan"]])
    rows = pd.DataFrame({"plan": pd.Series(["pro", pd.NA], dtype=object)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = est.transform(rows)
    assert same_bits(modelshelf.load(modelshelf.compile(est)).transform(rows), expected)


@pytest.mark.parametrize(
    ("columns", "says"),
    [
        (["age", "plan", "age"], r"column names appear more than once: \['age'\]"),
        (["age", "plan", 0], r"column names must all be strings .* \['int', 'str'\]"),
    ],
)
def test_columns_that_cannot_be_read_by_name_are_refused(
    reviews: tuple[object, bytes], columns: list[object], says: str
) -> None:
    est = make_pipeline(StandardScaler(), LogisticRegression()).fit(FRAME[["age"]], LIKED)
    frame = pd.DataFrame(RNG.normal(size=(3, 3)), columns=columns)
    for model in (modelshelf.load(modelshelf.compile(est)), modelshelf.load(reviews[1])):
        with pytest.raises(FeatureNamesError, match=says):
            model.predict(frame)


def test_a_pipeline_set_to_pandas_output_transforms_into_a_dataframe() -> None:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import PolynomialFeatures

    X = FRAME[["age"]].assign(half=FRAME["age"] / 2)
    for est in (
        make_pipeline(SimpleImputer(), StandardScaler()),
        make_pipeline(StandardScaler(), PolynomialFeatures(2)),
    ):
        est.set_output(transform="pandas").fit(X)
        got = modelshelf.load(modelshelf.compile(est)).transform(X.iloc[:5])
        pd.testing.assert_frame_equal(got, est.transform(X.iloc[:5]))


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
def test_a_string_is_an_unknown_category_where_numbers_were_fitted(kernel: str) -> None:
    """'1' is not the category 1: scikit-learn finds it unknown, it is never parsed."""
    from sklearn.preprocessing import OrdinalEncoder

    X = pd.DataFrame({"n": [1, 2, 10] * 10, "b": [True, False, True] * 10})
    rows = pd.DataFrame({"n": pd.Series(["1", 2, "10"], dtype=object), "b": ["True", True, False]})
    for est in (
        OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(X),
        OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1).fit(X),
    ):
        with using(kernel):
            got = modelshelf.load(modelshelf.compile(est)).transform(rows)
        assert same_bits(got, est.transform(rows)), type(est).__name__


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
def test_none_and_pd_na_are_unknown_where_numbers_with_nan_were_fitted(kernel: str) -> None:
    """A request decoded from JSON gives an object column with None: scikit-learn compares
    objects, and None (or pd.NA) is not the NaN category; it was read as NaN (the NaN column
    set, a different prediction after the encoder), and pd.NA was refused."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.preprocessing import OrdinalEncoder

    X = pd.DataFrame({"f": [0.5, 1.5, np.nan, 0.5, 1.5, 2.0] * 5, "g": np.arange(30.0)})
    y = np.arange(30.0)
    rows = pd.DataFrame(
        {"f": pd.Series([0.5, None, np.nan, pd.NA, 2], dtype=object), "g": np.arange(5.0)}
    )
    ordinal = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    encoders = (OneHotEncoder(handle_unknown="ignore", sparse_output=False), ordinal)
    for est in encoders:
        est.fit(X)
        with using(kernel):
            model = modelshelf.load(modelshelf.compile(est))
            assert same_bits(model.transform(rows), est.transform(rows)), type(est).__name__
            listed = rows.astype(object).values.tolist()
            assert same_bits(model.transform(listed), est.transform(rows)), type(est).__name__
    pipe = make_pipeline(
        ColumnTransformer([("f", ordinal, ["f"])], remainder="passthrough"),
        HistGradientBoostingRegressor(max_iter=5, min_samples_leaf=1),
    ).fit(X, y)
    with using(kernel):
        got = modelshelf.load(modelshelf.compile(pipe)).predict(rows)
    assert same_bits(got, pipe.predict(rows))
    strict = OneHotEncoder(sparse_output=False).fit(X)
    with pytest.raises(ValueError, match="None"):
        strict.transform(rows.iloc[:2])
    with pytest.raises(ValueError, match="value None is not one of the 4 categories"):
        modelshelf.load(modelshelf.compile(strict)).transform(rows.iloc[:2])


def test_a_power_transform_that_overflows_is_refused_as_scikit_learn_refuses_it() -> None:
    from sklearn.preprocessing import PowerTransformer

    from modelshelf.errors import NonFiniteInputError

    x = 10 - RNG.lognormal(0, 0.6, size=(300, 1))  # left-skewed: lambda near 8
    est = PowerTransformer().fit(x)
    with pytest.raises(ValueError, match="infinity"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # its own overflow, before it raises
        est.transform([[1e50]])
    with pytest.raises(NonFiniteInputError, match=r"overflows to infinity for the value 1e\+50"):
        modelshelf.load(modelshelf.compile(est)).transform(np.array([[1e50]]))


def _customers_pipeline(final: object) -> object:
    from sklearn.impute import SimpleImputer

    return make_pipeline(
        ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["age"]),
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan", "title"]),
            ]
        ),
        final,
    )


def _wrapped() -> list[tuple[str, object, np.ndarray]]:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.ensemble import StackingClassifier, VotingClassifier, VotingRegressor
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import FixedThresholdClassifier
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.multioutput import MultiOutputRegressor

    lr = LogisticRegression
    three = np.asarray(FRAME["title"].map({w: i % 3 for i, w in enumerate(WORDS)}))
    age = FRAME["age"].to_numpy()
    return [
        ("calibrated", CalibratedClassifierCV(_customers_pipeline(lr())), LIKED),
        (
            "voting",
            VotingClassifier(
                [("a", _customers_pipeline(lr())), ("b", _customers_pipeline(lr(C=0.1)))],
                voting="soft",
            ),
            LIKED,
        ),
        ("stacking", StackingClassifier([("a", _customers_pipeline(lr()))]), LIKED),
        ("one-vs-rest", OneVsRestClassifier(_customers_pipeline(lr())), three),
        ("threshold", FixedThresholdClassifier(_customers_pipeline(lr()), threshold=0.3), LIKED),
        (
            "target",
            TransformedTargetRegressor(_customers_pipeline(Ridge()), transformer=StandardScaler()),
            age,
        ),
        ("voting-regressor", VotingRegressor([("a", _customers_pipeline(Ridge()))]), age),
        ("multi-output", MultiOutputRegressor(_customers_pipeline(Ridge())), np.c_[age, -age]),
    ]


@pytest.mark.parametrize(("name", "est", "y"), _wrapped(), ids=[w[0] for w in _wrapped()])
def test_meta_estimators_around_a_dataframe_pipeline_are_exact(
    name: str, est: object, y: np.ndarray
) -> None:
    """The README's DataFrame recipe inside calibration, voting, stacking, one-vs-rest,
    a threshold, a target transform or per-output models: each was refused at compile ("tabular
    input needs ... a model whose first step takes strings"), though its first step does."""
    from sklearn.base import clone

    fitted = clone(est).fit(FRAME, y)
    model = modelshelf.load(modelshelf.compile(fitted))
    rows = FRAME.iloc[:40]
    for method in ("predict", "predict_proba", "decision_function"):
        if hasattr(fitted, method) and hasattr(model, method):
            assert same_bits(getattr(model, method)(rows), getattr(fitted, method)(rows)), method
    shuffled = rows[["title", "plan", "review", "age"]]  # by name, as scikit-learn reads it
    assert same_bits(model.predict(shuffled), fitted.predict(shuffled))
    with pytest.raises(FeatureNamesError, match="plan"):
        model.predict(rows.drop(columns=["plan"]))


def test_a_meta_estimator_over_a_numbers_only_column_transformer_reads_the_frame() -> None:
    """A child that reads only numeric columns, by name, beside one that reads strings."""
    from sklearn.ensemble import VotingClassifier

    numeric = make_pipeline(
        ColumnTransformer([("num", StandardScaler(), ["age"])]), LogisticRegression()
    )
    est = VotingClassifier([("a", _customers_pipeline(LogisticRegression())), ("b", numeric)])
    est.fit(FRAME, LIKED)
    model = modelshelf.load(modelshelf.compile(est))
    assert same_bits(model.predict(FRAME), est.predict(FRAME))


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
def test_a_float64_dataframe_through_a_scaler_or_imputer_is_exact(kernel: str) -> None:
    """A DataFrame's float64 block is F-ordered and scikit-learn's scalers and imputer keep
    that order, so the linear model after them sums X @ coef.T in F order; their images wrote
    a C-ordered array, and 2-3 rows in 500 differed in the last bit."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge, SGDClassifier
    from sklearn.preprocessing import MinMaxScaler

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(500, 30)), columns=[f"c{i}" for i in range(30)])
    frame.iloc[::7, 3] = np.nan
    y = (frame["c0"].fillna(0) > 0).astype(int)
    for est in (
        make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()),
        make_pipeline(SimpleImputer(), Ridge()),
        make_pipeline(SimpleImputer(), MinMaxScaler(), SGDClassifier(random_state=0)),
    ):
        est.fit(frame, y)
        with using(kernel):
            model = modelshelf.load(modelshelf.compile(est))
            for method in ("predict", "decision_function", "predict_proba"):
                if hasattr(est, method):
                    got = getattr(model, method)(frame)
                    assert same_bits(got, getattr(est, method)(frame)), (est, method)


def test_one_row_given_flat_to_a_model_that_takes_strings_is_a_shape_error(
    reviews: tuple[object, bytes],
) -> None:
    """A list, a tuple, a Series (df.iloc[0]): 'expected numeric input ... could not convert
    string to float' blamed the strings, which this model takes (a probe)."""
    from modelshelf.errors import InputShapeError

    model = modelshelf.load(reviews[1])
    row = FRAME.iloc[0]
    for flat in (list(row), tuple(row), row, np.asarray(row, dtype=object)):
        with pytest.raises(InputShapeError, match=r"1-D shape \(4,\).*reshape\(1, -1\)"):
            model.predict(flat)


def test_pandas_output_of_strings_beside_numbers_keeps_the_numbers_numeric() -> None:
    """One object array made every column object: select_dtypes('number') found none of the
    numeric part's columns, which scikit-learn gives as float64 (a probe)."""
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer

    X = FRAME[["plan", "age"]].assign(income=FRAME["age"] * 3)
    X.loc[::5, "plan"] = None
    est = make_column_transformer(
        (SimpleImputer(strategy="most_frequent"), ["plan"]),
        (SimpleImputer(), ["age", "income"]),
    ).set_output(transform="pandas")
    est.fit(X)
    got = modelshelf.load(modelshelf.compile(est)).transform(X.iloc[:7])
    pd.testing.assert_frame_equal(got, est.transform(X.iloc[:7]))


def test_kbins_into_a_linear_model_on_a_float64_dataframe_is_exact() -> None:
    """KBinsDiscretizer(encode='ordinal') wrote C-ordered bins where scikit-learn keeps the
    DataFrame's F order: a Ridge after it differed in the last bits (a second probe)."""
    from sklearn.linear_model import LinearRegression, Ridge
    from sklearn.preprocessing import KBinsDiscretizer

    rng = np.random.default_rng(1)
    scales = np.array([1, 10, 100, 0.1, 5, 1000])
    frame = pd.DataFrame(rng.normal(size=(300, 6)) * scales + 3, columns=list("abcdef"))
    bins = KBinsDiscretizer(n_bins=4, encode="ordinal").fit(frame)
    assert bins.transform(frame).flags.f_contiguous
    assert modelshelf.load(modelshelf.compile(bins)).transform(frame).flags.f_contiguous
    for seed in range(3):
        y = frame.to_numpy() @ np.random.default_rng(seed).normal(size=6) * 1e3
        for final in (Ridge(), LinearRegression()):
            kbins = KBinsDiscretizer(n_bins=5, encode="ordinal", strategy="quantile")
            est = make_pipeline(kbins, final).fit(frame, y)
            got = modelshelf.load(modelshelf.compile(est)).predict(frame)
            assert same_bits(got, est.predict(frame)), (seed, final)


def test_a_float32_nan_is_missing_in_a_string_column() -> None:
    """np.float32('nan') in an object column was refused ('expected strings') where
    scikit-learn, and modelshelf for float('nan'), read it as missing (a second probe)."""
    from sklearn.preprocessing import OrdinalEncoder

    X = pd.DataFrame({"plan": ["basic", "pro", np.nan, "basic"] * 5})
    rows = pd.DataFrame({"plan": pd.Series([np.float32("nan")], dtype=object)})
    assert type(rows["plan"].iloc[0]) is np.float32
    for est in (
        OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(X),
        OrdinalEncoder().fit(X),
    ):
        got = modelshelf.load(modelshelf.compile(est)).transform(rows)
        assert same_bits(got, est.transform(rows)), type(est).__name__


def test_numbers_with_none_as_missing_are_refused_saying_to_use_nan() -> None:
    """The refusal advised 'missing values as None or NaN', which the user had done (a
    second probe): numbers take NaN."""
    from sklearn.preprocessing import OrdinalEncoder

    X = pd.DataFrame({"n": pd.Series([1.0, 2.0, 1.0, None], dtype=object)})
    est = OrdinalEncoder().fit(X)
    with pytest.raises(UnsupportedModelError, match=r"takes NaN as its missing value, not None"):
        modelshelf.compile(est)
    modelshelf.compile(OrdinalEncoder().fit(X.astype(float)))  # the way out works
