"""The engine stand-in's FastDeploy 2.5 behaviours, each on its own, talking to the stand-in directly.

The runtime's tests rely on these: a stand-in that did not reproduce a behaviour would let the
runtime's fix for it go untested.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from worker_runtime.engine.ports import free_ports

from .conftest import REPO, STANDIN, WAIT, listening_ports, process_alive

pytestmark = pytest.mark.integration
CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
MESSAGES = [{"role": "user", "content": "hello"}]


class StandIn:
    def __init__(self, *flags: str, **env: str) -> None:
        self.port, self.metrics_port = free_ports(2)
        self.log_dir = Path(tempfile.mkdtemp(prefix="standin-"))
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("FD_")}
        full_env.update(
            PYTHONPATH=os.pathsep.join([str(REPO), str(STANDIN)]),
            FD_LOG_DIR=str(self.log_dir),
            FD_STANDIN_LOAD_DELAY="0",
            DO_NOT_TRACK="1",  # as the runtime starts it: no usage report to FastDeploy's server
        )
        full_env.update(env)
        argv = [sys.executable, "-m", "fastdeploy.entrypoints.openai.api_server", "--model", "m"]
        argv += ["--host", "127.0.0.1", "--port", str(self.port), "--max-model-len", "1024", *flags]
        self.proc = subprocess.Popen(
            argv, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + WAIT
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert self.proc.poll() is None, "stand-in exited"
                assert time.monotonic() < deadline, "stand-in did not open its port"
                time.sleep(0.05)

    def conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        c = self.conn()
        try:
            data = None if body is None else json.dumps(body)
            c.request(method, path, data, {"Content-Type": "application/json"})
            resp = c.getresponse()
            raw = resp.read()
        finally:
            c.close()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw.decode()

    def events(self, path: str, body: dict[str, Any]) -> list[Any]:
        status, text = self.request("POST", path, {**body, "stream": True})
        assert status == 200, text
        out = []
        for block in text.split("\n\n"):
            if block.startswith("data: "):
                data = block[len("data: ") :].strip()
                out.append(data if data == "[DONE]" else json.loads(data))
        return out

    def metrics(self) -> dict[str, float]:
        _, text = self.request("GET", "/metrics")
        out = {}
        for line in text.splitlines():
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
        return out

    def gpu_worker_pid(self) -> int:
        path = self.log_dir / "standin-gpu-worker.pid"
        deadline = time.monotonic() + WAIT
        while not path.exists():
            assert time.monotonic() < deadline, "no GPU worker pid file"
            time.sleep(0.05)
        return int(path.read_text())

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        pid_file = self.log_dir / "standin-gpu-worker.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def standin() -> Iterator[Any]:
    started: list[StandIn] = []

    def factory(*flags: str, **env: str) -> StandIn:
        s = StandIn(*flags, **env)
        started.append(s)
        return s

    yield factory
    for s in started:
        s.stop()


def wait_until(predicate: Any, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def start_stream_and_leave(s: StandIn, path: str, body: dict[str, Any]) -> None:
    """Send a streaming request, read its first bytes, then close the connection."""
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=WAIT)
    raw = json.dumps({**body, "stream": True}).encode()
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(raw)}\r\n\r\n".encode()
        + raw
    )
    assert b"200 OK" in sock.recv(65536)
    sock.close()


@pytest.mark.parametrize("stop", ["0", "1"])
def test_decoding_goes_on_after_the_client_left_unless_stop_inference_is_set(standin, stop: str) -> None:
    s = standin(
        FD_STANDIN_TOKEN_DELAY="0.01",
        FD_STANDIN_ANSWER_TOKENS="300",
        FD_ENABLE_REQUEST_DISCONNECT_STOP_INFERENCE=stop,
    )
    start_stream_and_leave(s, COMPLETIONS, {"prompt": "p", "max_tokens": 300})
    wait_until(lambda: s.metrics()["standin_client_disconnects_total"] == 1, "the disconnect")
    if stop == "1":
        wait_until(lambda: s.metrics()["fastdeploy:num_requests_running"] == 0, "the abort")
        before = s.metrics()["standin_generated_tokens_total"]
        time.sleep(0.3)
        assert s.metrics()["standin_generated_tokens_total"] == before < 300
    else:
        first = s.metrics()["standin_unread_tokens_total"]
        wait_until(lambda: s.metrics()["standin_unread_tokens_total"] > first + 5, "unread tokens")
        assert s.metrics()["fastdeploy:num_requests_running"] == 1  # the slot stays taken


def test_non_stream_decoding_also_outlives_its_client(standin) -> None:
    s = standin(FD_STANDIN_TOKEN_DELAY="0.01", FD_STANDIN_ANSWER_TOKENS="300")
    c = s.conn()
    c.request("POST", CHAT, json.dumps({"messages": MESSAGES, "max_tokens": 300}))
    time.sleep(0.2)
    c.close()
    wait_until(lambda: s.metrics()["standin_unread_tokens_total"] > 5, "unread tokens")


def test_request_errors_are_http_500_as_in_2_5(standin) -> None:
    s = standin("--served-model-name", "served")
    status, body = s.request("POST", CHAT, {"messages": MESSAGES, "max_tokens": 5000})
    assert status == 500 and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] is None
    assert "max_tokens can be defined [1, 1024)" in body["error"]["message"]
    assert "Traceback (most recent call last):" in body["error"]["message"]
    status, body = s.request("POST", COMPLETIONS, {"prompt": "x", "max_tokens": 0})
    assert status == 500 and body["error"]["code"] == "invalid_value"
    assert "Traceback" not in body["error"]["message"]
    status, body = s.request("POST", CHAT, {"messages": MESSAGES, "model": "other"})
    assert status == 500 and body["error"] == {
        "message": "Unsupported model: [other], support [served] or default",
        "type": "internal_error",
        "param": None,
        "code": "model_not_support",
    }
    status, body = s.request("POST", CHAT, {"messages": [{"role": "user", "content": "x" * 5000}]})
    assert status == 500 and "Input text is too long" in body["error"]["message"]
    status, body = s.request("POST", CHAT, {"model": "served"})  # a pydantic validation error: 400
    assert status == 400 and body["error"]["code"] == "missing_required_parameter"
    status, body = s.request("POST", COMPLETIONS, {"prompt": "x", "suffix": "text"})
    assert status == 400 and body["error"]["param"] == "suffix"


def test_429_body_is_detail(standin) -> None:
    s = standin(FD_STANDIN_TOO_MANY="1")
    status, body = s.request("POST", CHAT, {"messages": MESSAGES})
    assert status == 429 and set(body) == {"detail"}


def test_max_tokens_is_clamped_and_beats_max_completion_tokens(standin) -> None:
    s = standin(FD_STANDIN_ANSWER_TOKENS="2000")
    prompt = "y" * 3996  # 1000 prompt tokens: 24 left of 1024
    status, body = s.request("POST", COMPLETIONS, {"prompt": prompt, "max_tokens": 1000})
    assert status == 200 and body["usage"]["completion_tokens"] == 24, body
    status, body = s.request("POST", COMPLETIONS, {"prompt": "x", "max_completion_tokens": 3})
    assert body["usage"]["completion_tokens"] > 3  # completions ignore it
    both = {"messages": MESSAGES, "max_tokens": 7, "max_completion_tokens": 3}
    status, body = s.request("POST", CHAT, both)
    assert body["usage"]["completion_tokens"] == 7
    status, body = s.request("POST", CHAT, {"messages": MESSAGES, "max_completion_tokens": 3})
    assert body["usage"]["completion_tokens"] == 3


def test_logprobs_need_enable_logprob(standin) -> None:
    s = standin()
    status, body = s.request("POST", CHAT, {"messages": MESSAGES, "logprobs": True})
    assert status == 500
    assert body["error"]["message"] == "Logprobs is disabled, please enable it in startup config."
    status, body = s.request("POST", COMPLETIONS, {"prompt": "x", "logprobs": 2})
    assert status == 500 and body["error"]["type"] == "invalid_request"
    s2 = standin("--enable-logprob")
    status, body = s2.request("POST", CHAT, {"messages": MESSAGES, "logprobs": True, "max_tokens": 3})
    assert status == 200, body


@pytest.mark.parametrize(("path", "body"), [(CHAT, {"messages": MESSAGES}), (COMPLETIONS, {"prompt": "hi"})])
def test_only_the_chat_opening_chunk_has_a_stray_space(standin, path: str, body: dict[str, Any]) -> None:
    """2.5 writes ``data: {...} \\n\\n`` for the chat opening chunk only."""
    s = standin()
    status, text = s.request("POST", path, {**body, "max_tokens": 3, "stream": True})
    assert status == 200
    events = [e for e in text.split("\n\n") if e]
    spaced = [i for i, e in enumerate(events) if e.endswith(" ")]
    assert spaced == ([0] if path == CHAT else []) and events[-1] == "data: [DONE]"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (CHAT, {"messages": MESSAGES, "max_streaming_response_tokens": 3}),
        (CHAT, {"messages": MESSAGES, "metadata": {"max_streaming_response_tokens": 3}}),
        (COMPLETIONS, {"prompt": "hi", "max_streaming_response_tokens": 3}),
        (COMPLETIONS, {"prompt": "hi", "suffix": {"max_streaming_response_tokens": 3}}),
    ],
)
def test_max_streaming_response_tokens_lists_several_choices_per_chunk(
    standin, path: str, body: dict[str, Any]
) -> None:
    """A chunk goes out once it holds that many choices, or when a choice finishes."""
    s = standin()
    events = s.events(path, {**body, "max_tokens": 7})
    sizes = [len(e["choices"]) for e in events if isinstance(e, dict) and e["choices"]]
    assert sizes[-3:] == [3, 3, 1]
    assert events[-1] == "[DONE]"


def test_one_usage_chunk_per_finished_completions_choice(standin) -> None:
    s = standin()
    body = {"prompt": ["a", "bb"], "n": 2, "max_tokens": 5, "stream_options": {"include_usage": True}}
    events = s.events(COMPLETIONS, body)
    usages = [e["usage"] for e in events if isinstance(e, dict) and not e["choices"]]
    assert len(usages) == 4 and all(u["completion_tokens"] == 5 for u in usages)
    indexes = {c["index"] for e in events if isinstance(e, dict) for c in e["choices"]}
    assert indexes == {0, 1, 2, 3}
    _, full = s.request("POST", COMPLETIONS, {k: v for k, v in body.items() if k != "stream_options"})
    assert full["usage"]["completion_tokens"] == 20
    assert full["usage"]["prompt_tokens"] == sum(u["prompt_tokens"] for u in usages) // 2


def test_control_routes_pause_the_engine(standin) -> None:
    s = standin()
    status, body = s.request("POST", "/v1/pause")
    assert status == 200 and body["status"] == "success"
    status, body = s.request("POST", CHAT, {"messages": MESSAGES})
    assert status == 500 and "paused" in body["error"]["message"]
    assert s.request("GET", "/v1/is_paused")[1]["result"] == {"is_paused": True}
    for route in ("/v1/sleep", "/v1/wakeup", "/v1/update_weights", "/v1/resume"):
        assert s.request("POST", route)[0] == 200
    assert s.request("POST", CHAT, {"messages": MESSAGES})[0] == 200
    assert s.metrics()['standin_control_requests_total{route="/v1/pause"}'] == 1


def test_metrics_port_opens_a_listener_on_all_interfaces(standin) -> None:
    s = standin()
    assert "standin_generated_tokens_total" in s.request("GET", "/metrics")[1]  # on the main port
    assert listening_ports(s.proc.pid) == {("127.0.0.1", s.port)}
    (metrics_port,) = free_ports(1)
    s2 = standin("--metrics-port", str(metrics_port))
    assert listening_ports(s2.proc.pid) == {("127.0.0.1", s2.port), ("0.0.0.0", metrics_port)}


def test_idle_keep_alive_connections_close_after_2_s(standin) -> None:
    s = standin()
    c = s.conn()
    c.request("GET", "/v1/models")
    c.getresponse().read()
    c.sock.settimeout(WAIT)
    started = time.monotonic()
    assert c.sock.recv(1) == b""  # the server closed it
    assert time.monotonic() - started > 1.8  # not before the 2 s
    assert s.metrics()["standin_idle_connections_closed_total"] == 1


def test_gpu_worker_runs_in_its_own_session_and_survives_a_kill(standin) -> None:
    s = standin()
    gpu = s.gpu_worker_pid()
    assert os.getsid(gpu) != os.getsid(s.proc.pid) and os.getpgid(gpu) != s.proc.pid
    os.killpg(s.proc.pid, signal.SIGKILL)  # the server's whole process group
    s.proc.wait(5)
    time.sleep(0.3)
    assert process_alive(gpu)  # an orphan now
    os.kill(gpu, signal.SIGKILL)


def test_gpu_worker_is_stopped_by_a_clean_shutdown(standin) -> None:
    s = standin()
    gpu = s.gpu_worker_pid()
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(WAIT) == 0
    wait_until(lambda: not process_alive(gpu), "the GPU worker to stop")


@pytest.mark.parametrize("race", ["0", "0.5"])
def test_a_request_crossing_the_idle_close_is_lost(standin, race: str) -> None:
    s = standin(FD_STANDIN_KEEPALIVE_RACE=race)
    c = s.conn()
    c.request("GET", "/v1/models")
    c.getresponse().read()
    time.sleep(1.7)
    c.request("GET", "/v1/models")
    if race == "0":
        assert c.getresponse().status == 200
    else:
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            c.getresponse()
        assert s.metrics()["standin_requests_lost_at_idle_close_total"] == 1


# ----------------------------------------------------------------------------- release/2.6 mode

V26 = {"FD_STANDIN_RELEASE": "2.6.0"}


@pytest.mark.parametrize(
    "env,workers,limit",
    [({}, 4, 2048), ({"FD_ENABLE_MULTI_API_SERVER": "1"}, 1, 512), ({"FD_STANDIN_RELEASE": "2.5.0"}, 1, 512)],
)
def test_26_parser_defaults_depend_on_the_multi_api_server_variable(
    standin, env: dict[str, str], workers: int, limit: int
) -> None:
    """release/2.6's new defaults unless FD_ENABLE_MULTI_API_SERVER=1 (docs/upstream-notes.md)."""
    s = standin(**{**V26, **env})
    args = s.request("GET", "/config-info")[1]["args"]
    assert (args["workers"], args["max_concurrency"]) == (workers, limit)


