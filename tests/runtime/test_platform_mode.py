"""Platform mode: ``python -m worker_runtime`` under the RunPod SDK's own job loop, against a fake job API.

The worker is the real runtime (subprocess, engine stand-in); only RunPod's job API is faked
(fake_platform.py): it queues jobs for the SDK's job-take long polls and records every stream and
result POST, exactly as the SDK sends them.
"""

from __future__ import annotations

import contextlib
import json
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from .conftest import WAIT, RuntimeProcess, assert_process_ends, fitness_env, runtime_env
from .fake_platform import API_KEY, FakePlatform, Job

pytestmark = pytest.mark.integration
MESSAGES = [{"role": "user", "content": "Say something with 你好 and 🚀"}]
TOKEN_DELAY = 0.01  # the main worker's engine makes 100 tokens/s


@dataclass
class Worker:
    name: str
    api: FakePlatform
    rt: RuntimeProcess

    def submit(self, job_input: Any, stream_delay: float = 0.0) -> str:
        return self.api.submit(job_input, stream_delay)

    def result(self, job_id: str, timeout: float = WAIT) -> Job:
        try:
            return self.api.wait_result(job_id, timeout)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\n--- worker {self.name} output ---\n{self.rt.output[-6000:]}"
            ) from None

    def run(self, job_input: Any, stream_delay: float = 0.0) -> Job:
        return self.result(self.submit(job_input, stream_delay))

    def wait_taking(self, timeout: float = WAIT) -> None:
        """Ready = the SDK's job loop asked the fake API for a job."""
        deadline = time.monotonic() + timeout
        while not self.api.takes:
            if self.rt.proc.poll() is not None:
                self.rt.wait_output("\0never\0", timeout=0.5)  # raises with the output
            assert time.monotonic() < deadline, (
                f"{self.name}: no job-take within {timeout} s\n{self.rt.output}"
            )
            time.sleep(0.05)


def start_worker(name: str, **extra: str) -> Worker:
    api = FakePlatform().start()
    env = runtime_env(**extra)
    env.update(api.env(f"worker-{name}"))
    env["HOME"] = tempfile.mkdtemp(prefix="home-")  # no ~/.runpod/config.toml: the key comes from env
    # The SDK's start-up fitness checks (disk, memory, network; GPU) run as on RunPod wherever this
    # machine passes them, so that a worker that breaks them fails here too (fitness_env).
    env.update(fitness_env())
    return Worker(name, api, RuntimeProcess([], env, None))


@contextlib.contextmanager
def running_worker(name: str, **extra: str) -> Iterator[Worker]:
    """A platform worker taking jobs, stopped with its fake job API at the end."""
    worker = start_worker(name, **extra)
    try:
        worker.wait_taking()
        yield worker
    finally:
        worker.rt.stop()
        worker.api.close()


WORKERS = {
    # the main worker: 4 jobs at once, 100 tokens/s, long natural answers (lengths come from max_tokens)
    "main": {
        "SERVED_MODEL_NAME": "ernie-test",
        "MAX_CONCURRENCY": "4",
        "FD_STANDIN_TOKEN_DELAY": str(TOKEN_DELAY),
        "FD_STANDIN_ANSWER_TOKENS": "400",
    },
    "status400": {"FD_STANDIN_HTTP_STATUS": "400"},
    "error_mid": {"FD_STANDIN_ERROR_MID_STREAM": "3", "FD_STANDIN_TOKEN_DELAY": "0.005"},
    "crash": {"FD_STANDIN_CRASH_MID_STREAM": "3", "FD_STANDIN_TOKEN_DELAY": "0.005"},
}


@pytest.fixture(scope="module")
def workers() -> Iterator[dict[str, Worker]]:
    started: dict[str, Worker] = {}
    try:
        for name, extra in WORKERS.items():  # all start at once, then each is waited for
            started[name] = start_worker(name, **extra)
        for worker in started.values():
            worker.wait_taking()
        yield started
    finally:
        for worker in started.values():  # SIGTERM all first, so that they stop in parallel
            if worker.rt.proc.poll() is None:
                worker.rt.proc.send_signal(signal.SIGTERM)
        for worker in started.values():
            worker.rt.stop()  # waits, then kills what is still running
            worker.api.close()


def error_of(job: Job) -> dict[str, Any]:
    """The failed job's error: the SDK posts ``{"error": <text>}``; the runtime's text is JSON."""
    assert job.result is not None
    body = job.result.body
    assert isinstance(body, dict) and set(body) == {"error"}, f"expected a failed job, got {body!r}"
    return json.loads(body["error"])


def output_of(job: Job) -> list[Any]:
    assert job.result is not None
    body = job.result.body
    assert isinstance(body, dict) and "error" not in body, f"expected a completed job, got {body!r}"
    return body["output"]


def chat_text(chunks: list[dict[str, Any]]) -> str:
    return "".join(ch["delta"].get("content") or "" for c in chunks for ch in c["choices"])


