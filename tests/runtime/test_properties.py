"""Property-based tests: SSE parsing under any chunking, arbitrary JSON at the handler,
streamed == non-streamed byte for byte whatever the chunking of the upstream bytes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker_runtime.config.engine_args import EnginePorts, engine_argv, engine_env
from worker_runtime.config.settings import load_flag_table, load_settings
from worker_runtime.engine.client import EngineClient
from worker_runtime.engine.ports import free_ports
from worker_runtime.serve.handler import HandlerState, make_handler
from worker_runtime.serve.relay import relay as stream_relay
from worker_runtime.serve.sse import Event, SSEParser

from .conftest import STANDIN, WAIT


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in [*points, len(data)]:
        pieces.append(data[last:p])
        last = p
    return pieces


@given(
    st.lists(
        st.text(min_size=1).filter(lambda t: "\n" not in t and "\r" not in t and t.strip() == t), max_size=6
    ),
    st.sampled_from([b" \n\n", b"\n\n", b"\r\n\r\n"]),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=20),
)
def test_sse_parser_any_chunking(payloads: list[str], sep: bytes, cuts: list[int]) -> None:
    data = b"".join(b"data: " + p.encode() + sep for p in payloads) + b"data: [DONE]" + sep
    parser = SSEParser()
    events: list[Event] = []
    for piece in chunked(data, cuts):
        events += parser.feed(piece)
    events += parser.close()
    assert [e.data for e in events] == [*payloads, "[DONE]"]


# ---------------------------------------------------------------- a real stand-in engine


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Iterator[str]:
    """The stand-in, launched through the runtime's real command line."""
    s = load_settings({"MODEL": "m", "SERVED_MODEL_NAME": "served", "REASONING_PARSER": "qwen3"})
    ports = EnginePorts(*free_ports(4))
    argv = engine_argv(s, load_flag_table()["releases"]["2.5.0"], ports, sys.executable)
    env = engine_env(
        s, {"PYTHONPATH": str(STANDIN), "FD_STANDIN_LOAD_DELAY": "0"}, str(tmp_path_factory.mktemp("log"))
    )
    proc = subprocess.Popen(argv, env=env)
    base = f"http://127.0.0.1:{ports.http}"
    deadline = time.monotonic() + WAIT
    while True:
        try:
            urllib.request.urlopen(base + "/health", timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    yield base
    proc.terminate()
    proc.wait(10)


def post(base: str, route: str, body: dict[str, Any]) -> bytes:
    req = urllib.request.Request(
        base + route, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=WAIT) as resp:
        return resp.read()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
KEYS = st.sampled_from(
    ["messages", "prompt", "sampling_params", "stream", "openai_route", "openai_input", "model"]
)
INPUTS = JSON | st.dictionaries(
    KEYS, JSON | st.just([{"role": "user", "content": "hi"}]) | st.just("/v1/models"), max_size=4
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(INPUTS)
def test_handler_never_raises_on_arbitrary_json(engine: str, job_input: Any) -> None:
    async def run() -> list[Any]:
        runtime = HandlerState(EngineClient(engine, 10.0), "served", 4)
        try:
            return [item async for item in make_handler(runtime)({"id": "j", "input": job_input})]
        finally:
            await runtime.client.close()

    outputs = asyncio.run(asyncio.wait_for(run(), WAIT))
    assert outputs, "a job always produces a result or an error"
    json.dumps(outputs)  # every output is JSON for the platform
    errors = [o for o in outputs if isinstance(o, dict) and "error" in o]
    if errors:
        assert errors == [outputs[-1]]  # an error ends the job
        err = json.loads(errors[0]["error"])
        assert isinstance(err["status"], int) and err["message"]


class FakeContent:
    """What the relay uses of aiohttp's StreamReader: ``readany`` waits for bytes (b"" only at the
    end), ``read_nowait`` takes what is buffered (here: the next piece, as if it came meanwhile)."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = [p for p in pieces if p]

    async def readany(self) -> bytes:
        await asyncio.sleep(0)
        return self.read_nowait()

    def read_nowait(self) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""


class FakeResponse:
    def __init__(self, pieces: list[bytes]) -> None:
        self.content = FakeContent(pieces)


def relay(pieces: list[bytes], openai: bool) -> list[Any]:
    async def run() -> list[Any]:
        runtime = HandlerState(EngineClient("http://unused", 10.0), "m", 1)
        return [x async for x in stream_relay(runtime, FakeResponse(pieces), openai)]  # type: ignore[arg-type]

    return asyncio.run(run())


@pytest.fixture(scope="module")
def recorded(engine: str) -> dict[str, Any]:
    body = {"messages": [{"role": "user", "content": "多字节 🚀"}], "max_tokens": 30}
    full = json.loads(post(engine, "/v1/chat/completions", body))
    raw = post(
        engine, "/v1/chat/completions", {**body, "stream": True, "stream_options": {"include_usage": True}}
    )
    return {"full": full["choices"][0]["message"], "raw": raw}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(min_value=0, max_value=100_000), max_size=40), st.booleans())
def test_stream_reassembles_to_the_non_stream_answer(
    recorded: dict[str, Any], cuts: list[int], openai: bool
) -> None:
    outputs = relay(chunked(recorded["raw"], cuts), openai)
    if openai:
        assert all(isinstance(o, str) and o.endswith("\n\n") for o in outputs)  # whole events only
        events = SSEParser().feed("".join(outputs).encode())
        assert events[-1].is_done
        chunks = [json.loads(e.data) for e in events[:-1]]
    else:
        chunks = outputs
    content = "".join(c["delta"].get("content") or "" for o in chunks for c in o["choices"])
    reasoning = "".join(c["delta"].get("reasoning_content") or "" for o in chunks for c in o["choices"])
    assert content.encode() == recorded["full"]["content"].encode()
    assert reasoning.encode() == recorded["full"]["reasoning_content"].encode()
