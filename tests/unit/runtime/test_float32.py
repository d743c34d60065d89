"""float32 input through the transformers of issue 10, point 2 (issue 10, point 5).

scikit-learn keeps float32 input float32 in most transformers (and computes some steps in
float64 before storing back). A loaded Model passes float32 arrays through to the executors that
keep it (``keeps_float32``), pipelines and column transformers included, and widens it before a
step that computes in float64: the answer is scikit-learn's, dtype and bits.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.cluster import KMeans
from sklearn.compose import make_column_transformer
from sklearn.cross_decomposition import PLSRegression
from sklearn.decomposition import PCA, MiniBatchNMF, TruncatedSVD
from sklearn.discriminant_analysis import (
    LinearDiscriminantAnalysis,
    QuadraticDiscriminantAnalysis,
)
from sklearn.ensemble import VotingClassifier
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.feature_selection import SelectKBest, VarianceThreshold, f_regression
from sklearn.impute import KNNImputer, MissingIndicator, SimpleImputer
from sklearn.kernel_approximation import AdditiveChi2Sampler
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import (
    BayesianRidge,
    ElasticNet,
    Lars,
    Lasso,
    LinearRegression,
    LogisticRegression,
    Perceptron,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.mixture import GaussianMixture
from sklearn.multiclass import OneVsRestClassifier
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline, make_union
from sklearn.preprocessing import (
    Binarizer,
    FunctionTransformer,
    KBinsDiscretizer,
    MinMaxScaler,
    Normalizer,
    OneHotEncoder,
    PolynomialFeatures,
    PowerTransformer,
    QuantileTransformer,
    SplineTransformer,
    StandardScaler,
    TargetEncoder,
)

import modelshelf
from modelshelf.image import Image
from modelshelf.runtime import build
from tests.cases._case import dataset

X, Y, X_TEST = dataset("random_reg")
X = X[:, :4]
X_TEST = X_TEST[:, :4] * 1.3  # partly beyond the training range
POSITIVE = np.abs(X) + 0.1
WITH_NAN = dataset("random_nan")[0][:, :4]

TRANSFORMERS: list[tuple[str, Callable[[], Any], np.ndarray, np.ndarray]] = [
    ("poly", lambda: PolynomialFeatures(3), X, X_TEST),
    ("binarizer", Binarizer, X, X_TEST),
    ("indicator", lambda: MissingIndicator(features="all"), WITH_NAN, WITH_NAN),
    ("tsvd", lambda: TruncatedSVD(2, random_state=0), X, X_TEST),
    ("kbins-onehot-dense", lambda: KBinsDiscretizer(encode="onehot-dense"), X, X_TEST),
    ("kbins-ordinal", lambda: KBinsDiscretizer(encode="ordinal"), X, X_TEST),
    ("target", TargetEncoder, np.round(X), np.round(X_TEST)),
    ("knn", KNNImputer, WITH_NAN, WITH_NAN),
    ("power-yeo-johnson", PowerTransformer, X, X_TEST),
    ("power-box-cox", lambda: PowerTransformer(method="box-cox"), POSITIVE, POSITIVE * 1.2),
    ("quantile-uniform", lambda: QuantileTransformer(n_quantiles=50), X, X_TEST),
    (
        "quantile-normal",
        lambda: QuantileTransformer(n_quantiles=50, output_distribution="normal"),
        X,
        X_TEST,
    ),
    *[
        (f"spline-{mode}", lambda mode=mode: SplineTransformer(extrapolation=mode), X, X_TEST)
        for mode in ("constant", "linear", "continue", "periodic")
    ],
    # answered float64 through a Model before (found by sweeping scikit-learn's estimators)
    ("select-k-best", lambda: SelectKBest(f_regression, k=2), X, X_TEST),
    ("variance-threshold", lambda: VarianceThreshold(0.5), X, X_TEST),
    *[(f"normalizer-{n}", lambda n=n: Normalizer(n), X, X_TEST) for n in ("l1", "l2", "max")],
    ("imputer-mean", SimpleImputer, WITH_NAN, WITH_NAN),
    (
        "imputer-constant",
        lambda: SimpleImputer(strategy="constant", fill_value=0.1),
        WITH_NAN,
        WITH_NAN,
    ),
    ("function-identity", FunctionTransformer, X, X_TEST),
    ("additive-chi2", AdditiveChi2Sampler, POSITIVE, POSITIVE * 1.2),
    ("minibatch-nmf", lambda: MiniBatchNMF(2, random_state=0), POSITIVE, POSITIVE * 1.2),
    ("tfidf-transformer", TfidfTransformer, np.round(POSITIVE), np.round(POSITIVE * 1.2)),
]


@pytest.mark.parametrize(
    ("name", "make", "train", "test"), TRANSFORMERS, ids=[t[0] for t in TRANSFORMERS]
)
def test_float32_input_gives_scikit_learns_dtype_and_values(
    name: str, make: Callable[[], Any], train: np.ndarray, test: np.ndarray
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        supervised = name in ("target", "select-k-best")
        est = make().fit(train, (np.arange(len(train)) % 2) if supervised else None)
    image = Image.open(modelshelf.compile(est))
    executor = build(image.manifest["model"], image.arrays)
    test32 = test.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = est.transform(test32)
    actual = executor.transform(test32)  # type: ignore[attr-defined]
    assert actual.dtype == expected.dtype
    np.testing.assert_array_equal(_dense(actual), _dense(expected))
    model = modelshelf.load(modelshelf.compile(est))
    for rows in (test32, test):  # float64 as well: Box-Cox uses the C library's log and expm1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = est.transform(rows)
        actual = model.transform(rows)
        assert actual.dtype == expected.dtype, name
        np.testing.assert_array_equal(_dense(actual), _dense(expected))


def _dense(X: Any) -> np.ndarray:
    return X.toarray() if hasattr(X, "toarray") else np.asarray(X)


LABELS = (X[:, 0] + X[:, 1] > 0).astype(int)
COMPOSED: list[tuple[str, Callable[[], Any]]] = [
    ("power-logistic", lambda: make_pipeline(PowerTransformer(), LogisticRegression())),
    ("scaler-poly-ridge", lambda: make_pipeline(StandardScaler(), PolynomialFeatures(2), Ridge())),
    (
        "quantile-knn",
        lambda: make_pipeline(QuantileTransformer(n_quantiles=40), KNeighborsClassifier()),
    ),
    ("spline-ridge", lambda: make_pipeline(SplineTransformer(), Ridge())),
    ("kbins-sparse-logistic", lambda: make_pipeline(KBinsDiscretizer(), LogisticRegression())),
    ("scaler-power", lambda: make_pipeline(StandardScaler(), PowerTransformer())),
    (
        "minmax-spline-scaler",
        lambda: make_pipeline(MinMaxScaler(), SplineTransformer(), StandardScaler()),
    ),
    ("scaler-logistic", lambda: make_pipeline(StandardScaler(), LogisticRegression())),
    (
        "columns-mixed",
        lambda: make_column_transformer(
            (StandardScaler(), [0, 1]), (PowerTransformer(), [2]), remainder="passthrough"
        ),
    ),
    (
        "columns-float64-part",  # OneHotEncoder computes in float64: the stack is float64
        lambda: make_column_transformer(
            (OneHotEncoder(sparse_output=False, handle_unknown="ignore"), [3]),
            (PolynomialFeatures(2), [0, 1]),
        ),
    ),
    ("union", lambda: make_union(StandardScaler(), SplineTransformer(n_knots=4))),
]


@pytest.mark.parametrize("make", [c[1] for c in COMPOSED], ids=[c[0] for c in COMPOSED])
def test_float32_through_pipelines_and_column_transformers(make: Callable[[], Any]) -> None:
    """float32 stays float32 through the steps and parts that keep it; the first step that
    computes in float64 gets it widened. Before, the input was widened at the door: a scaler
    then a logistic regression answered 5e-8 away from scikit-learn, a column transformer of
    scalers float64 instead of float32."""
    train = np.round(X, 1)  # few distinct values in column 3, for the one-hot encoder
    est = make().fit(train, LABELS)
    model = modelshelf.load(modelshelf.compile(est))
    rows = np.round(X_TEST, 1).astype(np.float32)
    for method in ("predict", "predict_proba", "transform"):
        if not hasattr(est, method):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = getattr(est, method)(rows)
        if hasattr(expected, "toarray"):
            expected = expected.toarray()
        actual = getattr(model, method)(rows)
        assert actual.dtype == expected.dtype, method
        np.testing.assert_array_equal(actual, expected, err_msg=method)


def test_a_float32_dataframe_stays_float32_through_a_column_transformer_by_name() -> None:
    """Columns taken by name, as scikit-learn takes them: a DataFrame of float32 columns was
    read as float64, and the scalers and splines answered float64 (2.8e-6 away)."""
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X[:, :3], columns=["a", "b", "c"])
    est = make_column_transformer(
        (StandardScaler(), ["a", "b"]), (SplineTransformer(n_knots=4), ["c"])
    ).fit(frame)
    model = modelshelf.load(modelshelf.compile(est))
    rows = pd.DataFrame(X_TEST[:, :3], columns=["a", "b", "c"])
    for given in (rows.astype(np.float32), rows[["c", "b", "a"]].astype(np.float32), rows):
        expected, actual = est.transform(given), model.transform(given)
        assert actual.dtype == expected.dtype
        np.testing.assert_array_equal(actual, expected)


REG = X @ np.array([1.5, -2.0, 0.5, 3.0]) + np.sin(X[:, 0])
THREE = np.digitize(REG, np.quantile(REG, [0.33, 0.66]))
#: (id, estimator, target): fitted on float32, scikit-learn keeps float32 coefficients and
#: answers float32 input in float32 (or float64 where it keeps a float64 intercept).
FITTED_ON_FLOAT32: list[tuple[str, Callable[[], Any], np.ndarray]] = [
    ("ridge", Ridge, REG),
    ("ridge-no-intercept", lambda: Ridge(fit_intercept=False), REG),
    ("ridge-two-targets", Ridge, np.c_[REG, -REG]),
    ("linear-regression", LinearRegression, REG),
    ("lasso", lambda: Lasso(alpha=0.01), REG),
    ("elastic-net", lambda: ElasticNet(alpha=0.01), REG),
    ("bayesian-ridge", BayesianRidge, REG),
    ("lars", Lars, REG),
    ("sgd-regressor", lambda: SGDRegressor(random_state=0), REG),
    ("logistic-binary", LogisticRegression, LABELS),
    ("logistic-multiclass", LogisticRegression, THREE),
    ("logistic-no-intercept", lambda: LogisticRegression(fit_intercept=False), THREE),
    ("logistic-saga", lambda: LogisticRegression(solver="saga", max_iter=2000), LABELS),
    ("sgd-log-binary", lambda: SGDClassifier(loss="log_loss", random_state=0), LABELS),
    ("sgd-log-multiclass", lambda: SGDClassifier(loss="log_loss", random_state=0), THREE),
    ("sgd-huber-binary", lambda: SGDClassifier(loss="modified_huber", random_state=0), LABELS),
    (
        "sgd-huber-multiclass",
        lambda: SGDClassifier(loss="modified_huber", random_state=0),
        THREE,
    ),
    ("perceptron", lambda: Perceptron(random_state=0), THREE),
    ("ridge-classifier", RidgeClassifier, THREE),
    ("ridge-classifier-binary", RidgeClassifier, LABELS),
    (
        "mlp-regressor-relu",
        lambda: MLPRegressor(hidden_layer_sizes=(8,), max_iter=200, random_state=0),
        REG,
    ),
    (
        "mlp-regressor-logistic",
        lambda: MLPRegressor(
            hidden_layer_sizes=(8, 5), activation="logistic", max_iter=200, random_state=0
        ),
        REG,
    ),
    (
        "mlp-classifier-tanh",
        lambda: MLPClassifier((6,), activation="tanh", max_iter=200, random_state=0),
        THREE,
    ),
    (
        "mlp-classifier-binary-logistic",
        lambda: MLPClassifier((6,), activation="logistic", max_iter=200, random_state=0),
        LABELS,
    ),
    (
        "scaler-logistic",
        lambda: make_pipeline(StandardScaler(), LogisticRegression()),
        THREE,
    ),
    ("ovr-logistic", lambda: OneVsRestClassifier(LogisticRegression()), THREE),
    ("ovr-logistic-binary", lambda: OneVsRestClassifier(LogisticRegression()), LABELS),
    ("ovr-ridge-classifier", lambda: OneVsRestClassifier(RidgeClassifier()), THREE),
    (
        "scaler-mlp",
        lambda: make_pipeline(StandardScaler(), MLPClassifier((5,), max_iter=100)),
        LABELS,
    ),
]
PREDICTING = ("predict", "predict_proba", "predict_log_proba", "decision_function")


@pytest.mark.parametrize(
    ("make", "target"),
    [(c[1], c[2]) for c in FITTED_ON_FLOAT32],
    ids=[c[0] for c in FITTED_ON_FLOAT32],
)
def test_models_fitted_on_float32_answer_as_scikit_learn(
    make: Callable[[], Any], target: np.ndarray
) -> None:
    """Fitted on float32, linear models and MLPs compute float32 input in float32 in
    scikit-learn: they were answered in float64 (a Ridge 1.4e-6 away, in another dtype; a
    logistic regression's probabilities likewise). float64 and integer input still widen."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = make().fit(X.astype(np.float32), target)
    model = modelshelf.load(modelshelf.compile(est))
    for rows in (X_TEST.astype(np.float32), X_TEST, np.round(X_TEST).astype(np.int64)):
        for method in PREDICTING:
            if not hasattr(est, method):
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = getattr(est, method)(rows)
            actual = getattr(model, method)(rows)
            where = f"{method} of {rows.dtype}"
            assert actual.dtype == expected.dtype, where
            np.testing.assert_array_equal(actual, expected, err_msg=where)


def test_a_float32_linear_image_says_its_version() -> None:
    """``keeps_float32`` is format 1.3: images of float64 models are still written as 1.0."""
    fitted32 = Ridge().fit(X.astype(np.float32), REG)
    fitted64 = Ridge().fit(X, REG)
    assert Image.open(modelshelf.compile(fitted32)).version == (1, 3)
    assert Image.open(modelshelf.compile(fitted64)).version == (1, 0)
    marked = Image.open(modelshelf.compile(PCA(2).fit(X.astype(np.float32))))  # fitted_float32
    assert marked.version == (1, 3)


#: fitted on float32, these compute float32 input otherwise than this runtime: float64 input is
#: answered as scikit-learn answers it, float32 input refused (found by fitting the exactness
#: matrix on float32: each answered float64 where scikit-learn answers float32, or other bits)
FLOAT32_INPUT_REFUSED: list[tuple[str, Callable[[], Any], str]] = [
    ("pca", lambda: PCA(2), "transform"),
    ("truncated-svd", lambda: TruncatedSVD(2, random_state=0), "transform"),
    ("knn-classifier", lambda: KNeighborsClassifier(3, metric="cosine"), "predict_proba"),
    ("lda", LinearDiscriminantAnalysis, "predict_proba"),
    ("qda", QuadraticDiscriminantAnalysis, "predict_proba"),
    ("kernel-ridge", lambda: KernelRidge(kernel="rbf"), "predict"),
    (
        "voting-of-float32-logistic",
        lambda: VotingClassifier(
            [("a", LogisticRegression()), ("b", LogisticRegression(C=0.1))], voting="soft"
        ),
        "predict_proba",
    ),
    ("scaler-pca", lambda: make_pipeline(StandardScaler(), PCA(2)), "transform"),
    (
        "union-then-float32-logistic",  # the union's PCA part widens: the final step gets float64
        lambda: make_pipeline(make_union(StandardScaler(), PCA(2)), LogisticRegression()),
        "predict_proba",
    ),
    ("pls", lambda: PLSRegression(2), "predict"),  # float32 in place whatever the fit
    (
        "columns-onehot-pca",  # an encoder part: the input is read as a table, checked too
        lambda: make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore", sparse_output=False), [3]), (PCA(2), [0, 1])
        ),
        "transform",
    ),
]


