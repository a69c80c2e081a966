"""ENDPOINT_TYPE=load_balancer: the worker's own HTTP server (serve/load_balancer.py) for real, as a
subprocess against the engine stand-in, with the official openai SDK and plain HTTP as clients."""

from __future__ import annotations

import http.client as httpc
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from worker_runtime.engine.ports import free_ports

from .conftest import (
    LB_READY,
    WAIT,
    RuntimeProcess,
    assert_process_ends,
    decoding_stops,
    http,
    served,
    start_lb,
    wait_until,
)

pytestmark = pytest.mark.integration
MESSAGES = [{"role": "user", "content": "Say something with 你好 and 🚀"}]
CONTROL_AND_UNKNOWN = [
    ("POST", "/v1/pause"),
    ("POST", "/v1/update_weights"),
    ("GET", "/metrics"),
    ("GET", "/config-info"),
    ("GET", "/health"),
    ("GET", "/v1/embeddings"),
    ("GET", "/nothing/here"),
    ("POST", "/openai/v1/chat/completions"),
]


@pytest.fixture(scope="module")
def rt() -> Iterator[RuntimeProcess]:
    yield from served(start_lb(SERVED_MODEL_NAME="ernie-test", FD_STANDIN_TOKEN_DELAY="0.002"), LB_READY)


@pytest.fixture
def client(rt: RuntimeProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=rt.base + "/v1", api_key="lb", timeout=WAIT, max_retries=0)


def requests_received(rt: RuntimeProcess) -> list[str]:
    """What the engine stand-in received so far, one "METHOD PATH" each."""
    path = os.path.join(rt.log_dir, "requests.log")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


