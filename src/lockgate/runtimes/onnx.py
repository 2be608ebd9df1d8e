"""The ONNX runtime (flavor ``onnx``), on onnxruntime's CPU provider.

Inputs are fed in one of two layouts, chosen from the model's inputs:

* one input: the whole frame as one array of the input's element type, shape
  ``(rows, columns)`` in signature column order (a single column of per-row tensors is
  stacked to ``(rows, *row_shape)``);
* one input per column (what skl2onnx makes from a DataFrame): each column as ``(rows, 1)``,
  matched to inputs by name, else by position.

``predict`` returns the first output (labels for classifiers; a ``(rows, 1)`` output is
flattened to ``(rows,)``). ``predict_proba`` returns the probabilities output (named
``probabilities`` / ``output_probability``, or the second output), turning skl2onnx's ZipMap
list of dicts into a ``(rows, classes)`` array.

Options: ``intra_op_num_threads`` (default 1), ``inter_op_num_threads`` (default 1).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lockgate.batch import Batch
from lockgate.errors import InvalidInputError, SchemaError
from lockgate.runtimes._util import (
    artifact_file,
    folder_has,
    import_framework,
    load_error,
    predicting,
)
from lockgate.runtimes.base import Runtime

ARTIFACT_NAMES = ("model.onnx",)
_PROBA_NAMES = ("probabilities", "output_probability", "probability", "proba")

#: ONNX tensor element types -> NumPy dtypes
_ELEMENT_TYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
    "tensor(string)": object,
}


def _column_array(values: np.ndarray, dtype: Any) -> np.ndarray:
    if values.dtype == object and len(values) and isinstance(values[0], (list, np.ndarray)):
        values = np.stack([np.asarray(v) for v in values])
    if dtype is object:
        return values.astype(str).astype(object) if values.dtype.kind != "O" else values
    return values.astype(dtype, copy=False)


def _proba_array(value: Any) -> np.ndarray:
    """Probabilities as a 2-D float array; ZipMap output (a list of dicts) included."""
    if isinstance(value, list):
        if not value:
            return np.empty((0, 0))
        keys = list(value[0])
        return np.array([[row[k] for k in keys] for row in value], dtype=np.float64)
    return np.asarray(value)


class OnnxRuntime(Runtime):
    flavor: ClassVar[str] = "onnx"
    requires: ClassVar[tuple[str, ...]] = ("onnxruntime",)

    def load(self) -> None:
        ort = import_framework("onnxruntime", self.flavor, "onnxruntime")
        file = artifact_file(self.path, self.flavor, ARTIFACT_NAMES)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(self.options.get("intra_op_num_threads", 1))
        opts.inter_op_num_threads = int(self.options.get("inter_op_num_threads", 1))
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        try:
            session = ort.InferenceSession(
                str(file), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise load_error(self.flavor, file, exc) from exc
        inputs = session.get_inputs()
        outputs = session.get_outputs()
        self.inputs_ = [(i.name, _ELEMENT_TYPES.get(i.type, np.float32)) for i in inputs]
        self.label_output_ = outputs[0].name
        proba = [o.name for o in outputs if o.name.lower() in _PROBA_NAMES]
        if not proba and len(outputs) > 1:
            proba = [outputs[1].name]
        self.proba_output_ = proba[0] if proba else None
        self.model_ = session

    def unload(self) -> None:
        for attr in ("model_", "inputs_", "label_output_", "proba_output_"):
            self.__dict__.pop(attr, None)

    # -- prediction ------------------------------------------------------------------------
    def _feed(self, batch: Batch) -> dict[str, np.ndarray]:
        inputs = self.inputs_
        if len(inputs) == 1:
            name, dtype = inputs[0]
            if len(batch.names) == 1:
                arr = _column_array(batch.columns[batch.names[0]], dtype)
                return {name: arr if arr.ndim > 1 else arr.reshape(-1, 1)}
            if dtype is object:
                return {name: batch.matrix().astype(str).astype(object)}
            return {name: batch.matrix(np.dtype(dtype))}
        names = [n for n, _ in inputs]
        if set(names) <= set(batch.names):
            columns = [batch.columns[n] for n in names]
        elif len(names) == len(batch.names):
            columns = [batch.columns[n] for n in batch.names]
        else:
            raise SchemaError(
                f"the ONNX model takes inputs {names}; got columns {list(batch.names)}",
                field="columns",
                expected=names,
                got=list(batch.names),
            )
        feed = {}
        for (name, dtype), values in zip(inputs, columns, strict=True):
            arr = _column_array(values, dtype)
            feed[name] = arr if arr.ndim > 1 else arr.reshape(-1, 1)
        return feed

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        return self.predict_batch(Batch.from_frame(data))

    def predict_batch(self, batch: Batch) -> np.ndarray:
        session = self._require_loaded()
        with predicting(self.flavor):
            (raw,) = session.run([self.label_output_], self._feed(batch))
            out = np.asarray(raw)
            return out.reshape(-1) if out.ndim == 2 and out.shape[1] == 1 else out

    def predict_proba(self, data: pd.DataFrame) -> np.ndarray | None:
        session = self._require_loaded()
        if self.proba_output_ is None:
            return None
        with predicting(self.flavor):
            (out,) = session.run([self.proba_output_], self._feed(Batch.from_frame(data)))
            return _proba_array(out)

    def metadata(self) -> dict[str, Any]:
        out = super().metadata()
        out.update(self.framework_versions())
        session = getattr(self, "model_", None)
        if session is None:
            return out
        meta = session.get_modelmeta()
        out["producer"] = meta.producer_name
        out["inputs"] = [
            {"name": i.name, "type": i.type, "shape": i.shape} for i in session.get_inputs()
        ]
        out["outputs"] = [{"name": o.name, "type": o.type} for o in session.get_outputs()]
        return out

    # -- registration-time capabilities ---------------------------------------------------
    @classmethod
    def detect(cls, path: Path) -> bool:
        path = Path(path)
        if path.is_dir():
            return folder_has(path, ARTIFACT_NAMES)
        return path.suffix.lower() == ".onnx" and path.is_file()

    @classmethod
    def can_save(cls, obj: Any) -> bool:
        onnx = sys.modules.get("onnx")
        return onnx is not None and isinstance(obj, onnx.ModelProto)

    @classmethod
    def save(cls, obj: Any, directory: Path) -> Path:
        if not cls.can_save(obj):
            raise InvalidInputError.for_field("model", "an onnx.ModelProto", type(obj).__qualname__)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / "model.onnx"
        target.write_bytes(obj.SerializeToString())
        return target