@pytest.mark.parametrize(
    ("make", "method"),
    [(c[1], c[2]) for c in FLOAT32_INPUT_REFUSED],
    ids=[c[0] for c in FLOAT32_INPUT_REFUSED],
)
def test_float32_input_is_refused_where_a_float32_fit_would_answer_otherwise(
    make: Callable[[], Any], method: str
) -> None:
    """They answered float32 input in float64 (or other last bits) while scikit-learn answers
    in float32: now refused with the way out; float64 input is answered exactly as before."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = make().fit(X.astype(np.float32), LABELS)
    model = modelshelf.load(modelshelf.compile(est))
    with pytest.raises(
        modelshelf.InputTypeError, match=r"float32 input: .*X\.astype\(np\.float64\)"
    ):
        getattr(model, method)(X_TEST.astype(np.float32))
    pd = pytest.importorskip("pandas")
    for narrow in (pd.DataFrame(X_TEST.astype(np.float32)), X_TEST.astype(np.float16)):
        with pytest.raises(modelshelf.InputTypeError, match=r"X\.astype\(np\.float"):
            getattr(model, method)(narrow)
    for rows in (X_TEST, pd.DataFrame(X_TEST), np.round(X_TEST).astype(np.int32)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = getattr(est, method)(rows)
        actual = getattr(model, method)(rows)
        assert actual.dtype == expected.dtype
        np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "make",
    [
        GaussianNB,
        lambda: MiniBatchNMF(2, random_state=0),
        PowerTransformer,
        lambda: GaussianMixture(2, random_state=0),
    ],
    ids=["gaussian-nb", "minibatch-nmf", "power-transformer", "gaussian-mixture"],
)
def test_models_that_compute_in_float32_whatever_the_input_are_refused_at_compile(
    make: Callable[[], Any],
) -> None:
    """Fitted on float32, these compute in float32 even for float64 input (GaussianNB's
    log-variances 1.2e-7 away, a GaussianMixture's scores 2.4e-7): refused, with the way out;
    fitted on float64, compiled."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = make().fit(POSITIVE.astype(np.float32), LABELS)
        refit = make().fit(POSITIVE, LABELS)
    with pytest.raises(modelshelf.UnsupportedModelError, match=r"fitted on float32 data .*float64"):
        modelshelf.compile(est)
    modelshelf.compile(refit)


@pytest.mark.parametrize(
    "make",
    [
        lambda: VotingClassifier(
            [
                ("scaled", make_pipeline(StandardScaler(), LogisticRegression())),
                ("nb", GaussianNB()),
            ],
            voting="soft",
        ),
        lambda: CalibratedClassifierCV(make_pipeline(StandardScaler(), LogisticRegression())),
    ],
    ids=["voting", "calibrated"],
)
def test_meta_estimators_refuse_float32_their_parts_would_compute_in_float32(
    make: Callable[[], Any],
) -> None:
    """scikit-learn's meta-estimators hand X on as it is: a scaler inside scales float32 input
    in float32. These widened it first and answered 1e-8 away on every value (fitted on
    float64 all the same); float32 input is refused now, float64 answered as before."""
    est = make().fit(X, THREE)
    model = modelshelf.load(modelshelf.compile(est))
    with pytest.raises(modelshelf.InputTypeError, match=r"keeps float32.*X\.astype\(np\.float64\)"):
        model.predict_proba(X_TEST.astype(np.float32))
    np.testing.assert_allclose(
        model.predict_proba(X_TEST), est.predict_proba(X_TEST), rtol=1e-9, atol=1e-12
    )


def test_a_pipeline_of_no_step_hands_float32_back() -> None:
    """``Pipeline([("p", "passthrough")])`` answered float32 input in float64."""
    model = modelshelf.load(modelshelf.compile(Pipeline([("p", "passthrough")]).fit(X)))
    rows = X_TEST.astype(np.float32)
    assert model.transform(rows).dtype == np.float32
    np.testing.assert_array_equal(model.transform(rows), rows)


def test_a_one_vs_rest_of_scaled_pipelines_hands_them_float32() -> None:
    """Its children all keep float32: it does too, and answers as scikit-learn does."""
    est = OneVsRestClassifier(make_pipeline(StandardScaler(), LogisticRegression())).fit(X, THREE)
    model = modelshelf.load(modelshelf.compile(est))
    rows = X_TEST.astype(np.float32)
    for method in ("predict", "predict_proba", "decision_function"):
        expected, actual = getattr(est, method)(rows), getattr(model, method)(rows)
        assert actual.dtype == expected.dtype
        np.testing.assert_array_equal(actual, expected)


def test_a_meta_estimator_over_a_selection_answers_float32() -> None:
    """A feature selection hands float32 columns on as they are: a meta-estimator over it
    answers float32 input (scikit-learn's numpy promotion then widens it, in its own memory
    order: the last bits of a float64 product), and is not refused."""
    est = VotingClassifier(
        [("kbest", make_pipeline(SelectKBest(f_regression, k=2), LogisticRegression()))],
        voting="soft",
    ).fit(X, THREE)
    model = modelshelf.load(modelshelf.compile(est))
    rows = X_TEST.astype(np.float32)
    np.testing.assert_allclose(
        model.predict_proba(rows), est.predict_proba(rows), rtol=1e-9, atol=1e-12
    )


def _fit32(est: Any, target: np.ndarray = LABELS) -> tuple[Any, modelshelf.Model]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X.astype(np.float32), target)
    return est, modelshelf.load(modelshelf.compile(est))


