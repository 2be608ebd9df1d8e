"""Request decoding and response encoding for the Open Inference Protocol V2 (REST/JSON) and
the MLflow scoring formats. Bodies are parsed once with orjson into NumPy columns; errors
name the field, what was expected and what was got."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from lockgate.batch import Batch
from lockgate.errors import InvalidInputError, SchemaError
from lockgate.registry.signature import Signature

#: OIP datatype -> numpy dtype name (BYTES -> Python str objects)
OIP_TO_NUMPY: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "string",
}
NUMPY_TO_OIP: dict[str, str] = {v: k for k, v in OIP_TO_NUMPY.items()}
NUMPY_TO_OIP["datetime"] = "BYTES"
#: numpy dtype -> OIP datatype, looked up by dtype (a dtype's ``.name`` is slow to compute)
_OIP_OF_DTYPE: dict[np.dtype, str] = {
    np.dtype(v): k for k, v in OIP_TO_NUMPY.items() if v != "string"
}

_JSON_OPTS = orjson.OPT_SERIALIZE_NUMPY


def loads(body: bytes) -> Any:
    if not body:
        raise InvalidInputError.for_field("body", "a JSON document", "an empty body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(
            f"body: expected valid JSON, got a parse error: {exc}",
            field="body",
            expected="valid JSON",
            got=str(exc),
        ) from None


def dumps(doc: Any) -> bytes:
    return orjson.dumps(doc, option=_JSON_OPTS)


# -- Open Inference Protocol V2 -----------------------------------------------------------


@dataclass(slots=True)
class OipTensor:
    name: str
    shape: list[int]
    datatype: str
    array: np.ndarray  # shaped


@dataclass(slots=True)
class OipRequest:
    id: str | None
    parameters: dict[str, Any] | None
    inputs: list[OipTensor]
    outputs: list[str] | None


def decode_oip(body: bytes, header_length: int | None = None) -> OipRequest:
    """Decode an OIP inference request. With ``header_length`` (the
    ``Inference-Header-Content-Length`` header of the binary tensor data extension, which
    tritonclient uses by default), the body is a JSON header of that many bytes followed by
    the raw tensor bytes of every input whose ``parameters.binary_data_size`` is set."""
    binary: memoryview | None = None
    if header_length is not None:
        if not 0 < header_length <= len(body):
            raise InvalidInputError.for_field(
                "Inference-Header-Content-Length", f"a length in [1, {len(body)}]", header_length
            )
        binary = memoryview(body)[header_length:]
        body = body[:header_length]
    doc = loads(body)
    if not isinstance(doc, dict):
        raise InvalidInputError.for_field("body", "a JSON object", type(doc).__name__)
    rid = doc.get("id")
    if rid is not None and not isinstance(rid, str):
        raise InvalidInputError.for_field("id", "a string", rid)
    params = doc.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise InvalidInputError.for_field("parameters", "an object", params)
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInputError.for_field("inputs", "a non-empty list of tensors", inputs)
    offset = [0]
    bools = _may_hold_booleans(body)
    plain = len(body) >= PLAIN_MIN_BYTES and not bools and _only_numbers_in_data(body, doc)
    tensors = [_decode_tensor(t, i, binary, offset, bools, plain) for i, t in enumerate(inputs)]
    if binary is not None and offset[0] != len(binary):
        raise InvalidInputError.for_field(
            "body",
            f"{offset[0]} bytes of binary tensor data after the JSON header",
            f"{len(binary)} bytes",
        )
    outs = doc.get("outputs")
    wanted = None
    if outs is not None:
        if not isinstance(outs, list) or not all(isinstance(o, dict) and "name" in o for o in outs):
            raise InvalidInputError.for_field("outputs", 'a list of {"name": ...}', outs)
        wanted = [str(o["name"]) for o in outs]
    return OipRequest(rid, params, tensors, wanted)


def _may_hold_booleans(body: bytes) -> bool:
    """Whether a JSON text may hold ``true`` or ``false``. NumPy reads them as 1 and 0 next
    to numbers, so a tensor's values are looked at one by one for booleans, but only in a
    body where this says yes. A search for the four bytes costs about 12 us in a 20 KB body;
    every ``true`` has an ``r`` and every ``false`` an ``l``, which ``bytes.find`` (memchr)
    finds in 0.3 us, and numbers hold neither, so only each ``r`` and ``l`` is looked at."""
    for char, word, before in ((b"r", b"true", 1), (b"l", b"false", 2)):
        i = body.find(char)
        while i != -1:
            if i >= before and body[i - before : i - before + len(word)] == word:
                return True
            i = body.find(char, i + 1)
    return False


#: bodies from this size on are checked for holding nothing but numbers in their tensors'
#: ``data`` (:func:`_only_numbers_in_data`, ~3 us), which lets float tensors skip NumPy's
#: type inference (~9 us per 1,000 values)
PLAIN_MIN_BYTES = 4096


def _only_numbers_in_data(body: bytes, doc: dict[str, Any]) -> bool:
    """Whether every tensor's ``data`` in the JSON text holds numbers only (no string, no
    ``null``; booleans are looked for by :func:`_may_hold_booleans`). Every JSON string,
    key or value, is written between two ``"`` (an escaped quote inside one adds more), so
    when the body holds exactly twice as many as there are strings outside the ``data``
    lists, those lists hold none. ``null`` has an ``l`` at its third and fourth byte, like
    ``false``: only each ``l`` is looked at."""
    i = body.find(b"l")
    while i != -1:
        if i >= 2 and body[i - 2 : i + 2] == b"null":
            return False
        i = body.find(b"l", i + 1)
    expected = 2 * _strings_outside_data(doc)
    seen = 0
    i = body.find(b'"')  # memchr: a tenth of what bytes.count costs here
    while i != -1:
        seen += 1
        if seen > expected:
            return False
        i = body.find(b'"', i + 1)
    return seen == expected


def _strings_outside_data(doc: dict[str, Any]) -> int:
    """JSON strings (keys included) of an OIP request, not counting its tensors' ``data``."""
    n = 0
    for key, value in doc.items():
        n += 1
        if key == "inputs" and value.__class__ is list:
            for t in value:
                if t.__class__ is dict:
                    for k, v in t.items():
                        n += 1 if k == "data" else 1 + _strings_in(v)
                else:
                    n += _strings_in(t)
        else:
            n += _strings_in(value)
    return n


