"""The Open Inference Protocol's REST messages as JSON Schema (OpenAPI 3.0 dialect), written
from the protocol's text (kserve/open-inference-protocol, ``specification/protocol/
inference_rest.md``): which fields each message has, their types, which are required.

The protocol's own OpenAPI document is not vendored here. To validate against it as well, point
``MODELSHELF_OIP_OPENAPI`` at a copy of ``open_inference_rest.yaml``: the tests then take the
component schemas from that document instead of these.
"""

from __future__ import annotations

from typing import Any


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


_STR: dict[str, Any] = {"type": "string"}
_STRS: dict[str, Any] = {"type": "array", "items": _STR}
_SHAPE: dict[str, Any] = {"type": "array", "items": {"type": "integer"}}
_ERROR = _obj(["error"], error=_STR)

SCHEMAS: dict[str, Any] = {
    "metadata_server_response": _obj(
        ["name", "version", "extensions"], name=_STR, version=_STR, extensions=_STRS
    ),
    "metadata_server_error_response": _ERROR,
    "metadata_model_response": _obj(
        ["name", "platform"],
        name=_STR,
        versions=_STRS,
        platform=_STR,
        inputs={"type": "array", "items": _ref("metadata_tensor")},
        outputs={"type": "array", "items": _ref("metadata_tensor")},
    ),
    "metadata_tensor": _obj(["name", "datatype", "shape"], name=_STR, datatype=_STR, shape=_SHAPE),
    "metadata_model_error_response": _ERROR,
    "parameters": {"type": "object"},
    "tensor_data": {
        "type": "array",
        "items": {"anyOf": [_ref("tensor_data"), {"type": "number"}, _STR, {"type": "boolean"}]},
    },
    "request_input": _obj(
        ["name", "shape", "datatype", "data"],
        name=_STR,
        shape=_SHAPE,
        datatype=_STR,
        parameters=_ref("parameters"),
        data=_ref("tensor_data"),
    ),
    "request_output": _obj(["name"], name=_STR, parameters=_ref("parameters")),
    "inference_request": _obj(
        ["inputs"],
        id=_STR,
        parameters=_ref("parameters"),
        inputs={"type": "array", "items": _ref("request_input")},
        outputs={"type": "array", "items": _ref("request_output")},
    ),
    "response_output": _obj(
        ["name", "shape", "datatype", "data"],
        name=_STR,
        shape=_SHAPE,
        datatype=_STR,
        parameters=_ref("parameters"),
        data=_ref("tensor_data"),
    ),
    "inference_response": _obj(
        ["model_name", "outputs"],
        model_name=_STR,
        model_version=_STR,
        id=_STR,
        parameters=_ref("parameters"),
        outputs={"type": "array", "items": _ref("response_output")},
    ),
    "inference_error_response": _ERROR,
}
