"""The byte-level look for JSON booleans that spares the data plane a per-value look in
bodies without any: never a false "no" (a boolean would silently become 1 or 0), and "no"
for numbers alone (the hot path stays fast)."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from lockgate.serving.codec import _may_hold_booleans

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
)
documents = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner)
)


def _has_bool(doc: Any) -> bool:
    if isinstance(doc, bool):
        return True
    if isinstance(doc, list):
        return any(_has_bool(v) for v in doc)
    if isinstance(doc, dict):
        return any(_has_bool(v) for v in doc.values())
    return False


@given(documents)
def test_a_document_with_a_boolean_is_never_missed(doc: Any) -> None:
    if _has_bool(doc):
        assert _may_hold_booleans(orjson.dumps(doc))


@given(
    st.lists(st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False))
)
def test_numbers_alone_hold_no_boolean(values: list[Any]) -> None:
    body = orjson.dumps({"inputs": [{"name": "x", "shape": [len(values)], "data": values}]})
    assert not _may_hold_booleans(body)
