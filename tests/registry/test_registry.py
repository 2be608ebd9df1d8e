from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from lockgate.client import Client
from lockgate.errors import (
    IntegrityError,
    InvalidInputError,
    InvalidNameError,
    NotFoundError,
    SchemaError,
    UnsafePathError,
    UntrustedArtifactError,
)


@pytest.fixture
def pipeline(iris_like: tuple[pd.DataFrame, np.ndarray]) -> Pipeline:
    X, y = iris_like
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), ["x1", "x2"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"]),
        ]
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(X, y)


def test_register_load_predict_pipeline(
    client: Client, pipeline: Pipeline, iris_like: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, y = iris_like
    ref = X.assign(label=y)
    v = client.register_model(
        "credit-risk",
        pipeline,
        reference=ref,
        target="label",
        metrics={"auc": 0.9},
        params={"C": 1.0},
        tags={"team": "risk"},
    )
    assert v.version == 1 and v.flavor == "sklearn"
    assert [c.name for c in v.signature.inputs] == ["x1", "x2", "color"]
    assert v.signature.outputs[0].dtype == "int64"
    assert v.metrics == {"auc": 0.9} and v.tags == {"team": "risk"}
    assert v.lineage["libraries"]["scikit-learn"]
    assert v.lineage["reference_data_sha256"]
    assert v.profile_sha256 and v.profile_summary
    with client.load("credit-risk/1") as m:
        np.testing.assert_array_equal(m.predict(X), pipeline.predict(X))
    profile = client.workspace.registry.load_profile(v)
    assert profile is not None and profile.n_rows == len(ref)


def test_versions_are_numbered_and_immutable(
    client: Client, pipeline: Pipeline, tmp_path: Path, iris_like: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, _ = iris_like
    v1 = client.register_model("m", pipeline, sample=X)
    path = tmp_path / "model.skops"
    __import__("skops.io").io.dump(pipeline, path)
    v2 = client.register_model("m", path, sample=X)
    v3 = client.register_model("m", path, sample=X)
    assert (v1.version, v2.version, v3.version) == (1, 2, 3)
    assert v2.artifact_sha256 == v3.artifact_sha256  # same bytes, stored once
    blobs = list(Path(client.workspace.artifacts.root).rglob("sha256/*/*"))
    assert len(blobs) == 2
    assert client.get_version("m").version == 3
    assert client.get_version("m/1") == v1
    assert [v.version for v in client.list_versions("m")] == [1, 2, 3]
    assert client.list_models()[0].latest_version == 3


def test_aliases_and_history(
    client: Client, pipeline: Pipeline, iris_like: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, _ = iris_like
    client.register_model("m", pipeline, sample=X)
    client.register_model("m", pipeline, sample=X)
    client.set_alias("m", "champion", 1, reason="first")
    assert client.get_version("m@champion").version == 1
    client.set_alias("m", "champion", 2, reason="better")
    client.delete_alias("m", "champion", reason="retired")
    with pytest.raises(NotFoundError, match="alias not found: m@champion"):
        client.get_version("m@champion")
    hist = client.alias_history("m")
    assert [(h.action, h.from_version, h.to_version, h.reason) for h in hist] == [
        ("set", None, 1, "first"),
        ("move", 1, 2, "better"),
        ("delete", 2, None, "retired"),
    ]
    assert all(h.actor for h in hist)
    kinds = [e.kind for e in client.events()]
    assert kinds.count("alias.set") == 1 and kinds.count("alias.move") == 1
    assert client.verify_events().ok


def test_not_found_errors_name_the_thing(
    client: Client, pipeline: Pipeline, iris_like: tuple[pd.DataFrame, np.ndarray]
) -> None:
    with pytest.raises(NotFoundError, match="model not found: nope"):
        client.get_version("nope/1")
    client.register_model("m", pipeline, sample=iris_like[0])
    with pytest.raises(NotFoundError, match="version not found: m/7"):
        client.get_version("m/7")
    with pytest.raises(NotFoundError, match="version not found: m/7"):
        client.set_alias("m", "champion", 7)
    with pytest.raises(NotFoundError, match="alias not found: m@gold"):
        client.load("m@gold")


def test_bad_names(
    client: Client, pipeline: Pipeline, iris_like: tuple[pd.DataFrame, np.ndarray]
) -> None:
    with pytest.raises(InvalidNameError, match="'Bad Name'"):
        client.register_model("Bad Name", pipeline, sample=iris_like[0])
    client.register_model("m", pipeline, sample=iris_like[0])
    with pytest.raises(InvalidNameError, match="alias"):
        client.set_alias("m", "Champion!", 1)


def test_predict_schema_errors_name_column(
    client: Client, pipeline: Pipeline, iris_like: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, _ = iris_like
    client.register_model("m", pipeline, sample=X)
    with client.load("m/1") as m:
        with pytest.raises(SchemaError, match="missing input column 'color'"):
            m.predict(X[["x1", "x2"]])
        with pytest.raises(SchemaError) as exc:
            m.predict(X.assign(x1="high"))
        assert "'x1'" in str(exc.value) and "float64" in str(exc.value)
        assert "string" in str(exc.value)


def test_pickle_refused_without_trust(
    client: Client, pipeline: Pipeline, tmp_path: Path, iris_like: tuple[pd.DataFrame, np.ndarray]
) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(pipeline, path)
    with pytest.raises(UntrustedArtifactError, match="--trust-pickle"):
        client.register_model("m", path, sample=iris_like[0])
    v = client.register_model("m", path, sample=iris_like[0], trust_pickle=True)
    assert v.trusted_pickle and v.lineage["trusted_pickle"] is True
    with client.load("m/1") as m:
        np.testing.assert_array_equal(m.predict(iris_like[0]), pipeline.predict(iris_like[0]))


def test_tampered_artifact_refused_on_load(
    client: Client, pipeline: Pipeline, iris_like: tuple[pd.DataFrame, np.ndarray]
) -> None:
    v = client.register_model("m", pipeline, sample=iris_like[0])
    root = Path(client.workspace.artifacts.root)
    blob = root / "sha256" / v.artifact_sha256[:2] / v.artifact_sha256
    data = bytearray(blob.read_bytes())
    data[-10] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="version m/1"):
        client.load("m/1")


def test_unsafe_sources_refused(client: Client, iris_like: tuple[pd.DataFrame, np.ndarray]) -> None:
    with pytest.raises(UnsafePathError, match="scheme 'http'"):
        client.register_model("m", "http://example.com/model.onnx", sample=iris_like[0])
    with pytest.raises(UnsafePathError):
        client.register_model("m", "../../etc/passwd-not-here", sample=iris_like[0])


def test_signature_required(client: Client, pipeline: Pipeline) -> None:
    with pytest.raises(InvalidInputError, match="signature"):
        client.register_model("m", pipeline)


def test_register_from_file_with_reference_csv(
    client: Client, pipeline: Pipeline, tmp_path: Path, iris_like: tuple[pd.DataFrame, np.ndarray]
) -> None:
    import skops.io as sio

    X, y = iris_like
    path = tmp_path / "model.skops"
    sio.dump(pipeline, path)
    ref = tmp_path / "ref.csv"
    X.assign(label=y).to_csv(ref, index=False)
    v = client.register_model("m", str(path), reference=str(ref), target="label")
    assert v.flavor == "sklearn" and v.artifact_name == "model.skops"
    with client.load("m@champion" if False else "m/1") as m:
        np.testing.assert_array_equal(m.predict(X), pipeline.predict(X))