def open_connections(s: StandIn, n: int) -> list[http.client.HTTPConnection]:
    """``n`` connections, accepted in this order (each one's turn among the API-server processes)."""
    out = []
    for _ in range(n):
        c = s.conn()
        c.connect()
        c.request("GET", "/health")
        c.getresponse().read()
        out.append(c)
    return out


@pytest.mark.parametrize("workers,status", [("4", 429), ("1", 200)])
def test_each_api_server_process_has_its_share_of_the_limit(standin, workers: str, status: int) -> None:
    """ceil(max_concurrency / workers) requests per process: with four
    processes and a limit of 4, a second request on the process of a busy one is refused, with one of
    four requests in flight."""
    s = standin("--max-concurrency", "4", "--workers", workers, FD_STANDIN_TOKEN_DELAY="0.01", **V26)
    conns = open_connections(s, 5)  # the first and the fifth share a process when there are four
    try:
        body = json.dumps({"prompt": "p", "max_tokens": 400, "stream": True})
        conns[0].request("POST", COMPLETIONS, body, {"Content-Type": "application/json"})
        busy = conns[0].getresponse()
        assert busy.status == 200
        wait_until(lambda: s.metrics()["fastdeploy:num_requests_running"] == 1, "the first request")
        conns[4].request("POST", COMPLETIONS, json.dumps({"prompt": "q", "max_tokens": 2}))
        answer = conns[4].getresponse()
        assert answer.status == status, answer.read()
    finally:
        for c in conns:
            c.close()


