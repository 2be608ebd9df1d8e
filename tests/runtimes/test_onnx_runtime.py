"""The ONNX runtime on models converted from scikit-learn with skl2onnx."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from lockgate.errors import InvalidInputError, ModelLoadError, SchemaError
from lockgate.runtimes import detect_flavor, flavor_for_object
from lockgate.runtimes.check import check_runtime
from lockgate.runtimes.onnx import OnnxRuntime


def _frame(n: int = 120, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n).astype(np.float32)
    x2 = rng.normal(size=n).astype(np.float32)
    color = rng.choice(["red", "green", "blue"], size=n)
    y = ((x1 + 0.5 * x2 + (color == "red")) > 0.5).astype(np.int64)
    return pd.DataFrame({"x1": x1, "x2": x2, "color": color}), y


def _loaded(path: Path, **options: object) -> OnnxRuntime:
    rt = OnnxRuntime(path, options=options)
    rt.load()
    return rt


def _classifier() -> tuple[LogisticRegression, pd.DataFrame, onnx.ModelProto]:
    X, y = _frame()
    num = X[["x1", "x2"]]
    clf = LogisticRegression().fit(num.to_numpy(), y)
    proto = to_onnx(clf, num.to_numpy()[:1], options={"zipmap": False})
    return clf, num, proto


def test_check_runtime_single_tensor_classifier() -> None:
    clf, num, proto = _classifier()
    sample = num.iloc[:40]
    check_runtime(OnnxRuntime, proto, sample, expected=clf.predict(sample.to_numpy()))


def test_check_runtime_regressor_within_float32_tolerance() -> None:
    X, _ = _frame()
    num = X[["x1", "x2"]]
    reg = LinearRegression().fit(num.to_numpy(), 3 * num.x1 - num.x2)
    proto = to_onnx(reg, num.to_numpy()[:1])
    sample = num.iloc[:30]
    check_runtime(OnnxRuntime, proto, sample, expected=reg.predict(sample.to_numpy()), atol=1e-5)


def test_check_runtime_one_input_per_column_pipeline() -> None:
    X, y = _frame()
    pipe = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), ["x1", "x2"]),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"]),
                    ]
                ),
            ),
            ("clf", LogisticRegression()),
        ]
    ).fit(X, y)
    proto = to_onnx(pipe, X.iloc[:1], options={"zipmap": False})
    assert [i.name for i in proto.graph.input] == ["x1", "x2", "color"]
    sample = X.iloc[:40]
    check_runtime(OnnxRuntime, proto, sample, expected=pipe.predict(sample))


def test_predict_proba_and_zipmap(tmp_path: Path) -> None:
    clf, num, proto = _classifier()
    rt = _loaded(OnnxRuntime.save(proto, tmp_path / "plain"))
    expected = clf.predict_proba(num.to_numpy())
    np.testing.assert_allclose(rt.predict_proba(num), expected, atol=1e-6)

    zipmap = to_onnx(clf, num.to_numpy()[:1])  # output_probability is a list of dicts
    zrt = _loaded(OnnxRuntime.save(zipmap, tmp_path / "zipmap"))
    assert zrt.proba_output_ == "output_probability"
    proba = zrt.predict_proba(num)
    assert proba is not None and proba.shape == (len(num), 2)
    np.testing.assert_allclose(proba, expected, atol=1e-6)
    np.testing.assert_array_equal(zrt.predict(num), clf.predict(num.to_numpy()))


def test_regressor_output_is_flat_and_has_no_proba(tmp_path: Path) -> None:
    X, _ = _frame()
    num = X[["x1", "x2"]]
    reg = LinearRegression().fit(num.to_numpy(), num.x1)
    rt = _loaded(OnnxRuntime.save(to_onnx(reg, num.to_numpy()[:1]), tmp_path))
    out = rt.predict(num)
    assert out.shape == (len(num),)
    assert rt.predict_proba(num) is None


def test_columns_are_matched_by_name_then_position(tmp_path: Path) -> None:
    X, y = _frame()
    pipe = Pipeline(
        [
            (
                "prep",
                ColumnTransformer([("cat", OneHotEncoder(), ["color"])], remainder="passthrough"),
            ),
            ("clf", LogisticRegression()),
        ]
    ).fit(X, y)
    rt = _loaded(OnnxRuntime.save(to_onnx(pipe, X.iloc[:1], options={"zipmap": False}), tmp_path))
    expected = pipe.predict(X)
    np.testing.assert_array_equal(rt.predict(X[["color", "x2", "x1"]]), expected)  # by name
    renamed = X.rename(columns={"x1": "a", "x2": "b", "color": "c"})
    np.testing.assert_array_equal(rt.predict(renamed), expected)  # by position
    with pytest.raises(SchemaError, match="takes inputs"):
        rt.predict(X[["x1", "x2"]])


def test_threads_option_and_metadata(tmp_path: Path) -> None:
    _, _, proto = _classifier()
    rt = _loaded(OnnxRuntime.save(proto, tmp_path), intra_op_num_threads=2)
    assert rt.model_.get_session_options().intra_op_num_threads == 2
    default = _loaded(tmp_path / "model.onnx")
    assert default.model_.get_session_options().intra_op_num_threads == 1
    meta = default.metadata()
    assert meta["flavor"] == "onnx"
    assert meta["producer"] == "skl2onnx"
    assert meta["inputs"][0]["type"] == "tensor(float)"
    assert "onnxruntime" in meta


def test_single_input_of_per_row_tensors_is_stacked(tmp_path: Path) -> None:
    # y = sum over the last axis of a (n, 2, 3) input
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0)],
        "sum",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        initializer=[helper.make_tensor("axes", TensorProto.INT64, [1], [2])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    rt = _loaded(OnnxRuntime.save(proto, tmp_path))
    images = np.arange(24, dtype=np.float32).reshape(4, 2, 3)
    frame = pd.DataFrame({"x": list(images)})
    np.testing.assert_allclose(rt.predict(frame), images.sum(axis=2))


def test_save_detect_and_flavor_for_object(tmp_path: Path) -> None:
    _, _, proto = _classifier()
    path = OnnxRuntime.save(proto, tmp_path)
    assert path == tmp_path / "model.onnx"
    assert OnnxRuntime.detect(path) and OnnxRuntime.detect(tmp_path)
    assert detect_flavor(path) == "onnx"
    assert flavor_for_object(proto) == "onnx"
    assert not OnnxRuntime.requires_trust(path)
    assert not OnnxRuntime.can_save(b"bytes")
    with pytest.raises(InvalidInputError, match=r"onnx\.ModelProto"):
        OnnxRuntime.save(b"bytes", tmp_path)


def test_corrupt_onnx_is_a_model_load_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07 definitely not protobuf")
    with pytest.raises(ModelLoadError, match=r"onnx.*broken\.onnx"):
        _loaded(path)
    with pytest.raises(ModelLoadError, match="does not exist"):
        _loaded(tmp_path / "missing.onnx")
