"""Model and load(): the scikit-learn surface, every source load() accepts, and input handling
end to end (bad input raises the specific InputError; good input of any numeric form gives
scikit-learn's answers; the caller's array is never modified)."""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import modelshelf
from modelshelf import (
    ChecksumError,
    FeatureCountError,
    FeatureNamesError,
    InputShapeError,
    InputTypeError,
    ManifestError,
    Model,
    NonFiniteInputError,
)
from modelshelf.image import Image, ImageBuilder


class Frame:
    """A DataFrame stand-in (pandas is not a dependency): named columns over an array."""

    def __init__(self, data: Any, columns: list[str]) -> None:
        self._data = np.asarray(data)
        self.columns = columns

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self._data if dtype is None else self._data.astype(dtype)


CLASSIFIER_METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function")


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    return X, y


@pytest.fixture(scope="module")
def logreg(iris: tuple[np.ndarray, np.ndarray]) -> LogisticRegression:
    return LogisticRegression(max_iter=1000).fit(*iris)


@pytest.fixture(scope="module")
def scaler(iris: tuple[np.ndarray, np.ndarray]) -> StandardScaler:
    return StandardScaler().fit(iris[0])


@pytest.fixture(scope="module")
def pipeline(iris: tuple[np.ndarray, np.ndarray]) -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(*iris)


def _load(est: Any, **meta: str) -> Model:
    return modelshelf.load(modelshelf.compile(est, metadata=meta or None))


# -- the scikit-learn surface ------------------------------------------------------------------


def test_classifier_surface(logreg: LogisticRegression) -> None:
    model = _load(logreg, name="iris-lr", team="search")
    for method in CLASSIFIER_METHODS:
        assert hasattr(model, method), method
    assert not hasattr(model, "transform") and not hasattr(model, "score_samples")
    assert np.array_equal(model.classes_, logreg.classes_)
    assert model.n_features_in_ == 4
    assert not hasattr(model, "feature_names_in_")
    assert model.kind == model.image.manifest["model"]["kind"] != ""
    assert model.metadata["name"] == "iris-lr"
    assert model.metadata["extra"] == {"team": "search"}
    assert model.metadata["estimator"] == "sklearn.linear_model._logistic.LogisticRegression"
    assert model.kind in repr(model) and "iris-lr" in repr(model)
    assert model.predict.__name__ == "predict" and model.predict.__doc__


def test_transformer_surface(scaler: StandardScaler) -> None:
    model = _load(scaler)
    assert hasattr(model, "transform")
    for method in CLASSIFIER_METHODS:
        assert not hasattr(model, method), method
    assert not hasattr(model, "classes_")
    with pytest.raises(AttributeError, match="no predict"):
        model.predict  # noqa: B018
    assert model.metadata["name"] == "StandardScaler"


def test_feature_names_in(logreg: LogisticRegression, iris: tuple[np.ndarray, np.ndarray]) -> None:
    est = LogisticRegression(max_iter=1000).fit(*iris)
    # pandas is not installed: set the attribute as fitting on a DataFrame would.
    est.feature_names_in_ = np.array(["sl", "sw", "pl", "pw"], dtype=object)
    model = _load(est)
    assert model.feature_names_in_.dtype == object
    assert model.feature_names_in_.tolist() == ["sl", "sw", "pl", "pw"]
    X = iris[0][:5]
    np.testing.assert_array_equal(
        model.predict(Frame(X, ["sl", "sw", "pl", "pw"])), logreg.predict(X)
    )
    with pytest.raises(FeatureNamesError, match=r"missing \['pw'\], unexpected \['petal_w'\]"):
        model.predict(Frame(X, ["sl", "sw", "pl", "petal_w"]))
    with pytest.raises(FeatureNamesError, match="different order"):
        model.predict_proba(Frame(X, ["sw", "sl", "pl", "pw"]))


def test_metadata_is_read_only(logreg: LogisticRegression) -> None:
    model = _load(logreg, team="search")
    with pytest.raises(TypeError):
        model.metadata["name"] = "other"
    with pytest.raises(TypeError):
        model.metadata["extra"]["team"] = "other"
    assert model.image.manifest["metadata"]["extra"]["team"] == "search"


