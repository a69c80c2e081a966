"""Hostile and broken callers against both HTTP front doors (the load-balancing server and the local
``/openai/v1``) and the queue handler: the real runtime as a subprocess, the engine stand-in behind it.

Every wait on a caller is bounded by a setting the test makes short (never a long sleep); no test
asserts how long something took: each one waits for an outcome, with the suite's upper bound.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .conftest import (
    WAIT,
    RuntimeProcess,
    assert_process_ends,
    decoding_stops,
    http,
    wait_until,
)
from .test_load_balancer import ping, raw, requests_received, sse_events
from .test_platform_mode import running_worker

pytestmark = pytest.mark.integration
SHORT = "1"  # seconds: the bounds these tests set
JSON = {"Content-Type": "application/json"}


# --- raw-socket callers --------------------------------------------------------------------------------


def connect(port: int, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf is not None:  # before connecting, so the window stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(WAIT)
    sock.connect(("127.0.0.1", port))
    return sock


def request_head(path: str, length: int, method: str = "POST") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: worker\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def stalled_body(port: int, path: str = "/v1/completions") -> socket.socket:
    """A caller that sends its headers and half its body, then nothing."""
    body = json.dumps({"prompt": "x", "max_tokens": 3}).encode()
    sock = connect(port)
    sock.sendall(request_head(path, len(body)) + body[: len(body) // 2])
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as the close)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def closed_by_server(sock: socket.socket, drip: bytes) -> bool:
    """Send ``drip`` one byte at a time (a slow caller) until the server closes the connection; False
    when it is still open after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    for i in range(10**6):
        if time.monotonic() > deadline:
            return False
        try:
            sock.sendall(drip[i % len(drip) : i % len(drip) + 1])
            sock.settimeout(0.2)
            if sock.recv(4096) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


def dechunked(body: bytes) -> bytes:
    """A chunked HTTP body's content, as far as it arrived."""
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, body = out + rest[:size], rest[size + 2 :]
    return out


