"""The runtime for real (subprocess) against the stand-in, through the local endpoint and the openai SDK."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import openai
import pytest

from .conftest import LOCAL_READY, WAIT, RuntimeProcess, http, served, start_local

pytestmark = pytest.mark.integration
MESSAGES = [{"role": "user", "content": "Say something with 你好 and 🚀"}]


@pytest.fixture(scope="module")
def rt() -> Iterator[RuntimeProcess]:
    runtime = start_local(
        SERVED_MODEL_NAME="ernie-test", REASONING_PARSER="qwen3", FD_STANDIN_TOKEN_DELAY="0.002"
    )
    yield from served(runtime, LOCAL_READY)


@pytest.fixture
def client(rt: RuntimeProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=rt.base + "/openai/v1", api_key="local", timeout=WAIT, max_retries=0)


def test_models_is_a_get_without_body(client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == ["ernie-test"]


def test_models_job_with_empty_openai_input_is_a_get(rt: RuntimeProcess) -> None:
    job = {"openai_route": "/v1/models", "openai_input": {}}
    status, body = http("POST", rt.base + "/runsync", {"input": job})
    assert status == 200 and body["status"] == "COMPLETED", body
    assert [m["id"] for m in body["output"][0]["data"]] == ["ernie-test"]


def test_chat_sync_stream_equals_non_stream(client: openai.OpenAI) -> None:
    full = client.chat.completions.create(model="ernie-test", messages=MESSAGES, max_tokens=30)
    text = full.choices[0].message.content
    assert text and any(ord(c) > 0xFFFF for c in text)  # 4-byte characters made it through
    assert full.choices[0].finish_reason == "length"
    stream = client.chat.completions.create(
        model="ernie-test",
        messages=MESSAGES,
        max_tokens=30,
        stream=True,
        stream_options={"include_usage": True},
    )
    content, reasoning, usage, finish = "", "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            content += choice.delta.content or ""
            reasoning += getattr(choice.delta, "reasoning_content", None) or ""
            finish = choice.finish_reason or finish
    assert content.encode() == text.encode()
    assert reasoning == full.choices[0].message.reasoning_content
    assert finish == "length"
    assert usage is not None and usage.completion_tokens == full.usage.completion_tokens


def test_model_filled_in_when_missing(rt: RuntimeProcess) -> None:
    status, body = http(
        "POST", rt.base + "/openai/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 3}
    )
    assert status == 200, body
    assert body["model"] == "ernie-test"


def test_completions_stop_and_async_stream(client: openai.OpenAI, rt: RuntimeProcess) -> None:
    full = client.completions.create(model="ernie-test", prompt="abc", max_tokens=20)
    text = full.choices[0].text
    stop = text[5:8]
    stopped = client.completions.create(model="ernie-test", prompt="abc", max_tokens=20, stop=[stop])
    assert stopped.choices[0].text == text[: text.find(stop)]
    assert stopped.choices[0].finish_reason == "stop"

    async def collect() -> str:
        aclient = openai.AsyncOpenAI(
            base_url=rt.base + "/openai/v1", api_key="x", timeout=WAIT, max_retries=0
        )
        out = ""
        async for chunk in await aclient.completions.create(
            model="ernie-test", prompt="abc", max_tokens=20, stream=True
        ):
            out += "".join(c.text for c in chunk.choices)
        nonstream = await aclient.completions.create(model="ernie-test", prompt="abc", max_tokens=20)
        assert nonstream.choices[0].text == text
        await aclient.close()
        return out

    assert asyncio.run(collect()) == text


def test_engine_error_keeps_status_and_body(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="other-model", messages=MESSAGES)
    assert info.value.status_code == 400
    assert info.value.code == "model_not_support"
    assert "ernie-test" in info.value.message


def test_native_runsync_stream_and_not(rt: RuntimeProcess) -> None:
    job = {"messages": MESSAGES, "sampling_params": {"max_tokens": 12, "top_k": 5, "repetition_penalty": 1.1}}
    status, done = http("POST", rt.base + "/runsync", {"input": job})
    assert status == 200 and done["status"] == "COMPLETED", done
    (response,) = done["output"]
    assert response["object"] == "chat.completion"
    status, streamed = http("POST", rt.base + "/runsync", {"input": {**job, "stream": True}})
    chunks = streamed["output"]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(ch["delta"].get("content") or "" for c in chunks for ch in c["choices"])
    assert text == response["choices"][0]["message"]["content"]
    assert chunks[-1]["usage"]["completion_tokens"] == response["usage"]["completion_tokens"]


@pytest.mark.parametrize("chat", [True, False])
def test_tokens_batched_per_chunk_reach_every_client(
    rt: RuntimeProcess, client: openai.OpenAI, chat: bool
) -> None:
    """``max_streaming_response_tokens``: FastDeploy lists several tokens' choices, of one index, per
    chunk. The OpenAI route passes them on as they are; a native stream merges them per index."""
    params = {"max_tokens": 10, "max_streaming_response_tokens": 3}
    job = {"messages": MESSAGES} if chat else {"prompt": "abc"}
    status, done = http("POST", rt.base + "/runsync", {"input": {**job, "sampling_params": params}})
    assert status == 200 and done["status"] == "COMPLETED", done
    (response,) = done["output"]
    full = response["choices"][0]["message"]["content"] if chat else response["choices"][0]["text"]

    def text_of(choice: dict[str, object]) -> str:
        piece = choice["delta"].get("content") if chat else choice.get("text")  # type: ignore[attr-defined]
        return str(piece or "")

    _, streamed = http(
        "POST", rt.base + "/runsync", {"input": {**job, "sampling_params": params, "stream": True}}
    )
    chunks = streamed["output"]
    assert all(len(c["choices"]) == len({ch["index"] for ch in c["choices"]}) for c in chunks)
    assert "".join(text_of(ch) for c in chunks for ch in c["choices"]) == full

    create = client.chat.completions.create if chat else client.completions.create
    body = {"messages": MESSAGES} if chat else {"prompt": "abc"}
    stream = create(
        model="ernie-test",
        max_tokens=10,
        stream=True,
        extra_body={"max_streaming_response_tokens": 3},
        **body,
    )
    sizes, passed = [], ""
    for chunk in stream:
        sizes.append(len(chunk.choices))
        passed += "".join((ch.delta.content or "") if chat else ch.text for ch in chunk.choices)
    assert passed == full and max(sizes) == 3


def test_run_status_stream_and_bad_input(rt: RuntimeProcess) -> None:
    _, job = http(
        "POST",
        rt.base + "/run",
        {"input": {"prompt": "hello", "stream": True, "sampling_params": {"max_tokens": 40}}},
    )
    pieces = []
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        _, part = http("GET", f"{rt.base}/stream/{job['id']}")
        pieces += [p["output"] for p in part["stream"]]
        if part["status"] in ("COMPLETED", "FAILED"):
            break
    _, status = http("GET", f"{rt.base}/status/{job['id']}")
    assert status["status"] == "COMPLETED"
    assert pieces == status["output"]
    _, bad = http("POST", rt.base + "/runsync", {"input": {"nonsense": True}})
    assert bad["status"] == "FAILED"
    err = json.loads(bad["error"])
    assert err["status"] == 400 and '{"openai_route": "/v1/..."' in err["message"]


def test_cancel_closes_the_upstream_request(local_runtime) -> None:
    rt = local_runtime(FD_STANDIN_TOKEN_DELAY="0.01", FD_STANDIN_ANSWER_TOKENS="400")
    job_input = {
        "openai_route": "/v1/completions",
        "openai_input": {"prompt": "long", "stream": True, "max_tokens": 400},
    }
    _, job = http("POST", rt.base + "/run", {"input": job_input})
    deadline = time.monotonic() + WAIT
    while rt.engine_metrics()["standin_generated_tokens_total"] < 5:  # the engine is streaming it
        assert time.monotonic() < deadline, rt.output
        time.sleep(0.02)
    _, cancelled = http("POST", f"{rt.base}/cancel/{job['id']}")
    assert cancelled["status"] == "CANCELLED"
    # The engine saw its client leave: the upstream connection was closed, not left to run.
    while rt.engine_metrics()["standin_client_disconnects_total"] < 1:
        assert time.monotonic() < deadline, rt.output
        time.sleep(0.02)
    _, health = http("GET", rt.base + "/health")
    assert health["status"] == "ok"
