"""The Open Inference Protocol (KServe v2 REST) against a real daemon on loopback, with real
clients: ``tritonclient.http`` (the protocol's reference client) with binary tensors on and off,
the protocol's generated OpenAPI client, and raw HTTP for hostile requests. scikit-learn is the
oracle of the numbers; the protocol's message schemas (``_oip_schema.py``, or the protocol's own
OpenAPI document when ``MODELSHELF_OIP_OPENAPI`` names a copy) the oracle of the JSON shapes."""

from __future__ import annotations

import http.client
import json
import os
import socket
import struct
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as tritonclient  # the dev extra's: a missing one fails, never skips
import yaml
from tritonclient.utils import InferenceServerException

import modelshelf
from modelshelf.store import Store

from ._oip_schema import SCHEMAS
from .conftest import Daemon, Shelf, wait_for

_DOCUMENT = os.environ.get("MODELSHELF_OIP_OPENAPI")
SPEC: dict[str, Any] = (
    yaml.safe_load(Path(_DOCUMENT).read_text())
    if _DOCUMENT
    else {"components": {"schemas": SCHEMAS}}
)
RTOL, ATOL = 1e-9, 1e-12  # against scikit-learn (tests/cases/_case.py)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- models -----------------------------------------------------------------------------------


@dataclass
class Models:
    estimators: dict[str, Any]
    images: dict[str, bytes]
    X: np.ndarray  # iris rows
    docs: list[str]
    frame: Any  # a DataFrame with a string column


def _models() -> Models:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_iris
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    docs = ["the cat sat", "a dog barked", "cats and dogs", "the dog sat", "a cat purred"] * 4
    labels = [0, 1, 1, 1, 0] * 4
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "color": rng.choice(["red", "green", "blue"], 60),
            "size": rng.uniform(0, 10, 60),
        }
    )
    target = (frame["color"] == "red") ^ (frame["size"] > 5)
    estimators = {
        "iris": LogisticRegression(max_iter=500).fit(X, y),
        "named": LogisticRegression(max_iter=500).fit(X, names),
        "ridge": Ridge().fit(X[:, 1:], X[:, 0]),
        "text": make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(docs, labels),
        "table": make_pipeline(
            ColumnTransformer([("onehot", OneHotEncoder(), ["color"])], remainder="passthrough"),
            LogisticRegression(),
        ).fit(frame, target),
    }
    import lightgbm

    # a booster fitted on a pandas category column: the image recodes categories by its tables
    categorical = frame.assign(color=frame["color"].astype("category"))
    estimators["booster"] = lightgbm.LGBMClassifier(n_estimators=8, verbose=-1).fit(
        categorical, target
    )
    import catboost

    # CatBoost with a categorical feature: its image hashes strings as CatBoost does
    estimators["catboost"] = catboost.CatBoostClassifier(
        iterations=20, depth=3, cat_features=["color"], allow_writing_files=False, verbose=0
    ).fit(frame, target)
    from sklearn.preprocessing import StandardScaler

    # a scaler fitted on a DataFrame: float32 columns keep their dtype through it
    estimators["scaler"] = StandardScaler().fit(pd.DataFrame({"a": X[:, 0], "b": X[:, 1]}))
    images = {name: modelshelf.compile(est) for name, est in estimators.items()}
    return Models(estimators, images, X, docs, frame)


@pytest.fixture(scope="module")
def models() -> Models:
    return _models()


