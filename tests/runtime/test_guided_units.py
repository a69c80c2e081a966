"""serve/guided.py and engine/backend_packages.py on their own: which fields need guided decoding, the
refusal naming GUIDED_DECODING_BACKEND, the xgrammar backend's unsupported keywords found at any depth,
llguidance's verdict for the guidance backend, the start check's paragraph."""

from __future__ import annotations

import pytest

from worker_runtime.engine.backend_packages import missing_packages
from worker_runtime.serve.errors import JobError
from worker_runtime.serve.guided import asked_field, check, xgrammar_unsupported
from worker_runtime.serve.normalize import normalize

SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}
TAG = {"type": "structural_tag", "structures": [], "triggers": []}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"response_format": JSON_SCHEMA}, "response_format"),
        ({"response_format": TAG}, "response_format"),
        ({"guided_json": SCHEMA}, "guided_json"),
        ({"guided_regex": "a+"}, "guided_regex"),
        ({"guided_choice": ["a"]}, "guided_choice"),
        ({"guided_grammar": "root ::= 'a'"}, "guided_grammar"),
        ({"structural_tag": "{}"}, "structural_tag"),
        ({"response_format": {"type": "text"}}, None),
        ({"response_format": None, "guided_json": None}, None),
        ({"messages": []}, None),
    ],
)  # fmt: skip
def test_which_fields_ask_for_guided_decoding(body, field):
    assert asked_field(body) == field


def test_off_refuses_with_400_naming_the_setting_on_every_job_shape():
    for job in (
        {"messages": [{"role": "user", "content": "x"}], "sampling_params": {"guided_choice": ["a", "b"]}},
        {"prompt": "x", "sampling_params": {"structural_tag": "{}"}},
        {"openai_route": "/v1/completions", "openai_input": {"prompt": "x", "guided_regex": "a"}},
    ):
        with pytest.raises(JobError) as caught:
            normalize(job, "m")
        assert caught.value.status == 400 and "GUIDED_DECODING_BACKEND" in str(caught.value)
        assert normalize(job, "m", guided_backend="xgrammar").body is not None


def test_xgrammar_unsupported_keywords_are_found_at_any_depth():
    nested = {
        "type": "object",
        "properties": {"tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}},
    }
    assert xgrammar_unsupported(nested, "") == ("properties/tags", "array", "uniqueItems")
    assert xgrammar_unsupported({"anyOf": [{"type": "integer", "multipleOf": 2}]}, "") == (
        "anyOf/0",
        "integer",
        "multipleOf",
    )
    # A property *named* like a keyword is not the keyword.
    assert xgrammar_unsupported({"type": "object", "properties": {"format": {"type": "string"}}}, "") is None
    with pytest.raises(
        JobError, match=r"'uniqueItems' on type 'array' \(at properties/tags\) is not supported"
    ):
        check({"guided_json": nested}, "xgrammar")
    check({"guided_json": SCHEMA}, "xgrammar")


def test_guidance_asks_llguidance():
    with pytest.raises(JobError, match=r"Unimplemented keys: \[\"contains\"\]"):
        check({"guided_json": {"type": "array", "contains": {"type": "string"}}}, "guidance")
    with pytest.raises(JobError, match="guided_json is not valid JSON"):
        check({"guided_json": "{"}, "guidance")
    check({"guided_json": SCHEMA, "guided_regex": None}, "guidance")
    check({"guided_regex": r"\d{3}"}, "guidance")


def test_the_start_check_names_what_is_missing():
    assert missing_packages("off") is None
    assert missing_packages("xgrammar", lambda name: object()) is None
    text = missing_packages("xgrammar", lambda name: None if name == "torch" else object())
    assert text is not None and "lacks torch" in text and "GUIDED_DECODING_BACKEND=off" in text
    assert "\n" not in text
