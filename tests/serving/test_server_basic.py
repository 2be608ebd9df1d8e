from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from tests import loopback
from tests.serving.conftest import RunningServer


def test_oip_and_mlflow_predict(
    server: RunningServer, trained: tuple[LogisticRegression, pd.DataFrame]
) -> None:
    model, X = trained
    rows = X.head(5)
    expected = model.predict(rows.to_numpy()).tolist()
    body = {
        "inputs": [
            {
                "name": "input-0",
                "shape": [5, 3],
                "datatype": "FP64",
                "data": rows.to_numpy().ravel().tolist(),
            }
        ],
        "id": "abc",
    }
    r = loopback.post(f"{server.url}/v2/models/iris/infer", json=body)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["id"] == "abc" and doc["model_name"] == "iris" and doc["model_version"] == "1"
    assert doc["outputs"][0]["data"] == expected
    r = loopback.post(
        f"{server.url}/v1/endpoints/iris/predict",
        json={"dataframe_split": {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == expected
    assert len(r.json()["prediction_ids"]) == 5
    m = loopback.get(f"{server.url}/metrics").text
    assert 'lockgate_requests_total{code="200",endpoint="iris",role="primary",version="1"} 2.0' in m
    assert np.all(np.isfinite(expected))
