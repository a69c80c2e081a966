"""The test jobs a variant gets for what it enables, after its own (tests.json and the `test` verb):
a structured-output job when a guided decoding backend is on, a tool-call job when a tool-call parser is
set. Each job's input says what its answer must hold (builder.verify.answers checks it)."""

from __future__ import annotations

from typing import Any

TIMEOUT_MS = 900_000
# Small and flat: every backend compiles it, and a model answers it in a few dozen tokens.
CITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
    "required": ["city", "country"],
    "additionalProperties": False,
}
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    },
}
# Room for a thinking model's reasoning before the answer.
MAX_TOKENS = 1024


def _chat_job(name: str, question: str, **fields: Any) -> dict[str, Any]:
    """A chat job on the OpenAI route, deterministic, with room for reasoning."""
    body = {"messages": [{"role": "user", "content": question}], **fields}
    body.update(max_tokens=MAX_TOKENS, temperature=0)
    return {
        "name": name,
        "input": {"openai_route": "/v1/chat/completions", "openai_input": body},
        "timeout": TIMEOUT_MS,
    }


def structured_output_job() -> dict[str, Any]:
    return _chat_job(
        "structured output",
        "Name the capital of France and its country as JSON.",
        response_format={"type": "json_schema", "json_schema": {"name": "capital", "schema": CITY_SCHEMA}},
    )


def tool_call_job() -> dict[str, Any]:
    return _chat_job("tool call", "What is the weather in Paris? Use the tool.", tools=[WEATHER_TOOL])


def feature_jobs(guided_backend: str, tool_call_parser: str | None) -> list[dict[str, Any]]:
    jobs = []
    if guided_backend != "off":
        jobs.append(structured_output_job())
    if tool_call_parser:
        jobs.append(tool_call_job())
    return jobs