@dataclass
class Server:
    daemon: Daemon
    port: int
    url: str
    clients: list[Any] = field(default_factory=list)

    def client(self) -> Any:
        client = tritonclient.InferenceServerClient(f"127.0.0.1:{self.port}", network_timeout=30)
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()

    def raw(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(
            self.url + path, data=body, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, dict(exc.headers), exc.read()

    def json(self, method: str, path: str, value: Any = None) -> tuple[int, Any]:
        body = None if value is None else json.dumps(value).encode()
        status, _, data = self.raw(method, path, body, {"Content-Type": "application/json"})
        return status, json.loads(data)


def _serve(shelf: Shelf, models: Models | None, **config: Any) -> Server:
    port = _free_port()
    daemon = shelf.make(http=f"127.0.0.1:{port}", log_level="INFO", **config)
    if models is not None:
        store = Store(shelf.store)
        for name, image in models.images.items():
            store.publish("acme", name, image)
    return Server(daemon, port, f"http://127.0.0.1:{port}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models: Models) -> Iterator[Server]:
    shelf = Shelf(tmp_path_factory.mktemp("oip"))
    served = None
    try:
        served = _serve(shelf, models, http_admin=True)
        yield served
    finally:
        if served is not None:
            served.close()
        shelf.close()
        if served is not None:  # refusals are one line each, never a traceback
            assert "Traceback" not in served.daemon.logs()


def _schema(name: str) -> Any:
    """A validator of one of the OpenAPI document's component schemas."""
    from openapi_schema_validator import OAS30Validator

    schema = {"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]}
    return OAS30Validator(schema)


def _valid(name: str, value: Any) -> None:
    _schema(name).validate(value)


def _valid_binary_response(value: dict[str, Any]) -> None:
    """An inference response's JSON part under the binary extension: the document's schema,
    except that an output sent binary has ``parameters.binary_data_size`` instead of ``data``
    (the extension's rule, which the document does not know)."""
    from openapi_schema_validator import OAS30Validator

    components = json.loads(json.dumps(SPEC["components"]))
    components["schemas"]["response_output"]["required"].remove("data")
    schema = {"$ref": "#/components/schemas/inference_response", "components": components}
    OAS30Validator(schema).validate(value)
    for output in value["outputs"]:
        size = output.get("parameters", {}).get("binary_data_size")
        assert ("data" in output) != isinstance(size, int), output


# -- health and metadata ----------------------------------------------------------------------


def test_the_schemas_are_a_valid_openapi_document() -> None:
    from openapi_spec_validator import validate

    document = {"openapi": "3.0.0", "info": {"title": "oip", "version": "2"}, "paths": {}}
    validate({**document, **SPEC} if not _DOCUMENT else SPEC)


def test_server_health_and_metadata(server: Server) -> None:
    client = server.client()
    assert client.is_server_live()
    assert client.is_server_ready()
    meta = client.get_server_metadata()
    _valid("metadata_server_response", meta)
    assert meta["name"] == "modelshelfd"
    assert meta["version"] == modelshelf.__version__
    assert {"model_repository", "binary_tensor_data"} <= set(meta["extensions"])
    assert server.json("GET", "/v2/health/ready") == (200, {"live": True, "ready": True})
    # the schema validator can fail: a response without extensions is refused
    with pytest.raises(Exception, match="extensions"):
        _valid("metadata_server_response", {"name": "x", "version": "1"})


def test_model_metadata_and_readiness(server: Server, models: Models) -> None:
    client = server.client()
    assert client.is_model_ready("acme:iris")
    assert client.is_model_ready("acme:iris", "1")
    assert not client.is_model_ready("acme:nothing")
    meta = client.get_model_metadata("acme:iris")
    _valid("metadata_model_response", meta)
    assert meta["name"] == "acme:iris"
    assert meta["versions"] == ["1"]
    assert meta["platform"] == "modelshelf"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}]
    outputs = {o["name"]: o for o in meta["outputs"]}
    assert outputs["predict"] == {"name": "predict", "datatype": "INT64", "shape": [-1]}
    assert outputs["predict_proba"]["shape"] == [-1, 3]
    assert set(outputs) == {"predict", "predict_proba", "predict_log_proba", "decision_function"}
    named = client.get_model_metadata("acme:named", "1")
    assert {o["name"]: o["datatype"] for o in named["outputs"]}["predict"] == "BYTES"
    ridge = client.get_model_metadata("acme:ridge")
    assert [o["name"] for o in ridge["outputs"]] == ["predict"]
    table = client.get_model_metadata("acme:table")
    assert table["inputs"] == [
        {"name": "color", "datatype": "BYTES", "shape": [-1]},
        {"name": "size", "datatype": "FP64", "shape": [-1]},
    ]
    text = client.get_model_metadata("acme:text")
    assert text["inputs"] == [{"name": "input", "datatype": "BYTES", "shape": [-1]}]
    with pytest.raises(InferenceServerException, match="no model acme/nothing"):
        client.get_model_metadata("acme:nothing")
    status, body = server.json("GET", "/v2/models/acme:nothing")
    assert status == 404 and set(body) == {"error"}
    _valid("metadata_model_error_response", body)


# -- inference --------------------------------------------------------------------------------


def _infer(
    server: Server,
    model: str,
    inputs: list[tuple[str, np.ndarray, str]],
    outputs: list[str],
    *,
    binary_in: bool,
    binary_out: bool,
) -> Any:
    client = server.client()
    tensors = []
    for name, array, datatype in inputs:
        tensor = tritonclient.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary_in)
        tensors.append(tensor)
    wanted = [tritonclient.InferRequestedOutput(n, binary_data=binary_out) for n in outputs]
    return client.infer(model, tensors, outputs=wanted, request_id="req-7")


BINARY = [(True, True), (True, False), (False, True), (False, False)]


@pytest.mark.parametrize(("binary_in", "binary_out"), BINARY)
def test_a_classifier_is_exact(
    server: Server, models: Models, binary_in: bool, binary_out: bool
) -> None:
    est, X = models.estimators["iris"], models.X
    local = modelshelf.load(models.images["iris"])
    result = _infer(
        server, "acme:iris", [("input", X, "FP64")], ["predict", "predict_proba"],
        binary_in=binary_in, binary_out=binary_out,
    )  # fmt: skip
    response = result.get_response()
    assert response["model_name"] == "acme:iris"
    assert response["model_version"] == "1"
    assert response["id"] == "req-7"
    if binary_out:
        _valid_binary_response(response)
        with pytest.raises(Exception, match="'data' is a required property"):
            _valid("inference_response", response)  # the document alone refuses it
    else:
        _valid("inference_response", response)
    np.testing.assert_array_equal(result.as_numpy("predict"), est.predict(X))
    proba = result.as_numpy("predict_proba")
    assert proba.dtype == np.float64 and proba.shape == (len(X), 3)
    np.testing.assert_array_equal(proba, local.predict_proba(X))  # bit for bit: no rounding
    np.testing.assert_allclose(proba, est.predict_proba(X), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(("binary_in", "binary_out"), BINARY)
def test_string_labels_come_back_as_bytes(
    server: Server, models: Models, binary_in: bool, binary_out: bool
) -> None:
    est, X = models.estimators["named"], models.X[::7]
    result = _infer(
        server, "acme:named", [("input", X.astype(np.float32), "FP32")], ["predict"],
        binary_in=binary_in, binary_out=binary_out,
    )  # fmt: skip
    got = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict")]
    assert got == list(est.predict(X.astype(np.float32)))


@pytest.mark.parametrize("binary", [True, False])
def test_a_regressor_is_exact(server: Server, models: Models, binary: bool) -> None:
    est, X = models.estimators["ridge"], models.X[:, 1:]
    result = _infer(
        server, "acme:ridge", [("input", X, "FP64")], ["predict"],
        binary_in=binary, binary_out=binary,
    )  # fmt: skip
    np.testing.assert_allclose(result.as_numpy("predict"), est.predict(X), rtol=RTOL, atol=ATOL)
    # the default output, and an integer input the model reads as numbers
    client = server.client()
    ints = np.rint(X).astype(np.int32)
    tensor = tritonclient.InferInput("anything", list(ints.shape), "INT32")
    tensor.set_data_from_numpy(ints, binary_data=binary)
    default = client.infer("acme:ridge", [tensor])
    assert [o["name"] for o in default.get_response()["outputs"]] == ["predict"]
    np.testing.assert_allclose(default.as_numpy("predict"), est.predict(ints), rtol=RTOL)


@pytest.mark.parametrize("binary", [True, False])
def test_a_text_model_takes_bytes(server: Server, models: Models, binary: bool) -> None:
    est = models.estimators["text"]
    docs = ["a cat sat", "dogs barked", "ünïcode cat"]
    array = np.array([d.encode() for d in docs], dtype=np.object_)
    result = _infer(
        server, "acme:text", [("input", array, "BYTES")], ["predict", "predict_proba"],
        binary_in=binary, binary_out=binary,
    )  # fmt: skip
    np.testing.assert_array_equal(result.as_numpy("predict"), est.predict(docs))
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), est.predict_proba(docs), rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("binary", [True, False])
def test_a_table_takes_one_input_per_column(server: Server, models: Models, binary: bool) -> None:
    est, frame = models.estimators["table"], models.frame
    colors = np.array([c.encode() for c in frame["color"]], dtype=np.object_)
    sizes = frame["size"].to_numpy()
    result = _infer(
        server, "acme:table", [("size", sizes, "FP64"), ("color", colors, "BYTES")],
        ["predict", "predict_proba"], binary_in=binary, binary_out=binary,
    )  # fmt: skip
    np.testing.assert_array_equal(result.as_numpy("predict"), est.predict(frame))
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), est.predict_proba(frame), rtol=RTOL, atol=ATOL
    )


