"""The RunPod handler: an async generator driven by the SDK (platform) or by the local server.

Outputs: non-stream -> one yielded OpenAI response object; OpenAI stream -> SSE text (whole events,
several per yield when they arrived together); native stream -> one OpenAI chunk object per yield
(chunks that arrived together merged, see relay.py). A failure yields ``{"error": <JSON text>}``
(see errors.py) and ends the job as failed; an OpenAI stream that fails once the engine answered 200
first yields the error as an SSE event (``JobError.sse_event``), the only way an OpenAI client learns of it.
Each output goes out as a str or dict subclass whose text form is cheap (handler_outputs.py); for the
HTTP front doors (a job with ``"bytes": true``), an OpenAI stream's plain events go out as the engine's
bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from worker_runtime.engine.client import EngineClient, SentOn
from worker_runtime.engine.supervisor import Supervisor
from worker_runtime.serve.chunk_merge import summed_usage
from worker_runtime.serve.errors import JobError, engine_http_error, internal_error
from worker_runtime.serve.fastjson import dumps, loads
from worker_runtime.serve.handler_outputs import platform_output
from worker_runtime.serve.normalize import COMPLETIONS, EngineRequest, normalize
from worker_runtime.serve.relay import connection_error
from worker_runtime.serve.relay import relay as stream_relay

JSON_HEADERS = {"Content-Type": "application/json"}
LARGE_BODY = 1 << 20  # bytes: a request body larger than this goes to the engine in pieces this size


class HandlerState:
    """What the handler needs: the engine's address, its name for requests, and its state."""

    def __init__(
        self,
        client: EngineClient,
        model_name: str,
        max_concurrency: int,
        supervisor: Supervisor | None = None,
        *,
        logprobs: bool = True,
        guided_backend: str = "off",
    ) -> None:
        self.client = client
        self.model_name = model_name
        self.max_concurrency = max_concurrency
        self.supervisor = supervisor
        self.logprobs = logprobs  # the engine runs with --enable-logprob
        self.guided_backend = guided_backend  # the engine's --guided-decoding-backend
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
        # Its log lines stay in the worker's log (lifecycle.exit_on_engine_death): they may hold the
        # log folder, the engine's arguments and other callers' requests.
        return JobError(
            503,
            f"the engine exited (code {sup.exit_code}); the worker is restarting",
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


class Upstream:
    """A job's open engine responses, so that they can be closed when the job ends early.

    The RunPod SDK stops a job by cancelling its task, usually while it awaits a stream POST rather
    than this generator: the generator is then left suspended and never closed. The responses are
    closed when the task ends instead, so the engine sees its client leave and stops generating.
    """

    def __init__(self) -> None:
        self.responses: set[aiohttp.ClientResponse] = set()

    def close_all(self, _task: object = None) -> None:
        for resp in list(self.responses):
            resp.close()
        self.responses.clear()


def make_handler(runtime: HandlerState) -> Callable[[dict[str, Any]], AsyncIterator[Any]]:
    async def handler(job: dict[str, Any]) -> AsyncIterator[Any]:
        runtime.in_flight += 1
        upstream = Upstream()
        ended = False

        def end(_task: object = None) -> None:
            # Once per job, whichever comes first: this generator's close, or the end of the task
            # running it. A stopped job's generator is left suspended (see Upstream) and closed only
            # when the garbage collector reaches it, which, at tune_gc's thresholds, may be never.
            nonlocal ended
            if not ended:
                ended = True
                runtime.in_flight -= 1
                upstream.close_all()

        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(end)
        try:
            job_input = job.get("input") if isinstance(job, dict) else None
            as_bytes = isinstance(job, dict) and job.get("bytes") is True
            async for item in run_job(runtime, job_input, upstream, as_bytes=as_bytes):
                yield platform_output(item)
        finally:
            if task is not None:
                task.remove_done_callback(end)
            end()

    return handler


async def run_job(
    runtime: HandlerState, job_input: Any, upstream: Upstream | None = None, *, as_bytes: bool = False
) -> AsyncIterator[Any]:
    try:
        request = normalize(
            job_input, runtime.model_name, logprobs=runtime.logprobs, guided_backend=runtime.guided_backend
        )
        for note in request.notes:
            print(f"job input: {note}", flush=True)
        dead = runtime.dead_error()
        if dead is not None:
            raise dead
        async for item in _call(runtime, request, upstream or Upstream(), as_bytes):
            yield item
    except JobError as err:
        yield {"error": err.payload()}
    except Exception as exc:  # a bug of ours must still fail the job with a message, not hang it
        yield {"error": internal_error("internal error in the worker", exc).payload()}


async def _send(runtime: HandlerState, request: EngineRequest) -> aiohttp.ClientResponse:
    """The engine's answer (its head) to ``request``; sent again, once, on a new connection only when
    it was lost unread: on a reused connection, before any byte of an answer.

    The engine closes a connection idle for 2 s (client.ENGINE_IDLE_CLOSE) and the pool drops its own
    after 1 s, but a worker whose event loop lags more than the difference (a loaded host, a GC pause)
    still sends on a connection the engine has just closed: the request is lost unread
    (ServerDisconnectedError, or ClientOSError "Can not write request body"). aiohttp resends only
    idempotent methods on a persistent connection, never this POST. On a
    new connection the same failure means the engine may have read the request, and a generation must
    not run twice: the job fails. An engine that is down refuses the new connection
    (ClientConnectorError), which is not retried either.
    """
    url = runtime.client.url(request.route)
    data = None
    if request.body is not None:
        try:
            data = dumps(request.body)
        except ValueError:
            raise JobError(400, "the request is nested too deeply to pass on", code="invalid_input") from None
    sent = SentOn()
    try:
        return await runtime.client.session().request(
            request.method, url, **_payload(data), trace_request_ctx=sent
        )
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
        if isinstance(exc, aiohttp.ClientConnectorError) or not sent.reused:
            raise
        return await runtime.client.session(fresh=True).request(request.method, url, **_payload(data))


def _payload(data: bytes | None) -> dict[str, Any]:
    """The body's keyword arguments: a large one goes out in pieces, each written once the socket took
    the last (written whole, the event loop would keep up to two more copies of what the socket has
    not taken yet)."""
    if data is None:
        return {}
    if len(data) <= LARGE_BODY:
        return {"data": data, "headers": JSON_HEADERS}
    return {"data": _pieces(data), "headers": {**JSON_HEADERS, "Content-Length": str(len(data))}}


async def _pieces(data: bytes) -> AsyncIterator[memoryview]:
    view = memoryview(data)
    for at in range(0, len(view), LARGE_BODY):
        yield view[at : at + LARGE_BODY]


async def _call(
    runtime: HandlerState, request: EngineRequest, upstream: Upstream, as_bytes: bool
) -> AsyncIterator[Any]:
    try:
        resp = await _send(runtime, request)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise await connection_error(runtime, exc) from None
    finished = False
    upstream.responses.add(resp)
    try:
        if resp.status != 200:
            raw = await resp.read()
            try:
                body: Any = loads(raw)
            except ValueError:
                body = raw.decode("utf-8", errors="replace")
            finished = True
            raise engine_http_error(resp.status, body)
        if not request.stream:
            raw = await resp.read()
            finished = True
            try:
                obj = loads(raw)
            except ValueError:
                raise JobError(502, f"FastDeploy sent invalid JSON: {raw[:300]!r}", "server_error") from None
            yield obj
            return
        relay = stream_relay(runtime, resp, request.openai, as_bytes)
        if not request.openai and request.route == COMPLETIONS:
            relay = summed_usage(relay, request.n)  # one usage chunk per finished choice: add them up
        async for item in relay:
            yield item
        finished = True
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise await connection_error(runtime, exc) from None
    finally:
        upstream.responses.discard(resp)
        if finished:
            resp.release()
        else:
            resp.close()  # cancelled or failed: drop the connection so the engine stops generating
