"""The RunPod handler: an async generator driven by the SDK (platform) or by the local server.

Outputs: non-stream -> one yielded OpenAI response object; OpenAI stream -> SSE text (whole events,
several per yield when they arrived together); native stream -> one OpenAI chunk object per yield
(chunks that arrived together merged, see chunks.py). A failure yields ``{"error": <JSON text>}``
(see errors.py) and ends the job as failed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from worker_runtime.chunks import merge_chunks
from worker_runtime.engine_client import EngineClient
from worker_runtime.errors import JobError, engine_http_error
from worker_runtime.normalize import EngineRequest, normalize
from worker_runtime.sse import Event, SSEParser
from worker_runtime.supervisor import Supervisor, log_tail

# A stream error event has no HTTP status of its own: derive one from its type.
STATUS_FOR_TYPE = {"invalid_request_error": 400, "timeout_error": 504}


class Runtime:
    """What the handler needs: the engine's address, its name for requests, and its state."""

    def __init__(
        self,
        client: EngineClient,
        model_name: str,
        max_concurrency: int,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.client = client
        self.model_name = model_name
        self.max_concurrency = max_concurrency
        self.supervisor = supervisor
        self.in_flight = 0

    def concurrency_modifier(self, current: int) -> int:
        """Jobs to take at once; 0 once the engine died, so a dying worker takes no new jobs."""
        sup = self.supervisor
        if sup is not None and sup.died.is_set():
            return 0
        return self.max_concurrency

    def dead_error(self) -> JobError | None:
        sup = self.supervisor
        if sup is None or not sup.died.is_set():
            return None
        return JobError(
            503,
            f"FastDeploy engine exited with code {sup.exit_code}; this worker is being replaced.\n"
            + log_tail(sup.log_dir, lines=15),
            "server_error",
            "engine_exited",
        )

    async def engine_failure(self, wait: float) -> JobError | None:
        """The engine-death error, waiting up to ``wait`` s for the death watch to notice."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while self.supervisor is not None:
            err = self.dead_error()
            if err is not None or loop.time() >= deadline:
                return err
            await asyncio.sleep(0.05)
        return None


def make_handler(runtime: Runtime) -> Callable[[dict[str, Any]], AsyncIterator[Any]]:
    async def handler(job: dict[str, Any]) -> AsyncIterator[Any]:
        runtime.in_flight += 1
        try:
            job_input = job.get("input") if isinstance(job, dict) else None
            async for item in run_job(runtime, job_input):
                yield item
        finally:
            runtime.in_flight -= 1

    return handler


async def run_job(runtime: Runtime, job_input: Any) -> AsyncIterator[Any]:
    try:
        request = normalize(job_input, runtime.model_name)
        dead = runtime.dead_error()
        if dead is not None:
            raise dead
        async for item in _call(runtime, request):
            yield item
    except JobError as err:
        yield {"error": err.payload()}
    except Exception as exc:  # a bug of ours must still fail the job with a message, not hang it
        err = JobError(500, f"worker error: {type(exc).__name__}: {exc}", "server_error", "internal_error")
        yield {"error": err.payload()}


async def _connection_error(runtime: Runtime, exc: BaseException) -> JobError:
    dead = await runtime.engine_failure(wait=2.0)
    if dead is not None:
        return dead
    if isinstance(exc, asyncio.TimeoutError):
        timeout = runtime.client.request_timeout
        return JobError(
            504,
            f"FastDeploy sent nothing for {timeout:g} s (REQUEST_TIMEOUT)",
            "timeout_error",
            "timeout",
        )
    return JobError(
        502,
        f"Lost the connection to FastDeploy: {type(exc).__name__}: {exc}",
        "server_error",
        "engine_unreachable",
    )


async def _call(runtime: Runtime, request: EngineRequest) -> AsyncIterator[Any]:
    session = runtime.client.session()
    try:
        resp = await session.request(request.method, runtime.client.url(request.route), json=request.body)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise await _connection_error(runtime, exc) from None
    finished = False
    try:
        if resp.status != 200:
            raw = await resp.read()
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", errors="replace")
            finished = True
            raise engine_http_error(resp.status, body)
        if not request.stream:
            raw = await resp.read()
            finished = True
            try:
                obj = json.loads(raw)
            except ValueError:
                raise JobError(502, f"FastDeploy sent invalid JSON: {raw[:300]!r}", "server_error") from None
            yield obj
            return
        async for item in _relay(runtime, resp, request.openai):
            yield item
        finished = True
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise await _connection_error(runtime, exc) from None
    finally:
        if finished:
            resp.release()
        else:
            resp.close()  # cancelled or failed: drop the connection so the engine stops generating


def _event_error(event: Event) -> JobError | None:
    """The error carried by an event inside a 200 stream, if it is one."""
    if '"error"' not in event.data:
        return None
    try:
        obj = json.loads(event.data)
    except ValueError:
        return None
    if not isinstance(obj, dict) or "error" not in obj:
        return None
    err = obj["error"]
    status = STATUS_FOR_TYPE.get(err.get("type"), 500) if isinstance(err, dict) else 500
    return engine_http_error(status, obj)


async def _relay(runtime: Runtime, resp: aiohttp.ClientResponse, openai: bool) -> AsyncIterator[Any]:
    """Yield the first events at once, then everything that arrived during the previous yield."""
    parser = SSEParser()
    pending: list[Event] = []
    wake = asyncio.Event()
    state: dict[str, Any] = {"done": False, "exc": None}

    async def reader() -> None:
        try:
            async for data in resp.content.iter_any():
                events = parser.feed(data)
                if events:
                    pending.extend(events)
                    wake.set()
            pending.extend(parser.close())
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            state["exc"] = exc
        finally:
            state["done"] = True
            wake.set()

    task = asyncio.ensure_future(reader())
    saw_done = False
    first = True
    try:
        while True:
            await wake.wait()
            wake.clear()
            # One loop turn lets the reader parse bytes already received (e.g. [DONE] right after
            # the last token) so they share this yield instead of costing another platform POST.
            await asyncio.sleep(0)
            if first and pending and not state["done"] and all(_empty_opening(e) for e in pending):
                continue  # the role-only opening chunk carries no token: send it with the first one
            first = False
            batch = pending[:]
            del pending[:]
            if batch:
                out, error, done = _convert(batch, openai)
                saw_done = saw_done or done
                if out is not None:
                    yield out
                if error is not None:
                    raise error
                if saw_done:
                    return
            if state["done"] and not pending:
                break
        if state["exc"] is not None:
            raise await _connection_error(runtime, state["exc"])
        if not saw_done:
            dead = await runtime.engine_failure(wait=2.0)
            raise dead or JobError(
                502, "FastDeploy's stream ended without [DONE]", "server_error", "incomplete_stream"
            )
    finally:
        task.cancel()


def _empty_opening(event: Event) -> bool:
    """The opening chunk: role and empty contents, nothing a reader would see."""
    if event.is_done:
        return False
    try:
        obj = json.loads(event.data)
        choices = obj["choices"]
        fields = ("content", "reasoning_content", "tool_calls", "text", "finish_reason")
        return (
            bool(choices)
            and not obj.get("usage")
            and not any(c.get(k) or c["delta"].get(k) for c in choices for k in fields)
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return False


def _convert(batch: list[Event], openai: bool) -> tuple[Any, JobError | None, bool]:
    """(output for one yield or None, error that ends the job, [DONE] seen)."""
    error: JobError | None = None
    done = False
    kept: list[Event] = []
    for event in batch:
        if event.is_done:
            done = True
            break
        error = _event_error(event)
        if error is not None:
            break
        kept.append(event)
    if openai:
        text = "".join(e.to_sse() for e in kept)
        if done and error is None:
            text += "data: [DONE]\n\n"
        return (text or None), error, done
    chunks = []
    for event in kept:
        try:
            obj = json.loads(event.data)
        except ValueError:
            return (
                None,
                JobError(502, f"FastDeploy sent an invalid event: {event.data[:300]!r}", "server_error"),
                done,
            )
        if isinstance(obj, dict):
            chunks.append(obj)
    return (merge_chunks(chunks) if chunks else None), error, done