def test_float32_columns_one_per_tensor_stay_float32(server: Server, models: Models) -> None:
    """A probe: per-feature FP32 tensors were widened to float64 (the scaler answered FP64,
    2.5e-7 from scikit-learn's float32 answer); one [rows, 2] FP32 tensor was exact."""
    import pandas as pd

    est = models.estimators["scaler"]
    a, b = (models.X[:, j].astype(np.float32) for j in (0, 1))
    result = _infer(
        server, "acme:scaler", [("a", a, "FP32"), ("b", b, "FP32")], ["transform"],
        binary_in=True, binary_out=True,
    )  # fmt: skip
    expected = est.transform(pd.DataFrame({"a": a, "b": b}))
    got = result.as_numpy("transform")
    assert got.dtype == expected.dtype == np.float32 and np.array_equal(got, expected)


@pytest.mark.parametrize("binary", [True, False])
def test_a_booster_with_category_columns(server: Server, models: Models, binary: bool) -> None:
    est = models.estimators["booster"]
    frame = models.frame[::-1]  # another order of rows, so another order of categories seen
    meta = server.client().get_model_metadata("acme:booster")
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {"color": "BYTES", "size": "FP64"}
    colors = np.array([c.encode() for c in frame["color"]], dtype=np.object_)
    result = _infer(
        server, "acme:booster",
        [("color", colors, "BYTES"), ("size", frame["size"].to_numpy(), "FP64")],
        ["predict_proba"], binary_in=binary, binary_out=binary,
    )  # fmt: skip
    expected = est.predict_proba(frame.assign(color=frame["color"].astype("category")))
    np.testing.assert_allclose(result.as_numpy("predict_proba"), expected, rtol=RTOL, atol=ATOL)