def answer_of(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def a_normal_request_succeeds(rt: RuntimeProcess, path: str = "/v1/completions") -> None:
    status, _, data = raw("POST", rt.port, path, json.dumps({"prompt": "x", "max_tokens": 3}).encode(), JSON)
    assert status == 200, (status, data)


# --- 1. every wait on a caller is bounded ---------------------------------------------------------------


def test_stalled_bodies_take_no_slot_and_get_408(lb_runtime: Any) -> None:
    rt = lb_runtime(MAX_CONCURRENCY="2", CLIENT_BODY_TIMEOUT=SHORT)
    stalled = [stalled_body(rt.port) for _ in range(2)]
    try:
        assert ping(rt.port) == 200  # the health check tells the truth: this worker serves
        a_normal_request_succeeds(rt)
        for sock in stalled:
            status, headers, body = answer_of(read_all(sock))
            assert status == 408 and headers["connection"] == "close", body
            assert "CLIENT_BODY_TIMEOUT" in json.loads(body)["error"]["message"]
        assert requests_received(rt).count("POST /v1/completions") == 1
    finally:
        for sock in stalled:
            sock.close()


def test_slow_headers_are_cut_at_the_bound(lb_runtime: Any) -> None:
    rt = lb_runtime(MAX_CONCURRENCY="2", CLIENT_HEADER_TIMEOUT=SHORT)
    slow = [connect(rt.port) for _ in range(3)]
    try:
        for sock in slow:
            sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: w")
        a_normal_request_succeeds(rt)
        assert ping(rt.port) == 200
        for sock in slow:
            assert closed_by_server(sock, b"xxxxxxxx"), "a caller sending one byte at a time was never cut"
    finally:
        for sock in slow:
            sock.close()


def open_stream(
    port: int, path: str = "/v1/completions", tokens: int = 200_000, rcvbuf: int | None = None
) -> socket.socket:
    body = json.dumps({"prompt": "long", "max_tokens": tokens, "stream": True}).encode()
    sock = connect(port, rcvbuf)
    sock.sendall(request_head(path, len(body)) + body)
    return sock


def open_unread_stream(port: int, path: str = "/v1/completions") -> socket.socket:
    """A streaming caller that never reads its answer (a small receive window, nothing taken)."""
    return open_stream(port, path, rcvbuf=4096)


@pytest.mark.parametrize("door", ["lb", "local"])
def test_a_reader_that_stopped_is_cut_and_its_engine_request_closed(
    door: str, lb_runtime: Any, local_runtime: Any
) -> None:
    extra = {
        "MAX_CONCURRENCY": "2",
        "CLIENT_STALL_TIMEOUT": SHORT,
        "FD_STANDIN_ANSWER_TOKENS": "200000",
        "FD_STANDIN_TOKEN_DELAY": "0",
        "MAX_MODEL_LEN": "300000",
    }
    rt = lb_runtime(**extra) if door == "lb" else local_runtime(**extra)
    path = "/v1/completions" if door == "lb" else "/openai/v1/completions"
    readers = [open_unread_stream(rt.port, path) for _ in range(2)]
    try:
        wait_until(
            lambda: rt.engine_metrics()["standin_client_disconnects_total"] == 2, "the engine to see them go"
        )
        decoding_stops(rt, unread_before=float("inf"))  # nothing decodes any more
        if door == "lb":
            assert ping(rt.port) == 200
        a_normal_request_succeeds(rt, path)
    finally:
        for sock in readers:
            sock.close()


# --- 2. a caller that leaves stops its work ----------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
@pytest.mark.parametrize("door", ["lb", "local"])
def test_a_caller_that_leaves_stops_its_engine_request(
    door: str, stream: bool, lb_runtime: Any, local_runtime: Any
) -> None:
    extra = {"MAX_CONCURRENCY": "1", "FD_STANDIN_TOKEN_DELAY": "0.01", "FD_STANDIN_ANSWER_TOKENS": "2000"}
    rt = lb_runtime(**extra) if door == "lb" else local_runtime(**extra)
    path = "/v1/completions" if door == "lb" else "/openai/v1/completions"
    body = json.dumps({"prompt": "long", "max_tokens": 2000, "stream": stream}).encode()
    sock = connect(rt.port)
    sock.sendall(request_head(path, len(body)) + body)
    wait_until(lambda: rt.engine_metrics()["standin_generated_tokens_total"] >= 5, "the engine to generate")
    sock.close()  # the caller leaves (its timeout, RunPod's cut)
    wait_until(lambda: rt.engine_metrics()["standin_client_disconnects_total"] == 1, "the engine to see it")
    decoding_stops(rt)
    a_normal_request_succeeds(rt, path)  # its slot is free again


# --- 3. answers carry no engine internals ---------------------------------------------------------------


def assert_no_internals(text: str, rt: RuntimeProcess) -> None:
    for leak in (rt.log_dir, "-----", "workerlog", "stand-in: worker process died", "Traceback", "Error:"):
        assert leak not in text, (leak, text)


def test_engine_death_tells_callers_what_happened_and_the_log_only_once(lb_runtime: Any) -> None:
    rt = lb_runtime(FD_STANDIN_TOKEN_DELAY="0.01", FD_STANDIN_CRASH_MID_STREAM="20")
    body = json.dumps({"prompt": "long", "max_tokens": 200, "stream": True}).encode()
    status, _, data = raw("POST", rt.port, "/v1/completions", body, JSON)
    events = sse_events(data)
    assert status == 200 and "[DONE]" not in events
    error = json.loads(events[-1])["error"]
    assert error["message"] == "the engine exited (code 7); the worker is restarting", error
    assert error["code"] == "engine_exited"
    assert_no_internals(data.decode(), rt)
    assert rt.wait_exit() == 1
    # The worker's log has the engine's last lines, once.
    assert rt.output.count("stand-in: worker process died") == 1, rt.output


def test_engine_death_fails_queue_jobs_without_its_log(local_runtime: Any) -> None:
    rt = local_runtime(FD_STANDIN_TOKEN_DELAY="0.01", FD_STANDIN_CRASH_MID_STREAM="20")
    job = {"input": {"prompt": "long", "stream": True, "sampling_params": {"max_tokens": 200}}}
    status, body = http("POST", rt.base + "/runsync", job)
    assert status == 200 and body["status"] == "FAILED", body
    error = json.loads(body["error"])
    assert error["message"] == "the engine exited (code 7); the worker is restarting"
    assert error["status"] == 503
    assert_no_internals(json.dumps(body), rt)


def test_a_lost_engine_connection_is_a_stable_message_with_an_id(lb_runtime: Any) -> None:
    rt = lb_runtime(FD_STANDIN_DROP_POSTS="1")
    status, _, data = raw("POST", rt.port, "/v1/completions", json.dumps({"prompt": "x"}).encode(), JSON)
    error = json.loads(data)["error"]
    assert status == 502 and error["code"] == "engine_unreachable", data
    assert "Disconnected" not in error["message"] and "Error" not in error["message"]
    ident = re.search(r"\(id (err-[0-9a-f]+)", error["message"])
    assert ident is not None, error
    # The worker's log has the details under that id (its output is read by a thread: wait for the line).
    wait_until(lambda: f"{ident[1]}: lost the connection" in rt.output, "the log line under the error id")


# --- 4. grace means grace --------------------------------------------------------------------------------


def test_sigterm_gives_streams_the_grace_once_then_a_shutdown_event(lb_runtime: Any) -> None:
    grace = 3.0
    rt = lb_runtime(
        FD_STANDIN_TOKEN_DELAY="0.02", FD_STANDIN_ANSWER_TOKENS="2000", SHUTDOWN_GRACE_SECONDS=str(grace)
    )
    engine = rt.engine_pid()
    sock = open_stream(rt.port, tokens=2000)
    wait_until(lambda: rt.engine_metrics()["standin_generated_tokens_total"] >= 5, "the stream to run")
    rt.proc.send_signal(signal.SIGTERM)
    # Docker's stop window, as `docker stop -t` gives it: SIGKILL once it is over. The worker must
    # have stopped the engine and exited by then.
    try:
        rt.proc.wait(grace + 2)
    except Exception:
        rt.proc.kill()
    data = read_all(sock)
    sock.close()
    assert rt.wait_exit() == 0, rt.output
    assert "Stopped (engine exit code" in rt.output
    events = sse_events(dechunked(data.partition(b"\r\n\r\n")[2]))
    assert events and "[DONE]" not in events, (data[-500:], rt.output)
    error = json.loads(events[-1])["error"]
    assert error["code"] == "shutting_down" and "SHUTDOWN_GRACE_SECONDS" in error["message"], error
    assert engine is not None
    assert_process_ends(engine)


# --- 5, 6. caller text is data; every parse failure is a 400 ------------------------------------------------

ODD_BODIES = {
    "lone surrogate key": b'{"\\ud800": 1, "prompt": "x"}',
    "surrogate and newline key": b'{"a\\nFastDeploy engine exited with code 9\\ud800": 1, "prompt": "x"}',
    "deep arrays": b"[" * 100_000 + b"]" * 100_000,
    "deep objects": b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    "not UTF-8": b'{"prompt": "\xff\xfe"}',
    "NUL bytes": b'{"prompt": "x"}\x00',
    "empty": b"",
}


def strictly_utf8_json(body: bytes) -> Any:
    return json.loads(body.decode("utf-8"))  # a lone surrogate written raw would not decode


@pytest.fixture(scope="module")
def lb() -> Iterator[RuntimeProcess]:
    from .conftest import LB_READY, served, start_lb

    yield from served(start_lb(), LB_READY)


@pytest.fixture(scope="module")
def local() -> Iterator[RuntimeProcess]:
    from .conftest import LOCAL_READY, served, start_local

    yield from served(start_local(), LOCAL_READY)


def expected_statuses(path: str, name: str) -> set[int]:
    """400, but an OpenAI route passes unknown keys on to the engine: its answer, whatever it is."""
    if name.endswith("key") and "/v1/" in path:
        return {200, 400}
    return {400}


@pytest.mark.parametrize("name", list(ODD_BODIES))
@pytest.mark.parametrize("path", ["/v1/completions", "/generate"])
def test_odd_bodies_get_a_400_json_error_on_the_lb(lb: RuntimeProcess, path: str, name: str) -> None:
    status, headers, body = raw("POST", lb.port, path, ODD_BODIES[name], JSON)
    assert status in expected_statuses(path, name), (status, body)
    assert headers["content-type"].startswith("application/json"), (status, body)
    answer = strictly_utf8_json(body)
    if status == 400:
        assert "\n" not in answer["error"]["message"]


@pytest.mark.parametrize("name", list(ODD_BODIES))
@pytest.mark.parametrize("path", ["/openai/v1/completions", "/runsync"])
def test_odd_bodies_get_a_400_json_error_locally(local: RuntimeProcess, path: str, name: str) -> None:
    odd = ODD_BODIES[name]
    if path == "/runsync" and name.endswith("key"):
        odd = b'{"input": ' + odd + b"}"
        status, _, body = raw("POST", local.port, path, odd, JSON)
        result = strictly_utf8_json(body)
        assert status == 200 and result["status"] == "FAILED", result
        assert json.loads(result["error"])["status"] == 400
        return
    status, headers, body = raw("POST", local.port, path, odd, JSON)
    assert status in expected_statuses(path, name), (status, body)
    assert headers["content-type"].startswith("application/json"), (status, body)
    strictly_utf8_json(body)


def test_odd_paths_are_escaped_in_the_404(lb: RuntimeProcess) -> None:
    for path in ("/%ED%A0%80", "/a%0Ab%00c", "/" + "x" * 5000):
        status, _, body = raw("GET", lb.port, path)
        assert status == 404, (path, body)
        message = strictly_utf8_json(body)["error"]["message"]
        assert "\n" not in message and "\x00" not in message and len(message) < 1000


def test_caller_keys_cannot_forge_worker_log_lines(lb: RuntimeProcess) -> None:
    forged = "x\nFastDeploy engine exited with code 9 while serving; exiting.\ud800"
    body = json.dumps({"openai_route": "/v1/models", forged: 1}).encode()  # ensure_ascii: valid JSON text
    status, _, data = raw("POST", lb.port, "/generate", body, JSON)
    assert status == 200, data  # an ignored key is logged, and the job is served
    wait_until(lambda: "ignored job input keys" in lb.output, "the note about the key")
    assert not any(line.startswith("FastDeploy engine exited") for line in lb.output.splitlines())


def test_a_lone_surrogate_key_fails_a_queue_job_instead_of_leaving_it_stuck() -> None:
    with running_worker("surrogate") as worker:
        job = worker.run({"\ud800": 1, "prompt": "x"})
        assert job.result is not None
        error = json.loads(job.result.body["error"])
        assert error["status"] == 400 and "\\ud800" in error["message"], error
        served = worker.run({"openai_route": "/v1/models", "\ud800\n": 1})  # an ignored key, logged
        assert served.result is not None and "error" not in served.result.body, served.result.body


# --- 7. resend, memory, the engine's environment -----------------------------------------------------------


def test_a_request_dropped_on_a_fresh_connection_is_not_sent_twice(lb_runtime: Any) -> None:
    rt = lb_runtime(FD_STANDIN_DROP_POSTS="1")
    status, _, data = raw("POST", rt.port, "/v1/completions", json.dumps({"prompt": "x"}).encode(), JSON)
    assert status == 502, data
    assert requests_received(rt).count("POST /v1/completions") == 1  # the engine may have run it: once


def peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def test_a_29_mib_body_of_4_byte_characters_costs_a_few_copies_not_ten(lb_runtime: Any) -> None:
    rt = lb_runtime()
    a_normal_request_succeeds(rt)
    before = peak_rss_kib(rt.proc.pid)
    prompt = "🚀" * (29 * 1024 * 1024 // 4 - 16)
    body = json.dumps({"prompt": prompt, "max_tokens": 1}, ensure_ascii=False).encode()
    status, _, data = raw("POST", rt.port, "/v1/completions", body, JSON)
    assert status < 500 and json.loads(data), data[:300]  # the engine's answer (too long for it: 400)
    grown_mib = (peak_rss_kib(rt.proc.pid) - before) / 1024
    # The body as received, parsed (4 bytes a character) and sent on as UTF-8, with what the loop and
    # the allocator hold meanwhile: ~4 copies (~116 MiB measured), where it was ~11 (315 MiB).
    assert grown_mib < 6 * len(body) / (1 << 20), grown_mib


def engine_environ(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        pairs = [item.partition(b"=") for item in f.read().split(b"\0") if item]
    return {k.decode(): v.decode(errors="replace") for k, _, v in pairs}


def test_the_engine_gets_no_runpod_secrets(lb_runtime: Any) -> None:
    rt = lb_runtime(
        RUNPOD_AI_API_KEY="rp-secret-key",
        RUNPOD_WEBHOOK_GET_JOB="https://api.example/job-take",
        HF_TOKEN="hf-token-for-downloads",
        CUDA_VISIBLE_DEVICES="0",
        SOME_UNRELATED_SECRET="s3cr3t",
    )
    pid = rt.engine_pid()
    assert pid is not None
    env = engine_environ(pid)
    assert not [k for k in env if k.startswith("RUNPOD_")], sorted(env)
    assert "rp-secret-key" not in json.dumps(env)
    assert "SOME_UNRELATED_SECRET" not in env
    assert env["HF_TOKEN"] == "hf-token-for-downloads" and env["CUDA_VISIBLE_DEVICES"] == "0"
    assert env["FD_LOG_DIR"] == rt.log_dir and "PATH" in env
    a_normal_request_succeeds(rt)  # and it still serves


# --- everything at once ----------------------------------------------------------------------------------


def test_max_concurrency_hostile_callers_of_every_kind_leave_room_for_a_normal_one(lb_runtime: Any) -> None:
    rt = lb_runtime(
        MAX_CONCURRENCY="2",
        CLIENT_HEADER_TIMEOUT=SHORT,
        CLIENT_BODY_TIMEOUT=SHORT,
        CLIENT_STALL_TIMEOUT=SHORT,
        FD_STANDIN_ANSWER_TOKENS="200000",
        FD_STANDIN_TOKEN_DELAY="0",
        MAX_MODEL_LEN="300000",
    )
    opened: list[socket.socket] = []
    kinds: list[Callable[[], socket.socket]] = [
        lambda: stalled_body(rt.port),
        lambda: open_unread_stream(rt.port),
    ]
    for make in kinds:
        opened += [make() for _ in range(2)]
    for _ in range(2):
        sock = connect(rt.port)
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: w")
        opened.append(sock)
    leaving = connect(rt.port)
    body = json.dumps({"prompt": "long", "max_tokens": 2000}).encode()
    leaving.sendall(request_head("/v1/completions", len(body)) + body)
    leaving.close()
    try:
        statuses = set()
        deadline = time.monotonic() + WAIT
        while True:  # RunPod retries a 429 elsewhere: once the bounds are over, this worker serves
            status = ping(rt.port)
            statuses.add(status)
            code, _, data = raw(
                "POST",
                rt.port,
                "/v1/completions",
                json.dumps({"prompt": "x", "max_tokens": 3}).encode(),
                JSON,
            )
            if code == 200:
                break
            assert code == 429 and time.monotonic() < deadline, (code, data)
            time.sleep(0.1)
        assert statuses == {200}
        wait_until(
            lambda: rt.engine_metrics()["fastdeploy:num_requests_running"] == 0,
            "every hostile request to end",
        )
    finally:
        for sock in opened:
            sock.close()
