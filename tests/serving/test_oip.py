"""Open Inference Protocol V2 conformance of a real server, by hand and with tritonclient.

Every endpoint (with and without ``/versions/{v}``), every datatype, flat and nested data,
``len(data) == prod(shape)``, request ids, parameters, and the ``{"error": ...}`` answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
import tritonclient.http as triton
from tests import loopback
from tests.serving.conftest import SharedServer
from tritonclient.utils import InferenceServerException

#: the alltypes model's columns and their OIP datatypes, in signature order
ALLTYPES = {
    "b": "BOOL",
    "u8": "UINT8",
    "u16": "UINT16",
    "u32": "UINT32",
    "u64": "UINT64",
    "i8": "INT8",
    "i16": "INT16",
    "i32": "INT32",
    "i64": "INT64",
    "f16": "FP16",
    "f32": "FP32",
    "f64": "FP64",
    "s": "BYTES",
}
IRIS = ["x1", "x2", "x3"]


@pytest.fixture(scope="module")
def http(shared: SharedServer) -> Iterator[httpx.Client]:
    with loopback.client(base_url=shared.url, timeout=30) as c:
        yield c


def infer(http: httpx.Client, model: str, body: Any, *, version: int | None = None) -> Any:
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    return (
        http.post(path, json=body) if not isinstance(body, bytes) else http.post(path, content=body)
    )


def assert_error(r: httpx.Response, status: int, *needles: str) -> str:
    """An error answer: the status, and exactly ``{"error": "<message>"}`` naming ``needles``."""
    assert r.status_code == status, r.text
    doc = r.json()
    assert set(doc) == {"error"} and isinstance(doc["error"], str), doc
    for needle in needles:
        assert needle in doc["error"], (needle, doc["error"])
    return str(doc["error"])


def named(frame: pd.DataFrame, datatypes: dict[str, str], *, nested: bool = False) -> list[Any]:
    """One OIP input per column, shape [n] with flat data or [n, 1] with nested data."""
    n = len(frame)
    return [
        {
            "name": c,
            "shape": [n, 1] if nested else [n],
            "datatype": datatypes[c],
            "data": [[v] for v in frame[c].tolist()] if nested else frame[c].tolist(),
        }
        for c in frame.columns
    ]


def iris_rows(shared: SharedServer, n: int = 7, start: int = 0) -> tuple[pd.DataFrame, list[int]]:
    rows = shared.iris_X.iloc[start : start + n]
    return rows, shared.iris.predict(rows.to_numpy()).tolist()


def alltypes_rows(shared: SharedServer, n: int = 9) -> tuple[pd.DataFrame, list[int]]:
    rows = shared.alltypes_X.iloc[:n]
    return rows, shared.alltypes.predict(rows).tolist()  # type: ignore[attr-defined]


# -- health, server and model metadata -----------------------------------------------------


def test_health_and_server_metadata(http: httpx.Client) -> None:
    r = http.get("/v2/health/live")
    assert r.status_code == 200 and r.json() == {"live": True}
    r = http.get("/v2/health/ready")
    assert r.status_code == 200 and r.json() == {"ready": True}
    doc = http.get("/v2").json()
    assert doc["name"] == "lockgate" and isinstance(doc["version"], str)
    assert isinstance(doc["extensions"], list)


@pytest.mark.parametrize("path", ["/v2/models/iris", "/v2/models/iris/versions/1"])
def test_model_metadata_reports_the_signature(http: httpx.Client, path: str) -> None:
    r = http.get(path)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "name": "iris",
        "versions": ["1"],
        "platform": "lockgate_sklearn",
        "inputs": [{"name": n, "datatype": "FP64", "shape": [-1]} for n in IRIS],
        "outputs": [{"name": "prediction", "datatype": "INT64", "shape": [-1]}],
    }


def test_model_metadata_maps_every_datatype(http: httpx.Client) -> None:
    doc = http.get("/v2/models/alltypes/versions/1").json()
    assert [(t["name"], t["datatype"], t["shape"]) for t in doc["inputs"]] == [
        (name, datatype, [-1]) for name, datatype in ALLTYPES.items()
    ]
    assert doc["outputs"] == [{"name": "prediction", "datatype": "INT64", "shape": [-1]}]


@pytest.mark.parametrize("path", ["/v2/models/iris/ready", "/v2/models/iris/versions/1/ready"])
def test_model_ready(http: httpx.Client, path: str) -> None:
    r = http.get(path)
    assert r.status_code == 200 and r.json() == {"name": "iris", "ready": True}


@pytest.mark.parametrize(
    ("method", "path", "needle"),
    [
        ("GET", "/v2/models/nope", "nope"),
        ("GET", "/v2/models/nope/ready", "nope"),
        ("POST", "/v2/models/nope/infer", "nope"),
        ("GET", "/v2/models/nope/versions/1", "nope"),
        ("GET", "/v2/models/nope/versions/1/ready", "nope"),
        ("POST", "/v2/models/nope/versions/1/infer", "nope"),
        # version 2 of iris is registered but not served; version 9 does not exist
        ("GET", "/v2/models/iris/versions/2", "version 2"),
        ("GET", "/v2/models/iris/versions/2/ready", "version 2"),
        ("POST", "/v2/models/iris/versions/2/infer", "version 2"),
        ("GET", "/v2/models/iris/versions/9", "version 9"),
        ("GET", "/v2/models/iris/versions/9/ready", "version 9"),
        ("POST", "/v2/models/iris/versions/9/infer", "version 9"),
        ("GET", "/v2/nowhere", "/v2/nowhere"),
        ("GET", "/v2/models/iris/explain", "/v2/models/iris/explain"),
    ],
)
def test_unknown_model_version_or_route_is_404(
    http: httpx.Client, method: str, path: str, needle: str
) -> None:
    body = {"inputs": [{"name": "x1", "shape": [1], "datatype": "FP64", "data": [1.0]}]}
    r = http.request(method, path, json=body if method == "POST" else None)
    assert_error(r, 404, needle)


def test_a_version_that_is_not_a_number_is_400(http: httpx.Client) -> None:
    assert_error(http.get("/v2/models/iris/versions/latest"), 400, "version", "latest")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v2/models/iris/infer", "POST"),
        ("PUT", "/v2/models/iris/versions/1/infer", "POST"),
        ("POST", "/v2/health/live", "GET"),
        ("POST", "/v2/health/ready", "GET"),
        ("DELETE", "/v2", "GET"),
        ("POST", "/v2/models/iris", "GET"),
        ("PUT", "/v2/models/iris/versions/1", "GET"),
        ("POST", "/v2/models/iris/ready", "GET"),
    ],
)
def test_wrong_method_is_405(http: httpx.Client, method: str, path: str, allow: str) -> None:
    r = http.request(method, path)
    assert_error(r, 405, allow)
    assert allow in r.headers["allow"]


# -- inference -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [None, 1])
@pytest.mark.parametrize("nested", [False, True])
def test_named_inputs_one_per_column(
    http: httpx.Client, shared: SharedServer, nested: bool, version: int | None
) -> None:
    rows, expected = iris_rows(shared)
    r = infer(
        http,
        "iris",
        {"inputs": named(rows, dict.fromkeys(IRIS, "FP64"), nested=nested)},
        version=version,
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["model_name"] == "iris" and doc["model_version"] == "1"
    assert doc["outputs"] == [
        {"name": "prediction", "shape": [len(rows)], "datatype": "INT64", "data": expected}
    ]


@pytest.mark.parametrize("nested", [False, True])
def test_single_2d_tensor_in_signature_order(
    http: httpx.Client, shared: SharedServer, nested: bool
) -> None:
    rows, expected = iris_rows(shared, n=11, start=20)
    matrix = rows.to_numpy()
    data = matrix.tolist() if nested else matrix.ravel().tolist()
    body = {"inputs": [{"name": "input-0", "shape": [11, 3], "datatype": "FP64", "data": data}]}
    r = infer(http, "iris", body)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == expected


def test_one_row_and_zero_rows(http: httpx.Client, shared: SharedServer) -> None:
    rows, expected = iris_rows(shared, n=1, start=3)
    r = infer(http, "iris", {"inputs": named(rows, dict.fromkeys(IRIS, "FP64"))})
    assert r.json()["outputs"][0] == {
        "name": "prediction",
        "shape": [1],
        "datatype": "INT64",
        "data": expected,
    }
    body = {"inputs": [{"name": "m", "shape": [0, 3], "datatype": "FP64", "data": []}]}
    assert_error(infer(http, "iris", body), 400, "at least one row")


@pytest.mark.parametrize("nested", [False, True])
def test_every_datatype(http: httpx.Client, shared: SharedServer, nested: bool) -> None:
    rows, expected = alltypes_rows(shared)
    r = infer(http, "alltypes", {"inputs": named(rows, ALLTYPES, nested=nested)})
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == expected


def test_full_integer_ranges_are_accepted(http: httpx.Client, shared: SharedServer) -> None:
    """The extremes of every integer type, including UINT64 values above 2**63 next to small
    ones (which NumPy would read as float64 and lose)."""
    rows = shared.alltypes_X.iloc[:2].copy()
    for col in ("u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64"):
        info = np.iinfo(rows[col].dtype)
        rows[col] = np.array([info.min, info.max], dtype=rows[col].dtype)
    expected = shared.alltypes.predict(rows).tolist()  # type: ignore[attr-defined]
    r = infer(http, "alltypes", {"inputs": named(rows, ALLTYPES)})
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == expected


def _with(shared: SharedServer, column: str, datatype: str, data: list[Any]) -> dict[str, Any]:
    rows = shared.alltypes_X.iloc[: len(data)]
    inputs = named(rows, ALLTYPES)
    for t in inputs:
        if t["name"] == column:
            t["datatype"], t["data"] = datatype, data
    return {"inputs": inputs}


@pytest.mark.parametrize(
    ("column", "datatype", "data"),
    [
        ("b", "INT8", [1, 0]),
        ("b", "BOOL", [1, 0]),
        ("b", "BYTES", ["true", "false"]),
        ("u8", "FP64", [1.5, 2.0]),
        ("u8", "INT8", [1.0, 2.0]),
        ("u16", "BOOL", [True, False]),
        ("u32", "BYTES", ["1", "2"]),
        ("u64", "FP32", [1.0, 2.0]),
        ("i8", "FP64", [1.0, 2.0]),
        ("i16", "BYTES", ["1", "2"]),
        ("i32", "INT32", [1.5, 2]),
        ("i64", "BOOL", [True, False]),
        ("f16", "BYTES", ["0.5", "1"]),
        ("f32", "BOOL", [True, False]),
        ("f64", "BYTES", ["1.0", "2.0"]),
        ("f64", "FP64", ["a", "b"]),
        # a boolean among numbers (NumPy would make it 1 or 0)
        ("f64", "FP64", [0.5, True]),
        ("f32", "FP32", [[False], [2.5]]),
        ("i64", "INT64", [1, True]),
        ("u8", "UINT8", [False, 1]),
        ("s", "FP64", [1.0, 2.0]),
        ("s", "BYTES", ["red", 1]),
        ("s", "INT64", [1, 2]),
    ],
)
def test_wrong_datatype_is_400_naming_the_input(
    http: httpx.Client, shared: SharedServer, column: str, datatype: str, data: list[Any]
) -> None:
    assert_error(infer(http, "alltypes", _with(shared, column, datatype, data)), 400, repr(column))


@pytest.mark.parametrize(
    ("column", "datatype", "value"),
    [
        ("u8", "UINT8", 256),
        ("u8", "UINT8", -1),
        ("u16", "UINT16", 2**16),
        ("u32", "UINT32", 2**32),
        ("u64", "UINT64", -1),
        ("i8", "INT8", 128),
        ("i8", "INT8", -129),
        ("i16", "INT16", 2**15),
        ("i32", "INT32", -(2**31) - 1),
        ("i64", "INT64", 2**63),
        ("f16", "FP16", 70000.0),
        ("f32", "FP32", 1e39),
        # a wider datatype than the signature's: the value must still fit the column
        ("u8", "INT64", -1),
        ("i8", "INT16", 300),
        ("u32", "UINT64", 2**40),
        ("i32", "INT64", 2**40),
    ],
)
def test_out_of_range_value_is_400_naming_the_input(
    http: httpx.Client, shared: SharedServer, column: str, datatype: str, value: Any
) -> None:
    body = _with(shared, column, datatype, [0, value])
    assert_error(infer(http, "alltypes", body), 400, repr(column))


def test_float_overflow_into_a_narrower_column_is_400(
    http: httpx.Client, shared: SharedServer
) -> None:
    assert_error(infer(http, "alltypes", _with(shared, "f16", "FP64", [0.0, 1e6])), 400, "'f16'")


# -- shape and structure ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tensor", "needles"),
    [
        ({"name": "m", "shape": [2, 3], "datatype": "FP64", "data": [1.0] * 5}, ["5", "6"]),
        ({"name": "m", "shape": [2, 3], "datatype": "FP64", "data": [1.0] * 7}, ["7", "6"]),
        ({"name": "m", "shape": [2, 3], "datatype": "FP64", "data": [[1.0, 2.0]] * 2}, ["4", "6"]),
        ({"name": "m", "shape": [3], "datatype": "FP64", "data": [[1.0, 2.0, 3.0]]}, ["m"]),
        ({"name": "x1", "shape": [4], "datatype": "FP64", "data": [1.0, 2.0]}, ["x1"]),
    ],
)
def test_data_length_must_equal_the_product_of_the_shape(
    http: httpx.Client, tensor: dict[str, Any], needles: list[str]
) -> None:
    assert_error(infer(http, "iris", {"inputs": [tensor]}), 400, *needles)


def test_ragged_nested_data_is_400(http: httpx.Client) -> None:
    body = {
        "inputs": [
            {"name": "m", "shape": [2, 3], "datatype": "FP64", "data": [[1.0, 2.0, 3.0], [1.0]]}
        ]
    }
    assert_error(infer(http, "iris", body), 400, "'m'")


@pytest.mark.parametrize(
    ("shape", "data"),
    [([4, 2], [0.0] * 8), ([2, 4], [0.0] * 8), ([2, 3, 1], [0.0] * 6), ([2, 1, 3], [0.0] * 6)],
)
def test_a_tensor_of_the_wrong_shape_is_400(
    http: httpx.Client, shape: list[int], data: list[float]
) -> None:
    body = {"inputs": [{"name": "m", "shape": shape, "datatype": "FP64", "data": data}]}
    assert_error(infer(http, "iris", body), 400, "x1")


def test_inputs_must_match_the_signature(http: httpx.Client, shared: SharedServer) -> None:
    rows, _ = iris_rows(shared, n=3)
    inputs = named(rows, dict.fromkeys(IRIS, "FP64"))
    assert_error(infer(http, "iris", {"inputs": inputs[:2]}), 400, "'x3'")
    extra = [*inputs, {"name": "x9", "shape": [3], "datatype": "FP64", "data": [1.0, 2.0, 3.0]}]
    assert_error(infer(http, "iris", {"inputs": extra}), 400, "'x9'")
    short = [*inputs[:2], {**inputs[2], "shape": [2], "data": inputs[2]["data"][:2]}]
    assert_error(infer(http, "iris", {"inputs": short}), 400, "'x3'", "3", "2")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "JSON"),
        (b"", "body"),
        (b"[1, 2]", "body"),
        (b'{"inputs": []}', "inputs"),
        (b'{"id": "x"}', "inputs"),
        (b'{"inputs": {"name": "x1"}}', "inputs"),
        (b'{"inputs": [3]}', "inputs[0]"),
        (b'{"inputs": [{"shape": [1], "datatype": "FP64", "data": [1.0]}]}', "name"),
        (b'{"inputs": [{"name": "x1", "shape": 1, "datatype": "FP64", "data": [1]}]}', "shape"),
        (b'{"inputs": [{"name": "x1", "shape": [-1], "datatype": "FP64", "data": [1]}]}', "shape"),
        (b'{"inputs": [{"name": "x1", "shape": [1], "datatype": "FP8", "data": [1]}]}', "datatype"),
        (b'{"inputs": [{"name": "x1", "shape": [1], "datatype": "FP64"}]}', "data"),
        (
            b'{"id": 7, "inputs": [{"name": "x1", "shape": [1], "datatype": "FP64", "data": [1]}]}',
            "id",
        ),
        (
            b'{"parameters": [1], '
            b'"inputs": [{"name": "x1", "shape": [1], "datatype": "FP64", "data": [1]}]}',
            "parameters",
        ),
    ],
)
def test_malformed_requests_are_400(http: httpx.Client, body: bytes, needle: str) -> None:
    assert_error(infer(http, "iris", body), 400, needle)


# -- request id and parameters ---------------------------------------------------------------


def test_request_id_is_echoed_or_generated(http: httpx.Client, shared: SharedServer) -> None:
    rows, _ = iris_rows(shared, n=2)
    inputs = named(rows, dict.fromkeys(IRIS, "FP64"))
    assert infer(http, "iris", {"id": "req-42", "inputs": inputs}).json()["id"] == "req-42"
    ids = {infer(http, "iris", {"inputs": inputs}).json()["id"] for _ in range(3)}
    assert len(ids) == 3 and all(isinstance(i, str) and i for i in ids)


def test_parameters_are_passed_through(http: httpx.Client, shared: SharedServer) -> None:
    rows, _ = iris_rows(shared, n=2)
    params = {"tag": "a/b", "n": 3, "ratio": 0.5, "on": True, "nested": {"k": [1, "two"]}}
    inputs = named(rows, dict.fromkeys(IRIS, "FP64"))
    doc = infer(http, "iris", {"inputs": inputs, "parameters": params}).json()
    assert doc["parameters"] == params
    assert "parameters" not in infer(http, "iris", {"inputs": inputs}).json()


# -- tritonclient, unmodified ----------------------------------------------------------------


@pytest.fixture(scope="module")
def triton_client(shared: SharedServer) -> Iterator[triton.InferenceServerClient]:
    c = triton.InferenceServerClient(shared.url.removeprefix("http://"))
    try:
        yield c
    finally:
        c.close()


def test_tritonclient_health_and_metadata(triton_client: triton.InferenceServerClient) -> None:
    c = triton_client
    assert c.is_server_live() and c.is_server_ready()
    assert c.get_server_metadata()["name"] == "lockgate"
    for version in ("", "1"):
        meta = c.get_model_metadata("iris", model_version=version)
        assert [(t["name"], t["datatype"]) for t in meta["inputs"]] == [(n, "FP64") for n in IRIS]
        assert c.is_model_ready("iris", model_version=version)
    assert not c.is_model_ready("nope")
    assert not c.is_model_ready("iris", model_version="2")
    with pytest.raises(InferenceServerException) as info:
        c.get_model_metadata("nope")
    assert info.value.status() == "404" and "nope" in info.value.message()


def test_tritonclient_infer_named_columns(
    triton_client: triton.InferenceServerClient, shared: SharedServer
) -> None:
    rows, expected = iris_rows(shared, n=25, start=100)
    inputs = []
    for name in IRIS:
        t = triton.InferInput(name, [len(rows)], "FP64")
        t.set_data_from_numpy(rows[name].to_numpy(), binary_data=False)
        inputs.append(t)
    out = triton.InferRequestedOutput("prediction", binary_data=False)
    result = triton_client.infer("iris", inputs, outputs=[out], request_id="t-1")
    np.testing.assert_array_equal(result.as_numpy("prediction"), np.asarray(expected))
    response = result.get_response()
    assert response["id"] == "t-1" and response["model_version"] == "1"


def test_tritonclient_infer_one_2d_tensor(
    triton_client: triton.InferenceServerClient, shared: SharedServer
) -> None:
    rows, expected = iris_rows(shared, n=40, start=50)
    t = triton.InferInput("input-0", [40, 3], "FP64")
    t.set_data_from_numpy(rows.to_numpy(), binary_data=False)
    result = triton_client.infer("iris", [t], model_version="1")
    np.testing.assert_array_equal(result.as_numpy("prediction"), np.asarray(expected))


def test_tritonclient_every_datatype(
    triton_client: triton.InferenceServerClient, shared: SharedServer
) -> None:
    rows, expected = alltypes_rows(shared, n=30)
    inputs = []
    for name, datatype in ALLTYPES.items():
        values = rows[name].to_numpy()
        t = triton.InferInput(name, [len(rows)], datatype)
        t.set_data_from_numpy(
            values.astype(object) if datatype == "BYTES" else values, binary_data=False
        )
        inputs.append(t)
    result = triton_client.infer("alltypes", inputs)
    np.testing.assert_array_equal(result.as_numpy("prediction"), np.asarray(expected))


def test_tritonclient_sees_errors(
    triton_client: triton.InferenceServerClient, shared: SharedServer
) -> None:
    t = triton.InferInput("x1", [2], "FP64")
    t.set_data_from_numpy(np.array([1.0, 2.0]), binary_data=False)
    with pytest.raises(InferenceServerException) as info:
        triton_client.infer("iris", [t])
    assert info.value.status() == "400" and "'x2'" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        triton_client.infer("nope", [t])
    assert info.value.status() == "404"


def test_tritonclient_defaults_send_binary_tensors(
    triton_client: triton.InferenceServerClient, shared: SharedServer
) -> None:
    """tritonclient's defaults (binary_data=True, no requested outputs) use the binary tensor
    data extension; the server decodes it and the answer is the model's own predictions."""
    rows, expected = iris_rows(shared, n=40, start=10)
    t = triton.InferInput("input-0", [40, 3], "FP64")
    t.set_data_from_numpy(rows.to_numpy())
    result = triton_client.infer("iris", [t])
    np.testing.assert_array_equal(result.as_numpy("prediction"), np.asarray(expected))
    rows, expected = alltypes_rows(shared, n=30)
    inputs = []
    for name, datatype in ALLTYPES.items():
        values = rows[name].to_numpy()
        x = triton.InferInput(name, [len(rows)], datatype)
        x.set_data_from_numpy(values.astype(object) if datatype == "BYTES" else values)
        inputs.append(x)
    result = triton_client.infer("alltypes", inputs)
    np.testing.assert_array_equal(result.as_numpy("prediction"), np.asarray(expected))