def test_catboost_with_a_categorical_feature(server: Server, models: Models) -> None:
    est = models.estimators["catboost"]
    frame = models.frame.copy()
    frame.loc[:4, "color"] = "purple"  # a category CatBoost never saw
    meta = server.client().get_model_metadata("acme:catboost")
    assert meta["inputs"] == [
        {"name": "color", "datatype": "BYTES", "shape": [-1]},
        {"name": "size", "datatype": "FP64", "shape": [-1]},
    ]
    colors = np.array([c.encode() for c in frame["color"]], dtype=np.object_)
    result = _infer(
        server, "acme:catboost",
        [("size", frame["size"].to_numpy(), "FP64"), ("color", colors, "BYTES")],
        ["predict", "predict_proba"], binary_in=True, binary_out=False,
    )  # fmt: skip
    np.testing.assert_array_equal(result.as_numpy("predict"), est.predict(frame))
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), est.predict_proba(frame), rtol=RTOL, atol=ATOL
    )


def test_json_requests_nested_and_flat(server: Server, models: Models) -> None:
    est, X = models.estimators["iris"], models.X[:3]
    for data in (X.tolist(), X.reshape(-1).tolist()):
        request = {
            "id": "n1",
            "inputs": [{"name": "input", "shape": [3, 4], "datatype": "FP64", "data": data}],
            "outputs": [{"name": "predict_proba"}],
        }
        _valid("inference_request", request)
        status, body = server.json("POST", "/v2/models/acme:iris/versions/1/infer", request)
        assert status == 200, body
        _valid("inference_response", body)
        assert body["id"] == "n1"
        [out] = body["outputs"]
        assert out["shape"] == [3, 3] and out["datatype"] == "FP64"
        np.testing.assert_allclose(
            np.reshape(out["data"], (3, 3)), est.predict_proba(X), rtol=RTOL, atol=ATOL
        )


def test_the_generated_openapi_client_round_trip(server: Server, models: Models) -> None:
    import httpx
    from open_inference.openapi.client import InferenceRequest, OpenInferenceClient

    with httpx.Client() as http:
        client = OpenInferenceClient(base_url=server.url, httpx_client=http)
        assert client.read_server_metadata().name == "modelshelfd"
        X = models.X[:4]
        request = InferenceRequest.parse_obj(
            {"inputs": [{"name": "input", "shape": [4, 4], "datatype": "FP64", "data": X.tolist()}]}
        )
        response = json.loads(client.model_infer("acme:iris", request=request).json())
    assert response["model_name"] == "acme:iris"
    [out] = response["outputs"]
    assert out["name"] == "predict"
    # the generated client reads every number as a float
    assert out["data"] == [float(v) for v in models.estimators["iris"].predict(X)]


# -- errors -----------------------------------------------------------------------------------


def _tensor(shape: list[int], datatype: str, data: Any, **params: Any) -> dict[str, Any]:
    out = {"name": "input", "shape": shape, "datatype": datatype, "data": data}
    if params:
        out["parameters"] = params
        del out["data"]
    return out


def _binary(server: Server, head: dict[str, Any], raw: bytes) -> tuple[int, Any]:
    text = json.dumps(head).encode()
    status, _, data = server.raw(
        "POST", "/v2/models/acme:iris/infer", text + raw,
        {"Inference-Header-Content-Length": str(len(text)),
         "Content-Type": "application/octet-stream"},
    )  # fmt: skip
    return status, json.loads(data)


HOSTILE_JSON = {
    "shape vs data": ({"inputs": [_tensor([2, 4], "FP64", [1.0] * 7)]}, "holds 8 elements"),
    "bad datatype": ({"inputs": [_tensor([1, 4], "FP128", [1.0] * 4)]}, "datatype must be"),
    "strings as FP64": ({"inputs": [_tensor([1, 4], "FP64", ["a"] * 4)]}, "must be numbers"),
    "negative dim": ({"inputs": [_tensor([-1, 4], "FP64", [])]}, "integers >= 0"),
    "huge shape": (
        {"inputs": [_tensor([1 << 20, 1 << 20], "FP64", [])]},
        "more than",
    ),
    "no inputs": ({"inputs": []}, "inputs must be a list"),
    "unknown output": (
        {"inputs": [_tensor([1, 4], "FP64", [1.0] * 4)], "outputs": [{"name": "transform"}]},
        "no output 'transform'",
    ),
    "wrong features": ({"inputs": [_tensor([2, 3], "FP64", [1.0] * 6)]}, "4 features"),
    "int overflow": ({"inputs": [_tensor([1, 4], "UINT8", [300] * 4)]}, "does not fit"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_JSON))
def test_hostile_json_requests_are_refused_with_the_reason(server: Server, case: str) -> None:
    request, reason = HOSTILE_JSON[case]
    status, body = server.json("POST", "/v2/models/acme:iris/infer", request)
    assert status == 400, body
    assert set(body) == {"error"} and reason in body["error"], body
    _valid("inference_error_response", body)