def _strings_in(value: Any) -> int:
    cls = value.__class__
    if cls is str:
        return 1
    if cls is dict:
        return sum(1 + _strings_in(v) for v in value.values())
    if cls is list:
        return sum(_strings_in(v) for v in value if v.__class__ in _CONTAINERS)
    return 0


_CONTAINERS = (str, dict, list)
_FLOATS = frozenset({"float16", "float32", "float64"})


def _first_boolean(values: list[Any]) -> bool | None:
    """The first JSON ``true`` or ``false`` of a (nested) list, None when it holds none."""
    return next((v for v in _flatten(values) if v is True or v is False), None)


def _decode_tensor(
    t: Any,
    i: int,
    binary: memoryview | None = None,
    offset: list[int] | None = None,
    bools: bool = True,
    plain: bool = False,
) -> OipTensor:
    where = f"inputs[{i}]"
    if not isinstance(t, dict):
        raise InvalidInputError.for_field(where, "a tensor object", type(t).__name__)
    name = t.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInputError.for_field(f"{where}.name", "a non-empty string", name)
    where = f"input {name!r}"
    shape = t.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
    ):
        raise InvalidInputError.for_field(f"{where}.shape", "a list of non-negative ints", shape)
    datatype = t.get("datatype")
    if datatype not in OIP_TO_NUMPY:
        raise InvalidInputError.for_field(
            f"{where}.datatype", f"one of {', '.join(OIP_TO_NUMPY)}", datatype
        )
    tparams = t.get("parameters") or {}
    if isinstance(tparams, dict) and "binary_data_size" in tparams:
        arr = _binary_tensor(t, tparams["binary_data_size"], datatype, shape, where, binary, offset)
        return OipTensor(name, shape, datatype, arr.reshape(shape))
    if "data" not in t:
        raise InvalidInputError.for_field(f"{where}.data", "a list of values", None)
    data = t["data"]
    if not isinstance(data, list):
        data = [data]
    expected = math.prod(shape)
    arr = _to_array(data, datatype, where, bools, plain)
    if arr.size != expected:
        raise InvalidInputError(
            f"{where}: data has {arr.size} elements but shape {shape} needs {expected}",
            field=f"{where}.data",
            expected=expected,
            got=int(arr.size),
        )
    return OipTensor(name, shape, datatype, arr.reshape(shape))


