"""Pure rules of a job against FastDeploy 2.5 (no processes): routes, token limits, refused fields,
logprobs, error statuses, usage totals."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from worker_runtime.serve.chunk_merge import completions_usage, merge_chunks, summed_usage
from worker_runtime.serve.errors import JobError, engine_http_error, strip_traceback
from worker_runtime.serve.normalize import normalize

MESSAGES = [{"role": "user", "content": "hi"}]


def refused(job_input: Any, **kw: Any) -> JobError:
    with pytest.raises(JobError) as info:
        normalize(job_input, "m", **kw)
    return info.value


@pytest.mark.parametrize(
    "route", ["/v1/pause", "/v1/update_weights", "/metrics", "/health", "/v1/embeddings", 7]
)
def test_routes_outside_the_three_are_refused(route: Any) -> None:
    err = refused({"openai_route": route, "openai_input": {}})
    assert err.status == 400 and err.param == "openai_route"
    assert "/v1/chat/completions, /v1/completions, /v1/models" in err.message


def test_extra_keys_beside_openai_route_are_notes() -> None:
    request = normalize({"openai_route": "/v1/models", "x": 1, "y": 2}, "m")
    assert request.method == "GET" and request.notes == (
        "ignored job input keys beside openai_route/openai_input: x, y",
    )
    assert refused({"openai_route": "/v1/chat/completions"}).status == 400  # POST routes need a body


@pytest.mark.parametrize(
    "job,expected",
    [
        ({"prompt": "x", "sampling_params": {"max_completion_tokens": 5}}, {"max_tokens": 5}),
        (
            {"prompt": "x", "sampling_params": {"max_tokens": 9, "max_completion_tokens": 5}},
            {"max_tokens": 5},
        ),
        (
            {"messages": MESSAGES, "sampling_params": {"max_tokens": 4, "max_completion_tokens": 5}},
            {"max_tokens": 4},
        ),
        (
            {"messages": MESSAGES, "sampling_params": {"max_completion_tokens": 5}},
            {"max_completion_tokens": 5},
        ),
        (
            {"openai_route": "/v1/completions", "openai_input": {"prompt": "x", "max_completion_tokens": 3}},
            {"max_tokens": 3},
        ),
    ],
)
def test_one_token_limit_reaches_the_engine(job: dict[str, Any], expected: dict[str, int]) -> None:
    body = normalize(job, "m").body
    assert body is not None
    assert {k: body[k] for k in ("max_tokens", "max_completion_tokens") if k in body} == expected


@pytest.mark.parametrize(
    "job,param",
    [
        ({"messages": MESSAGES, "sampling_params": {"logit_bias": {"5": 1}}}, "logit_bias"),
        ({"messages": MESSAGES, "sampling_params": {"echo": True}}, "echo"),
        ({"messages": MESSAGES, "sampling_params": {"suffix": "!"}}, "suffix"),
        ({"prompt": "x", "sampling_params": {"suffix": "!"}}, "suffix"),
        (
            {"openai_route": "/v1/completions", "openai_input": {"prompt": "x", "logit_bias": {}}},
            "logit_bias",
        ),
    ],
)
def test_fields_the_engine_would_ignore_are_refused(job: dict[str, Any], param: str) -> None:
    err = refused(job)
    assert err.status == 400 and err.param == param and err.code == "unsupported_parameter"


def test_fields_that_mean_nothing_pass() -> None:
    normalize({"messages": MESSAGES, "sampling_params": {"echo": False, "logit_bias": None}}, "m")
    body = normalize(
        {"openai_route": "/v1/completions", "openai_input": {"prompt": "x", "suffix": {"k": 1}}}, "m"
    )
    assert body.body is not None and body.body["suffix"] == {"k": 1}  # FastDeploy's own suffix object


@pytest.mark.parametrize(
    "job",
    [
        {"messages": MESSAGES, "sampling_params": {"logprobs": True}},
        {"prompt": "x", "sampling_params": {"logprobs": 0}},
        {"openai_route": "/v1/completions", "openai_input": {"prompt": "x", "prompt_logprobs": 1}},
    ],
)
def test_logprobs_need_the_setting(job: dict[str, Any]) -> None:
    err = refused(job, logprobs=False)
    assert err.status == 400 and "LOGPROBS=true" in err.message
    normalize(job, "m", logprobs=True)
    normalize({"messages": MESSAGES, "sampling_params": {"logprobs": False}}, "m", logprobs=False)


def test_engine_request_errors_become_400() -> None:
    message = (
        "request[x] generator error: bad, Traceback (most recent call last):\n  File ...\nValueError: bad\n"
    )
    err = engine_http_error(
        500, {"error": {"message": message, "type": "invalid_request_error", "code": None}}
    )
    assert (err.status, err.engine_status, err.message) == (400, 500, "request[x] generator error: bad")
    assert json.loads(err.payload())["engine_status"] == 500
    again = JobError.from_payload(err.payload())
    assert (again.status, again.engine_status) == (400, 500)
    err = engine_http_error(500, {"error": {"message": "m", "type": "invalid_request", "code": "400"}})
    assert err.status == 400 and err.type == "invalid_request_error"
    err = engine_http_error(
        500, {"error": {"message": "m", "type": "internal_error", "code": "model_not_support"}}
    )
    assert err.status == 400 and err.code == "model_not_support"
    err = engine_http_error(
        500, {"error": {"message": "boom", "type": "server_error", "code": "internal_error"}}
    )
    assert (
        err.status == 500 and err.engine_status is None and "engine_status" not in json.loads(err.payload())
    )
    assert strip_traceback("no traceback here") == "no traceback here"


def test_usage_adds_up_like_the_non_stream_answer() -> None:
    per_choice = [{"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}] * 2 + [
        {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}
    ] * 2
    merged = merge_chunks([{"id": "c", "choices": [], "usage": u} for u in per_choice])
    assert merged["usage"]["completion_tokens"] == 20
    assert completions_usage(merged["usage"], 2) == {
        "prompt_tokens": 14,
        "completion_tokens": 20,
        "total_tokens": 34,
    }

    async def chunks() -> Any:
        for u in per_choice:
            yield {"id": "c", "choices": [], "usage": u}

    async def collect() -> list[Any]:
        return [c async for c in summed_usage(chunks(), 2)]

    out = asyncio.run(collect())
    assert out[-1]["usage"] == {"prompt_tokens": 14, "completion_tokens": 20, "total_tokens": 34}
