"""The RunPod job API as the Hub and clients use it: `/runsync` for short jobs, `/run` + `/status`
polling for long ones, `/cancel` when a job outlives its timeout. One client for a local container
(`http://127.0.0.1:PORT`) and a deployed endpoint (`<job base>/<endpoint id>`)."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import requests
from pydantic import BaseModel, Field

from builder.output.hub import tests_json
from builder.variant.resolve import Resolved

FINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")
RUNSYNC_MAX_MS = 90_000  # /runsync holds a request this long at most (RunPod's default wait)
POLL_S = 1.0
OUTPUT_CHARS = 100


class TestJob(BaseModel):
    """One entry of tests.json `tests`."""

    name: str = Field(description="Shown in the report")
    input: Any = Field(description="The raw job input, sent as {'input': ...}")
    timeout: int = Field(gt=0, description="Milliseconds the job may take, queue time included")


class JobResult(BaseModel):
    name: str = Field(description="The test job's name")
    status: str = Field(description="The job's final status, or ERROR when the job API failed")
    seconds: float = Field(description="Wall time from submission to the final status")
    output: Any = Field(None, description="The job's output when it completed")
    error: str | None = Field(None, description="The job's error, or why it was not run to the end")

    @property
    def ok(self) -> bool:
        return self.status == "COMPLETED" and self.error is None


def variant_tests(resolved: Resolved) -> list[TestJob]:
    """The jobs of the variant's `.runpod/tests.json` (the same function renders the file)."""
    return [TestJob.model_validate(t) for t in tests_json(resolved)["tests"]]


def readable(output: Any) -> Any:
    """The generated text when the output is an OpenAI response or chunk list, else the output as is."""
    items = output if isinstance(output, list) else [output]
    texts = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("choices"), list):
            return output
        for choice in item["choices"]:
            if isinstance(choice, dict):
                part = choice.get("message") or choice.get("delta") or {}
                texts.append(str(part.get("content") or "") if isinstance(part, dict) else "")
                texts.append(str(choice.get("text") or ""))
    return "".join(texts) if items else output


def brief(value: Any, limit: int = OUTPUT_CHARS) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class HttpClient:
    """JSON requests to one base URL, with the RunPod API key as bearer when there is one."""

    def __init__(self, base: str, api_key: str | None = None, session: requests.Session | None = None):
        self.base = base.rstrip("/")
        self.session = session or requests.Session()
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"


class JobClient(HttpClient):
    """Submits jobs to one endpoint's job API."""

    def _call(self, method: str, route: str, body: Any = None, timeout: float = 30.0) -> dict[str, Any]:
        resp = self.session.request(
            method, f"{self.base}{route}", headers=self.headers,
            data=None if body is None else json.dumps(body), timeout=timeout,
        )  # fmt: skip
        if resp.status_code == 401:
            raise JobApiError("the job API refused the API key (401): check RUNPOD_API_KEY")
        if resp.status_code >= 400:
            raise JobApiError(f"{method} {route} answered {resp.status_code}: {brief(resp.text, 200)}")
        try:
            answer = resp.json()
        except ValueError:
            raise JobApiError(f"{method} {route} answered non-JSON: {brief(resp.text, 200)}") from None
        if not isinstance(answer, dict):
            raise JobApiError(f"{method} {route} answered {brief(answer, 200)}")
        return answer

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health", timeout=10.0)

    def run(self, job: TestJob) -> JobResult:
        started = time.monotonic()
        deadline = started + job.timeout / 1000
        payload = {"input": job.input}
        try:
            if job.timeout <= RUNSYNC_MAX_MS:
                state = self._call(
                    "POST", f"/runsync?wait={job.timeout}", payload, timeout=job.timeout / 1000 + 30
                )
            else:
                state = self._call("POST", "/run", payload)
            job_id, polls = state.get("id"), 0
            while state.get("status") not in FINAL:
                if not job_id:
                    raise JobApiError(f"the job API answered without a job id: {brief(state, 200)}")
                if time.monotonic() >= deadline:
                    # The job is reported as timed out whether or not the cancel goes through.
                    with contextlib.suppress(JobApiError, requests.RequestException):
                        self._call("POST", f"/cancel/{job_id}")
                    state = {
                        "status": "TIMED_OUT",
                        "error": f"no result within {job.timeout / 1000:g} s (cancelled)",
                    }
                    break
                polls += 1  # quick first polls: a short job is reported in a fraction of a second
                time.sleep(min(POLL_S, 0.05 * 2**polls, max(0.0, deadline - time.monotonic())))
                state = self._call("GET", f"/status/{job_id}")
        except (JobApiError, requests.RequestException) as exc:
            return JobResult(
                name=job.name, status="ERROR", seconds=time.monotonic() - started, error=str(exc)
            )
        status = str(state.get("status"))
        error = state.get("error")
        if status != "COMPLETED" and error is None:
            error = f"job ended {status}"
        return JobResult(
            name=job.name, status=status, seconds=time.monotonic() - started, output=state.get("output"),
            error=None if error is None else brief(error, 300),
        )  # fmt: skip


class JobApiError(Exception):
    """The job API itself failed (not the job)."""
