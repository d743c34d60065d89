"""The Open Inference Protocol's tensors (KServe v2 REST), decoded and encoded without HTTP.

An inference request is one JSON object, optionally followed by the binary tensor extension's
raw bytes (``Inference-Header-Content-Length`` says where the JSON ends; an input with the
``binary_data_size`` parameter takes that many bytes of what follows, in the order of the
inputs). Every size and count that comes from the peer is checked before anything is allocated
from it: the number of inputs and outputs, name lengths, dimensions, the element count against
the data given (JSON items, or bytes: elements x item size), and each BYTES element's 4-byte
little-endian length prefix against what is left. A violation raises ``TensorError`` (a
``BadRequest``), saying what was expected and what was found. HTTP status codes live in
``http.py``, not here.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import BadRequest

MAX_INPUTS = 4096  # input tensors in one request: one per column of a wide table at most
MAX_OUTPUTS = 16  # output tensors asked for: a model has at most six methods
MAX_NAME = 256  # characters in a tensor name
MAX_DIMS = 8  # dimensions of one tensor
MAX_ELEMENTS = 1 << 28  # elements of one tensor (the body's own bound comes first)
MAX_STRINGS = 1 << 22  # elements of one BYTES tensor: each is a Python object once decoded
MAX_ID = 256  # characters of the request id echoed back
# bytes of a request's JSON (the whole body without the binary extension): parsed JSON costs
# tens of bytes per number, so larger tensors must come as binary data
MAX_JSON = 16 << 20

# protocol datatype -> numpy dtype (little-endian, as the binary extension sends it)
DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
DATATYPES = (*DTYPES, "BYTES")
_LENGTH = struct.Struct("<I")


class TensorError(BadRequest):
    """A tensor or an inference request that does not follow the protocol or its bounds."""


class JsonTooLarge(TensorError):
    """A request's JSON part over ``MAX_JSON`` bytes."""


@dataclass
class Tensor:
    """One decoded input: ``array`` has the declared shape (BYTES: an object array of str)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    array: np.ndarray


@dataclass
class Requested:
    name: str
    binary: bool


@dataclass
class InferRequest:
    inputs: list[Tensor]
    outputs: list[Requested] | None  # None: the model's default outputs
    binary_default: bool  # the request's binary_data_output parameter
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def _reject_constant(name: str) -> Any:
    raise TensorError(f"{name} is not JSON; a number must be finite")


def _bounded_int(text: str) -> int:
    """A JSON integer; longer than any datatype's range, refused before converting (Python's
    own limit names the daemon's settings)."""
    if len(text) > 40:
        raise TensorError(f"an integer of {len(text)} digits is out of every datatype's range")
    return int(text)


def _float(text: str) -> float:
    """A JSON number with a fraction or exponent, as the parser reads it (1e400: inf, refused
    later). A Python call, not the parser's own C conversion: between the calls the pool
    thread parsing a large body lets the event loop run (16 MiB of numbers held the GIL
    ~0.3 s at once; this way the loop waits ~10 ms at most, the parse takes ~25% longer)."""
    return float(text)


def loads(data: bytes | memoryview, what: str = "request") -> Any:
    """Strict JSON: no NaN or Infinity; nesting too deep for the parser is a TensorError."""
    try:
        return json.loads(
            bytes(data),
            parse_constant=_reject_constant,
            parse_int=_bounded_int,
            parse_float=_float,
        )
    except TensorError:
        raise
    except RecursionError:
        raise TensorError(f"the {what} is nested too deeply to parse") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise TensorError(f"the {what} is not valid JSON: {str(exc)[:200]}") from None


_BYTE_COUNT = re.compile(r"\s*[0-9]{1,20}\s*")


