"""The runtime against release/2.6's new answers (the stand-in in its 2.6 mode): finish_reason "abort"
(a request /v1/abort_requests aborted) and "pd_reschedule" (docs/upstream-notes.md) pass through native
streams, their merged chunks and their usage sums; the abort route stays out of jobs' reach (with the
other routes, in ``test_upstream_behaviour``, which runs against 2.6 too)."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest

from .conftest import WAIT, RuntimeProcess, http, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def engine_release() -> str:
    return "2.6.0"


def finishes(chunks: list[Any]) -> dict[int, list[Any]]:
    """Each choice index's finish_reason values, in order (None: a chunk without one)."""
    out: dict[int, list[Any]] = {}
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            out.setdefault(choice["index"], []).append(choice.get("finish_reason"))
    return out


def merged(chunks: list[Any]) -> bool:
    """Every chunk lists each choice index once: the engine's several-tokens chunks were merged."""
    indexes = [[c["index"] for c in chunk.get("choices") or []] for chunk in chunks]
    return all(len(set(i)) == len(i) for i in indexes) and any(indexes)


def output_of(rt: RuntimeProcess, job_id: str) -> list[Any]:
    result: dict[str, Any] = {}

    def done() -> bool:
        result.update(http("GET", f"{rt.base}/status/{job_id}")[1])
        return result.get("status") not in ("IN_QUEUE", "IN_PROGRESS")

    wait_until(done, "the job to end")
    assert result["status"] == "COMPLETED", result
    return result["output"]


def test_abort_passes_through_a_native_stream_and_its_merged_chunks(local_runtime) -> None:
    rt = local_runtime(FD_STANDIN_TOKEN_DELAY="0.02", FD_STANDIN_ANSWER_TOKENS="300")
    assert rt.engine_argv()[rt.engine_argv().index("--workers") + 1] == "1"
    params = {"max_tokens": 300, "max_streaming_response_tokens": 4}
    _, job = http(
        "POST", rt.base + "/run", {"input": {"prompt": "p", "stream": True, "sampling_params": params}}
    )
    wait_until(lambda: rt.engine_metrics()["standin_generated_tokens_total"] > 10, "decoding to start")
    # What an operator (never a job) can do on 2.6: abort on the engine's own port.
    request = urllib.request.Request(
        f"http://127.0.0.1:{rt.engine_port()}/v1/abort_requests", b'{"abort_all": true}', method="POST"
    )
    urllib.request.urlopen(request, timeout=WAIT).close()
    chunks = output_of(rt, job["id"])
    assert merged(chunks)
    (reasons,) = finishes(chunks).values()
    assert reasons[-1] == "abort" and set(reasons[:-1]) == {None}
    usage = next(c["usage"] for c in reversed(chunks) if c.get("usage"))
    generated = rt.engine_metrics()["standin_generated_tokens_total"]
    assert usage["completion_tokens"] == generated < 300  # what was decoded before the abort


@pytest.mark.parametrize("prompt,n", [(["a", "bb"], 1), ("a", 3)])
def test_pd_reschedule_passes_through_merged_chunks_and_usage_sums(
    local_runtime, prompt: Any, n: int
) -> None:
    rt = local_runtime(FD_STANDIN_FINISH_REASON="pd_reschedule")
    params = {"max_tokens": 5, "n": n, "max_streaming_response_tokens": 3}
    (_, body) = http(
        "POST", rt.base + "/runsync", {"input": {"prompt": prompt, "stream": True, "sampling_params": params}}
    )
    assert body["status"] == "COMPLETED", body
    chunks = body["output"]
    assert merged(chunks)
    reasons = finishes(chunks)
    choices = n * (len(prompt) if isinstance(prompt, list) else 1)
    assert sorted(reasons) == list(range(choices))
    assert all(r[-1] == "pd_reschedule" and set(r[:-1]) <= {None} for r in reasons.values()), reasons
    usage = next(c["usage"] for c in reversed(chunks) if c.get("usage"))
    assert usage["completion_tokens"] == 5 * choices
    openai_job = {
        "openai_route": "/v1/completions",
        "openai_input": {"prompt": prompt, "max_tokens": 5, "n": n},
    }
    (_, body) = http("POST", rt.base + "/runsync", {"input": openai_job})
    (answer,) = body["output"]
    assert {c["finish_reason"] for c in answer["choices"]} == {"pd_reschedule"}
