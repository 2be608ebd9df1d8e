"""The byte-level look that lets large float tensors skip NumPy's type inference: it never
says "numbers only" for a body whose ``data`` holds a string or ``null`` (either would be
silently read as a number or NaN), and the decoded values, and every refusal, are the same
with and without it."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.errors import InvalidInputError
from lockgate.serving.codec import PLAIN_MIN_BYTES, _only_numbers_in_data, decode_oip

numbers = st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
scalars = st.none() | st.booleans() | numbers | st.text()
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner)
)
tensor = st.fixed_dictionaries(
    {"name": st.text(), "datatype": st.sampled_from(["FP64", "FP32", "BYTES"]), "data": values},
    optional={"shape": st.lists(st.integers(0, 5)), "parameters": values},
)
request = st.fixed_dictionaries(
    {"inputs": st.lists(tensor | values, max_size=3)},
    optional={"id": st.text(), "parameters": values, "outputs": values},
)


def _strings_or_nulls(value: Any) -> bool:
    if isinstance(value, list):
        return any(_strings_or_nulls(v) for v in value)
    if isinstance(value, dict):
        return bool(value)  # its keys are strings
    return value is None or isinstance(value, str)


def _data_holds_strings_or_nulls(doc: dict[str, Any]) -> bool:
    inputs = doc.get("inputs")
    tensors = [t for t in inputs if isinstance(t, dict) and "data" in t] if inputs else []
    return any(_strings_or_nulls(t["data"]) for t in tensors)


@given(request)
def test_a_string_or_null_in_data_is_never_missed(doc: dict[str, Any]) -> None:
    body = orjson.dumps(doc)
    if _only_numbers_in_data(body, orjson.loads(body)):
        assert not _data_holds_strings_or_nulls(doc)


@given(
    st.lists(numbers, max_size=50),
    st.text() | st.sampled_from(["null", "a\\", 'say "hi"']),
    st.text(),
)
def test_numbers_alone_are_seen_as_such(data: list[Any], rid: str, name: str) -> None:
    doc = {
        "id": rid,
        "inputs": [{"name": name, "datatype": "FP64", "shape": [len(data)], "data": data}],
    }
    body = orjson.dumps(doc)
    # the look is conservative: a quote inside a string (written escaped, one more quote)
    # or "null" anywhere (say in the id) makes it say no
    quoted = '"' in rid or '"' in name
    assert _only_numbers_in_data(body, orjson.loads(body)) == (not quoted and b"null" not in body)


def _body(data: list[Any], datatype: str = "FP64", **extra: Any) -> bytes:
    doc = {"inputs": [{"name": "x", "shape": [len(data)], "datatype": datatype, "data": data}]}
    body = orjson.dumps({**doc, **extra})
    assert len(body) >= PLAIN_MIN_BYTES
    return body


ROWS = [float(v) for v in np.random.default_rng(3).normal(size=600)]


@pytest.mark.parametrize("datatype", ["FP64", "FP32", "FP16"])
def test_large_float_tensors_decode_to_the_same_values(datatype: str) -> None:
    data: list[Any] = [*ROWS[:-2], 7, -(2**11)]  # integers too
    got = decode_oip(_body(data, datatype, id='a "quoted" id')).inputs[0].array
    dtype = {"FP64": np.float64, "FP32": np.float32, "FP16": np.float16}[datatype]
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, np.asarray(data, dtype=np.float64).astype(dtype))


@pytest.mark.parametrize(
    ("bad", "needle"),
    [("1.5", "'1.5'"), (None, "None"), (True, "True"), ([1.0], "ragged")],
)
def test_large_float_tensors_refuse_what_small_ones_refuse(bad: Any, needle: str) -> None:
    data = [*ROWS[:300], bad, *ROWS[300:]]
    with pytest.raises(InvalidInputError) as large:
        decode_oip(_body(data))
    with pytest.raises(InvalidInputError) as small:
        decode_oip(
            orjson.dumps(
                {
                    "inputs": [
                        {"name": "x", "shape": [3], "datatype": "FP64", "data": [1.0, bad, 2.0]}
                    ]
                }
            )
        )
    assert large.value.field == small.value.field == "input 'x'.data"
    assert needle in str(large.value)


def test_a_large_fp32_overflow_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="FP32 range"):
        decode_oip(_body([*ROWS, 1e300], "FP32"))


def test_large_nested_data_still_decodes() -> None:
    nested = [ROWS[i : i + 10] for i in range(0, 600, 10)]
    body = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [60, 10], "datatype": "FP64", "data": nested}]}
    )
    got = decode_oip(body).inputs[0].array
    np.testing.assert_array_equal(got, np.asarray(ROWS).reshape(60, 10))


def test_the_largest_json_integers_decode_as_in_small_bodies() -> None:
    big = [2**64 - 1, -(2**63), 2**53 + 1]
    large = decode_oip(_body([*ROWS, *big])).inputs[0].array[-3:]
    small = (
        decode_oip(
            orjson.dumps({"inputs": [{"name": "x", "shape": [3], "datatype": "FP64", "data": big}]})
        )
        .inputs[0]
        .array
    )
    np.testing.assert_array_equal(large, small)
