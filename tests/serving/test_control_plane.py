"""The control plane ``/api/v1`` of a real server: OpenAPI, models, endpoints, deploys that
the data plane picks up, and errors as ``{"error", "code", "field"}``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from tests import loopback
from tests.serving.conftest import SharedServer, wait_until_served


@pytest.fixture(scope="module")
def api(shared: SharedServer) -> Iterator[httpx.Client]:
    with loopback.client(base_url=f"{shared.url}/api/v1", timeout=30) as c:
        yield c


def test_openapi_lists_the_routes(api: httpx.Client) -> None:
    r = api.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.") and doc["info"]["title"]
    paths = doc["paths"]
    for path, methods in {
        "/api/v1/health": {"get"},
        "/api/v1/models": {"get"},
        "/api/v1/models/{name}": {"get"},
        "/api/v1/models/{name}/versions/{version}": {"get"},
        "/api/v1/models/{name}/aliases/{alias}": {"get", "put", "delete"},
        "/api/v1/endpoints": {"get", "post"},
        "/api/v1/endpoints/{name}": {"get", "delete"},
        "/api/v1/endpoints/{name}/batching": {"put"},
        "/api/v1/events": {"get"},
    }.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, sorted(paths[path]))
    deploy = paths["/api/v1/endpoints"]["post"]["requestBody"]["content"]["application/json"]
    schema = doc["components"]["schemas"][deploy["schema"]["$ref"].rsplit("/", 1)[1]]
    assert {"model", "version", "alias", "endpoint", "batching"} <= set(schema["properties"])


def test_models_and_their_versions(api: httpx.Client) -> None:
    names = {m["name"] for m in api.get("/models").json()["models"]}
    assert {"iris", "alltypes"} <= names
    doc = api.get("/models/iris").json()
    assert doc["name"] == "iris"
    assert [v["version"] for v in doc["versions"]] == [1, 2]
    v1 = api.get("/models/iris/versions/1").json()
    assert v1["version"] == 1 and v1["flavor"] == "sklearn"
    assert [c["name"] for c in v1["signature"]["inputs"]] == ["x1", "x2", "x3"]


def test_endpoints_show_what_is_served(api: httpx.Client) -> None:
    listed = {e["name"]: e for e in api.get("/endpoints").json()["endpoints"]}
    assert listed["iris"]["model"] == "iris" and listed["iris"]["version"] == 1
    doc = api.get("/endpoints/iris").json()
    assert doc["serving"]["versions"] == {"1": "primary"}
    assert doc["batching"]["enabled"] is False


def _predict(shared: SharedServer, endpoint: str, rows: np.ndarray) -> dict[str, Any]:
    inputs = [
        {"name": n, "shape": [len(rows)], "datatype": "FP64", "data": rows[:, j].tolist()}
        for j, n in enumerate(["x1", "x2", "x3"])
    ]
    r = loopback.post(f"{shared.url}/v2/models/{endpoint}/infer", json={"inputs": inputs})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_deploy_through_the_api_is_served(api: httpx.Client, shared: SharedServer) -> None:
    body = {
        "model": "iris",
        "version": 2,
        "endpoint": "iris-api",
        "batching": {"enabled": True, "max_batch_size": 8},
        "reason": "api test",
    }
    r = api.post("/endpoints", json=body)
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["name"] == "iris-api" and doc["version"] == 2
    assert doc["batching"]["enabled"] is True and doc["batching"]["max_batch_size"] == 8
    wait_until_served(shared.url, "iris-api", version=2)
    rows = shared.iris_X.to_numpy()[:20]
    out = _predict(shared, "iris-api", rows)
    assert out["model_version"] == "2"
    with shared.ws.client.load("iris/2") as v2:
        assert out["outputs"][0]["data"] == v2.predict(rows).tolist()
    events = api.get("/events", params={"kind": "endpoint.deployed", "subject": "iris-api"})
    assert [e["payload"]["reason"] for e in events.json()["events"]] == ["api test"]


def test_deploy_by_alias(api: httpx.Client, shared: SharedServer) -> None:
    r = api.put("/models/iris/aliases/champion", json={"version": 1})
    assert r.status_code == 200, r.text
    r = api.post("/endpoints", json={"model": "iris", "alias": "champion", "endpoint": "champ"})
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1 and r.json()["deployed_from"] == "@champion"
    wait_until_served(shared.url, "champ", version=1)
    rows = shared.iris_X.to_numpy()[:5]
    assert (
        _predict(shared, "champ", rows)["outputs"][0]["data"] == shared.iris.predict(rows).tolist()
    )


def assert_error(r: httpx.Response, status: int, code: str, field: str | None) -> None:
    assert r.status_code == status, r.text
    doc = r.json()
    assert {"error", "code"} <= set(doc) and isinstance(doc["error"], str) and doc["error"]
    assert doc["code"] == code
    if field is not None:
        assert doc["field"] == field and field in doc["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "model"),
        ({"version": 1}, "model"),
        ({"model": "iris", "version": 0}, "version"),
        ({"model": "iris", "version": "two"}, "version"),
        ({"model": ["iris"], "version": 1}, "model"),
        ({"model": "iris", "version": 1, "batching": "on"}, "batching"),
    ],
)
def test_a_bad_body_is_422_naming_the_field(
    api: httpx.Client, body: dict[str, Any], field: str
) -> None:
    assert_error(api.post("/endpoints", json=body), 422, "invalid_input", field)


def test_a_body_that_is_not_json_is_422(api: httpx.Client) -> None:
    r = api.post("/endpoints", content=b"{nope", headers={"content-type": "application/json"})
    assert_error(r, 422, "invalid_input", None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "iris"}, "version"),
        ({"model": "iris", "version": 1, "alias": "champion"}, "version"),
        ({"model": "iris", "version": 1, "batching": {"max_batch_size": 0}}, "max_batch_size"),
        ({"model": "iris", "version": 1, "batching": {"turbo": True}}, "batching"),
        ({"model": "iris", "version": 1, "endpoint": "../etc"}, None),
    ],
)
def test_invalid_deploys_are_400_naming_the_field(
    api: httpx.Client, body: dict[str, Any], field: str | None
) -> None:
    r = api.post("/endpoints", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["code"] in ("invalid_input", "invalid_name", "unsafe_path")
    if field is not None:
        assert_error(r, 400, "invalid_input", field)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/endpoints", {"model": "nope", "version": 1}),
        ("POST", "/endpoints", {"model": "iris", "version": 9}),
        ("POST", "/endpoints", {"model": "iris", "alias": "nobody"}),
        ("GET", "/models/nope", None),
        ("GET", "/models/iris/versions/9", None),
        ("GET", "/endpoints/nope", None),
    ],
)
def test_unknown_things_are_404(
    api: httpx.Client, method: str, path: str, body: dict[str, Any] | None
) -> None:
    assert_error(api.request(method, path, json=body), 404, "not_found", None)
