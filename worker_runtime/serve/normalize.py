"""Pure: a RunPod job input -> the engine request it stands for, or a clear JobError."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from worker_runtime.config import routes
from worker_runtime.serve import guided
from worker_runtime.serve.errors import JobError, input_error, shown

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
# The only routes a job may reach (config/routes.py says why no other): a job naming a GET route is a
# GET, also with an empty openai_input (clients that always send a body send {}).
OPENAI_ROUTES = routes.paths(routes.QUEUE, routes.OPENAI)
GET_ROUTES = frozenset(routes.paths(routes.QUEUE, routes.OPENAI, "GET"))

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
        *guided.FIELDS,  # structured outputs: refused or checked in guided.py
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


# Request fields FastDeploy 2.5 would drop without a word (its request models lack them, protocol.py):
# a job naming one fails, so that nobody believes it took effect.
IGNORED_FIELDS = {
    CHAT: ("logit_bias", "echo", "suffix"),
    COMPLETIONS: ("logit_bias",),
}
LOGPROBS_HINT = (
    "logprobs are off on this endpoint: FastDeploy needs --enable-logprob, set LOGPROBS=true "
    "in the endpoint's environment"
)


@dataclass(frozen=True)
class EngineRequest:
    method: str  # "GET" or "POST"
    route: str  # e.g. "/v1/chat/completions"
    body: dict[str, Any] | None
    stream: bool
    openai: bool  # True: OpenAI passthrough (stream output is SSE text)
    notes: tuple[str, ...] = field(default=())  # log lines about the input (ignored keys)

    @property
    def n(self) -> int:
        """Choices per prompt (FastDeploy's default 1)."""
        n = (self.body or {}).get("n")
        return n if isinstance(n, int) and not isinstance(n, bool) and n >= 1 else 1


def _stream_flag(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise input_error(f'"{where}" must be true or false, got {shown(repr(value))}')
    return value


def normalize(
    job_input: Any, model_name: str, *, logprobs: bool = True, guided_backend: str = "off"
) -> EngineRequest:
    """``model_name`` is filled in when a request names no model; ``logprobs``: whether the engine
    was started with --enable-logprob (else a job asking for logprobs is refused); ``guided_backend``:
    the engine's guided decoding backend (off: a structured-output request is refused)."""
    if not isinstance(job_input, dict):
        raise input_error(f"Job input must be a JSON object, got {type(job_input).__name__}")
    if "openai_route" in job_input:
        request = _openai(job_input, model_name)
    elif "messages" in job_input or "prompt" in job_input:
        request = _native(job_input, model_name)
    else:
        keys = _names(job_input) or "none"
        raise input_error(f"Job input has no messages, prompt or openai_route (keys: {keys})")
    if request.body is None:
        return request
    body = _sampling(request.route, request.body, logprobs)
    guided.check(body, guided_backend)
    return replace(request, body=body)


def route_refused(route: Any, allowed: tuple[str, ...]) -> JobError:
    """The error for an OpenAI route a front door does not serve."""
    return JobError(
        400,
        f'"openai_route" {str(route)[:200]!r} is not served to jobs; allowed: {", ".join(allowed)}',
        code="invalid_route",
        param="openai_route",
    )


def _openai(job_input: dict[str, Any], model_name: str) -> EngineRequest:
    route = job_input["openai_route"]
    if route not in OPENAI_ROUTES:
        raise route_refused(route, OPENAI_ROUTES)
    # A field the platform may add one day must not fail every request: logged, then ignored.
    extra = set(job_input) - {"openai_route", "openai_input"}
    note = f"ignored job input keys beside openai_route/openai_input: {_names(extra)}"
    notes = (note,) if extra else ()
    body = job_input.get("openai_input")
    if body is None:
        if route not in GET_ROUTES:
            raise input_error(f'{route} needs an "openai_input" object (the request body)')
        return EngineRequest("GET", route, None, False, True, notes)
    if not isinstance(body, dict):
        raise input_error(f'"openai_input" must be a JSON object, got {type(body).__name__}')
    if route in GET_ROUTES:
        if body:
            raise input_error(f'{route} takes no "openai_input" (leave it out or send {{}})')
        return EngineRequest("GET", route, None, False, True, notes)
    stream = _stream_flag(body.get("stream"), "openai_input.stream")
    if body.get("model") in (None, ""):
        body = {**body, "model": model_name}
    return EngineRequest("POST", route, body, stream, True, notes)


def _given(body: dict[str, Any], key: str) -> bool:
    """Whether a field is set: null (what some clients send for "not given") is not."""
    return body.get(key) is not None


def _sampling(route: str, body: dict[str, Any], logprobs: bool) -> dict[str, Any]:
    """The body with the token limits made to mean what they say, or a JobError for a field the
    engine would ignore and for logprobs the engine cannot give."""
    for key in IGNORED_FIELDS.get(route, ()):
        value = body.get(key)
        if value is None or (key == "echo" and value is False):
            continue
        what = "chat completions" if route == CHAT else "completions"
        raise JobError(
            400,
            f"{key} is not supported for {what} by FastDeploy (it would be ignored); remove it",
            code="unsupported_parameter",
            param=key,
        )
    if route == COMPLETIONS and _given(body, "suffix") and not isinstance(body["suffix"], dict):
        raise JobError(
            400,
            "suffix is not supported for completions by FastDeploy: it takes no text after the "
            "completion (its suffix is an object of extra request fields); remove it",
            code="unsupported_parameter",
            param="suffix",
        )
    # Token limits: /v1/completions knows only max_tokens (FastDeploy ignores max_completion_tokens
    # there); chat takes both but lets max_tokens win (protocol.py to_dict_for_infer). The smaller of
    # the two is the limit, sent as max_tokens.
    limits = [body[k] for k in ("max_tokens", "max_completion_tokens") if _given(body, k)]
    if _given(body, "max_completion_tokens") and (route == COMPLETIONS or len(limits) == 2):
        out = {k: v for k, v in body.items() if k != "max_completion_tokens"}
        numbers = [v for v in limits if isinstance(v, int) and not isinstance(v, bool)]
        out["max_tokens"] = min(numbers) if len(numbers) == len(limits) else body.get("max_tokens", limits[0])
        body = out
    if not logprobs and _wants_logprobs(route, body):
        raise JobError(400, LOGPROBS_HINT, code="logprobs_disabled", param="logprobs")
    return body


def _wants_logprobs(route: str, body: dict[str, Any]) -> bool:
    """Whether the request asks for what FastDeploy refuses without --enable-logprob (engine_client.py
    valid_parameters: chat logprobs true; completions logprobs a number; prompt_logprobs either)."""
    value = body.get("logprobs")
    if route == CHAT and value is True:
        return True
    if route == COMPLETIONS and isinstance(value, int) and not isinstance(value, bool):
        return True
    return _given(body, "prompt_logprobs")


def _refuse_unknown(
    given: dict[str, Any], allowed: frozenset[str], what: str, param: str | None = None
) -> None:
    """A 400 naming every unknown key and the accepted ones."""
    unknown = set(given) - allowed
    if unknown:
        raise JobError(
            400,
            f"Unknown {what}: {_names(unknown)}; allowed: {', '.join(sorted(allowed))}",
            code="invalid_input",
            param=param,
        )


def _names(keys: Any) -> str:
    """Caller keys as a message or a log line shows them: escaped, each and all bounded."""
    return shown(", ".join(shown(k, 60) for k in sorted(map(str, keys))[:20]), 400)


def _native(job_input: dict[str, Any], model_name: str) -> EngineRequest:
    _refuse_unknown(job_input, NATIVE_KEYS, "job input keys")
    if "messages" in job_input and "prompt" in job_input:
        raise input_error('Give either "messages" or "prompt", not both')
    stream = _stream_flag(job_input.get("stream"), "stream")
    params = job_input.get("sampling_params") or {}
    if not isinstance(params, dict):
        raise input_error(f'"sampling_params" must be a JSON object, got {type(params).__name__}')
    _refuse_unknown(params, SAMPLING_KEYS, "sampling_params", param="sampling_params")
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
