"""Smoke-test a deployed endpoint: the test jobs through RunPod's job API, then one streamed chat request
through `/openai/v1` with the official `openai` SDK (what users call; an optional dependency)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TextIO

import requests

from builder.verify.jobs import JobApiError, JobClient, TestJob, brief
from builder.verify.report import Progress
from builder.verify.stream import OPENAI_MISSING, OpenAIMissing, jobs_then_stream, openai_available


def wait_for_worker(client: JobClient, timeout: float, out: TextIO) -> str | None:
    """Poll `/health` until a worker is idle, ready or running; None when ready, else why not."""
    progress = Progress(out, "waiting for a ready worker")
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            workers = client.health().get("workers") or {}
            if any(int(workers.get(k) or 0) > 0 for k in ("idle", "ready", "running")):
                progress.done(f"a worker is ready after {time.monotonic() - progress.started:.0f} s")
                return None
            last = brief(workers, 200)
        except (JobApiError, requests.RequestException, ValueError) as exc:
            last = str(exc)
        progress.tick()
        time.sleep(2.0)
    progress.done("")
    return f"no worker was ready within {timeout:g} s (last /health workers: {last or 'none'})"


def smoke_test(
    base: str,
    api_key: str,
    tests: Sequence[TestJob],
    model: str,
    say: Callable[[str], None],
) -> int:
    """The test jobs through the job API, then the streamed OpenAI request; 0 when all passed."""
    if not openai_available():  # before any job is sent
        raise OpenAIMissing(OPENAI_MISSING)
    return jobs_then_stream(JobClient(base, api_key).run, tests, f"{base}/openai/v1", api_key, model, say)
