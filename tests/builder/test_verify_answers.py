"""builder.verify.answers: a completed job whose answer is not what its input asked for fails, naming why
(structured outputs against the job's schema, choice or regex; tool calls against the declared tools)."""

from __future__ import annotations

import json

import pytest

from builder.variant.feature_jobs import CITY_SCHEMA, WEATHER_TOOL, structured_output_job, tool_call_job
from builder.verify.answers import answer_problem
from builder.verify.jobs import JobResult
from builder.verify.jobs import TestJob as Job
from builder.verify.report import run_each

STRUCTURED = structured_output_job()["input"]
TOOL = tool_call_job()["input"]


def chat(content: str = "", tool_calls: list | None = None) -> dict:
    return {
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content, "tool_calls": tool_calls}}
        ]
    }


def call(name: str, arguments: str) -> dict:
    return {"id": "chatcmpl-tool-1", "type": "function", "function": {"name": name, "arguments": arguments}}


def test_a_structured_answer_that_satisfies_the_schema_passes():
    assert answer_problem(STRUCTURED, chat(json.dumps({"city": "Paris", "country": "France"}))) is None


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"city": "Par', "the answer is not JSON"),
        (
            '{"city": "Paris"}',
            "does not satisfy the job's JSON schema at (the top level): 'country' is a required",
        ),
        ('{"city": 3, "country": "France"}', "at city: 3 is not of type 'string'"),
        ("Paris, France", "the answer is not JSON"),
    ],
)
def test_a_structured_answer_that_breaks_the_schema_names_the_error(content, expected):
    assert expected in (answer_problem(STRUCTURED, chat(content)) or "")


def test_streamed_answers_are_joined_first():
    pieces = ['{"city": "Pa', 'ris", "country"', ': "France"}']
    chunks = [{"choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    assert answer_problem(STRUCTURED, chunks) is None
    sse = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    assert answer_problem(STRUCTURED, sse) is None
    assert "not JSON" in answer_problem(STRUCTURED, sse.replace("France", 'Fr"ance'))


def test_choice_regex_and_native_jobs():
    native = {"messages": [], "sampling_params": {"guided_choice": ["yes", "no"]}}
    assert answer_problem(native, chat("yes")) is None
    assert "not one of guided_choice" in answer_problem(native, chat("maybe"))
    regex = {"openai_route": "/v1/chat/completions", "openai_input": {"guided_regex": r"\d{3}"}}
    assert answer_problem(regex, chat("123")) is None
    assert "does not match guided_regex" in answer_problem(regex, chat("12a"))


def test_tool_calls_name_a_declared_function_with_arguments_that_parse():
    assert answer_problem(TOOL, chat("", [call("get_weather", '{"city": "Paris"}')])) is None
    assert "no tool call in the answer" in answer_problem(TOOL, chat("It is sunny."))
    assert "names 'get_time', not a declared function" in answer_problem(
        TOOL, chat("", [call("get_time", "{}")])
    )
    assert "are not JSON" in answer_problem(TOOL, chat("", [call("get_weather", '{"city": ')]))
    assert "'city' is a required property" in answer_problem(TOOL, chat("", [call("get_weather", "{}")]))
    first = {"id": "x", "type": "function", "index": 0, "function": {"name": "get_weather"}}
    pieces = [first, *({"index": 0, "function": {"arguments": a}} for a in ('{"ci', 'ty": "P"}'))]
    streamed = [{"choices": [{"delta": {"content": "", "tool_calls": [p]}}]} for p in pieces]
    assert answer_problem(TOOL, streamed) is None
    assert WEATHER_TOOL["function"]["name"] == "get_weather" and CITY_SCHEMA["required"] == [
        "city",
        "country",
    ]


def test_jobs_without_such_fields_are_not_checked():
    assert answer_problem({"messages": [{"role": "user", "content": "hi"}]}, chat("anything")) is None
    assert answer_problem({"openai_route": "/v1/models"}, {"data": []}) is None


def test_the_report_fails_a_completed_job_whose_answer_is_wrong():
    job = Job(name="structured output", input=STRUCTURED, timeout=1000)
    lines: list[str] = []

    def run(_: Job) -> JobResult:
        return JobResult(name=job.name, status="COMPLETED", seconds=0.1, output=chat('{"city": "Paris"}'))

    (result,) = run_each(run, [job], lines.append)
    assert not result.ok and "'country' is a required property" in lines[0] and lines[0].startswith("FAIL")