def test_hostile_binary_requests_are_refused_with_the_reason(server: Server) -> None:
    row = np.ones(4).tobytes()
    cases = [
        # declared size over what the body holds
        (_tensor([1, 4], "FP64", None, binary_data_size=1 << 40), row, "bytes of binary data"),
        # shape x itemsize against the bytes given
        (_tensor([2, 4], "FP64", None, binary_data_size=32), row, "takes 64 bytes"),
        # bytes left over after the inputs
        (_tensor([1, 4], "FP64", None, binary_data_size=32), row + b"x", "after the inputs"),
        # a BYTES element longer than what is left
        (
            _tensor([1], "BYTES", None, binary_data_size=8),
            struct.pack("<I", 1 << 31) + b"abcd",
            "declares 2147483648 bytes",
        ),
    ]
    for tensor, raw, reason in cases:
        status, body = _binary(server, {"inputs": [tensor]}, raw)
        assert status == 400 and reason in body["error"], body
    # the header says more than the body holds
    status, _, data = server.raw(
        "POST", "/v2/models/acme:iris/infer", b"{}", {"Inference-Header-Content-Length": "99"}
    )
    assert status == 400 and "only 2 bytes" in json.loads(data)["error"]


def test_malformed_unknown_and_misnamed(server: Server) -> None:
    for body in (b"{not json", b"[1, 2]", b'{"inputs": [NaN]}', b"[" * 100_000):
        status, _, data = server.raw("POST", "/v2/models/acme:iris/infer", body)
        assert status == 400, data
        assert set(json.loads(data)) == {"error"}
    # JSON costs tens of bytes per number once parsed: large tensors must come as binary
    status, _, data = server.raw(
        "POST", "/v2/models/acme:iris/infer", b'{"inputs": [' + b" " * (16 << 20) + b"]}"
    )
    assert status == 413 and "as binary data" in json.loads(data)["error"]
    request = {"inputs": [_tensor([1, 4], "FP64", [1.0] * 4)]}
    assert server.json("POST", "/v2/models/acme:nothing/infer", request)[0] == 404
    assert server.json("POST", "/v2/models/acme:iris/versions/9/infer", request)[0] == 404
    status, body = server.json("POST", "/v2/models/acme%2Firis/infer", request)
    assert status == 400 and "namespace:name" in body["error"]
    # the shelf's own ns/name spelling: a bare "Not Found" before, now it says how to name it
    for method, path in (("POST", "/v2/models/acme/iris/infer"), ("GET", "/v2/models/acme/iris")):
        status, body = server.json(method, path, request if method == "POST" else None)
        assert status == 404 and "named namespace:name here" in body["error"], body
        assert path.replace("acme/iris", "acme:iris") in body["error"]
    status, body = server.json("GET", "/v2/models/acme:iris/nothing")
    assert status == 404 and "namespace:name" not in body["error"]
    status, body = server.json("GET", "/v2/no/such/route")
    assert status == 404 and set(body) == {"error"}
    status, body = server.json("DELETE", "/v2/models/acme:iris")
    assert status == 405 and set(body) == {"error"}


# -- repository -------------------------------------------------------------------------------


def test_repository_index_load_and_unload(server: Server) -> None:
    client = server.client()
    client.unload_model("acme:ridge")  # whatever earlier tests placed
    index = {row["name"]: row for row in client.get_model_repository_index()}
    assert set(index) >= {"acme:iris", "acme:ridge", "acme:text", "acme:table"}
    assert index["acme:ridge"]["state"] == "UNAVAILABLE"
    assert index["acme:ridge"]["version"] == "1"
    client.load_model("acme:ridge")
    index = {row["name"]: row for row in client.get_model_repository_index()}
    assert index["acme:ridge"]["state"] == "READY"
    ls = server.daemon.admin("ls")["models"]
    assert [row["pinned"] for row in ls if row["models"] == ["acme/ridge@1"]] == [True]
    status, ready = server.json("POST", "/v2/repository/index", {"ready": True})
    assert status == 200 and "acme:ridge" in {row["name"] for row in ready}
    client.unload_model("acme:ridge")
    index = {row["name"]: row for row in client.get_model_repository_index()}
    assert index["acme:ridge"]["state"] == "UNAVAILABLE"
    with pytest.raises(InferenceServerException, match="no model acme/nothing"):
        client.load_model("acme:nothing")
    logs = server.daemon.logs()
    assert "http load 'acme:ridge' by 127.0.0.1: ok" in logs
    assert "http unload 'acme:ridge' by 127.0.0.1: ok" in logs


def test_leases_are_released_after_inference(server: Server, models: Models) -> None:
    _infer(
        server, "acme:iris", [("input", models.X, "FP64")], ["predict"],
        binary_in=True, binary_out=True,
    )  # fmt: skip
    assert server.daemon.admin("status")["leases"] == 0


# -- a daemon of its own: limits, admin off, metrics from start ------------------------------