def test_binary_tensor_sizes_are_checked(http: httpx.Client) -> None:
    header = {
        "inputs": [
            {
                "name": "input-0",
                "shape": [1, 3],
                "datatype": "FP64",
                "parameters": {"binary_data_size": 24},
            }
        ]
    }
    head = orjson.dumps(header)
    ok = np.array([[0.1, 0.2, 0.3]], dtype="<f8").tobytes()
    r = http.post(
        "/v2/models/iris/infer",
        content=head + ok,
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
    assert r.status_code == 200, r.text
    r = http.post(
        "/v2/models/iris/infer",
        content=head + ok[:16],
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
    assert r.status_code == 400 and "binary_data_size" in r.json()["error"]
    r = http.post(
        "/v2/models/iris/infer",
        content=head + ok + b"xx",
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
    assert r.status_code == 400 and "binary tensor data" in r.json()["error"]
    r = http.post(
        "/v2/models/iris/infer",
        content=head + ok,
        headers={"Inference-Header-Content-Length": "nope"},
    )
    assert r.status_code == 400 and "Inference-Header-Content-Length" in r.json()["error"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_values_are_refused_naming_column_and_row(
    http: httpx.Client, bad: float
) -> None:
    """Binary tensors can carry NaN and infinity, which the iris model does not take: a 400
    naming the column and row, not a failed prediction."""
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [2, 3],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": 48},
                }
            ]
        }
    )
    rows = np.array([[0.1, 0.2, 0.3], [0.4, bad, 0.6]], dtype="<f8")
    r = http.post(
        "/v2/models/iris/infer",
        content=head + rows.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
    assert_error(r, 400, "x2[1]", "expected a finite number", str(bad))