def test_tensors_are_read_only_views_of_the_image(logreg: LogisticRegression) -> None:
    buf = modelshelf.compile(logreg)
    model = modelshelf.load(buf)
    whole = np.frombuffer(buf, dtype=np.uint8)
    # scikit-learn >= 1.9 keeps coef_ column-major: stored as its transpose, role "coef.T"
    coef = "model/coef.T" if logreg.coef_.flags.f_contiguous else "model/coef"
    assert set(model.tensors) >= {coef, "model/intercept", "model/classes"}
    for arr in model.tensors.values():
        assert not arr.flags.writeable and np.shares_memory(arr, whole)
    stored = model.tensors[coef]
    np.testing.assert_array_equal(stored.T if coef.endswith(".T") else stored, logreg.coef_)
    with pytest.raises(TypeError):
        model.tensors["x"] = np.zeros(1)


def test_unknown_input_type_is_refused_at_load() -> None:
    builder = ImageBuilder()
    manifest = {
        "model": {"kind": "standard_scaler"},
        "input": {"type": "audio"},
        "metadata": {"name": "x"},
    }
    with pytest.raises(ManifestError, match="input type 'audio' is unknown"):
        modelshelf.load(builder.build(manifest))


# -- every source load() accepts -----------------------------------------------------------------