def test_limits_admin_off_and_metrics_from_the_start(shelf: Shelf, models: Models) -> None:
    server = _serve(shelf, None, http_max_body="4K", http_infer_threads=1, http_infer_queue=1)
    # every series exists before anything happened
    status, _, data = server.raw("GET", "/metrics")
    text = data.decode()
    for tier in ("l1", "l2", "l3"):
        assert f'modelshelf_acquire_seconds_count{{tier="{tier}"}} 0.0' in text
    for tier in ("l2", "l3"):
        assert f'modelshelf_fetch_seconds_count{{tier="{tier}"}} 0.0' in text
    for outcome in ("ok", "bad_request", "not_found", "queue_full", "too_large", "timeout"):
        assert f'modelshelf_http_infer_requests_total{{outcome="{outcome}"}} 0.0' in text
    assert 'modelshelf_http_v2_refused_total{outcome="access_denied"} 0.0' in text
    assert "modelshelf_http_infer_seconds_count 0.0" in text
    assert 'modelshelf_events_total{event="http_infer_queue_full"} 0.0' in text

    Store(shelf.store).publish("acme", "iris", models.images["iris"])
    big = {"inputs": [_tensor([500, 4], "FP64", [1.0] * 2000)]}  # 10 KB
    status, body = server.json("POST", "/v2/models/acme:iris/infer", big)
    assert status == 413 and "http_max_body" in body["error"], body
    # the same body chunked, without a Content-Length to refuse it by
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        data = json.dumps(big).encode()
        chunks = (data[i : i + 1000] for i in range(0, len(data), 1000))
        conn.request("POST", "/v2/models/acme:iris/infer", body=chunks, encode_chunked=True)
        answer = conn.getresponse()
        assert answer.status == 413 and "http_max_body" in json.loads(answer.read())["error"]
    finally:
        conn.close()
    status, body = server.json("POST", "/v2/repository/models/acme:iris/load")
    assert status == 403 and "http_admin = true" in body["error"], body
    assert "http load 'acme:iris' by 127.0.0.1: refused [access_denied]" in server.daemon.logs()
    status, body = server.json("POST", "/v2/repository/models/acme:iris/unload")
    assert status == 403
    small = {"inputs": [_tensor([1, 4], "FP64", [5.0, 3.0, 1.5, 0.2])]}
    status, body = server.json("POST", "/v2/models/acme:iris/infer", small)
    assert status == 200 and body["outputs"][0]["data"] == [0], body

    _, _, data = server.raw("GET", "/metrics")
    text = data.decode()
    assert 'modelshelf_http_infer_requests_total{outcome="ok"} 1.0' in text
    assert 'modelshelf_http_infer_requests_total{outcome="too_large"} 2.0' in text
    assert "modelshelf_http_infer_seconds_count 3.0" in text
    assert 'modelshelf_fetch_seconds_count{tier="l3"} 1.0' in text
    assert 'modelshelf_acquire_seconds_count{tier="l3"} 1.0' in text
    assert 'modelshelf_http_v2_refused_total{outcome="access_denied"} 2.0' in text
    # a socket client's acquire is observed too, whichever path serves it
    server.daemon.client().model("acme/iris")
    text = server.raw("GET", "/metrics")[2].decode()
    counts = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("modelshelf_acquire_seconds_count")
    ]
    assert sum(counts) == 2.0, counts


def test_a_full_inference_queue_answers_503(shelf: Shelf, models: Models) -> None:
    server = _serve(shelf, None, http_infer_threads=1, http_infer_queue=1)
    Store(shelf.store).publish("acme", "iris", models.images["iris"])
    rows = np.tile(models.X, (2000, 1))  # 300k rows: long enough to overlap
    head = json.dumps(
        {"inputs": [_tensor(list(rows.shape), "FP64", None, binary_data_size=rows.nbytes)],
         "outputs": [{"name": "predict_proba", "parameters": {"binary_data": True}}]}
    ).encode()  # fmt: skip
    body = head + rows.tobytes()
    headers = {"Inference-Header-Content-Length": str(len(head))}
    statuses: list[tuple[int, bytes]] = []
    start = threading.Barrier(6)

    def post() -> None:
        start.wait()
        status, _, data = server.raw("POST", "/v2/models/acme:iris/infer", body, headers)
        statuses.append((status, data))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(code for code, _ in statuses)
    assert codes[0] == 200 and codes[-1] == 503, codes
    refused = [json.loads(data) for code, data in statuses if code == 503]
    assert all("http_infer_queue" in r["error"] for r in refused), refused
    assert server.daemon.stats()["http_infer_queue_full"] == len(refused)
    assert server.daemon.admin("status")["leases"] == 0


def test_http_serves_only_the_namespaces_it_is_given(shelf: Shelf, models: Models) -> None:
    server = _serve(shelf, None, http_namespaces=["team-*"])
    store = Store(shelf.store)
    store.publish("acme", "iris", models.images["iris"])
    store.publish("team-a", "iris", models.images["iris"])
    request = {"inputs": [_tensor([1, 4], "FP64", [5.0, 3.0, 1.5, 0.2])]}
    status, body = server.json("POST", "/v2/models/acme:iris/infer", request)
    assert status == 403 and "http_namespaces" in body["error"], body
    assert server.json("GET", "/v2/models/acme:iris")[0] == 403
    status, body = server.json("POST", "/v2/models/team-a:iris/infer", request)
    assert status == 200, body
    server.daemon.admin("names")  # the catalog has listed both
    status, index = server.json("POST", "/v2/repository/index")
    assert status == 200 and [row["name"] for row in index] == ["team-a:iris"], index