def parse_request(body: bytes, header_length: str | None) -> InferRequest:
    """Decode an inference request: ``body`` is the whole HTTP body, ``header_length`` the
    ``Inference-Header-Content-Length`` header (None without the binary extension)."""
    if header_length is None:
        head, binary = memoryview(body), memoryview(b"")
    else:
        if _BYTE_COUNT.fullmatch(header_length) is None:  # ASCII digits ('²' is a digit too)
            raise TensorError(
                f"Inference-Header-Content-Length must be a byte count, got {header_length!r:.40}"
            )
        n = int(header_length)
        if n > len(body):
            raise TensorError(
                f"Inference-Header-Content-Length is {n}, but the body has only {len(body)} bytes"
            )
        view = memoryview(body)
        head, binary = view[:n], view[n:]
    if len(head) > MAX_JSON:
        raise JsonTooLarge(
            f"the request's JSON is {len(head)} bytes, more than {MAX_JSON}: send large tensors "
            "as binary data (Inference-Header-Content-Length and binary_data_size)"
        )
    request = loads(head)
    if not isinstance(request, dict):
        raise TensorError(f"the request must be a JSON object, got {type(request).__name__}")
    rid = request.get("id")
    if rid is not None and (not isinstance(rid, str) or len(rid) > MAX_ID):
        raise TensorError(f"id must be a string of at most {MAX_ID} characters, got {rid!r:.60}")
    params = _parameters(request.get("parameters"), "the request")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not 0 < len(inputs) <= MAX_INPUTS:
        raise TensorError(
            f"inputs must be a list of 1 to {MAX_INPUTS} tensors, got {_describe(inputs)}"
        )
    offset = 0
    tensors = []
    names: set[str] = set()
    for i, spec in enumerate(inputs):
        tensor, used = _input(spec, i, binary[offset:])
        if tensor.name in names:
            raise TensorError(f"input {tensor.name!r} is given twice")
        names.add(tensor.name)
        tensors.append(tensor)
        offset += used
    if offset != len(binary):
        raise TensorError(
            f"the body holds {len(binary) - offset} bytes after the inputs' binary data "
            f"(binary_data_size of the inputs add up to {offset})"
        )
    binary_default = params.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise TensorError(f"binary_data_output must be true or false, got {binary_default!r:.40}")
    return InferRequest(
        tensors, _outputs(request.get("outputs"), binary_default), binary_default, rid, params
    )


def _describe(value: object) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return type(value).__name__


