"""compile(): the manifest it writes (input schema, metadata) and the errors it raises for
estimators it cannot compile."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import modelshelf
from modelshelf import MissingDependencyError, UnsupportedModelError
from modelshelf.image import Image


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    return X, y


def _manifest(est: Any, **kw: Any) -> dict[str, Any]:
    image = Image(modelshelf.compile(est, **kw))
    image.verify()
    return image.manifest


def test_input_schema(iris: tuple[np.ndarray, np.ndarray]) -> None:
    manifest = _manifest(LogisticRegression(max_iter=1000).fit(*iris))
    assert manifest["input"] == {"type": "numeric", "n_features": 4, "feature_names": None}


def test_feature_names_are_recorded(iris: tuple[np.ndarray, np.ndarray]) -> None:
    names = ["sepal length", "sepal width", "petal length", "petal width"]
    est = LogisticRegression(max_iter=1000).fit(*iris)
    # pandas is not installed: set the attribute as fitting on a DataFrame would.
    est.feature_names_in_ = np.array(names, dtype=object)
    assert _manifest(est)["input"]["feature_names"] == names


def test_pipeline_schema_comes_from_its_first_step(iris: tuple[np.ndarray, np.ndarray]) -> None:
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(*iris)
    pipe[0].feature_names_in_ = np.array(["a", "b", "c", "d"], dtype=object)
    manifest = _manifest(pipe)
    assert manifest["input"] == {"type": "numeric", "n_features": 4, "feature_names": list("abcd")}


def test_metadata(iris: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    import sklearn

    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    est = LogisticRegression(max_iter=1000).fit(*iris)
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    meta = _manifest(est, metadata={"name": "churn", "team": "growth"})["metadata"]
    after = dt.datetime.now(dt.UTC)
    assert meta["name"] == "churn"
    assert meta["extra"] == {"team": "growth"}
    assert meta["framework"] == "scikit-learn"
    assert meta["framework_version"] == sklearn.__version__
    assert meta["estimator"] == "sklearn.linear_model._logistic.LogisticRegression"
    assert meta["modelshelf_version"] == modelshelf.__version__
    assert meta["created"].endswith("Z")
    created = dt.datetime.fromisoformat(meta["created"].replace("Z", "+00:00"))
    assert before <= created <= after


def test_source_date_epoch_makes_compiling_reproducible(
    iris: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With $SOURCE_DATE_EPOCH, the same model compiles to the same bytes (publish relies on
    it to recognise a source published again: issue 12, point 5)."""
    est = LogisticRegression(max_iter=1000).fit(*iris)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    first = modelshelf.compile(est, metadata={"name": "x"})
    assert _manifest(est)["metadata"]["created"] == "2023-11-14T22:13:20Z"
    assert modelshelf.compile(est, metadata={"name": "x"}) == first


def test_default_name_is_the_estimator_class(iris: tuple[np.ndarray, np.ndarray]) -> None:
    est = StandardScaler().fit(iris[0])
    assert _manifest(est)["metadata"]["name"] == "StandardScaler"


@pytest.mark.parametrize("metadata", [{"epochs": 3}, {3: "x"}, {"name": None}])
def test_metadata_must_be_strings(metadata: Any, iris: tuple[np.ndarray, np.ndarray]) -> None:
    est = StandardScaler().fit(iris[0])
    with pytest.raises(TypeError, match="must be strings"):
        modelshelf.compile(est, metadata=metadata)


class Homemade(ClassifierMixin, BaseEstimator):
    def fit(self, X: Any, y: Any) -> Homemade:
        self.classes_ = np.unique(y)
        return self

    def predict(self, X: Any) -> Any:
        return np.zeros(len(X))


class MyLogisticRegression(LogisticRegression):
    """A subclass may override predict: it must not be compiled as its parent."""


