"""The Open Inference Protocol's tensor codec (``modelshelfd.oip``), with tritonclient's own
request encoder and response decoder as the oracle, and hostile requests that must be refused
with the reason before anything is allocated from them."""

from __future__ import annotations

import itertools
import json
import struct
import threading
import time
from typing import Any

import numpy as np
import pytest
import tritonclient.http as tritonclient
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from modelshelfd import oip
from modelshelfd.oip import TensorError, encode_response, parse_request

NUMERIC = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


def _request(arrays: dict[str, tuple[np.ndarray, str]], binary: bool, **kw: Any) -> Any:
    inputs = []
    for name, (array, datatype) in arrays.items():
        tensor = tritonclient.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    body, length = tritonclient.InferenceServerClient.generate_request_body(inputs, **kw)
    return parse_request(body, None if length is None else str(length))


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("datatype", sorted(NUMERIC))
def test_tritonclient_requests_decode_exactly(datatype: str, binary: bool) -> None:
    rng = np.random.default_rng(0)
    array = rng.uniform(0, 100, (3, 5)) > 50 if datatype == "BOOL" else rng.uniform(0, 100, (3, 5))
    array = array.astype(NUMERIC[datatype])
    request = _request({"x": (array, datatype)}, binary, request_id="r")
    [tensor] = request.inputs
    assert (tensor.name, tensor.datatype, tensor.shape) == ("x", datatype, (3, 5))
    assert tensor.array.dtype == array.dtype
    np.testing.assert_array_equal(tensor.array, array)
    assert request.id == "r"


@pytest.mark.parametrize("binary", [True, False])
def test_bytes_and_several_inputs(binary: bool) -> None:
    words = np.array([b"a", "é".encode(), b"", b"longer text"], dtype=object)
    numbers = np.arange(4, dtype=np.float64)
    request = _request({"w": (words, "BYTES"), "n": (numbers, "FP64")}, binary)
    w, n = request.inputs
    assert list(w.array) == ["a", "é", "", "longer text"]
    np.testing.assert_array_equal(n.array, numbers)


@settings(max_examples=50, deadline=None)
@given(
    array=hnp.arrays(
        st.sampled_from([np.float64, np.float32, np.int64, np.uint8, np.bool_]),
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
    ),
    binary=st.booleans(),
)
def test_responses_decode_with_tritonclient(array: np.ndarray, binary: bool) -> None:
    request = oip.InferRequest([], [oip.Requested("y", binary)], False, "id")
    if array.dtype.kind == "f" and not np.isfinite(array).all() and not binary:
        with pytest.raises(TensorError, match="binary_data"):
            encode_response("ns:m", "3", request, [("y", array)], 1 << 30)
        return
    head, raw = encode_response("ns:m", "3", request, [("y", array)], 1 << 30)
    result = tritonclient.InferenceServerClient.parse_response_body(
        head + raw, header_length=len(head) if raw else None
    )
    assert result.get_response()["model_name"] == "ns:m"
    np.testing.assert_array_equal(result.as_numpy("y"), array)
    assert result.as_numpy("y").dtype == array.dtype


def test_bytes_responses_decode_with_tritonclient() -> None:
    labels = np.array(["setosa", "virginica", "ünï"], dtype=object)
    for binary in (True, False):
        request = oip.InferRequest([], [oip.Requested("predict", binary)], False)
        head, raw = encode_response("ns:m", "1", request, [("predict", labels)], 1 << 20)
        result = tritonclient.InferenceServerClient.parse_response_body(
            head + raw, header_length=len(head) if raw else None
        )
        got = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict")]
        assert got == list(labels)


def test_the_response_is_bounded() -> None:
    request = oip.InferRequest([], None, True)
    with pytest.raises(TensorError, match="http_max_body"):
        encode_response("ns:m", "1", request, [("predict", np.zeros(1000))], 4096)


def _json(request: Any, header: str | None = None) -> oip.InferRequest:
    return parse_request(json.dumps(request).encode(), header)


