"""The handler's output types: the same value and JSON as plain str/dict, a cheap text form."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker_runtime.serve.handler_outputs import JSONObject, SSEText, platform_output

# What the engine sends: finite numbers (orjson writes inf as null), 64-bit integers.
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(st.text())
def test_sse_text_is_the_text_for_every_consumer_but_repr(text: str) -> None:
    out = platform_output(text)
    assert type(out) is SSEText and out == text and isinstance(out, str)
    assert f"{out}" == str(out) == text  # the SDK's first debug message still holds the text
    assert json.dumps({"output": out}, ensure_ascii=False) == json.dumps({"output": text}, ensure_ascii=False)
    assert repr(out) == f"<SSE text, {len(text)} characters>"
    assert repr({"output": out}) == "{'output': " + repr(out) + "}"  # the SDK's second one


@given(st.dictionaries(st.text(), JSON, max_size=5))
def test_json_object_is_the_dict_and_its_repr_is_its_json(obj: dict[str, Any]) -> None:
    out = platform_output(obj)
    assert type(out) is JSONObject and out == obj and isinstance(out, dict)
    assert json.dumps({"output": out}, ensure_ascii=False) == json.dumps({"output": obj}, ensure_ascii=False)
    assert json.loads(repr(out)) == obj == json.loads(f"{out}")


def test_json_object_repr_falls_back_for_what_json_cannot_write() -> None:
    for obj in ({1: "int key"}, {"set": {1, 2}}, {"big": 2**64}):
        assert repr(platform_output(obj)) == repr(obj)


@pytest.mark.parametrize("item", [None, 3, ["a"], b"raw", type("Sub", (dict,), {})(a=1)])
def test_other_values_pass_as_they_are(item: Any) -> None:
    assert platform_output(item) is item
