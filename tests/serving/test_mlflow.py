"""The MLflow scoring formats on ``/v1/endpoints/{name}/predict`` of a real server: each
format gives exactly the in-process predictions, ids are unique per row, and every refusal
is a 400 ``{"error": ...}`` naming the field."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from tests import loopback
from tests.serving.conftest import SharedServer


@pytest.fixture(scope="module")
def http(shared: SharedServer) -> Iterator[httpx.Client]:
    with loopback.client(base_url=shared.url, timeout=30) as c:
        yield c


def split(f: pd.DataFrame) -> dict[str, Any]:
    return {"dataframe_split": {"columns": list(f.columns), "data": rows_of(f)}}


def split_no_columns(f: pd.DataFrame) -> dict[str, Any]:
    return {"dataframe_split": {"data": rows_of(f)}}


def split_pandas_orient(f: pd.DataFrame) -> dict[str, Any]:
    """What ``DataFrame.to_json(orient="split")`` writes (index included)."""
    return {"dataframe_split": {"index": list(range(len(f))), **split(f)["dataframe_split"]}}


def records(f: pd.DataFrame) -> dict[str, Any]:
    return {"dataframe_records": records_of(f)}


def instances_rows(f: pd.DataFrame) -> dict[str, Any]:
    return {"instances": rows_of(f)}


def instances_records(f: pd.DataFrame) -> dict[str, Any]:
    return {"instances": records_of(f)}


def inputs_columns(f: pd.DataFrame) -> dict[str, Any]:
    return {"inputs": {c: f[c].tolist() for c in f.columns}}


def inputs_rows(f: pd.DataFrame) -> dict[str, Any]:
    return {"inputs": rows_of(f)}


def rows_of(f: pd.DataFrame) -> list[list[Any]]:
    cols = [f[c].tolist() for c in f.columns]
    return [list(r) for r in zip(*cols, strict=True)]


def records_of(f: pd.DataFrame) -> list[dict[str, Any]]:
    return [dict(zip(f.columns, r, strict=True)) for r in rows_of(f)]


FORMATS: list[Callable[[pd.DataFrame], dict[str, Any]]] = [
    split,
    split_no_columns,
    split_pandas_orient,
    records,
    instances_rows,
    instances_records,
    inputs_columns,
    inputs_rows,
]


def predict(http: httpx.Client, body: Any, endpoint: str = "iris") -> httpx.Response:
    path = f"/v1/endpoints/{endpoint}/predict"
    if isinstance(body, bytes):
        return http.post(path, content=body, headers={"content-type": "application/json"})
    return http.post(path, json=body)


def assert_error(r: httpx.Response, *needles: str, status: int = 400) -> None:
    assert r.status_code == status, r.text
    doc = r.json()
    assert set(doc) == {"error"} and isinstance(doc["error"], str), doc
    for needle in needles:
        assert needle in doc["error"], (needle, doc["error"])


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.__name__)
def test_every_format_gives_the_in_process_predictions(
    http: httpx.Client, shared: SharedServer, fmt: Callable[[pd.DataFrame], dict[str, Any]]
) -> None:
    rows = shared.iris_X.iloc[10:43]
    r = predict(http, fmt(rows))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["predictions"] == shared.iris.predict(rows.to_numpy()).tolist()
    ids = doc["prediction_ids"]
    assert len(ids) == len(rows) == len(set(ids))
    rid = r.headers["x-lockgate-request-id"]
    assert ids == [f"{rid}-{i}" for i in range(len(rows))]


@pytest.mark.parametrize(
    "fmt",
    [split, split_no_columns, records, instances_records, inputs_columns, inputs_rows],
    ids=lambda f: f.__name__,
)
def test_every_format_carries_every_dtype(
    http: httpx.Client, shared: SharedServer, fmt: Callable[[pd.DataFrame], dict[str, Any]]
) -> None:
    """bool, all integer widths (UINT64 above 2**63 too), floats and strings in one frame."""
    rows = shared.alltypes_X.iloc[:25]
    r = predict(http, fmt(rows), "alltypes")
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == shared.alltypes.predict(rows).tolist()  # type: ignore[attr-defined]


def test_invocations_is_the_same_endpoint(http: httpx.Client, shared: SharedServer) -> None:
    rows = shared.iris_X.iloc[:5]
    r = http.post("/v1/endpoints/iris/invocations", json=split(rows))
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == shared.iris.predict(rows.to_numpy()).tolist()


def test_prediction_ids_are_unique_across_requests(
    http: httpx.Client, shared: SharedServer
) -> None:
    ids: list[str] = []
    for start in range(0, 60, 12):
        ids += predict(http, records(shared.iris_X.iloc[start : start + 12])).json()[
            "prediction_ids"
        ]
    assert len(ids) == 60 == len(set(ids))


def _iris(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"x1": [0.1] * n, "x2": [0.2] * n, "x3": [0.3] * n})


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        # a missing column, in every format that names columns
        ({"dataframe_split": {"columns": ["x1", "x2"], "data": [[1.0, 2.0]]}}, ["'x3'"]),
        ({"dataframe_records": [{"x1": 1.0, "x2": 2.0}]}, ["'x3'", "dataframe_records[0]"]),
        ({"instances": [{"x1": 1.0, "x2": 2.0}]}, ["'x3'", "instances[0]"]),
        ({"inputs": {"x1": [1.0], "x2": [2.0]}}, ["'x3'"]),
        # a string into a float64 column
        (
            {"dataframe_split": {"columns": ["x1", "x2", "x3"], "data": [["a", 2.0, 3.0]]}},
            ["'x1'", "float64", "string"],
        ),
        ({"dataframe_records": [{"x1": 1.0, "x2": "b", "x3": 3.0}]}, ["'x2'", "float64"]),
        ({"instances": [[1.0, 2.0, "c"]]}, ["'x3'", "float64", "string"]),
        ({"inputs": {"x1": [1.0], "x2": [2.0], "x3": ["c"]}}, ["'x3'", "float64", "string"]),
        ({"inputs": {"x1": [1.0], "x2": [True], "x3": [3.0]}}, ["'x2'", "float64", "bool"]),
        # a boolean among numbers (NumPy would make it 1.0), in every format
        (
            {
                "dataframe_split": {
                    "columns": ["x1", "x2", "x3"],
                    "data": [[1.0, 2.0, 3.0], [1.0, True, 3.0]],
                }
            },
            ["'x2'", "float64", "True at row 1"],
        ),
        (
            {"dataframe_split": {"data": [[1.0, 2.0, 3.0], [1.0, 2.0, False]]}},
            ["'x3'", "float64", "False at row 1"],
        ),
        (
            {"dataframe_records": [{"x1": True, "x2": 2.0, "x3": 3.0}]},
            ["'x1'", "float64", "got bool"],
        ),
        ({"instances": [[1.0, 2.0, 3.0], [1.0, 2.0, True]]}, ["'x3'", "True at row 1"]),
        (
            {"inputs": {"x1": [1.0, False], "x2": [2.0, 2.0], "x3": [3.0, 3.0]}},
            ["'x1'", "False at row 1"],
        ),
        ({"inputs": [[1.0, True, 3.0], [1.0, 2.0, 3.0]]}, ["'x2'", "True at row 0"]),
        # ragged rows and columns
        (
            {"dataframe_split": {"columns": ["x1", "x2", "x3"], "data": [[1.0, 2.0, 3.0], [1.0]]}},
            ["dataframe_split.data[1]", "3 values"],
        ),
        ({"instances": [[1.0, 2.0, 3.0], [1.0, 2.0]]}, ["instances", "equal length"]),
        ({"inputs": [[1.0, 2.0, 3.0], [1.0]]}, ["inputs", "equal length"]),
        ({"inputs": {"x1": [1.0, 2.0], "x2": [2.0], "x3": [3.0]}}, ["x2", "2", "1"]),
        ({"instances": [[1.0, 2.0]]}, ["[n, 3]", "x1"]),
        # not exactly one format key
        ({"instances": [[1.0, 2.0, 3.0]], "inputs": [[1.0, 2.0, 3.0]]}, ["exactly one", "body"]),
        ({}, ["exactly one", "body"]),
        ({"data": [[1.0, 2.0, 3.0]]}, ["exactly one", "dataframe_split"]),
        # structure
        ({"dataframe_split": [[1.0, 2.0, 3.0]]}, ["dataframe_split"]),
        ({"dataframe_split": {"columns": ["x1"], "data": 5}}, ["dataframe_split.data"]),
        ({"dataframe_split": {"columns": "x1", "data": [[1.0]]}}, ["dataframe_split.columns"]),
        ({"dataframe_records": {"x1": 1.0}}, ["dataframe_records"]),
        ({"dataframe_records": [[1.0, 2.0, 3.0]]}, ["dataframe_records[0]"]),
        ({"instances": 5}, ["instances"]),
        ({"instances": []}, ["instances"]),
        ({"inputs": {"x1": [], "x2": [], "x3": []}}, ["at least one row"]),
        ([[1.0, 2.0, 3.0]], ["body"]),
        (b"{not json", ["body", "JSON"]),
        (b"", ["body"]),
    ],
)
def test_refusals_name_the_field(http: httpx.Client, body: Any, needles: list[str]) -> None:
    assert_error(predict(http, body), *needles)


def test_wrong_dtypes_of_the_typed_columns(http: httpx.Client, shared: SharedServer) -> None:
    base = records_of(shared.alltypes_X.iloc[:2])
    for column, bad in [("u8", 256), ("u8", -1), ("i8", 1.5), ("b", 1), ("s", 3), ("u64", -1)]:
        body = {"dataframe_records": [{**base[0], column: bad}, base[1]]}
        assert_error(predict(http, body, "alltypes"), f"'{column}'")


def test_unknown_endpoint_is_404_and_get_is_405(http: httpx.Client) -> None:
    assert_error(predict(http, {"instances": [[1.0, 2.0, 3.0]]}, "nope"), "nope", status=404)
    r = http.get("/v1/endpoints/iris/predict")
    assert_error(r, "POST", status=405)
    assert r.headers["allow"] == "POST"
    assert_error(http.post("/v1/endpoints/iris/explain", json={}), "no route", status=404)


def test_predictions_match_for_many_rows(http: httpx.Client, shared: SharedServer) -> None:
    """A few thousand rows through the column path and the matrix path."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(3000, 3)), columns=["x1", "x2", "x3"])
    expected = shared.iris.predict(frame.to_numpy()).tolist()
    for fmt in (split, inputs_columns):
        r = predict(http, fmt(frame))
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == expected