def test_where_namespaces_restrict_the_socket_http_serves_only_what_is_listed(
    shelf: Shelf, models: Models
) -> None:
    """HTTP has no peer uid: with a namespaces table and http_namespaces left out, every local
    user listed and ran every tenant's model over loopback, the socket's rules notwithstanding
    (a probe, as real users). It serves none now and says so at start; ['*'] is a warning."""
    import os

    rules = {"acme": {"uids": [os.getuid()]}}
    server = _serve(shelf, None, namespaces=rules)
    Store(shelf.store).publish("acme", "iris", models.images["iris"])
    request = {"inputs": [_tensor([1, 4], "FP64", [5.0, 3.0, 1.5, 0.2])]}
    status, body = server.json("POST", "/v2/models/acme:iris/infer", request)
    assert status == 403 and "http_namespaces" in body["error"], body
    assert server.json("POST", "/v2/repository/index") == (200, [])
    assert "HTTP inference serves no namespace" in server.daemon.logs()
    opened = _serve(shelf, None, name="b", namespaces=rules, http_namespaces=["*"])
    assert opened.json("POST", "/v2/models/acme:iris/infer", request)[0] == 200
    assert "HTTP serves every namespace to whoever reaches it" in opened.daemon.logs()


def test_sighup_changes_what_http_serves_in_place(shelf: Shelf, models: Models) -> None:
    """http_namespaces, http_admin and http_infer_queue are read per request: a reload applies
    them to the running endpoint (revoking a namespace must not wait for a restart); a change
    that needs a restart (the store here) applies nothing, these included."""
    import signal
    import tomllib

    from .conftest import write_config

    server = _serve(shelf, None, http_namespaces=["team-*"])
    Store(shelf.store).publish("acme", "iris", models.images["iris"])
    daemon, proc = server.daemon, server.daemon.proc
    assert proc is not None
    values = tomllib.loads(daemon.config_path.read_text())
    request = {"inputs": [_tensor([1, 4], "FP64", [5.0, 3.0, 1.5, 0.2])]}

    def hup(changes: dict[str, Any], expect: str) -> None:
        before = daemon.logs().count(expect)
        write_config(daemon.config_path, {**values, **changes})
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: daemon.logs().count(expect) > before, what=expect)

    assert server.json("POST", "/v2/models/acme:iris/infer", request)[0] == 403
    assert server.json("POST", "/v2/repository/models/acme:iris/load")[0] == 403
    opened = {"http_namespaces": ["acme"], "http_admin": True, "http_infer_queue": 7}
    hup(opened, "configuration reloaded: http_admin, http_infer_queue, http_namespaces")
    status, body = server.json("POST", "/v2/models/acme:iris/infer", request)
    assert status == 200 and body["outputs"][0]["data"] == [0], body
    assert server.json("POST", "/v2/repository/models/acme:iris/load")[0] == 200
    assert server.json("POST", "/v2/repository/models/acme:iris/unload")[0] == 200
    # revoked again: refused at once, the connection and the process unchanged
    hup(
        {"http_namespaces": ["team-*"]},
        "configuration reloaded: http_admin, http_infer_queue, http_namespaces",
    )
    status, body = server.json("POST", "/v2/models/acme:iris/infer", request)
    assert status == 403 and "http_namespaces" in body["error"], body
    hup(
        {"http_namespaces": ["acme"], "store": (shelf.tmp / "elsewhere").as_uri()},
        "store change only with a restart",
    )
    assert server.json("POST", "/v2/models/acme:iris/infer", request)[0] == 403  # as before
    assert proc.poll() is None


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_sighup_moves_the_http_endpoint_and_changes_its_limits_without_refusing_a_request(
    shelf: Shelf, models: Models
) -> None:
    """http, http_max_body and http_infer_threads build a new endpoint: on the same address
    its listening socket is handed over (requests arriving meanwhile are all answered), on a
    new one it is bound first (an address that cannot be bound applies nothing, the old
    endpoint serves on); the old endpoint stops, and /metrics still says each metric once."""
    import signal
    import tomllib

    from .conftest import write_config

    server = _serve(shelf, None, http_max_body=2048, http_infer_threads=1)
    Store(shelf.store).publish("acme", "iris", models.images["iris"])
    daemon, proc = server.daemon, server.daemon.proc
    assert proc is not None
    values = tomllib.loads(daemon.config_path.read_text())

    def hup(changes: dict[str, Any], expect: str) -> None:
        values.update(changes)
        before = daemon.logs().count(expect)
        write_config(daemon.config_path, values)
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: daemon.logs().count(expect) > before, what=expect)

    rows = 150  # a JSON body of about 3 KB: over 2048 bytes
    request = {"inputs": [_tensor([rows, 4], "FP64", [5.0, 3.0, 1.5, 0.2] * rows)]}
    assert len(json.dumps(request)) > 2048
    status, body = server.json("POST", "/v2/models/acme:iris/infer", request)
    assert status == 413 and "http_max_body" in body["error"], body

    # the same address, a larger body limit and two threads, while requests keep arriving
    answered: list[int | str] = []
    stop = threading.Event()

    def keep_asking() -> None:
        while not stop.is_set():
            try:
                answered.append(server.raw("GET", "/healthz")[0])
            except OSError as exc:  # refused, reset: what a handover must not do
                answered.append(repr(exc))

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        hup(
            {"http_max_body": "1M", "http_infer_threads": 2},
            "configuration reloaded: http_infer_threads, http_max_body",
        )
        wait_for(lambda: len(answered) > 20, what="requests after the reload")
    finally:
        stop.set()
        asker.join()
    assert set(answered) == {200}, sorted(set(map(str, answered)))  # none refused or failed
    status, body = server.json("POST", "/v2/models/acme:iris/infer", request)
    assert status == 200 and body["outputs"][0]["data"] == [0] * rows, body

    # a new address: bound first, the old one let go
    old_port, port = server.port, _free_port()
    hup({"http": f"127.0.0.1:{port}"}, "configuration reloaded: http")
    moved = Server(daemon, port, f"http://127.0.0.1:{port}")
    assert moved.json("POST", "/v2/models/acme:iris/infer", request)[0] == 200
    wait_for(lambda: _refused(old_port), what="the old address to be let go")

    # an address in use: nothing applied (not even the queue), the endpoint serves on
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        hup(
            {"http": f"127.0.0.1:{busy}", "http_infer_queue": 1},
            f"configuration not reloaded: cannot serve HTTP on 127.0.0.1:{busy}",
        )
    assert moved.json("POST", "/v2/models/acme:iris/infer", request)[0] == 200
    assert daemon.logs().count("configuration reloaded") == 2

    # off, then on again: one collector of the shelf's metrics, whatever the endpoints
    values["http_infer_queue"] = 64
    hup({"http": ""}, "configuration reloaded: http")
    wait_for(lambda: _refused(port), what="the endpoint to stop")
    again = _free_port()
    hup({"http": f"127.0.0.1:{again}"}, "configuration reloaded: http")
    status, _, text = Server(daemon, again, f"http://127.0.0.1:{again}").raw("GET", "/metrics")
    assert status == 200 and text.decode().count("# TYPE modelshelf_l1_bytes gauge") == 1
    assert proc.poll() is None
    assert "Traceback" not in daemon.logs()