def _parameters(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TensorError(f"parameters of {where} must be a JSON object")
    return value


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME:
        raise TensorError(f"{what} name must be a string of 1 to {MAX_NAME} characters")
    return value


def _shape(value: object, name: str) -> tuple[tuple[int, ...], int]:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_DIMS:
        raise TensorError(
            f"input {name!r}: shape must be a list of 1 to {MAX_DIMS} dimensions, got {value!r:.80}"
        )
    count = 1
    for dim in value:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
            raise TensorError(f"input {name!r}: shape {value!r:.80} must hold integers >= 0")
        count *= dim
        if count > MAX_ELEMENTS:
            raise TensorError(
                f"input {name!r}: shape {value!r:.80} has more than {MAX_ELEMENTS} elements"
            )
    return tuple(value), count


def _input(spec: object, index: int, binary: memoryview) -> tuple[Tensor, int]:
    """One input tensor and the bytes of ``binary`` it took."""
    if not isinstance(spec, dict):
        raise TensorError(f"inputs[{index}] must be a JSON object")
    name = _name(spec.get("name"), f"inputs[{index}]")
    datatype = spec.get("datatype")
    if datatype not in DATATYPES:
        raise TensorError(
            f"input {name!r}: datatype must be one of {', '.join(DATATYPES)}, got {datatype!r:.40}"
        )
    shape, count = _shape(spec.get("shape"), name)
    if datatype == "BYTES" and count > MAX_STRINGS:
        raise TensorError(
            f"input {name!r}: shape {list(shape)} has {count} BYTES elements, more than "
            f"{MAX_STRINGS}: send fewer rows per request"
        )
    params = _parameters(spec.get("parameters"), f"input {name!r}")
    size = params.get("binary_data_size")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise TensorError(f"input {name!r}: binary_data_size must be an integer >= 0")
        if size > len(binary):
            raise TensorError(
                f"input {name!r}: binary_data_size is {size} bytes, but only {len(binary)} "
                "bytes of binary data are left in the body"
            )
        if "data" in spec:
            raise TensorError(f"input {name!r}: give either data or binary_data_size, not both")
        array = _from_binary(binary[:size], datatype, shape, count, name)
        return Tensor(name, datatype, shape, array), size
    if "data" not in spec:
        raise TensorError(f"input {name!r}: data is missing (and no binary_data_size)")
    array = _from_json(spec["data"], datatype, shape, count, name)
    return Tensor(name, datatype, shape, array), 0


def _from_binary(
    data: memoryview, datatype: str, shape: tuple[int, ...], count: int, name: str
) -> np.ndarray:
    if datatype == "BYTES":
        return _strings(_unpack_bytes(data, count, name), name).reshape(shape)
    dtype = DTYPES[datatype]
    if len(data) != count * dtype.itemsize:
        raise TensorError(
            f"input {name!r}: shape {list(shape)} of {datatype} takes {count * dtype.itemsize} "
            f"bytes, binary_data_size gives {len(data)}"
        )
    # a copy: the body is released when the request ends, and the model may keep nothing
    return (
        np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(shape)
    )


def _unpack_bytes(data: memoryview, count: int, name: str) -> list[bytes]:
    out: list[bytes] = []
    offset, end = 0, len(data)
    while offset < end:
        if len(out) == count:
            raise TensorError(
                f"input {name!r}: {end - offset} bytes follow its {count} BYTES elements"
            )
        if end - offset < 4:
            raise TensorError(f"input {name!r}: a BYTES element's 4-byte length is cut short")
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += 4
        if length > end - offset:
            raise TensorError(
                f"input {name!r}: a BYTES element declares {length} bytes, only "
                f"{end - offset} are left"
            )
        out.append(bytes(data[offset : offset + length]))
        offset += length
    if len(out) != count:
        raise TensorError(
            f"input {name!r}: the shape holds {count} elements, the data {len(out)} BYTES elements"
        )
    return out


def _strings(items: Sequence[bytes | str], name: str) -> np.ndarray:
    """BYTES elements as an object array of str (models take text as str)."""
    arr = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        if isinstance(item, bytes):
            try:
                item = item.decode()
            except UnicodeDecodeError:
                raise TensorError(f"input {name!r}: BYTES element {i} is not UTF-8") from None
        arr[i] = item
    return arr


def _flatten(data: object, shape: tuple[int, ...], count: int, name: str) -> list[Any]:
    """``data`` in row-major order: a flat list of ``count`` items, or lists nested exactly as
    ``shape`` says (walked without recursion). Nesting that does not follow the shape (rows of
    5 and 3 values for a shape [2, 4]) is refused: it was re-cut and predicted on."""
    if not isinstance(data, list):
        raise TensorError(f"input {name!r}: data must be a list (flat or nested)")
    if not any(isinstance(item, list) for item in data):  # flat
        if len(data) != count:
            raise TensorError(
                f"input {name!r}: the shape holds {count} elements, data gives {len(data)}"
            )
        return list(data)
    if not shape or len(data) != shape[0]:  # nested data for a scalar, or another length
        raise _misnested(name, shape, (), data)
    out: list[Any] = []
    stack: list[tuple[Any, tuple[int, ...]]] = [(iter(enumerate(data)), ())]
    while stack:
        items, at = stack[-1]
        for i, item in items:
            where = (*at, i)
            if len(where) < len(shape):  # a list of the next dimension's length
                if not isinstance(item, list) or len(item) != shape[len(where)]:
                    raise _misnested(name, shape, where, item)
                stack.append((iter(enumerate(item)), where))
                break
            if isinstance(item, list):
                raise _misnested(name, shape, where, item)
            out.append(item)
        else:
            stack.pop()
    return out


def _misnested(name: str, shape: tuple[int, ...], where: tuple[int, ...], found: Any) -> Exception:
    depth = len(where)
    expected = f"a list of {shape[depth]} values" if depth < len(shape) else "a value"
    got = f"a list of {len(found)}" if isinstance(found, list) else type(found).__name__
    return TensorError(
        f"input {name!r}: data nested otherwise than its shape {list(shape)}: at "
        f"{list(where) or 'the top'}, expected {expected}, found {got}; give the data flat "
        "(row-major) or nested exactly as the shape"
    )


def _from_json(
    data: object, datatype: str, shape: tuple[int, ...], count: int, name: str
) -> np.ndarray:
    flat = _flatten(data, shape, count, name)
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in flat):
            raise TensorError(f"input {name!r}: BYTES data must be strings in JSON")
        return _strings(flat, name).reshape(shape)
    if datatype == "BOOL":
        if not all(isinstance(v, bool) for v in flat):
            raise TensorError(f"input {name!r}: BOOL data must be true or false")
    elif datatype.startswith(("INT", "UINT")):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in flat):
            raise TensorError(f"input {name!r}: {datatype} data must be integers")
    elif not all(isinstance(v, int | float) and not isinstance(v, bool) for v in flat):
        missing = (
            " (null: JSON has no NaN; send missing values as binary data)"
            if any(v is None for v in flat)
            else ""
        )
        raise TensorError(f"input {name!r}: {datatype} data must be numbers{missing}")
    elif not all(math.isfinite(v) for v in flat):  # 1e400 parses as infinity
        raise TensorError(
            f"input {name!r}: {datatype} data holds a number beyond any float (1e400 reads as "
            "infinity); JSON carries finite numbers only: send infinity or NaN as binary data"
        )
    try:
        with np.errstate(over="raise"):  # not numpy's warning on stderr: a typed refusal
            return np.array(flat, dtype=DTYPES[datatype].newbyteorder("=")).reshape(shape)
    except (OverflowError, ValueError, FloatingPointError):
        advice = (
            " (the widest of its kind: the value is out of range)"
            if datatype in ("FP64", "INT64", "UINT64")
            else ": send a wider datatype"
        )
        raise TensorError(f"input {name!r}: a value does not fit {datatype}{advice}") from None


