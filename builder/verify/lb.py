"""Test a load-balancing worker over HTTP, as RunPod's load balancer and its clients reach it: wait on
the health check (204 while the model loads, 200 when ready; anything else unhealthy, per runpod/docs
serverless/load-balancing/overview.mdx), then the tests.json jobs mapped onto the worker's routes, then
one streamed chat through the `openai` SDK. One client for a local container and a deployed endpoint
(`https://ENDPOINT_ID.api.runpod.ai`, the RunPod API key as bearer)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import requests

from builder.verify.jobs import HttpClient, JobResult, TestJob, brief
from builder.verify.report import Progress
from builder.verify.stream import OPENAI_MISSING, OpenAIMissing, jobs_then_stream, openai_available
from worker_runtime.config import routes

# The worker's routes (the runtime's one table): the native route's body is a queue job's `input` object.
(NATIVE_PATH,) = routes.paths(routes.LOAD_BALANCER, routes.NATIVE)
GET_ROUTES = routes.paths(routes.LOAD_BALANCER, routes.OPENAI, "GET")
HEALTH_WORDS = {200: "ready", 204: "initializing"}
POLL_S = 0.5


@dataclass(frozen=True)
class HttpCall:
    """What one tests.json job becomes on a load-balancing worker."""

    method: str
    path: str
    body: Any
    stream: bool


def http_call(job_input: Any) -> HttpCall:
    """A job input -> the HTTP request a load-balancing worker serves for it (pure): an `openai_route`
    job is that route with `openai_input` as the body (GET for the routes the engine serves on GET);
    every other job is the native format at POST /generate."""
    if isinstance(job_input, dict) and "openai_route" in job_input:
        route = str(job_input["openai_route"])
        body = job_input.get("openai_input")
        if route in GET_ROUTES:
            return HttpCall("GET", route, None, False)
        return HttpCall("POST", route, body, isinstance(body, dict) and body.get("stream") is True)
    stream = isinstance(job_input, dict) and job_input.get("stream") is True
    return HttpCall("POST", NATIVE_PATH, job_input, stream)


def health_word(status: int | None) -> str:
    if status is None:
        return "no answer"
    return HEALTH_WORDS.get(status, "unhealthy")


def sse_data(lines: Iterator[str]) -> Iterator[Any]:
    """The JSON objects of an SSE stream's `data:` lines, up to `data: [DONE]` (which is required)."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        yield json.loads(data)
    raise ValueError("the stream ended without data: [DONE]")


def error_text(resp: requests.Response) -> str:
    """An OpenAI error body's message, else the body as it came."""
    try:
        body = resp.json()
    except ValueError:
        return brief(resp.text, 300)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return brief(str(error["message"]), 300)
    return brief(body, 300)


class LbClient(HttpClient):
    """Sends the test jobs to one load-balancing worker (or endpoint) at `base`."""

    def status(self, url: str) -> int | None:
        """The health check's status code, None when nothing answered."""
        try:
            return self.session.get(url, headers=self.headers, timeout=10).status_code
        except requests.RequestException:
            return None

    def run(self, job: TestJob) -> JobResult:
        call = http_call(job.input)
        started = time.monotonic()

        def result(status: str, output: Any = None, error: str | None = None) -> JobResult:
            return JobResult(
                name=job.name, status=status, seconds=time.monotonic() - started, output=output, error=error
            )

        try:
            resp = self.session.request(
                call.method, f"{self.base}{call.path}", headers=self.headers, stream=call.stream,
                data=None if call.body is None else json.dumps(call.body), timeout=job.timeout / 1000,
            )  # fmt: skip
            with resp:
                if resp.status_code >= 400:
                    where = f"{call.method} {call.path}"
                    return result("FAILED", error=f"{where} answered {resp.status_code}: {error_text(resp)}")
                if not call.stream:
                    return result("COMPLETED", resp.json())
                chunks = []
                for chunk in sse_data(resp.iter_lines(decode_unicode=True)):
                    if isinstance(chunk, dict) and "error" in chunk:
                        return result("FAILED", chunks, f"error event mid-stream: {brief(chunk, 300)}")
                    chunks.append(chunk)
                return result("COMPLETED", chunks)
        except requests.Timeout:
            return result("TIMED_OUT", error=f"no result within {job.timeout / 1000:g} s")
        except (requests.RequestException, ValueError) as exc:
            return result("ERROR", error=brief(str(exc), 300))


class HealthError(Exception):
    """The worker never became ready, or reported itself unhealthy."""


def wait_healthy(
    check: Callable[[], int | None],
    timeout: float,
    say: Callable[[str], None],
    out: TextIO,
    fatal: Callable[[int | None], str | None] = lambda status: None,
) -> list[int | None]:
    """Poll the health check until it answers 200; print each change of its answer as it happens
    (204 -> 200 on a cold start). `fatal` turns an answer into an error (a local worker's 503: it died).
    Returns the answers in the order they first appeared."""
    progress = Progress(out, "waiting for the health check to answer 200")
    deadline = time.monotonic() + timeout
    seen: list[int | None] = []
    while True:
        status = check()
        if not seen or status != seen[-1]:
            seen.append(status)
            took = time.monotonic() - progress.started
            if progress.tty:  # the counting line gives way to the report's line
                out.write("\r\x1b[K")
            say(f"health: {status or '-'} ({health_word(status)}) after {took:.1f} s")
        if status == 200:
            return seen
        problem = fatal(status)
        if problem:
            raise HealthError(problem)
        if time.monotonic() > deadline:
            raise HealthError(
                f"the health check did not answer 200 within {timeout:g} s (last: {status or 'no answer'})"
            )
        progress.tick()
        time.sleep(POLL_S)


def run_lb_tests(
    client: LbClient,
    health_url: str,
    tests: Sequence[TestJob],
    model: str,
    timeout: float,
    say: Callable[[str], None],
    out: TextIO,
    fatal: Callable[[int | None], str | None] = lambda status: None,
) -> int:
    """Wait for 200 at `health_url`, run the jobs and one openai stream at `<base>/v1`; 0 when all passed."""
    if not openai_available():  # before anything is sent
        raise OpenAIMissing(OPENAI_MISSING)
    try:
        wait_healthy(lambda: client.status(health_url), timeout, say, out, fatal)
    except HealthError as exc:
        say(f"error: {exc}")
        return 1
    key = client.headers.get("Authorization", "").removeprefix("Bearer ")
    return jobs_then_stream(client.run, tests, f"{client.base}/v1", key or "unused", model, say)


def test_endpoint(
    base: str,
    api_key: str,
    health: str,
    tests: Sequence[TestJob],
    model: str,
    timeout: float,
    say: Callable[[str], None],
    out: TextIO,
) -> int:
    """A deployed load-balancing endpoint: RunPod's answers while no worker is ready (502, "no workers
    available") are not fatal, they are waited out up to `timeout`."""
    say(f"health check: {base}{health}")
    return run_lb_tests(LbClient(base, api_key), f"{base}{health}", tests, model, timeout, say, out)