def test_non_stream_job_completes_with_the_openai_response(workers: dict[str, Worker]) -> None:
    w = workers["main"]
    job = w.run({"messages": MESSAGES, "sampling_params": {"max_tokens": 12}})
    (response,) = output_of(job)  # return_aggregate_stream: the list of what was yielded
    assert response["object"] == "chat.completion"
    assert response["choices"][0]["finish_reason"] == "length"
    assert response["usage"]["completion_tokens"] == 12
    assert [p.body for p in job.stream] == [{"output": response}]  # the one yield was streamed too
    # What the SDK sends: the API key, the worker id in the URL template, the query it appends.
    assert job.result is not None
    assert job.result.headers["Authorization"] == API_KEY
    assert job.result.query == {"gpu": "TEST_GPU", "isStream": "true"}
    assert job.stream[0].query == {"gpu": "TEST_GPU", "isStream": "false"}
    take = w.api.takes[-1]
    assert take.headers["Authorization"] == API_KEY and take.query["gpu"] == "TEST_GPU"
    assert take.query["job_in_progress"] in ("0", "1")
    assert not w.api.unexpected
    w.api.wait_for(lambda: bool(w.api.pings), WAIT, "heartbeat")  # the SDK's ping process
    ping = w.api.pings[0]
    assert ping["headers"]["Authorization"] == API_KEY and "runpod_version" in ping["query"]

    models = w.run({"openai_route": "/v1/models"})  # the GET passthrough, no openai_input
    (listing,) = output_of(models)
    assert [m["id"] for m in listing["data"]] == ["ernie-test"]


def test_native_stream_posts_chunks_that_add_up_to_the_answer(workers: dict[str, Worker]) -> None:
    w = workers["main"]
    job = {"messages": MESSAGES, "sampling_params": {"max_tokens": 20}}
    full = w.run(job)
    (response,) = output_of(full)
    streamed = w.run({**job, "stream": True})
    chunks = streamed.outputs
    assert len(chunks) >= 2
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chat_text(chunks).encode() == response["choices"][0]["message"]["content"].encode()
    assert chunks[-1]["usage"]["completion_tokens"] == 20  # native streams end with usage
    assert output_of(streamed) == chunks  # the final result aggregates exactly what was streamed
    assert all(p.at <= streamed.result.at for p in streamed.stream)  # type: ignore[union-attr]

    prompt = {"prompt": "abc", "sampling_params": {"max_tokens": 15}}
    (completion,) = output_of(w.run(prompt))
    pieces = w.run({**prompt, "stream": True}).outputs
    assert (
        "".join(ch.get("text") or "" for c in pieces for ch in c["choices"])
        == completion["choices"][0]["text"]
    )


def test_openai_stream_posts_whole_sse_events_ending_with_done(workers: dict[str, Worker]) -> None:
    w = workers["main"]
    body = {"messages": MESSAGES, "max_tokens": 20}
    (response,) = output_of(w.run({"openai_route": "/v1/chat/completions", "openai_input": body}))
    assert response["object"] == "chat.completion"
    job = w.run({"openai_route": "/v1/chat/completions", "openai_input": {**body, "stream": True}})
    texts = job.outputs
    assert len(texts) >= 2 and all(isinstance(t, str) for t in texts)
    events: list[str] = []
    for text in texts:  # every POST holds whole events only
        assert text.startswith("data: ") and text.endswith("\n\n"), repr(text)
        events += text[: -len("\n\n")].split("\n\n")
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]" and events.count("data: [DONE]") == 1
    chunks = [json.loads(e[len("data: ") :]) for e in events[:-1]]
    assert chat_text(chunks) == response["choices"][0]["message"]["content"]
    assert output_of(job) == texts


def test_bad_input_fails_naming_the_accepted_shapes(workers: dict[str, Worker]) -> None:
    w = workers["main"]
    job = w.run({"foo": 1})
    err = error_of(job)  # FAILED: an error result, no output
    assert err["status"] == 400 and err["code"] == "invalid_input"
    for shape in ('{"messages": [...]}', '{"prompt": "..."}', '{"openai_route": "/v1/..."'):
        assert shape in err["message"]
    assert "foo" in err["message"]
    assert job.stream == []  # the error yield is not streamed as an output


def test_engine_errors_fail_the_job_with_their_status_and_body(workers: dict[str, Worker]) -> None:
    # A real engine refusal, from the main worker: an unknown model name.
    err = error_of(workers["main"].run({"messages": MESSAGES, "model": "other-model"}))
    assert err["status"] == 400 and err["code"] == "model_not_support" and "ernie-test" in err["message"]

    w = workers["status400"]
    for job_input in (
        {"messages": MESSAGES},
        {"prompt": "x", "stream": True},
        {"openai_route": "/v1/chat/completions", "openai_input": {"messages": MESSAGES, "stream": True}},
    ):
        job = w.run(job_input)
        err = error_of(job)
        assert err["status"] == 400 and err["message"] == "stand-in forced HTTP 400", job_input
        assert err["type"] == "invalid_request_error" and err["code"] == "internal_error"
        assert job.stream == []


