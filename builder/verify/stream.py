"""The check every target of the test verb ends with: the jobs, then one streamed chat request through
the official `openai` SDK (what users call; an optional dependency)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from builder.errors import BuilderError
from builder.verify.answers import answer_problem
from builder.verify.jobs import JobResult, TestJob, brief
from builder.verify.report import job_line, run_each, summary

OPENAI_MISSING = (
    "the endpoint smoke test streams one request with the official openai SDK, which is not installed: "
    "pip install -r requirements.txt in a checkout (it pins the tested version), or pip install "
    "'fastdeploy-runpod-workers[endpoint]' for an installed copy"
)


class OpenAIMissing(BuilderError):
    exit_code = 1


def openai_available() -> bool:
    try:
        import openai  # noqa: F401
    except ImportError:
        return False
    return True


def stream_check(openai_base: str, api_key: str, model: str, timeout_s: float) -> JobResult:
    """One streamed chat completion at `openai_base` (a queue endpoint's `/openai/v1`, a load-balancing
    worker's `/v1`); passes when at least one chunk arrives and the stream ends cleanly."""
    import openai

    started = time.monotonic()
    client = openai.OpenAI(base_url=openai_base, api_key=api_key, timeout=timeout_s, max_retries=0)
    text, chunks = [], 0
    try:
        stream = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Say hello in one word."}],
            max_tokens=16,
            stream=True,
        )
        for chunk in stream:
            chunks += 1
            if chunk.choices and chunk.choices[0].delta.content:
                text.append(chunk.choices[0].delta.content)
    except openai.OpenAIError as exc:
        message = str(exc).replace(api_key, "***") if api_key else str(exc)
        return JobResult(
            name="openai stream", status="FAILED", seconds=time.monotonic() - started,
            error=f"{type(exc).__name__}: {brief(message, 300)}",
        )  # fmt: skip
    seconds = time.monotonic() - started
    if chunks == 0:
        return JobResult(
            name="openai stream", status="FAILED", seconds=seconds, error="the stream had no chunk"
        )
    return JobResult(
        name="openai stream", status="COMPLETED", seconds=seconds, output=f"{chunks} chunks: {''.join(text)}"
    )


SDK_FIELDS = ("response_format", "tools")


def sdk_jobs(tests: Sequence[TestJob]) -> list[TestJob]:
    """The chat jobs that ask for a structured output or a tool call: sent through the openai SDK too."""
    return [
        t
        for t in tests
        if isinstance(t.input, dict)
        and t.input.get("openai_route") == "/v1/chat/completions"
        and isinstance(t.input.get("openai_input"), dict)
        and any(k in t.input["openai_input"] for k in SDK_FIELDS)
    ]


def sdk_check(openai_base: str, api_key: str, model: str, job: TestJob) -> JobResult:
    """One job's chat request through the official openai SDK (`response_format=...`, `tools=...`); its
    answer checked as the job's own (builder.verify.answers)."""
    import openai

    name = f"openai sdk {job.name}"
    started = time.monotonic()
    body = dict(job.input["openai_input"])
    client = openai.OpenAI(base_url=openai_base, api_key=api_key, timeout=job.timeout / 1000, max_retries=0)
    known = {
        k: body.pop(k)
        for k in ("messages", "response_format", "tools", "max_tokens", "temperature")
        if k in body
    }
    try:
        response = client.chat.completions.create(
            model=body.pop("model", model), **known, extra_body=body or None
        )
    except openai.OpenAIError as exc:
        message = str(exc).replace(api_key, "***") if api_key else str(exc)
        return JobResult(
            name=name, status="FAILED", seconds=time.monotonic() - started,
            error=f"{type(exc).__name__}: {brief(message, 300)}",
        )  # fmt: skip
    output = response.model_dump()
    problem = answer_problem(job.input, output)
    return JobResult(
        name=name, status="COMPLETED", seconds=time.monotonic() - started, output=output,
        error=None if problem is None else brief(problem, 300),
    )  # fmt: skip


def jobs_then_stream(
    run: Callable[[TestJob], JobResult],
    tests: Sequence[TestJob],
    openai_base: str,
    api_key: str,
    model: str,
    say: Callable[[str], None],
) -> int:
    """Every job through `run`, the structured-output and tool-call jobs again through the openai SDK,
    then one openai stream at `openai_base` (as long as the longest job may take); the summary line, and
    0 when all passed."""
    results = run_each(run, tests, say)
    for job in sdk_jobs(tests):
        results.append(sdk_check(openai_base, api_key, model, job))
        say(job_line(results[-1]))
    timeout = max((t.timeout for t in tests), default=900_000) / 1000
    results.append(stream_check(openai_base, api_key, model, timeout))
    say(job_line(results[-1]))
    return summary(results, say)