def _outputs(value: object, binary_default: bool) -> list[Requested] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not 0 < len(value) <= MAX_OUTPUTS:
        raise TensorError(f"outputs must be a list of 1 to {MAX_OUTPUTS}, got {_describe(value)}")
    out: list[Requested] = []
    for i, spec in enumerate(value):
        if not isinstance(spec, dict):
            raise TensorError(f"outputs[{i}] must be a JSON object")
        name = _name(spec.get("name"), f"outputs[{i}]")
        params = _parameters(spec.get("parameters"), f"output {name!r}")
        binary = params.get("binary_data", binary_default)
        if not isinstance(binary, bool):
            raise TensorError(f"output {name!r}: binary_data must be true or false")
        if params.get("classification"):
            raise TensorError(
                f"output {name!r}: the classification extension is not supported; ask for "
                "predict or predict_proba"
            )
        if any(r.name == name for r in out):
            raise TensorError(f"output {name!r} is asked for twice")
        out.append(Requested(name, binary))
    return out


# -- responses --------------------------------------------------------------------------------


def datatype_of(array: np.ndarray) -> str:
    """The protocol datatype an output array is sent as."""
    kind = array.dtype.kind
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return f"{'U' if kind == 'u' else ''}INT{array.dtype.itemsize * 8}"
    if kind == "f" and array.dtype.itemsize in (2, 4, 8):
        return f"FP{array.dtype.itemsize * 8}"
    if kind in "USO":
        return "BYTES"
    raise TensorError(f"an output of dtype {array.dtype} has no protocol datatype")


def _element_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def encode_output(name: str, array: np.ndarray, binary: bool) -> tuple[dict[str, Any], bytes]:
    """An output tensor's JSON object and its binary data (empty when sent as JSON)."""
    datatype = datatype_of(array)
    out: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
    flat = array.reshape(-1)
    if binary:
        if datatype == "BYTES":
            parts = []
            for value in flat:
                item = _element_bytes(value)
                parts.append(_LENGTH.pack(len(item)))
                parts.append(item)
            raw = b"".join(parts)
        else:
            raw = np.ascontiguousarray(flat, dtype=array.dtype.newbyteorder("<")).tobytes()
        out["parameters"] = {"binary_data_size": len(raw)}
        return out, raw
    if datatype == "BYTES":
        items: list[Any] = []
        for value in flat:
            if isinstance(value, bytes):
                try:
                    items.append(value.decode())
                except UnicodeDecodeError:
                    raise TensorError(
                        f"output {name!r} holds bytes that are not UTF-8; ask for it with "
                        "binary_data"
                    ) from None
            else:
                items.append(str(value))
        out["data"] = items
        return out, b""
    out["data"] = JsonNumbers(flat, name, datatype.startswith("FP"))
    return out, b""