def test_error_event_mid_stream_fails_after_the_chunks_before_it(workers: dict[str, Worker]) -> None:
    w = workers["error_mid"]
    job = w.run({"messages": MESSAGES, "stream": True, "sampling_params": {"max_tokens": 20}})
    err = error_of(job)
    assert err["status"] == 500 and "FD_STANDIN_ERROR_MID_STREAM" in err["message"]
    assert len(chat_text(job.outputs)) > 0  # the tokens before the error were streamed
    job = w.run({"openai_route": "/v1/completions", "openai_input": {"prompt": "x", "stream": True}})
    assert error_of(job)["type"] == "internal_error" and error_of(job)["code"] == "400"  # 2.5's own
    assert all("[DONE]" not in text for text in job.outputs)  # a failed stream does not claim success


def test_engine_death_fails_the_job_then_the_worker_exits(workers: dict[str, Worker]) -> None:
    w = workers["crash"]
    job = w.run({"messages": MESSAGES, "stream": True, "sampling_params": {"max_tokens": 20}})
    err = error_of(job)
    assert err["status"] == 503 and err["code"] == "engine_exited", err
    assert w.rt.wait_exit() == 1  # so that RunPod replaces the worker


def test_queued_jobs_are_taken_and_run_concurrently(workers: dict[str, Worker]) -> None:
    w = workers["main"]
    ids = w.api.submit_all([{"prompt": f"job {i}", "sampling_params": {"max_tokens": 30}} for i in range(8)])
    jobs = [w.result(i) for i in ids]
    for job in jobs:
        (completion,) = output_of(job)
        assert completion["usage"]["completion_tokens"] == 30
    # Most jobs running at once, from the fake API's view: taken .. result posted.
    spans = [(j.taken_at, j.result.at) for j in jobs]  # type: ignore[union-attr]
    overlap = max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)  # type: ignore[operator]
    takes = [t for t in w.api.takes if set(t.got) & set(ids)]
    print(
        f"\nmax jobs in flight: {overlap} (fake API overall: {w.api.max_in_flight}); takes: "
        + ", ".join(
            f"{'batch' if t.batch else 'single'}:{t.query.get('batch_size', 1)}->{len(t.got)}" for t in takes
        )
    )
    assert 1 < overlap <= 4  # MAX_CONCURRENCY=4
    assert any(t.batch and int(t.query["batch_size"]) > 1 and len(t.got) > 1 for t in takes)


def test_stream_posts_are_coalesced_when_the_platform_is_slow(workers: dict[str, Worker]) -> None:
    w = workers["main"]
    job_input = {"prompt": "long", "stream": True, "sampling_params": {"max_tokens": 128}}
    counts = {}
    for delay in (0.0, 0.02):
        job = w.run(job_input, stream_delay=delay)
        chunks = job.outputs
        assert chunks[-1]["usage"]["completion_tokens"] == 128
        assert sum(1 for c in chunks for ch in c["choices"] if ch.get("text")) <= 128
        counts[delay] = len(job.stream)
    print(
        f"\n128 tokens at 100 tok/s: {counts[0.0]} stream POSTs with an instant platform, "
        f"{counts[0.02]} when each POST takes 20 ms"
    )
    assert 1 < counts[0.02] < 128


def test_job_stop_signal_cancels_the_job(workers: dict[str, Worker]) -> None:
    w = workers["main"]
    job_id = w.submit({"prompt": "endless", "stream": True, "sampling_params": {"max_tokens": 300}})
    w.api.wait_for(lambda: len(w.api.jobs[job_id].stream) >= 2, WAIT, "stream POSTs")
    stop_at = time.monotonic()
    w.api.request_stop(job_id)
    output_of(w.run({"prompt": "next", "sampling_params": {"max_tokens": 5}}))  # the worker goes on
    # The SDK reports no job in progress only once the stopped one is gone. Had it not been stopped,
    # it would have run to its end (300 tokens, 3 s) and posted a result before that.
    w.api.wait_for(
        lambda: any(t.at > stop_at and t.query.get("job_in_progress") == "0" for t in w.api.takes),
        WAIT,
        "job-take with job_in_progress=0",
    )
    stopped = w.api.jobs[job_id]
    assert stopped.result is None
    assert not any(c.get("usage") for c in stopped.outputs)
    assert not any(ch.get("finish_reason") for c in stopped.outputs for ch in c["choices"])


def test_sigterm_lets_the_running_job_finish_then_stops_worker_and_engine(
    workers: dict[str, Worker],
) -> None:
    # What RunPod does on scale-down. The SDK's handler replaces the runtime's in platform mode.
    w = workers["main"]
    pid = w.rt.engine_pid()
    assert pid is not None
    job_id = w.submit({"prompt": "last", "stream": True, "sampling_params": {"max_tokens": 50}})
    w.api.wait_for(lambda: bool(w.api.jobs[job_id].stream), WAIT, "first stream POST")
    w.rt.proc.send_signal(signal.SIGTERM)
    job = w.result(job_id)  # the job in flight is drained, not dropped
    assert output_of(job)[-1]["usage"]["completion_tokens"] == 50
    assert w.rt.wait_exit() == 0, w.rt.output
    assert "while serving" not in w.rt.output  # a requested stop is not reported as an engine crash
    assert_process_ends(pid, f"\n{w.rt.output}")
