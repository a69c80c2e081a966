"""Every stand-in fault knob: the job ends failed naming the cause, nothing hangs, death is fatal."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from .conftest import (
    LOCAL_READY,
    WAIT,
    RuntimeProcess,
    assert_process_ends,
    http,
    process_alive,
    runtime_env,
)

pytestmark = pytest.mark.integration
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def failed(rt: RuntimeProcess, job_input: dict) -> dict:
    status, body = http("POST", rt.base + "/runsync", {"input": job_input})
    assert status == 200 and body["status"] == "FAILED", body
    return json.loads(body["error"])


def test_crash_at_start_prints_log_tail_and_exits_non_zero(local_runtime) -> None:
    rt = local_runtime(wait_ready=False, FD_STANDIN_CRASH_AT_START="3")
    assert rt.wait_exit() == 1
    assert "FastDeploy engine exited with code 3 during startup" in rt.output
    assert "out of memory on GPU 0 (FD_STANDIN_CRASH_AT_START)" in rt.output  # from workerlog.0


def test_slow_start_is_waited_for(local_runtime) -> None:
    rt = local_runtime(FD_STANDIN_LOAD_DELAY="1.5")
    assert "FastDeploy ready after 1." in rt.output or "FastDeploy ready after 2." in rt.output


def test_startup_timeout_stops_the_engine(local_runtime) -> None:
    rt = local_runtime(wait_ready=False, FD_STANDIN_LOAD_DELAY="60", ENGINE_STARTUP_TIMEOUT="1")
    assert rt.wait_exit() == 1
    assert "not ready after 1 s (ENGINE_STARTUP_TIMEOUT)" in rt.output
    assert "loading model stand-in/model" in rt.output  # fastdeploy.log tail
    pid = rt.engine_pid()
    assert pid is not None
    assert_process_ends(pid)


def test_invalid_settings_stop_startup_listing_every_problem(local_runtime) -> None:
    rt = local_runtime(
        wait_ready=False, MAX_NUM_SEQS="lots", QUANTIZATION="fp8", ENGINE_ARGS="--no-such-flag"
    )
    assert rt.wait_exit() == 2
    for text in ("MAX_NUM_SEQS='lots'", "QUANTIZATION='fp8'", "wint8", "--no-such-flag"):
        assert text in rt.output


def test_error_event_mid_stream_fails_the_job(local_runtime) -> None:
    rt = local_runtime(FD_STANDIN_ERROR_MID_STREAM="3")
    err = failed(rt, {**CHAT, "stream": True})
    assert err["status"] == 500 and "FD_STANDIN_ERROR_MID_STREAM" in err["message"]
    err = failed(rt, {"openai_route": "/v1/chat/completions", "openai_input": {**CHAT, "stream": True}})
    assert err["type"] == "internal_error" and err["status"] == 500


@pytest.mark.parametrize("status", ["400", "503"])
def test_http_status_is_preserved(local_runtime, status: str) -> None:
    rt = local_runtime(FD_STANDIN_HTTP_STATUS=status)
    err = failed(rt, CHAT)
    assert err["status"] == int(status) and "forced HTTP" in err["message"]
    code, body = http("POST", rt.base + "/openai/v1/chat/completions", CHAT)
    assert code == int(status) and "forced HTTP" in body["error"]["message"]


def test_too_many_requests(local_runtime) -> None:
    rt = local_runtime(FD_STANDIN_TOO_MANY="1")
    err = failed(rt, CHAT)
    assert err["status"] == 429 and err["type"] == "rate_limit_error"
    assert "Too many requests,current max concurrency is" in err["message"]


def test_hang_hits_the_request_timeout(local_runtime) -> None:
    rt = local_runtime(FD_STANDIN_HANG="1", REQUEST_TIMEOUT="1")
    err = failed(rt, {**CHAT, "stream": True})
    assert err["status"] == 504 and "REQUEST_TIMEOUT" in err["message"]


@pytest.mark.slow
def test_request_timeout_is_an_idle_timeout_for_streams(local_runtime) -> None:
    # 40 tokens 0.1 s apart take ~4 s, well past REQUEST_TIMEOUT, but the stream is never silent.
    rt = local_runtime(REQUEST_TIMEOUT="1.5", FD_STANDIN_TOKEN_DELAY="0.1", FD_STANDIN_ANSWER_TOKENS="40")
    started = time.monotonic()
    status, body = http("POST", rt.base + "/runsync", {"input": {**CHAT, "stream": True}})
    assert status == 200 and body["status"] == "COMPLETED", body
    assert time.monotonic() - started > 3.0
    # The usage chunk (choices: []) may come in a yield of its own, after the finishing one.
    finishing = [c for c in body["output"] if c["choices"]][-1]
    assert finishing["choices"][0]["finish_reason"] == "stop"
    status, body = http(
        "POST",
        rt.base + "/runsync",
        {"input": {"openai_route": "/v1/chat/completions", "openai_input": {**CHAT, "stream": True}}},
    )
    assert status == 200 and body["status"] == "COMPLETED", body
    assert "".join(body["output"]).endswith("data: [DONE]\n\n")


def test_crash_mid_stream_fails_jobs_and_exits_non_zero(local_runtime) -> None:
    rt = local_runtime(FD_STANDIN_CRASH_MID_STREAM="2")
    err = failed(rt, {**CHAT, "stream": True})
    assert err["status"] == 503 and err["message"] == "the engine exited (code 7); the worker is restarting"
    assert rt.wait_exit() == 1
    assert "worker process died (FD_STANDIN_CRASH_MID_STREAM)" in rt.output


def test_sigterm_stops_engine_and_exits_zero(local_runtime) -> None:
    rt = local_runtime()
    pid = rt.engine_pid()
    rt.proc.send_signal(signal.SIGTERM)
    assert rt.wait_exit() == 0
    assert pid is not None and not process_alive(pid)
    with open(os.path.join(rt.log_dir, "api_server.log"), encoding="utf-8") as f:
        assert "Shutting down" in f.read()  # graceful: the engine handled SIGTERM itself


def test_rp_serve_api_native_format() -> None:
    """The runpod SDK's own local server drives the same handler (native input format)."""
    from worker_runtime.engine.ports import free_ports

    (port,) = free_ports(1)
    env = runtime_env()
    rt = RuntimeProcess(
        ["--rp_serve_api", "--rp_api_port", str(port), "--rp_api_host", "127.0.0.1"], env, port
    )
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                status, body = http(
                    "POST",
                    rt.base + "/runsync",
                    {"input": {"prompt": "native", "stream": True, "sampling_params": {"max_tokens": 7}}},
                    timeout=5,
                )
                break
            except OSError:
                assert rt.proc.poll() is None, rt.output
                assert time.monotonic() < deadline, rt.output
                time.sleep(0.2)
        assert status == 200 and body["status"] == "COMPLETED", body
        chunks = body["output"]
        # Completions chunks (2.5 writes no "object" in them)
        assert all("text" in ch and "delta" not in ch for c in chunks for ch in c["choices"])
        assert chunks[-1]["usage"]["completion_tokens"] == 7
        status, body = http("POST", rt.base + "/runsync", {"input": {"prompt": "native"}})
        assert body["output"][0]["choices"][0]["finish_reason"] == "stop"
    finally:
        rt.stop()


def test_health_probe_ignores_proxy_variables(local_runtime) -> None:
    dead = "http://127.0.0.1:9"  # nothing listens there
    rt = local_runtime(
        wait_ready=False,
        ENGINE_STARTUP_TIMEOUT="8",
        HTTP_PROXY=dead,
        http_proxy=dead,
        HTTPS_PROXY=dead,
        https_proxy=dead,
        NO_PROXY="",
        no_proxy="",
    )
    rt.wait_output(LOCAL_READY)
    status, body = http("POST", rt.base + "/runsync", {"input": CHAT})
    assert status == 200 and body["status"] == "COMPLETED", body
