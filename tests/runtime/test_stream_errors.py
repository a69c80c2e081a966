"""An error inside an OpenAI stream reaches the ``openai`` SDK as an exception, not a silent end.

FastDeploy reports a failure after its 200 as ``data: {"error": ...}`` then ``data: [DONE]``
(the stand-in's ``FD_STANDIN_ERROR_MID_STREAM``).
The job fails either way; the client learns it only from an event carrying ``error``. Checked through the
local endpoint and in platform mode, where the fake job API's ``/openai/v1`` relays what the job streamed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from .conftest import WAIT, RuntimeProcess, http
from .fake_platform import API_KEY
from .test_platform_mode import Worker, error_of, running_worker

pytestmark = pytest.mark.integration
MESSAGES = [{"role": "user", "content": "Say something with 你好 and 🚀"}]
FAULT = {"FD_STANDIN_ERROR_MID_STREAM": "3", "FD_STANDIN_TOKEN_DELAY": "0.005"}


def stream_until_error(create: Callable[..., Any]) -> tuple[list[Any], openai.APIError]:
    """The chunks received before the stream raised, and what it raised (fails if it never does)."""
    got: list[Any] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in create(stream=True, max_tokens=20):
            got.append(chunk)
    return got, info.value


def check_both_routes(client: openai.OpenAI) -> None:
    routes = {
        "chat": lambda **kw: client.chat.completions.create(model="m", messages=MESSAGES, **kw),
        "completions": lambda **kw: client.completions.create(model="m", prompt="x", **kw),
    }
    for name, create in routes.items():
        got, err = stream_until_error(create)
        assert "FD_STANDIN_ERROR_MID_STREAM" in err.message, (name, err)
        assert "Traceback" not in err.message, (name, err)  # the engine's traceback is not passed on
        assert isinstance(err.body, dict) and err.body["type"] == "internal_error", (name, err.body)
        # FastDeploy's own code is kept: none on chat, "400" on completions (2.5's quirk)
        assert err.body["code"] == (None if name == "chat" else "400"), (name, err.body)
        assert err.body["status"] == 500, (name, err.body)
        text = "".join(
            (c.choices[0].delta.content or "") if name == "chat" else c.choices[0].text
            for c in got
            if c.choices
        )
        assert text, f"{name}: the tokens before the error reach the client"


def test_local_endpoint_stream_error_raises_in_the_openai_sdk(local_runtime: Any) -> None:
    rt: RuntimeProcess = local_runtime(**FAULT)
    check_both_routes(
        openai.OpenAI(base_url=rt.base + "/openai/v1", api_key="x", timeout=WAIT, max_retries=0)
    )
    # The handler's error event is the only one: the local endpoint adds none of its own.
    body = {"model": "m", "prompt": "x", "stream": True, "max_tokens": 20}
    status, raw = http("POST", rt.base + "/openai/v1/completions", body)
    assert status == 200 and raw.count('data: {"error"') == 1 and "[DONE]" not in raw, raw


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    with running_worker("stream-errors", **FAULT) as w:
        yield w


def test_platform_mode_stream_error_raises_in_the_openai_sdk(worker: Worker) -> None:
    client = openai.OpenAI(base_url=worker.api.openai_base, api_key=API_KEY, timeout=WAIT, max_retries=0)
    check_both_routes(client)
    # What the SDK posted: the tokens, then the error event as the stream's last output, and the job failed.
    chat = {"openai_route": "/v1/chat/completions", "openai_input": {"messages": MESSAGES, "stream": True}}
    job = worker.run(chat)
    assert error_of(job)["type"] == "internal_error" and error_of(job)["status"] == 500
    outputs = job.outputs
    assert len(outputs) >= 2 and outputs[-1].startswith('data: {"error"'), outputs
    assert json.loads(outputs[-1][len("data: ") :])["error"]["status"] == 500
    assert all("[DONE]" not in text for text in outputs)