def test_26_stops_decoding_for_a_client_that_left_by_default(standin) -> None:
    """2.6: FD_ENABLE_REQUEST_DISCONNECT_STOP_INFERENCE defaults to 1."""
    s = standin(FD_STANDIN_TOKEN_DELAY="0.01", FD_STANDIN_ANSWER_TOKENS="300", **V26)
    start_stream_and_leave(s, COMPLETIONS, {"prompt": "p", "max_tokens": 300})
    wait_until(lambda: s.metrics()["fastdeploy:num_requests_running"] == 0, "the abort")
    assert s.metrics()["standin_generated_tokens_total"] < 300


def test_26_abort_requests_ends_a_stream_with_finish_reason_abort(standin) -> None:
    s = standin(FD_STANDIN_TOKEN_DELAY="0.02", FD_STANDIN_ANSWER_TOKENS="300", **V26)
    assert s.request("POST", "/v1/abort_requests", {})[0] == 400  # neither abort_all nor req_ids
    result: list[Any] = []
    reader = threading.Thread(
        target=lambda: result.append(s.events(CHAT, {"messages": MESSAGES, "max_tokens": 300})), daemon=True
    )
    reader.start()
    wait_until(lambda: s.metrics()["standin_generated_tokens_total"] > 5, "decoding to start")
    status, _ = s.request("POST", "/v1/abort_requests", {"abort_all": True})
    assert status == 200
    reader.join(WAIT)
    (events,) = result
    finishes = [c.get("finish_reason") for e in events if isinstance(e, dict) for c in e["choices"]]
    assert finishes[-1] == "abort" and finishes.count("abort") == 1
    assert events[-1] == "[DONE]" and len(finishes) < 300


def test_abort_requests_is_not_a_25_route(standin) -> None:
    s = standin()
    assert s.request("POST", "/v1/abort_requests", {"abort_all": True})[0] == 404


@pytest.mark.parametrize("stream", [True, False])
def test_finish_reason_knob(standin, stream: bool) -> None:
    s = standin(FD_STANDIN_FINISH_REASON="pd_reschedule", **V26)
    body = {"prompt": "p", "max_tokens": 3}
    if stream:
        events = s.events(COMPLETIONS, body)
        finishes = [c.get("finish_reason") for e in events if isinstance(e, dict) for c in e["choices"]]
        assert finishes == [None, None, "pd_reschedule"]
    else:
        assert s.request("POST", COMPLETIONS, body)[1]["choices"][0]["finish_reason"] == "pd_reschedule"
