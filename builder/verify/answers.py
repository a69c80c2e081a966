"""What a job's answer must hold beyond "completed", read from the job's own input (pure): a structured
output parses and satisfies what was asked (JSON schema, JSON object, choice, regex), a tool call names a
declared function with arguments that parse (and satisfy its parameters' schema)."""

from __future__ import annotations

import json
import re
from typing import Any


def request_body(job_input: Any) -> dict[str, Any]:
    """The request a job makes: the OpenAI passthrough's body, or the native job (its sampling_params
    merged, as the runtime does)."""
    if not isinstance(job_input, dict):
        return {}
    if "openai_route" in job_input:
        body = job_input.get("openai_input")
        return body if isinstance(body, dict) else {}
    params = job_input.get("sampling_params")
    return {**job_input, **(params if isinstance(params, dict) else {})}


def expected_json(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema the answer must satisfy ({"type": "object"} for a JSON object), or None."""
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, dict) else {}
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        return {"type": "object"}
    guided = body.get("guided_json")
    if isinstance(guided, str):
        try:
            guided = json.loads(guided)
        except ValueError:
            return None
    return guided if isinstance(guided, dict) else None


def answer_message(output: Any) -> tuple[str, list[dict[str, Any]]]:
    """The content and tool calls of an OpenAI chat answer: a response object, or chunks (their deltas
    joined: content pieces, tool-call name and argument pieces by index). A completions answer's text."""
    items = output if isinstance(output, list) else [output]
    content: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        for choice in item.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            part = choice.get("message") or choice.get("delta") or {}
            if not isinstance(part, dict):
                part = {}
            content.append(str(part.get("content") or choice.get("text") or ""))
            for n, call in enumerate(part.get("tool_calls") or []):
                if not isinstance(call, dict):
                    continue
                slot = calls.setdefault(int(call.get("index", n)), {"name": "", "arguments": ""})
                function = call.get("function") if isinstance(call.get("function"), dict) else {}
                slot["name"] += str(function.get("name") or "")
                slot["arguments"] += str(function.get("arguments") or "")
    return "".join(content), [calls[i] for i in sorted(calls)]


def _schema_error(value: Any, schema: dict[str, Any]) -> str | None:
    import jsonschema  # loaded when an answer is checked, not with the CLI

    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(the top level)"
        return f"at {where}: {exc.message}"
    except jsonschema.SchemaError as exc:
        return f"the job's own schema is invalid: {exc.message}"
    return None


def structured_problem(body: dict[str, Any], content: str) -> str | None:
    schema = expected_json(body)
    if schema is not None:
        try:
            value = json.loads(content)
        except ValueError as exc:
            return f"the answer is not JSON ({exc}): {content[:80]!r}"
        error = _schema_error(value, schema)
        return None if error is None else f"the answer does not satisfy the job's JSON schema {error}"
    choices = body.get("guided_choice")
    if isinstance(choices, list) and choices and content not in choices:
        return f"the answer {content[:80]!r} is not one of guided_choice {choices}"
    pattern = body.get("guided_regex")
    if isinstance(pattern, str) and re.fullmatch(pattern, content) is None:
        return f"the answer {content[:80]!r} does not match guided_regex {pattern!r}"
    return None


def tool_problem(body: dict[str, Any], calls: list[dict[str, Any]]) -> str | None:
    declared = {
        t["function"]["name"]: t["function"].get("parameters")
        for t in body.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("function"), dict) and t["function"].get("name")
    }
    if not declared:
        return None
    if not calls:
        return f"no tool call in the answer (the job declares {', '.join(sorted(declared))})"
    for call in calls:
        if call["name"] not in declared:
            names = ", ".join(sorted(declared))
            return f"the tool call names {call['name']!r}, not a declared function ({names})"
        try:
            arguments = json.loads(call["arguments"] or "{}")
        except ValueError as exc:
            shown = call["arguments"][:80]
            return f"the arguments of the {call['name']} call are not JSON ({exc}): {shown!r}"
        schema = declared[call["name"]]
        error = _schema_error(arguments, schema) if isinstance(schema, dict) else None
        if error is not None:
            return f"the arguments of the {call['name']} call do not satisfy its parameters {error}"
    return None


def sse_chunks(output: Any) -> Any:
    """An OpenAI stream's output (SSE text, or a list of its pieces) as its chunk objects; other outputs
    as they are."""
    pieces = output if isinstance(output, list) else [output]
    if not pieces or not all(isinstance(p, str) for p in pieces):
        return output
    chunks = []
    for line in "".join(pieces).splitlines():
        data = line[len("data:") :].strip() if line.startswith("data:") else ""
        if data and data != "[DONE]":
            try:
                chunks.append(json.loads(data))
            except ValueError:
                continue
    return chunks


def answer_problem(job_input: Any, output: Any) -> str | None:
    """Why a completed job's answer is not what its input asked for (None: it is, or nothing to check)."""
    body = request_body(job_input)
    output = sse_chunks(output)
    if not body or not isinstance(output, dict | list):
        return None
    content, calls = answer_message(output)
    return structured_problem(body, content) or tool_problem(body, calls)