JSON_CHUNK = 1 << 15  # values encoded at a time: the GIL is held for milliseconds, not seconds


class JsonNumbers:
    """An output's numbers as JSON text, made in chunks by ``encode_response``: one
    ``tolist()`` and one ``json.dumps`` over a million values held the GIL for seconds (the
    event loop, and so every client of the daemon, waited), and built a response far larger
    than the limit before it was refused."""

    def __init__(self, flat: np.ndarray, name: str, finite: bool) -> None:
        self.flat, self.name, self.finite = flat, name, finite

    def chunks(self) -> Iterator[str]:
        for start in range(0, len(self.flat), JSON_CHUNK):
            values = self.flat[start : start + JSON_CHUNK].tolist()
            if self.finite and not all(math.isfinite(v) for v in values):
                raise TensorError(
                    f"output {self.name!r} holds NaN or infinite values, which JSON cannot "
                    "carry; ask for it with binary_data"
                )
            yield json.dumps(values, separators=(",", ":"))[1:-1]


def check_response_size(name: str, elements: int, least: int, limit: int) -> None:
    """Refuse an output of ``elements`` values taking at least ``least`` bytes each (binary:
    the item size; JSON: two, a digit and a comma) before it is made or encoded, when it could
    not fit the ``limit`` bytes of a response."""
    if elements * least > limit:
        raise TensorError(
            f"{name} gives {elements} values, more than a response of {limit} bytes "
            "(http_max_body) can hold: ask for fewer rows or fewer outputs"
        )


def encode_response(
    model_name: str,
    model_version: str,
    request: InferRequest,
    outputs: list[tuple[str, np.ndarray]],
    limit: int,
) -> tuple[bytes, bytes]:
    """The inference response: its JSON and the binary data that follows it (empty when every
    output is sent as JSON). At most ``limit`` bytes in all, else TensorError."""
    binary_of = {r.name: r.binary for r in request.outputs or ()}
    body: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request.id is not None:
        body["id"] = request.id
    tensors, parts, size = [], [], 0
    too_large = TensorError(
        f"the response would take more than {limit} bytes (http_max_body): ask for fewer "
        "rows or fewer outputs, or for the outputs as binary_data"
    )
    for name, array in outputs:
        binary = binary_of.get(name, request.binary_default)
        # before encoding: a value takes at least its item size in binary, two bytes in JSON
        check_response_size(name, array.size, array.itemsize if binary else 2, limit - size)
        tensor, raw = encode_output(name, array, binary)
        data = tensor.pop("data", None)
        text = json.dumps(tensor, separators=(",", ":"), allow_nan=False)
        if data is not None:  # spliced in: the numbers made chunk by chunk, bounded as made
            pieces = [text[:-1], ',"data":[']
            made = len(text) + 10  # the tensor's other fields, ',"data":[' and ']}'
            chunks = data.chunks() if isinstance(data, JsonNumbers) else _one(data)
            for i, chunk in enumerate(chunks):
                made += len(chunk) + 1
                if size + made > limit:
                    raise too_large
                pieces.append(("," if i else "") + chunk)
            pieces.append("]}")
            text = "".join(pieces)
        size += len(raw) + len(text) + 1  # and the comma between outputs
        if size > limit:
            raise too_large
        tensors.append(text)
        parts.append(raw)
    body["outputs"] = []
    head = json.dumps(body, separators=(",", ":"), allow_nan=False)
    head = head[: -len("[]}")] + "[" + ",".join(tensors) + "]}"
    if len(head) + sum(map(len, parts)) > limit:
        raise too_large
    return head.encode(), b"".join(parts)


def _one(data: list[Any]) -> Iterator[str]:
    """BYTES as JSON strings: one chunk (their count is bounded by the request's)."""
    yield json.dumps(data, separators=(",", ":"))[1:-1]