def test_unknown_estimator_is_refused_pointing_to_the_supported_list(
    iris: tuple[np.ndarray, np.ndarray],
) -> None:
    est = Homemade().fit(*iris)
    with pytest.raises(UnsupportedModelError) as info:
        modelshelf.compile(est)
    message = str(info.value)
    assert "cannot compile" in message and "Homemade" in message
    assert "modelshelf.convert.supported_estimators()" in message and len(message) < 300
    supported = modelshelf.convert.supported_estimators()
    assert "sklearn.LogisticRegression" in supported
    assert not [name for name in supported if name.rsplit(".", 1)[-1].startswith("_")]


@pytest.mark.parametrize("refit", [True, False])
def test_a_search_compiles_through_its_best_estimator_or_says_how(
    iris: tuple[np.ndarray, np.ndarray], refit: bool
) -> None:
    from sklearn.model_selection import GridSearchCV

    search = GridSearchCV(LogisticRegression(max_iter=1000), {"C": [0.1, 1.0]}, refit=refit)
    with pytest.raises(UnsupportedModelError, match=r"GridSearchCV is not fitted"):
        modelshelf.compile(search)
    search.fit(*iris)
    if refit:  # the model it found is what predicts
        model = modelshelf.load(modelshelf.compile(search))
        np.testing.assert_array_equal(model.predict(iris[0]), search.predict(iris[0]))
    else:
        with pytest.raises(UnsupportedModelError, match=r"best_estimator_"):
            modelshelf.compile(search)


def test_subclasses_are_not_compiled_as_their_parent(iris: tuple[np.ndarray, np.ndarray]) -> None:
    est = MyLogisticRegression(max_iter=1000).fit(*iris)
    with pytest.raises(UnsupportedModelError, match="MyLogisticRegression"):
        modelshelf.compile(est)


def test_unfitted_estimator_is_refused() -> None:
    with pytest.raises(UnsupportedModelError, match=r"not fitted; call fit\(\)"):
        modelshelf.compile(LogisticRegression())
    with pytest.raises(UnsupportedModelError, match="not fitted"):
        modelshelf.compile(make_pipeline(StandardScaler(), LogisticRegression()))


def test_unsupported_model_error_is_also_a_type_error() -> None:
    with pytest.raises(TypeError):
        modelshelf.compile(object())


def test_missing_convert_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if scikit-learn were absent: importing modelshelf.convert fails.
    monkeypatch.delattr(modelshelf, "convert", raising=False)
    monkeypatch.setitem(sys.modules, "modelshelf.convert", None)
    with pytest.raises(MissingDependencyError, match=r"modelshelf\[convert\]"):
        modelshelf.compile(StandardScaler())
    with pytest.raises(ImportError):
        modelshelf.compile_tensors({"w": np.ones(2)})


def test_text_models_take_documents() -> None:
    from sklearn.feature_extraction.text import CountVectorizer

    docs = ["red apple", "green apple", "red car", "blue car", "green tree", "red tree"]
    labels = [0, 0, 1, 1, 2, 2]
    pipe = make_pipeline(CountVectorizer(), LogisticRegression(max_iter=1000)).fit(docs, labels)
    manifest = _manifest(pipe)
    assert manifest["input"]["type"] == "text"
    assert manifest["input"]["n_features"] is None


def test_an_image_the_runtime_would_refuse_is_refused_at_compile(
    iris: tuple[np.ndarray, np.ndarray],
) -> None:
    """The image is loaded once before it is handed out: an estimator whose state the runtime
    cannot take (here: tampered into one class) fails at compile, with the runtime's reason,
    never at a user's first load."""
    X, y = iris
    est = LogisticRegression(max_iter=500).fit(X, y)
    est.classes_ = est.classes_[:1]
    with pytest.raises(UnsupportedModelError) as refused:
        modelshelf.compile(est)
    message = str(refused.value)
    assert "LogisticRegression: the image built for it would not load" in message
    assert "needs 2 classes or more" in message