@pytest.mark.parametrize(
    "rows",
    [
        np.round(np.abs(X_TEST) * 20).astype(np.uint8),  # pixels
        np.round(X_TEST * 100).astype(np.int16),
        X_TEST > 0,
        X_TEST.astype(np.float16),
        X_TEST.astype(">f4"),  # big-endian float32
    ],
    ids=["uint8", "int16", "bool", "float16", "big-endian-float32"],
)
def test_narrow_input_to_float32_weights_is_float32_as_numpy_promotes_it(rows: np.ndarray) -> None:
    """uint8 pixels times float32 weights are float32 in numpy: scikit-learn's linear models
    and MLPs fitted on float32 answered them in float32 and the images in float64 (an
    SGDClassifier's scores 0.039 away); float16 was refused, big-endian float32 widened."""
    for make, method in (
        (LogisticRegression, "predict_proba"),
        (Ridge, "predict"),
        (lambda: SGDClassifier(random_state=0), "decision_function"),
        (lambda: MLPClassifier((5,), max_iter=50, random_state=0), "predict_proba"),
    ):
        est, model = _fit32(make())
        expected, actual = getattr(est, method)(rows), getattr(model, method)(rows)
        assert actual.dtype == expected.dtype, (make, rows.dtype)
        np.testing.assert_array_equal(actual, expected)


