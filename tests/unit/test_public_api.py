"""The public surface: ``modelshelf.__all__`` is exactly this list, every name resolves, the
package ships its type marker, and compile -> load -> predict works through it."""

from __future__ import annotations

import importlib.resources
import inspect

import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import modelshelf

PUBLIC = [
    "AccessDenied",
    "ArrayBoundsError",
    "ArrayTableError",
    "AsyncClient",
    "BadMagicError",
    "ChecksumError",
    "Client",
    "DaemonUnavailable",
    "FeatureCountError",
    "FeatureNamesError",
    "HeaderError",
    "Image",
    "ImageError",
    "InputError",
    "InputShapeError",
    "InputTypeError",
    "InvalidModelName",
    "ManifestError",
    "MissingDependencyError",
    "Model",
    "ModelNotFound",
    "ModelshelfError",
    "NonFiniteInputError",
    "ProtocolError",
    "ShelfBusy",
    "ShelfError",
    "StoreError",
    "TruncatedImageError",
    "UnknownCategoryError",
    "UnsupportedModelError",
    "UnsupportedVersionError",
    "UntrustedDaemon",
    "__version__",
    "compile",
    "compile_tensors",
    "get_threads",
    "load",
    "set_threads",
]


def test_all_is_exactly_the_public_surface() -> None:
    assert sorted(modelshelf.__all__) == modelshelf.__all__ == PUBLIC


def test_every_public_name_resolves() -> None:
    for name in PUBLIC:
        assert getattr(modelshelf, name, None) is not None, name
    namespace: dict[str, object] = {}
    exec("from modelshelf import *", namespace)
    assert set(PUBLIC) <= set(namespace)


def test_errors_form_one_tree() -> None:
    errors = [getattr(modelshelf, n) for n in PUBLIC if n.endswith("Error")]
    for cls in errors:
        assert issubclass(cls, modelshelf.ModelshelfError), cls
    for cls in (modelshelf.ImageError, modelshelf.InputError):
        assert issubclass(cls, ValueError)
    assert issubclass(modelshelf.UnsupportedModelError, TypeError)
    assert issubclass(modelshelf.MissingDependencyError, ImportError)


def test_signatures() -> None:
    compile_params = inspect.signature(modelshelf.compile).parameters
    assert list(compile_params) == ["estimator", "metadata"]
    assert compile_params["metadata"].kind is inspect.Parameter.KEYWORD_ONLY
    assert list(inspect.signature(modelshelf.load).parameters) == ["source", "verify"]
    assert list(inspect.signature(modelshelf.compile_tensors).parameters) == [
        "tensors",
        "metadata",
    ]


def test_py_typed_ships() -> None:
    marker = importlib.resources.files("modelshelf") / "py.typed"
    assert marker.is_file()


def test_version_is_a_string() -> None:
    assert isinstance(modelshelf.__version__, str) and modelshelf.__version__[0].isdigit()


def test_compile_load_predict_round_trip() -> None:
    X, y = load_iris(return_X_y=True)
    est = LogisticRegression(max_iter=1000).fit(X, y)
    image = modelshelf.compile(est, metadata={"name": "iris"})
    assert isinstance(image, bytes)
    model = modelshelf.load(image)
    assert isinstance(model, modelshelf.Model)
    np.testing.assert_array_equal(model.predict(X), est.predict(X))
    np.testing.assert_allclose(model.predict_proba(X), est.predict_proba(X), rtol=1e-9)
    assert model.metadata["name"] == "iris"


def test_compile_tensors_round_trip() -> None:
    weights = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(3)}
    model = modelshelf.load(modelshelf.compile_tensors(weights))
    assert model.kind == "tensors"
    np.testing.assert_array_equal(model.tensors["w"], weights["w"])
    assert model.tensors["w"].dtype == np.float32


def test_every_error_names_its_wire_code_and_the_client_maps_codes_back() -> None:
    from modelshelf import errors

    wire = {
        "not_found": errors.ModelNotFound,
        "access_denied": errors.AccessDenied,
        "invalid_name": errors.InvalidModelName,
        "bad_request": errors.ProtocolError,
        "store_unavailable": errors.StoreError,
        "image_error": errors.ImageError,
        "busy": errors.ShelfBusy,
    }
    for code, cls in wire.items():
        assert cls.code == code and errors.for_code(code) is cls
    assert errors.for_code("a-code-from-the-future") is errors.ShelfError
    assert errors.ChecksumError.code == "image_error"  # subclasses share their family's code
    own = {errors.DaemonUnavailable, errors.UntrustedDaemon}  # the client's own: never sent
    statuses = {cls.exit_status for cls in (*wire.values(), *own)}
    assert len(statuses) == 9  # distinct per kind, except bad_request with the generic 1
    assert {cls.code for cls in own}.isdisjoint(wire)