def _binary_tensor(
    t: dict[str, Any],
    size: Any,
    datatype: str,
    shape: list[int],
    where: str,
    binary: memoryview | None,
    offset: list[int] | None,
) -> np.ndarray:
    """Raw little-endian tensor bytes (BYTES: each element a 4-byte length, then UTF-8)."""
    if binary is None or offset is None:
        raise InvalidInputError.for_field(
            f"{where}.parameters.binary_data_size",
            "an Inference-Header-Content-Length header with binary data",
            size,
        )
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidInputError.for_field(
            f"{where}.parameters.binary_data_size", "a non-negative int", size
        )
    start = offset[0]
    if start + size > len(binary):
        raise InvalidInputError.for_field(
            f"{where}.parameters.binary_data_size",
            f"at most the {len(binary) - start} bytes left in the body",
            size,
        )
    chunk = binary[start : start + size]
    offset[0] = start + size
    count = math.prod(shape)
    if datatype == "BYTES":
        values: list[str] = []
        pos = 0
        raw = bytes(chunk)
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise InvalidInputError.for_field(
                    f"{where}.data", "length-prefixed strings", "a truncated length prefix"
                )
            n = int.from_bytes(raw[pos : pos + 4], "little")
            item = raw[pos + 4 : pos + 4 + n]
            if len(item) != n:
                raise InvalidInputError.for_field(f"{where}.data", f"{n} bytes", len(item))
            try:
                values.append(item.decode("utf-8"))
            except UnicodeDecodeError:
                raise InvalidInputError.for_field(
                    f"{where}.data", "UTF-8 strings", "undecodable bytes"
                ) from None
            pos += 4 + n
        arr = np.asarray(values, dtype=object)
    else:
        dtype = np.dtype(OIP_TO_NUMPY[datatype]).newbyteorder("<")
        if size != count * dtype.itemsize:
            raise InvalidInputError(
                f"{where}: binary data has {size} bytes but shape {shape} of {datatype} "
                f"needs {count * dtype.itemsize}",
                field=f"{where}.parameters.binary_data_size",
                expected=count * dtype.itemsize,
                got=size,
            )
        arr = np.frombuffer(chunk, dtype=dtype).astype(dtype.newbyteorder("="), copy=False)
        if datatype == "BOOL" and arr.size and arr.view(np.uint8).max() > 1:
            raise InvalidInputError.for_field(
                f"{where}.data", "bytes 0 or 1 for BOOL", int(arr.view(np.uint8).max())
            )
    if arr.size != count:
        raise InvalidInputError(
            f"{where}: data has {arr.size} elements but shape {shape} needs {count}",
            field=f"{where}.data",
            expected=count,
            got=int(arr.size),
        )
    return arr


def _to_array(
    data: list[Any], datatype: str, where: str, bools: bool = True, plain: bool = False
) -> np.ndarray:
    """The values of a JSON ``data`` list as an array of the datatype, refusing anything
    else (strings or booleans for numbers, numbers for BOOL, values out of range). ``bools``
    False says the body holds no JSON boolean, which spares looking for them; ``plain``
    says every ``data`` of the body holds numbers only (:func:`_only_numbers_in_data`)."""
    dtype = OIP_TO_NUMPY[datatype]
    if plain and dtype in _FLOATS:
        try:  # numbers only: straight to float64, in one pass (a nested list refuses)
            values = np.fromiter(data, np.float64, len(data))
        except (TypeError, ValueError, OverflowError):
            pass  # nested, or an integer beyond float64: the general path below
        else:
            return values if dtype == "float64" else _narrow_float(values, dtype, where)
    if dtype == "string":
        flat = _flatten(data)
        if not all(isinstance(v, str) for v in flat):
            bad = next(v for v in flat if not isinstance(v, str))
            raise InvalidInputError.for_field(f"{where}.data", "strings for BYTES", bad)
        return np.asarray(flat, dtype=object)
    try:
        raw = np.asarray(data)
    except ValueError:
        raise InvalidInputError.for_field(
            f"{where}.data", "a flat or rectangular nested list", "a ragged list"
        ) from None
    if dtype == "uint64" and raw.dtype.kind == "f":
        raw = _exact_uint64(data, raw)
    kind = raw.dtype.kind
    if dtype == "bool":
        if kind != "b":
            raise InvalidInputError.for_field(
                f"{where}.data", "true/false values for BOOL", _sample(raw)
            )
        return raw.reshape(-1)
    if kind == "b" or kind not in "iuf":
        raise InvalidInputError.for_field(
            f"{where}.data", f"numbers for {datatype}", _first_non_number(data, raw)
        )
    bad = _first_boolean(data) if bools else None  # NumPy made 1/0 of true/false
    if bad is not None:
        raise InvalidInputError.for_field(f"{where}.data", f"numbers for {datatype}", bad)
    if dtype.startswith(("int", "uint")):
        if kind == "f":
            raise InvalidInputError.for_field(
                f"{where}.data", f"integers for {datatype}", _sample(raw)
            )
        info = np.iinfo(dtype)
        if raw.size and (int(raw.min()) < info.min or int(raw.max()) > info.max):
            raise InvalidInputError.for_field(
                f"{where}.data",
                f"values in the {datatype} range [{info.min}, {info.max}]",
                int(raw.max()) if int(raw.max()) > info.max else int(raw.min()),
            )
    if dtype in ("float16", "float32"):
        return _narrow_float(raw.reshape(-1), dtype, where)
    return raw.reshape(-1).astype(dtype, copy=False)