def _input(**kw: Any) -> dict[str, Any]:
    return {"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0], **kw}


def _bin(size: int) -> dict[str, Any]:
    return {"name": "x", "shape": [1], "datatype": "FP64", "parameters": {"binary_data_size": size}}


HOSTILE = {
    "not an object": ([1], "must be a JSON object"),
    "no inputs": ({"inputs": []}, "inputs must be a list of 1"),
    "too many inputs": (
        {"inputs": [_input(name=f"x{i}") for i in range(oip.MAX_INPUTS + 1)]},
        "inputs must be a list of 1",
    ),
    "long name": ({"inputs": [_input(name="x" * 257)]}, "1 to 256 characters"),
    "same name twice": ({"inputs": [_input(), _input()]}, "given twice"),
    "too many dims": (
        {"inputs": [_input(shape=[1] * 9, data=[1.0])]},
        "1 to 8 dimensions",
    ),
    "bool dim": ({"inputs": [_input(shape=[True, 2])]}, "integers >= 0"),
    "element bound": ({"inputs": [_input(shape=[1 << 15, 1 << 15], data=[])]}, "more than"),
    "string bound": (
        {"inputs": [_input(shape=[1 << 23], datatype="BYTES", data=[])]},
        "BYTES elements, more than 4194304",
    ),
    "data too short": ({"inputs": [_input(shape=[2, 2])]}, "holds 4 elements, data gives 2"),
    "data too long": ({"inputs": [_input(shape=[1, 1])]}, "holds 1 elements, data gives 2"),
    "nested too deep": (
        {"inputs": [_input(data=[[[[[[[[[[1.0]]]]]]]]]])]},
        "nested otherwise than its shape",
    ),
    # a probe: ragged rows were re-cut to the shape and predicted on
    "ragged rows": (
        {"inputs": [_input(shape=[2, 4], data=[[1.0] * 5, [1.0] * 3])]},
        r"at \[0\], expected a list of 4 values, found a list of 5",
    ),
    "rows of rows": (
        {"inputs": [_input(shape=[2, 2], data=[[[1.0, 2.0]] * 2, [[1.0, 2.0]] * 2])]},
        r"at \[0, 0\], expected a value, found a list of 2",
    ),
    "a row too few": (
        {"inputs": [_input(shape=[3, 2], data=[[1.0, 2.0], [1.0, 2.0]])]},
        "at the top, expected a list of 3 values, found a list of 2",
    ),
    "flat and nested mixed": (
        {"inputs": [_input(shape=[2, 2], data=[1.0, 2.0, [1.0, 2.0]])]},
        "nested otherwise than its shape",
    ),
    "bool as number": ({"inputs": [_input(data=[True, False])]}, "must be numbers"),
    "float as int": ({"inputs": [_input(datatype="INT32")]}, "must be integers"),
    "number as bytes": ({"inputs": [_input(datatype="BYTES")]}, "must be strings"),
    "unknown datatype": ({"inputs": [_input(datatype="BF16")]}, "datatype must be one of"),
    "no data": (
        {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64"}]},
        "data is missing",
    ),
    "both data and binary": (
        {"inputs": [_input(parameters={"binary_data_size": 0})]},
        "either data or binary_data_size",
    ),
    "negative binary size": (
        {"inputs": [_input(parameters={"binary_data_size": -1})]},
        "integer >= 0",
    ),
    "binary size beyond the body": (
        {"inputs": [{**_bin(1 << 40)}]},
        "1099511627776 bytes, but only 0 bytes",
    ),
    "id not a string": ({"inputs": [_input()], "id": 7}, "id must be a string"),
    "too many outputs": (
        {"inputs": [_input()], "outputs": [{"name": f"o{i}"} for i in range(17)]},
        "outputs must be a list of 1 to 16",
    ),
    "output twice": (
        {"inputs": [_input()], "outputs": [{"name": "o"}, {"name": "o"}]},
        "asked for twice",
    ),
    "classification": (
        {"inputs": [_input()], "outputs": [{"name": "o", "parameters": {"classification": 2}}]},
        "classification extension",
    ),
    "binary flag not bool": (
        {"inputs": [_input()], "parameters": {"binary_data_output": "yes"}},
        "true or false",
    ),
    "int overflow": ({"inputs": [_input(datatype="INT8", data=[1, 1000])]}, "does not fit"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_json_requests(case: str) -> None:
    request, reason = HOSTILE[case]
    with pytest.raises(TensorError, match=reason):
        _json(request)


def test_json_that_is_not_json() -> None:
    for body, reason in (
        (b"{", "not valid JSON"),
        (b'{"inputs": [NaN]}', "not JSON; a number must be finite"),
        (b"[" * 200_000 + b"]" * 200_000, "nested too deeply|not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        # a probe: 1e400 parsed as infinity, which the client never sent; null was refused
        # without saying that NaN travels as binary data
        (
            b'{"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1e400, 1]}]}',
            "beyond any float .1e400 reads as infinity",
        ),
        (
            b'{"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [null, 1]}]}',
            "null: JSON has no NaN; send missing values as binary data",
        ),
    ):
        with pytest.raises(TensorError, match=reason):
            parse_request(body, None)


def _binary(inputs: list[dict[str, Any]], raw: bytes, header: str | None = None) -> Any:
    head = json.dumps({"inputs": inputs}).encode()
    return parse_request(head + raw, str(len(head)) if header is None else header)


def _bin_input(size: int, shape: list[int], datatype: str = "FP64") -> dict[str, Any]:
    return {
        "name": "x",
        "shape": shape,
        "datatype": datatype,
        "parameters": {"binary_data_size": size},
    }


def test_hostile_binary_requests() -> None:
    eight = np.ones(1).tobytes()
    cases = [
        ([_bin_input(1 << 40, [1])], eight, "only 8 bytes of binary data"),
        ([_bin_input(8, [2])], eight, "takes 16 bytes, binary_data_size gives 8"),
        ([_bin_input(4, [1])], eight, "takes 8 bytes, binary_data_size gives 4"),
        ([_bin_input(8, [1])], eight + b"x", "1 bytes after the inputs"),
        ([_bin_input(3, [1], "BYTES")], b"abc", "4-byte length is cut short"),
        ([_bin_input(8, [1], "BYTES")], struct.pack("<I", 5) + b"abcd", "declares 5 bytes"),
        ([_bin_input(10, [1], "BYTES")], struct.pack("<I", 1) + b"a" + b"\0" * 5, "follow its 1"),
        ([_bin_input(8, [3], "BYTES")], struct.pack("<II", 0, 0), "holds 3 elements, the data 2"),
        ([_bin_input(5, [1], "BYTES")], struct.pack("<I", 1) + b"\xff", "not UTF-8"),
    ]
    for inputs, raw, reason in cases:
        with pytest.raises(TensorError, match=reason):
            _binary(inputs, raw)
    for header, reason in (("-1", "byte count"), ("abc", "byte count"), ("99999", "only")):
        with pytest.raises(TensorError, match=reason):
            _binary([_bin_input(8, [1])], eight, header)


def test_binary_inputs_are_copies_in_native_order() -> None:
    body = bytearray(json.dumps({"inputs": [_bin_input(16, [2])]}).encode())
    head = len(body)
    body += np.array([1.5, 2.5], dtype="<f8").tobytes()
    request = parse_request(body, str(head))  # type: ignore[arg-type]
    body[head:] = bytes(16)  # the body's memory is the server's to reuse once parsed
    array = request.inputs[0].array
    assert array.dtype == np.float64 and list(array) == [1.5, 2.5]


def test_the_json_part_is_bounded() -> None:
    body = b'{"inputs": [' + b" " * oip.MAX_JSON + b"]}"
    with pytest.raises(oip.JsonTooLarge, match="as binary data"):
        parse_request(body, None)
    with pytest.raises(oip.JsonTooLarge):
        parse_request(body + b"\0" * 8, str(len(body)))


def test_a_json_response_is_made_in_chunks_and_stops_at_its_limit() -> None:
    """A probe: a million values went through one tolist() and one json.dumps (the GIL held
    for seconds: every client of the daemon waited), and a response far over the limit was
    built whole (about 830 MiB for a 12 MB request) before it was refused."""
    import tracemalloc

    request = oip.InferRequest([], [oip.Requested("y", False)], False, None)
    values = np.random.default_rng(0).standard_normal(oip.JSON_CHUNK * 3 + 5)
    head, raw = encode_response("ns:m", "1", request, [("y", values)], 1 << 30)
    assert raw == b"" and json.loads(head)["outputs"][0]["data"] == values.tolist()
    big = np.random.default_rng(1).standard_normal(400_000)  # ~8 MB of JSON, 0.8 MB at least
    tracemalloc.start()
    try:
        with pytest.raises(TensorError, match="more than 1048576 bytes"):
            encode_response("ns:m", "1", request, [("y", big)], 1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak  # about the limit and a chunk, not the whole response


@pytest.mark.parametrize("binary", [False, True])
def test_a_response_of_exactly_the_limit_is_sent_and_one_byte_less_refuses_it(
    binary: bool,
) -> None:
    """The chunked encoding counted a JSON output twice: a response of N bytes was refused
    under any limit below about 2N (a second probe)."""
    request = oip.InferRequest(
        [], [oip.Requested("y", binary), oip.Requested("z", False)], False, "7"
    )
    outputs = [("y", np.arange(5000.0) / 7), ("z", np.arange(3, dtype=np.int64))]
    head, raw = encode_response("ns:m", "1", request, outputs, 1 << 30)
    exact = len(head) + len(raw)
    again = encode_response("ns:m", "1", request, outputs, exact)
    assert again == (head, raw)
    with pytest.raises(TensorError, match="more than"):
        encode_response("ns:m", "1", request, outputs, exact - 1)


def test_a_large_json_body_lets_other_threads_run_while_it_parses() -> None:
    """The HTTP pool parses a request's JSON while the daemon's event loop serves everyone
    else: json's C parser held the GIL for the whole body (0.27 s for 14 MiB of floats, the
    loop stalled as long). Another thread gets turns during the parse now."""
    values = np.random.default_rng(0).normal(size=250_000).tolist()
    body = json.dumps({"inputs": [{"name": "x", "data": values}]})
    turns: list[float] = []
    parsing = threading.Event()
    done = threading.Event()

    def other() -> None:
        parsing.wait()
        while not done.is_set():
            turns.append(time.perf_counter())
            time.sleep(0.0005)

    thread = threading.Thread(target=other)
    thread.start()
    try:
        parsing.set()
        time.sleep(0.01)  # the other thread is in its loop
        start = time.perf_counter()
        parsed = oip.loads(body.encode())
        end = time.perf_counter()
    finally:
        done.set()
        thread.join()
    assert parsed["inputs"][0]["data"] == values
    # the parse takes ~0.1 s, the GIL changes hands every 5 ms (sys.getswitchinterval()):
    # the other thread's longest wait was the whole parse (one turn, at its very end)
    points = [start, *(t for t in turns if start < t < end), end]
    longest = max(b - a for a, b in itertools.pairwise(points))
    assert longest < (end - start) / 2, (longest, end - start, len(points))