def test_an_inference_past_its_deadline_gives_its_lease_and_slot_back(
    shelf: Shelf, models: Models
) -> None:
    """The deadline aborts the connection; the prediction still running in its thread (it
    cannot be interrupted) releases its lease and its slot when it ends."""
    server = _serve(shelf, None, http_infer_timeout=0.2, http_infer_queue=1)
    Store(shelf.store).publish("acme", "iris", models.images["iris"])
    small = {"inputs": [_tensor([1, 4], "FP64", [5.0, 3.0, 1.5, 0.2])]}
    assert server.json("POST", "/v2/models/acme:iris/infer", small)[0] == 200  # fetched
    rows = np.tile(models.X, (10_000, 1))  # 1.5M rows: far more than 0.2 s to predict
    head = json.dumps(
        {"inputs": [_tensor(list(rows.shape), "FP64", None, binary_data_size=rows.nbytes)],
         "outputs": [{"name": "predict_proba", "parameters": {"binary_data": True}}]}
    ).encode()  # fmt: skip
    # aborted: reset, closed without an answer, or (the prediction done in time, the answer
    # large) cut while it is written
    with pytest.raises((OSError, http.client.IncompleteRead)):
        server.raw(
            "POST", "/v2/models/acme:iris/infer", head + rows.tobytes(),
            {"Inference-Header-Content-Length": str(len(head))},
        )  # fmt: skip

    def settled() -> bool:
        text = server.raw("GET", "/metrics")[2].decode()
        return "modelshelf_http_infer_in_progress 0.0" in text

    wait_for(settled, what="the abandoned inference to end")
    text = server.raw("GET", "/metrics")[2].decode()
    assert 'modelshelf_http_infer_requests_total{outcome="timeout"} 1.0' in text
    assert server.daemon.stats()["http_timeouts"] == 1
    assert server.daemon.admin("status")["leases"] == 0
    # the one slot is free again
    assert server.json("POST", "/v2/models/acme:iris/infer", small)[0] == 200


def test_a_stop_is_not_held_by_a_client_that_sent_half_a_body(shelf: Shelf, models: Models) -> None:
    """The HTTP endpoint's stop waited for a request whose body never finished (its 60 s
    inference deadline), and the daemon kept serving on its sockets meanwhile; a second
    SIGTERM changed nothing (a second probe). The stop is bounded by shutdown_timeout."""
    import signal
    import time

    server = _serve(shelf, models, shutdown_timeout=1.0)
    proc = server.daemon.proc
    assert proc is not None
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    head = (
        "POST /v2/models/acme:iris/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
        "\r\nContent-Length: 1000\r\n\r\n"
    )
    sock.sendall(head.encode() + b'{"inputs": [')
    time.sleep(0.5)  # the request is being read
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    server.daemon.log_handle.close()  # as the harness's stop does
    assert time.monotonic() - started < 10
    sock.close()