def test_float32_seen_through_lists_mixed_frames_and_sparse_is_refused_where_it_differs() -> None:
    """scikit-learn reads a list of float32 rows, or a DataFrame of float32 and int8 columns,
    as float32, and multiplies a float32 CSR sparse: each got past the float32 refusal."""
    pd = pytest.importorskip("pandas")
    sparse = pytest.importorskip("scipy.sparse")
    _, kmeans = _fit32(KMeans(2, n_init=2, random_state=0))
    rows32 = X_TEST.astype(np.float32)
    mixed = pd.DataFrame(rows32).assign(flag=np.ones(len(rows32), dtype=np.int8))
    with pytest.raises(modelshelf.InputTypeError, match="kmeans"):
        kmeans.transform(list(rows32))
    est = KMeans(2, n_init=2, random_state=0).fit(mixed.to_numpy(np.float32))
    with pytest.raises(modelshelf.InputTypeError, match="kmeans"):
        modelshelf.load(modelshelf.compile(est)).transform(mixed)
    _, sgd = _fit32(SGDClassifier(random_state=0))
    with pytest.raises(modelshelf.InputTypeError, match=r"sparse .*X\.toarray\(\)"):
        sgd.decision_function(sparse.csr_matrix(rows32))


def test_a_mixed_frame_whose_column_transformer_part_takes_only_float32_is_refused() -> None:
    """scikit-learn gives each part its own columns: a scaler over the float32 columns of a
    float32/float64 DataFrame (the usual parquet) scales in float32; the model read the frame
    as float64 and answered 1e-7 away."""
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    est = make_column_transformer((StandardScaler(), ["a", "b"]), (PCA(1), ["c", "d"])).fit(frame)
    model = modelshelf.load(modelshelf.compile(est))
    test = pd.DataFrame(X_TEST, columns=["a", "b", "c", "d"])
    mixed = test.astype({"a": np.float32, "b": np.float32})
    with pytest.raises(modelshelf.InputTypeError, match="part 'standardscaler' takes only float32"):
        model.transform(mixed)
    np.testing.assert_allclose(model.transform(test), est.transform(test), rtol=1e-9)
    partly = test.astype({"a": np.float32})  # the scaler's columns are not all float32
    np.testing.assert_allclose(model.transform(partly), est.transform(partly), rtol=1e-9)
