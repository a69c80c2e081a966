"""Pure: a RunPod job input -> the engine request it stands for, or a clear JobError."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker_runtime.errors import JobError, input_error

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
# Routes the engine serves on GET only: a job naming one is a GET, also with an empty openai_input
# (clients that always send a body send {}).
GET_ROUTES = frozenset({"/v1/models"})

# Native sampling_params, passed to the engine under the same names (OpenAI fields plus FastDeploy's
# extras such as top_k, repetition_penalty and min_tokens).
SAMPLING_KEYS = frozenset(
    {
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "n",
        "seed",
        "stop",
        "stop_token_ids",
        "presence_penalty",
        "frequency_penalty",
        "repetition_penalty",
        "min_tokens",
        "include_stop_str_in_output",
        "bad_words",
        "logprobs",
        "top_logprobs",
        "response_format",
        "guided_json",
        "guided_regex",
        "guided_choice",
        "guided_grammar",
        "reasoning_max_tokens",
        "response_max_tokens",
        "return_token_ids",
        "logit_bias",
        "max_streaming_response_tokens",
        "echo",
        "suffix",
        "user",
    }
)
# Native top-level keys besides messages/prompt.
NATIVE_KEYS = frozenset(
    {
        "messages",
        "prompt",
        "sampling_params",
        "stream",
        "model",
        "tools",
        "tool_choice",
        "chat_template_kwargs",
        "disable_chat_template",
        "request_id",
    }
)


@dataclass(frozen=True)
class EngineRequest:
    method: str  # "GET" or "POST"
    route: str  # e.g. "/v1/chat/completions"
    body: dict[str, Any] | None
    stream: bool
    openai: bool  # True: OpenAI passthrough (stream output is SSE text)


def _stream_flag(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise input_error(f'"{where}" must be true or false, got {value!r}'[:300])
    return value


def normalize(job_input: Any, model_name: str) -> EngineRequest:
    """``model_name`` is filled in when a request names no model."""
    if not isinstance(job_input, dict):
        raise input_error(f"Job input must be a JSON object, got {type(job_input).__name__}")
    if "openai_route" in job_input:
        return _openai(job_input, model_name)
    if "messages" in job_input or "prompt" in job_input:
        return _native(job_input, model_name)
    keys = ", ".join(sorted(map(str, job_input)))[:300] or "none"
    raise input_error(f"Job input has no messages, prompt or openai_route (keys: {keys})")


def _openai(job_input: dict[str, Any], model_name: str) -> EngineRequest:
    route = job_input["openai_route"]
    if not isinstance(route, str) or not route.startswith("/v1/") or ".." in route or "?" in route:
        raise input_error(f'"openai_route" must be a path starting with /v1/, got {route!r}'[:300])
    extra = sorted(set(job_input) - {"openai_route", "openai_input"})
    if extra:
        raise input_error(f"Unexpected keys beside openai_route/openai_input: {', '.join(map(str, extra))}")
    body = job_input.get("openai_input")
    if body is None:
        return EngineRequest("GET", route, None, False, True)
    if not isinstance(body, dict):
        raise input_error(f'"openai_input" must be a JSON object, got {type(body).__name__}')
    if route in GET_ROUTES:
        if body:
            raise input_error(f'{route} takes no "openai_input" (leave it out or send {{}})')
        return EngineRequest("GET", route, None, False, True)
    stream = _stream_flag(body.get("stream"), "openai_input.stream")
    if body.get("model") in (None, "") and route in (CHAT, COMPLETIONS):
        body = {**body, "model": model_name}
    return EngineRequest("POST", route, body, stream, True)


def _native(job_input: dict[str, Any], model_name: str) -> EngineRequest:
    unknown = sorted(set(job_input) - NATIVE_KEYS)
    if unknown:
        raise JobError(
            400,
            f"Unknown job input keys: {', '.join(map(str, unknown))}; "
            f"allowed: {', '.join(sorted(NATIVE_KEYS))}",
            code="invalid_input",
        )
    if "messages" in job_input and "prompt" in job_input:
        raise input_error('Give either "messages" or "prompt", not both')
    stream = _stream_flag(job_input.get("stream"), "stream")
    params = job_input.get("sampling_params") or {}
    if not isinstance(params, dict):
        raise input_error(f'"sampling_params" must be a JSON object, got {type(params).__name__}')
    bad = sorted(set(params) - SAMPLING_KEYS)
    if bad:
        raise JobError(
            400,
            f"Unknown sampling_params: {', '.join(map(str, bad))}; "
            f"allowed: {', '.join(sorted(SAMPLING_KEYS))}",
            code="invalid_input",
            param="sampling_params",
        )
    body: dict[str, Any] = dict(params)
    for key in ("tools", "tool_choice", "chat_template_kwargs", "disable_chat_template", "request_id"):
        if key in job_input:
            body[key] = job_input[key]
    model = job_input.get("model")
    body["model"] = model if isinstance(model, str) and model else model_name
    if stream:
        body["stream"] = True
        # Native streams end with a usage chunk, so callers always learn the token counts.
        body["stream_options"] = {"include_usage": True}
    if "messages" in job_input:
        messages = job_input["messages"]
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise input_error('"messages" must be a non-empty list of {"role": ..., "content": ...} objects')
        body["messages"] = messages
        return EngineRequest("POST", CHAT, body, stream, False)
    prompt = job_input["prompt"]
    if not isinstance(prompt, str) and not (
        isinstance(prompt, list) and prompt and all(isinstance(p, (str, int)) for p in prompt)
    ):
        raise input_error('"prompt" must be a string (or a list of strings or token ids)')
    body["prompt"] = prompt
    return EngineRequest("POST", COMPLETIONS, body, stream, False)