def _narrow_float(raw: np.ndarray, dtype: str, where: str) -> np.ndarray:
    """Flat numbers as float16 or float32; JSON numbers are finite, so inf means overflow."""
    with np.errstate(over="ignore"):
        out = raw.astype(dtype)
    if not np.isfinite(out).all():
        info = np.finfo(dtype)
        raise InvalidInputError.for_field(
            f"{where}.data",
            f"values in the {NUMPY_TO_OIP[dtype]} range [{info.min}, {info.max}]",
            _sample(raw[~np.isfinite(out)]),
        )
    return out


def _exact_uint64(data: list[Any], raw: np.ndarray) -> np.ndarray:
    """JSON integers at or above 2**63 next to smaller ones make NumPy infer float64, which
    loses them; read such data again as uint64 when that gives the same numbers."""
    if not raw.size or raw.max() < 2.0**63:
        return raw
    try:
        exact = np.asarray(data, dtype=np.uint64)
    except (OverflowError, ValueError, TypeError):
        return raw  # negative or not integers: reported by the caller
    return exact if np.array_equal(exact.astype(np.float64), raw) else raw


def _flatten(data: list[Any]) -> list[Any]:
    if not any(isinstance(v, list) for v in data):
        return data
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for v in stack[-1]:
            if isinstance(v, list):
                stack.append(iter(v))
                break
            out.append(v)
        else:
            stack.pop()
    return out


def _first_non_number(data: list[Any], raw: np.ndarray) -> Any:
    """The value to name in a "numbers expected" refusal: the first that is not one."""
    bad = (v for v in _flatten(data) if v.__class__ not in (int, float))
    return next(bad, _sample(raw))


def _sample(raw: np.ndarray) -> Any:
    flat = raw.reshape(-1)
    return (
        flat[0].item()
        if flat.size and hasattr(flat[0], "item")
        else (flat[0] if flat.size else None)
    )


def oip_batch(req: OipRequest, signature: Signature) -> Batch:
    """Map OIP tensors onto the signature: one named input per column, or a single 2-D
    tensor whose columns are the inputs in signature order."""
    names = signature.input_name_set
    if len(req.inputs) == 1 and req.inputs[0].name not in names:
        t = req.inputs[0]
        if len(signature.inputs) == 1 and t.array.ndim == 1:
            return signature.validate_columns({signature.inputs[0].name: t.array}, t.array.shape[0])
        if t.array.ndim != 2:
            raise SchemaError(
                f"input {t.name!r}: expected a 2-D tensor [n, {len(signature.inputs)}] with "
                f"columns {signature.input_names}, or one input per column, got shape {t.shape}",
                field=t.name,
                expected=[-1, len(signature.inputs)],
                got=t.shape,
            )
        return signature.validate_matrix(t.array)
    columns: dict[str, np.ndarray] = {}
    n_rows: int | None = None
    for t in req.inputs:
        if t.name not in names:
            raise SchemaError(
                f"unknown input {t.name!r}; expected inputs {signature.input_names}",
                field=t.name,
                expected=signature.input_names,
                got=t.name,
            )
        spec = signature.input(t.name)
        arr = t.array
        if not spec.shape and arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim == 0:
            arr = arr.reshape(1)
        if n_rows is None:
            n_rows = arr.shape[0]
        elif arr.shape[0] != n_rows:
            raise SchemaError(
                f"input {t.name!r}: expected {n_rows} rows like the other inputs, "
                f"got {arr.shape[0]}",
                field=t.name,
                expected=n_rows,
                got=int(arr.shape[0]),
            )
        columns[t.name] = arr
    return signature.validate_columns(columns, n_rows or 0)