@pytest.mark.parametrize("form", ["bytes", "bytearray", "memoryview", "mmap", "str", "Path"])
def test_load_sources(
    form: str, logreg: LogisticRegression, iris: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    data = modelshelf.compile(logreg)
    path = tmp_path / "m.msi"
    path.write_bytes(data)
    source: Any
    if form == "bytes":
        source = data
    elif form == "bytearray":
        source = bytearray(data)
    elif form == "memoryview":
        source = memoryview(data)
    elif form == "mmap":
        with path.open("rb") as fh:
            source = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    elif form == "str":
        source = str(path)
    else:
        source = path
    model = modelshelf.load(source, verify=True)
    np.testing.assert_array_equal(model.predict(iris[0]), logreg.predict(iris[0]))


def test_verify_detects_corruption(logreg: LogisticRegression) -> None:
    data = bytearray(modelshelf.compile(logreg))
    data[-3] ^= 0xFF  # inside the last array: structurally still valid
    modelshelf.load(bytes(data))  # structural validation alone does not read array bytes
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        modelshelf.load(bytes(data), verify=True)


def test_load_accepts_an_open_image(logreg: LogisticRegression) -> None:
    image = Image(modelshelf.compile(logreg))
    assert modelshelf.load(image).image is image


# -- bad input through a model -------------------------------------------------------------------


def test_bad_input_errors_name_expected_and_given(logreg: LogisticRegression) -> None:
    model = _load(logreg)
    with pytest.raises(FeatureCountError, match=r"expected 4 features per sample, got 3"):
        model.predict(np.ones((2, 3)))
    with pytest.raises(InputShapeError, match=r"got 1-D shape \(4,\).*reshape\(1, -1\)"):
        model.predict_proba(np.ones(4))
    with pytest.raises(InputShapeError, match=r"got 3-D"):
        model.predict(np.ones((1, 2, 4)))
    with pytest.raises(InputShapeError, match=r"at least 1 sample"):
        model.decision_function(np.ones((0, 4)))
    with pytest.raises(InputTypeError, match=r"expected numeric input .* dtype <U"):
        model.predict([["a", "b", "c", "d"]])
    with pytest.raises(InputShapeError, match=r"same number of features"):
        model.predict([[1, 2, 3, 4], [1, 2, 3]])


def test_nan_rejected_where_scikit_learn_rejects_it(
    logreg: LogisticRegression, pipeline: Any, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    X = iris[0][:5].copy()
    X[1, 2] = np.nan
    for est in (logreg, pipeline):
        with pytest.raises(ValueError, match="NaN"):
            est.predict(X)  # scikit-learn agrees that this input is invalid
        with pytest.raises(NonFiniteInputError, match=r"got NaN in 1 cell"):
            _load(est).predict(X)


def test_nan_accepted_where_scikit_learn_accepts_it(
    scaler: StandardScaler, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    X = iris[0][:5].copy()
    X[1, 2] = X[3, 0] = np.nan
    expected = scaler.transform(X)
    actual = _load(scaler).transform(X)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_allclose(actual, expected, rtol=1e-12)
    X[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        scaler.transform(X)
    with pytest.raises(NonFiniteInputError, match="infinity"):
        _load(scaler).transform(X)


# -- good input of every numeric form ------------------------------------------------------------


def _forms(X: np.ndarray) -> dict[str, Any]:
    wide = np.zeros((X.shape[0], 2 * X.shape[1]))
    wide[:, ::2] = X
    return {
        "list": X.tolist(),
        "fortran": np.asfortranarray(X),
        "strided-view": wide[:, ::2],
        "row-slice": np.repeat(X, 2, axis=0)[::2],
    }


@pytest.mark.parametrize("name", ["logreg", "pipeline", "scaler"])
def test_numeric_forms_match_scikit_learn(
    name: str, request: pytest.FixtureRequest, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    est = request.getfixturevalue(name)
    model = _load(est)
    X = iris[0][::7]
    methods = ["transform"] if name == "scaler" else list(CLASSIFIER_METHODS)
    for form, given in _forms(X).items():
        for method in methods:
            np.testing.assert_allclose(
                getattr(model, method)(given), getattr(est, method)(X), rtol=1e-12, err_msg=form
            )


def test_integer_and_bool_input(logreg: LogisticRegression) -> None:
    model = _load(logreg)
    rng = np.random.default_rng(0)
    Xi = rng.integers(0, 8, size=(20, 4))
    Xb = rng.uniform(size=(20, 4)) < 0.5
    for X in (Xi, Xi.astype(np.int8), Xb):
        np.testing.assert_array_equal(model.predict(X), logreg.predict(X))
        np.testing.assert_allclose(
            model.predict_proba(X), logreg.predict_proba(X), rtol=1e-12, atol=1e-15
        )


def test_float32_input_within_1e6(pipeline: Any, iris: tuple[np.ndarray, np.ndarray]) -> None:
    model = _load(pipeline)
    X = iris[0].astype(np.float32)
    np.testing.assert_allclose(model.predict_proba(X), pipeline.predict_proba(X), atol=1e-6)
    np.testing.assert_allclose(
        model.decision_function(X), pipeline.decision_function(X), rtol=1e-6, atol=1e-6
    )
    np.testing.assert_array_equal(model.predict(X), pipeline.predict(X))


@pytest.mark.parametrize("name", ["logreg", "pipeline", "scaler"])
def test_callers_array_is_never_modified(
    name: str, request: pytest.FixtureRequest, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    model = _load(request.getfixturevalue(name))
    methods = [m for m in (*CLASSIFIER_METHODS, "transform") if hasattr(model, m)]
    for X in (iris[0][:10].copy(), np.asfortranarray(iris[0][:10]), iris[0][:10].astype("f4")):
        X_nan = X.copy()
        X_nan[0, 0] = np.nan
        for given in (X, X_nan) if name == "scaler" else (X,):
            before = given.copy()
            for method in methods:
                getattr(model, method)(given)
            np.testing.assert_array_equal(given, before)
            assert given.flags.writeable


def test_text_model_input() -> None:
    from sklearn.feature_extraction.text import CountVectorizer

    docs = ["red apple", "green apple", "red car", "blue car", "green tree", "red tree"]
    pipe = make_pipeline(CountVectorizer(), LogisticRegression(max_iter=1000))
    pipe.fit(docs, [0, 0, 1, 1, 2, 2])
    model = _load(pipe)
    queries = ["a red car", "green apple tree", ""]
    np.testing.assert_array_equal(model.predict(queries), pipe.predict(queries))
    np.testing.assert_allclose(model.predict_proba(queries), pipe.predict_proba(queries), rtol=1e-9)
    with pytest.raises(InputTypeError, match="list of documents"):
        model.predict("a red car")  # a bare string is not a batch of documents
    with pytest.raises(InputShapeError, match="1-D sequence of documents"):
        model.predict(np.ones((2, 3)))