def raw(
    method: str, port: int, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = httpc.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def sse_events(data: bytes) -> list[str]:
    return [e[len("data: ") :] for e in data.decode("utf-8").split("\n\n") if e.startswith("data: ")]


def ping(port: int, path: str = "/ping") -> int | None:
    try:
        return raw("GET", port, path)[0]
    except OSError:
        return None


# --- routes ----------------------------------------------------------------------------------------------


def test_openai_sdk_streams_chat_and_completions(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data] == ["ernie-test"]
    full = client.chat.completions.create(model="ernie-test", messages=MESSAGES, max_tokens=30)
    text = full.choices[0].message.content
    assert text and any(ord(c) > 0xFFFF for c in text)
    stream = client.chat.completions.create(model="ernie-test", messages=MESSAGES, max_tokens=30, stream=True)
    chunks = list(stream)
    assert len(chunks) > 10  # incremental: one chunk per token, not one block
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    done = client.completions.create(model="ernie-test", prompt="Once", max_tokens=12)
    streamed = client.completions.create(model="ernie-test", prompt="Once", max_tokens=12, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == done.choices[0].text


def test_generate_takes_a_queue_job_input(rt: RuntimeProcess) -> None:
    job = {"messages": MESSAGES, "sampling_params": {"max_tokens": 20}}
    status, body = http("POST", rt.base + "/generate", job)
    assert status == 200 and body["object"] == "chat.completion", body
    text = body["choices"][0]["message"]["content"]
    status, wrapped = http("POST", rt.base + "/generate", {"input": job})  # a /runsync payload as is
    assert status == 200 and wrapped["choices"][0]["message"]["content"] == text
    status, headers, data = raw(
        "POST", rt.port, "/generate", json.dumps({"input": {**job, "stream": True}}).encode()
    )
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = sse_events(data)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == text
    assert chunks[-1]["usage"]["completion_tokens"] == 20  # native streams end with their usage
    # The opening chunk (role only) goes out with the first token, as in a queue job's native stream.
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[0]["choices"][0]["delta"]["content"]


def test_errors_carry_the_job_status_and_openai_body(client: openai.OpenAI, rt: RuntimeProcess) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="ernie-test", messages=MESSAGES, logit_bias={"1": 2})
    assert info.value.code == "unsupported_parameter"
    status, body = http("POST", rt.base + "/generate", {"input": {"text": "hi"}})
    assert status == 400 and '{"messages": [...]}' in body["error"]["message"], body
    status, _, data = raw("POST", rt.port, "/v1/completions", b"{not json")
    assert status == 400 and json.loads(data)["error"]["code"] == "invalid_json"
    status, headers, data = raw("GET", rt.port, "/v1/chat/completions")
    assert status == 405 and headers["allow"] == "POST"


def test_control_routes_and_unknown_paths_never_reach_the_engine(rt: RuntimeProcess) -> None:
    before = len(requests_received(rt))
    for method, path in CONTROL_AND_UNKNOWN:
        status, _, data = raw(method, rt.port, path, b"{}" if method == "POST" else None)
        assert status == 404, (path, data)
        assert json.loads(data)["error"]["code"] == "not_found"
    assert raw("GET", rt.port, "/v1/models")[0] == 200
    assert requests_received(rt)[before:] == ["GET /v1/models"]  # only the served route got through


def test_body_over_30_mb_is_413(rt: RuntimeProcess) -> None:
    big = b'{"prompt": "' + b"x" * (30 * 1024 * 1024) + b'"}'
    before = len(requests_received(rt))
    status, _, data = raw("POST", rt.port, "/v1/completions", big, {"Content-Type": "application/json"})
    assert status == 413 and "30 MB" in json.loads(data)["error"]["message"]
    # Sent in chunks, without a length given first: aiohttp's own limit stops it.
    conn = httpc.HTTPConnection("127.0.0.1", rt.port, timeout=WAIT)
    try:
        conn.request("POST", "/generate", body=iter([big[: len(big) // 2], big[len(big) // 2 :]]))
        resp = conn.getresponse()
        assert resp.status == 413 and "30 MB" in json.loads(resp.read())["error"]["message"]
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed while the rest was still being sent
    finally:
        conn.close()
    assert requests_received(rt)[before:] == []


# --- limits, health, shutdown ----------------------------------------------------------------------------


def _open_stream(port: int, max_tokens: int, path: str = "/v1/completions") -> httpc.HTTPResponse:
    conn = httpc.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    body: dict[str, Any] = {"prompt": "long", "stream": True}
    if path == "/generate":
        body["sampling_params"] = {"max_tokens": max_tokens}
    else:
        body["max_tokens"] = max_tokens
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    return resp


def test_beyond_max_concurrency_is_429_with_retry_after(lb_runtime) -> None:
    rt = lb_runtime(MAX_CONCURRENCY="1", FD_STANDIN_TOKEN_DELAY="0.01", FD_STANDIN_ANSWER_TOKENS="100")
    first = _open_stream(rt.port, 100)
    first.readline()  # it runs
    status, headers, data = raw("POST", rt.port, "/v1/completions", json.dumps({"prompt": "x"}).encode())
    assert status == 429 and int(headers["retry-after"]) >= 1
    assert "MAX_CONCURRENCY" in json.loads(data)["error"]["message"]
    rest = first.read().decode()
    assert rest.endswith("data: [DONE]\n\n")  # the running stream was not disturbed
    assert (
        raw("POST", rt.port, "/v1/completions", json.dumps({"prompt": "x", "max_tokens": 3}).encode())[0]
        == 200
    )


def test_health_is_204_while_the_engine_loads_then_200(lb_runtime) -> None:
    rt = lb_runtime(wait_ready=False, FD_STANDIN_LOAD_DELAY="4")
    rt.wait_output("Load-balancing server on")
    seen = []
    deadline = time.monotonic() + WAIT
    while not seen or seen[-1] != 200:
        assert time.monotonic() < deadline, (seen, rt.output)
        status = ping(rt.port)
        if status is not None and (not seen or seen[-1] != status):
            seen.append(status)
            if status == 204:  # loading: an inference route says so, and the engine is not asked
                status, headers, data = raw("GET", rt.port, "/v1/models")
                assert status == 503 and headers["retry-after"] == "1", data
        time.sleep(0.05)
    assert seen == [204, 200]
    assert "GET /v1/models" not in requests_received(rt)


def test_health_on_its_own_port_and_path(lb_runtime) -> None:
    (health_port,) = free_ports(1)
    rt = lb_runtime(PORT_HEALTH=str(health_port), HEALTH_CHECK_PATH="/healthz")
    assert ping(health_port, "/healthz") == 200
    assert ping(health_port, "/v1/models") == 404  # the health port serves the health check only
    assert ping(rt.port, "/healthz") == 404 and ping(rt.port, "/ping") == 404
    assert raw("GET", rt.port, "/v1/models")[0] == 200


def test_engine_death_is_503_then_exit_1_and_no_process_left(lb_runtime) -> None:
    rt = lb_runtime(FD_STANDIN_TOKEN_DELAY="0.01", FD_STANDIN_CRASH_MID_STREAM="20")
    engine, gpu = rt.engine_pid(), rt.gpu_worker_pid()
    client = openai.OpenAI(base_url=rt.base + "/v1", api_key="lb", timeout=WAIT, max_retries=0)
    with pytest.raises(openai.APIError):  # the error event ends the stream: the SDK raises
        for _ in client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=200, stream=True):
            pass
    statuses = []
    while rt.proc.poll() is None:
        status = ping(rt.port)
        if status is not None:
            statuses.append(status)
        time.sleep(0.05)
    assert rt.wait_exit() == 1
    assert 503 in statuses and set(statuses) <= {200, 503}, statuses
    assert engine is not None
    assert_process_ends(engine)
    assert_process_ends(gpu, " (GPU worker)")


def test_sigterm_mid_stream_lets_the_stream_finish_then_stops_everything(lb_runtime) -> None:
    rt = lb_runtime(FD_STANDIN_TOKEN_DELAY="0.02", FD_STANDIN_ANSWER_TOKENS="60", SHUTDOWN_GRACE_SECONDS="20")
    engine, gpu = rt.engine_pid(), rt.gpu_worker_pid()
    client = openai.OpenAI(base_url=rt.base + "/v1", api_key="lb", timeout=WAIT, max_retries=0)
    stream = client.completions.create(model="m", prompt="long", max_tokens=60, stream=True)
    pieces = [next(iter(stream)).choices[0].text]
    rt.proc.send_signal(signal.SIGTERM)
    rt.wait_output("Stopping: no new requests")
    with pytest.raises(OSError):  # no new connection is accepted
        socket.create_connection(("127.0.0.1", rt.port), timeout=5).close()
    pieces += [c.choices[0].text for c in stream if c.choices]
    assert len(pieces) == 60  # every token arrived, and the stream ended normally
    assert rt.wait_exit() == 0
    assert engine is not None
    assert_process_ends(engine)
    assert_process_ends(gpu, " (GPU worker)")


def test_sigterm_past_the_grace_closes_the_stream_and_its_engine_request(lb_runtime) -> None:
    rt = lb_runtime(
        FD_STANDIN_TOKEN_DELAY="0.02", FD_STANDIN_ANSWER_TOKENS="2000", SHUTDOWN_GRACE_SECONDS="0.5"
    )
    engine = rt.engine_pid()
    resp = _open_stream(rt.port, 2000)
    resp.readline()
    rt.proc.send_signal(signal.SIGTERM)
    try:
        rest = resp.read()
    except httpc.IncompleteRead as cut:  # the grace is over: the connection is dropped
        rest = cut.partial
    assert b"[DONE]" not in rest
    assert rt.wait_exit() == 0
    assert engine is not None
    assert_process_ends(engine)


def test_client_disconnect_closes_the_engine_request(lb_runtime) -> None:
    rt = lb_runtime(FD_STANDIN_TOKEN_DELAY="0.01", FD_STANDIN_ANSWER_TOKENS="400")
    resp = _open_stream(rt.port, 400, "/generate")
    wait_until(lambda: rt.engine_metrics()["standin_generated_tokens_total"] >= 5, "the engine to stream")
    resp.close()  # the client leaves mid-stream
    wait_until(lambda: rt.engine_metrics()["standin_client_disconnects_total"] == 1, "the engine to see it")
    decoding_stops(rt)
    assert ping(rt.port) == 200


def test_a_bad_health_check_path_is_a_settings_error(lb_runtime) -> None:
    rt = lb_runtime(wait_ready=False, HEALTH_CHECK_PATH="ping")
    assert rt.wait_exit() == 2
    assert "HEALTH_CHECK_PATH='ping' is invalid" in rt.output


def test_sigterm_while_the_engine_loads_stops_everything(lb_runtime) -> None:
    rt = lb_runtime(wait_ready=False, FD_STANDIN_LOAD_DELAY="20")
    rt.wait_output("Load-balancing server on")
    gpu = rt.gpu_worker_pid()
    engine = rt.engine_pid()
    assert ping(rt.port) == 204
    rt.proc.send_signal(signal.SIGTERM)
    assert rt.wait_exit() == 0
    assert engine is not None
    assert_process_ends(engine)
    assert_process_ends(gpu, " (GPU worker)")


def test_an_engine_that_fails_to_start_exits_1_with_its_log(lb_runtime) -> None:
    rt = lb_runtime(wait_ready=False, FD_STANDIN_CRASH_AT_START="3")
    assert rt.wait_exit() == 1
    assert "out of memory on GPU 0" in rt.output


def test_a_stream_that_fails_midway_ends_with_an_error_event(lb_runtime) -> None:
    rt = lb_runtime(FD_STANDIN_ERROR_MID_STREAM="3")
    job = {"prompt": "long", "stream": True, "sampling_params": {"max_tokens": 20}}
    status, _, data = raw("POST", rt.port, "/generate", json.dumps(job).encode())
    events = sse_events(data)
    assert status == 200 and "[DONE]" not in events
    assert json.loads(events[-1])["error"]["message"], events  # the last event says what went wrong
    assert all("error" not in json.loads(e) for e in events[:-1])
    client = openai.OpenAI(base_url=rt.base + "/v1", api_key="lb", timeout=WAIT, max_retries=0)
    with pytest.raises(openai.APIError):
        for _ in client.completions.create(model="m", prompt="long", max_tokens=20, stream=True):
            pass


def test_a_port_in_use_is_one_paragraph_and_exit_1(lb_runtime) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rt = lb_runtime(wait_ready=False, PORT=str(port))
        assert rt.wait_exit() == 1
    assert f"Cannot listen on 0.0.0.0:{port}" in rt.output and "Traceback" not in rt.output, rt.output
    engine = rt.engine_pid()
    assert engine is not None
    assert_process_ends(engine)