def oip_output_tensors(outputs: np.ndarray, signature: Signature) -> list[dict[str, Any]]:
    arr = np.asarray(outputs)
    spec = signature.outputs[0] if signature.outputs else None
    name = spec.name if spec else "prediction"
    kind = arr.dtype.kind
    if kind in "OUS":
        datatype, data = "BYTES", [str(v) for v in arr.reshape(-1).tolist()]
    elif kind == "M":
        datatype, data = "BYTES", [str(v) for v in arr.reshape(-1)]
    else:
        datatype = _OIP_OF_DTYPE.get(arr.dtype) or NUMPY_TO_OIP.get(arr.dtype.name, "FP64")
        data = arr.reshape(-1)
    return [{"name": name, "shape": list(arr.shape), "datatype": datatype, "data": data}]


def encode_oip_response(
    *,
    model: str,
    version: int,
    request_id: str,
    outputs: np.ndarray,
    signature: Signature,
    parameters: dict[str, Any] | None,
) -> bytes:
    doc: dict[str, Any] = {
        "model_name": model,
        "model_version": str(version),
        "id": request_id,
        "outputs": oip_output_tensors(outputs, signature),
    }
    if parameters is not None:
        doc["parameters"] = parameters
    return dumps(doc)


def signature_metadata(
    name: str, versions: list[str], signature: Signature, platform: str
) -> dict[str, Any]:
    def tensor(c: Any) -> dict[str, Any]:
        return {
            "name": c.name,
            "datatype": NUMPY_TO_OIP.get(c.dtype, "BYTES"),
            "shape": [-1, *c.shape],
        }

    return {
        "name": name,
        "versions": versions,
        "platform": platform,
        "inputs": [tensor(c) for c in signature.inputs],
        "outputs": [tensor(c) for c in signature.outputs],
    }


# -- MLflow scoring formats ---------------------------------------------------------------

MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def decode_mlflow(body: bytes) -> Callable[[Signature], Batch]:
    """Parse the body now (so a malformed body fails before routing); return the mapping
    onto the routed version's signature."""
    doc = loads(body)
    if not isinstance(doc, dict):
        raise InvalidInputError.for_field(
            "body", f"an object with one of {MLFLOW_KEYS}", type(doc).__name__
        )
    keys = [k for k in MLFLOW_KEYS if k in doc]
    if len(keys) != 1:
        raise InvalidInputError.for_field(
            "body", f"exactly one of {', '.join(MLFLOW_KEYS)}", sorted(doc)
        )
    key = keys[0]
    payload = doc[key]
    bools = _may_hold_booleans(body)
    if key == "dataframe_split":
        return lambda sig: _from_split(payload, sig, bools)
    if key == "dataframe_records":
        return lambda sig: _from_records(payload, sig, key, bools)
    # instances / inputs: records, a columnar object, or rows in signature order
    return lambda sig: _from_tensor_like(payload, sig, key, bools)


def _from_split(payload: Any, sig: Signature, bools: bool) -> Batch:
    if not isinstance(payload, dict):
        raise InvalidInputError.for_field(
            "dataframe_split", "an object with columns and data", type(payload).__name__
        )
    columns = payload.get("columns")
    data = payload.get("data")
    if not isinstance(data, list):
        raise InvalidInputError.for_field("dataframe_split.data", "a list of rows", data)
    if columns is None:
        return _rows(data, sig, "dataframe_split.data", bools)
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InvalidInputError.for_field("dataframe_split.columns", "a list of names", columns)
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise InvalidInputError.for_field(
                f"dataframe_split.data[{i}]", f"a row of {len(columns)} values", row
            )
    if columns == sig.input_names and data and not bools:
        try:
            matrix = np.asarray(data)
        except ValueError:
            matrix = None
        if matrix is not None and matrix.dtype.kind in "iufb" and matrix.ndim == 2:
            return sig.validate_matrix(matrix)
    cols = {c: _column([row[j] for row in data], bools) for j, c in enumerate(columns)}
    return sig.validate_columns(cols, len(data))


def _from_records(payload: Any, sig: Signature, key: str, bools: bool) -> Batch:
    if not isinstance(payload, list):
        raise InvalidInputError.for_field(key, "a list of records", type(payload).__name__)
    names = sig.input_names
    cols: dict[str, list[Any]] = {n: [] for n in names}
    for i, rec in enumerate(payload):
        if not isinstance(rec, dict):
            raise InvalidInputError.for_field(f"{key}[{i}]", "an object", rec)
        for n in names:
            if n not in rec:
                raise SchemaError(
                    f"{key}[{i}]: missing input column {n!r}; expected columns {names}",
                    field=n,
                    expected=names,
                    got=sorted(rec),
                )
            cols[n].append(rec[n])
    return sig.validate_columns({n: _column(v, bools) for n, v in cols.items()}, len(payload))


def _from_tensor_like(payload: Any, sig: Signature, key: str, bools: bool) -> Batch:
    if isinstance(payload, dict):
        cols: dict[str, np.ndarray] = {}
        n_rows = None
        for name, values in payload.items():
            arr = _column(values if isinstance(values, list) else [values], bools)
            if n_rows is None:
                n_rows = arr.shape[0]
            elif arr.shape[0] != n_rows:
                raise SchemaError(
                    f"{key}.{name}: expected {n_rows} values like the other columns, "
                    f"got {arr.shape[0]}",
                    field=name,
                    expected=n_rows,
                    got=int(arr.shape[0]),
                )
            cols[str(name)] = arr
        return sig.validate_columns(cols, n_rows or 0)
    if isinstance(payload, list) and payload and isinstance(payload[0], dict):
        return _from_records(payload, sig, key, bools)
    if isinstance(payload, list):
        return _rows(payload, sig, key, bools)
    raise InvalidInputError.for_field(key, "records, columns or rows", type(payload).__name__)


def _rows(data: list[Any], sig: Signature, where: str, bools: bool) -> Batch:
    if len(sig.inputs) == 1 and data and not isinstance(data[0], list):
        return sig.validate_columns({sig.inputs[0].name: _column(data, bools)}, len(data))
    try:
        matrix = np.asarray(data)
    except ValueError:
        raise InvalidInputError.for_field(where, "rows of equal length", "ragged rows") from None
    if matrix.ndim != 2:
        raise InvalidInputError.for_field(
            where, f"rows of {len(sig.inputs)} values", f"an array of shape {list(matrix.shape)}"
        )
    if matrix.dtype.kind in "iufb" and not bools:
        return sig.validate_matrix(matrix)
    if matrix.shape[1] != len(sig.inputs):
        return sig.validate_matrix(matrix)  # raises the shape error
    # mixed rows (NumPy turned every value into a string, or booleans next to numbers
    # became numbers): take the columns as sent
    objects = np.asarray(data, dtype=object)
    cols = {c.name: _column(objects[:, j].tolist(), bools) for j, c in enumerate(sig.inputs)}
    return sig.validate_columns(cols, matrix.shape[0])


def _column(values: list[Any], bools: bool = True) -> np.ndarray:
    """One column's values as sent: NumPy's array when it holds them without changing
    them, else an object array for validation to accept or refuse. ``bools`` False says
    the body holds no JSON boolean (see :func:`_may_hold_booleans`)."""
    if values and isinstance(values[0], str):  # a string column: skip NumPy's inference
        return np.asarray(values, dtype=object)
    try:
        arr = np.asarray(values)
    except ValueError:
        return np.asarray(values, dtype=object)
    if bools and arr.dtype.kind in "iuf" and _first_boolean(values) is not None:
        return np.asarray(values, dtype=object)  # true/false next to numbers
    if arr.dtype.kind == "f":
        return _exact_uint64(values, arr)
    if arr.dtype.kind in "iub":
        return arr
    # strings, or a mix that NumPy stringified: the values as sent, for validation to
    # accept (all strings) or report (a mix) instead of coercing
    return np.asarray(values, dtype=object)


def encode_mlflow_response(outputs: np.ndarray, ids: list[str]) -> bytes:
    arr = np.asarray(outputs)
    preds: Any = arr.tolist() if arr.dtype.kind in "OUSM" else arr
    return dumps({"predictions": preds, "prediction_ids": ids})


def parameters_or_none(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(params) if params is not None else None
