"""The RunPod handler: an async generator driven by the SDK (platform) or by the local server.

Outputs: non-stream -> one yielded OpenAI response object; OpenAI stream -> SSE text (whole events,
several per yield when they arrived together); native stream -> one OpenAI chunk object per yield
(chunks that arrived together merged, see chunk_merge.py). A failure yields ``{"error": <JSON text>}``
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
from worker_runtime.serve.chunk_merge import merge_chunks, summed_usage
from worker_runtime.serve.errors import JobError, engine_http_error, internal_error
from worker_runtime.serve.fastjson import dumps, loads
from worker_runtime.serve.handler_outputs import platform_output
from worker_runtime.serve.normalize import COMPLETIONS, EngineRequest, normalize
from worker_runtime.serve.sse import (
    Event,
    EventSplitter,
    SSEParser,
    plain_events,
    plain_mid_stream,
    plain_payloads,
)

DONE_EVENT = b"data: [DONE]\n\n"
FINISH_REASON = b'"finish_reason"'
# A stream error event has no HTTP status of its own: derive one from its type.
STATUS_FOR_TYPE = {"invalid_request_error": 400, "timeout_error": 504}
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
    ) -> None:
        self.client = client
        self.model_name = model_name
        self.max_concurrency = max_concurrency
        self.supervisor = supervisor
        self.logprobs = logprobs  # the engine runs with --enable-logprob
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
        request = normalize(job_input, runtime.model_name, logprobs=runtime.logprobs)
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


async def _connection_error(runtime: HandlerState, exc: BaseException) -> JobError:
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
    return internal_error(
        "lost the connection to the engine before its answer was complete", exc, 502, "engine_unreachable"
    )


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
        raise await _connection_error(runtime, exc) from None
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
        relay = _relay(runtime, resp, request.openai, as_bytes)
        if not request.openai and request.route == COMPLETIONS:
            relay = summed_usage(relay, request.n)  # one usage chunk per finished choice: add them up
        async for item in relay:
            yield item
        finished = True
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise await _connection_error(runtime, exc) from None
    finally:
        upstream.responses.discard(resp)
        if finished:
            resp.release()
        else:
            resp.close()  # cancelled or failed: drop the connection so the engine stops generating


def _event_error(event: Event) -> JobError | None:
    """The error carried by an event inside a 200 stream, if it is one."""
    if '"error"' not in event.data:
        return None
    try:
        obj = loads(event.data)
    except ValueError:
        return None
    if not isinstance(obj, dict) or "error" not in obj:
        return None
    err = obj["error"]
    status = STATUS_FOR_TYPE.get(err.get("type"), 500) if isinstance(err, dict) else 500
    return engine_http_error(status, obj)


async def _relay(
    runtime: HandlerState, resp: aiohttp.ClientResponse, openai: bool, as_bytes: bool = False
) -> AsyncIterator[Any]:
    """The stream's outputs: the first events at once, then everything that arrived during the
    previous yield. An OpenAI stream that fails also yields an error event: the job fails either way,
    but an OpenAI client only learns it from an event carrying ``error`` (the openai SDK raises on
    one; a stream that just stops ends silently).

    Read in this generator, not in a task of its own: while a yield is being posted the bytes just
    gather in the connection's buffer, so the cost is per yield, not per network chunk. One generator,
    not two: each level costs every yield.
    """
    content = resp.content
    splitter = EventSplitter()
    held = b""  # the role-only opening chunk: it carries no token, so it goes out with the first one
    first = True
    try:
        while True:
            data = await _read(runtime, content)
            block = held + (splitter.feed(data) if data else splitter.close())
            held = b""
            if data and not block:
                continue  # no event complete yet
            if data and first and _only_opening(block):
                held = block
                continue
            first = False
            out, error, done = _convert_block(block, openai, as_bytes) if block else (None, None, False)
            if out is not None:
                yield out
            if error is not None:
                raise error
            if done:
                return
            if not data:
                break
        dead = await runtime.engine_failure(wait=2.0)
        raise dead or JobError(
            502, "FastDeploy's stream ended without [DONE]", "server_error", "incomplete_stream"
        )
    except JobError as err:
        if openai:
            yield err.sse_event()
        raise


async def _read(runtime: HandlerState, content: Any) -> bytes:
    """Everything received so far, waiting for the first bytes; b"" at the end of the stream."""
    try:
        data: bytes = await content.readany()
        if data and _may_end(data):
            # [DONE] follows the last chunk at once: one loop turn lets it join this yield instead of
            # costing another platform POST.
            await asyncio.sleep(0)
            data += content.read_nowait()
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise await _connection_error(runtime, exc) from None
    return data


def _may_end(data: bytes) -> bool:
    """Whether ``data`` may end with a stream's last chunk: it ends with a whole event that sets a
    finish reason or has no choice at all (a usage chunk).

    FastDeploy leaves ``finish_reason`` out of every chunk but a choice's last (its chunks are
    dumped with ``exclude_unset``, and the field is set only when the choice finishes): a chunk
    without one is mid-stream.
    """
    if not data.endswith(b"\n"):
        return False  # it ends inside an event: a later read completes it anyway
    last = data[data.rfind(b"\n\n", 0, len(data) - 2) + 1 :]
    at = last.rfind(FINISH_REASON)
    if at < 0:
        return b'"choices":[]' in last or b'"choices": []' in last  # a usage chunk (compact as 2.5's)
    after = at + len(FINISH_REASON)
    return not last[after : after + 9].lstrip(b": ").startswith(b"null")


def _parse(block: bytes) -> list[Event]:
    parser = SSEParser()
    return parser.feed(block) + parser.close()


def _only_opening(block: bytes) -> bool:
    events = _parse(block)
    return bool(events) and all(_empty_opening(e) for e in events)


def _empty_opening(event: Event) -> bool:
    """The opening chunk: role and empty contents, nothing a reader would see."""
    if event.is_done:
        return False
    try:
        obj = loads(event.data)
        choices = obj["choices"]
        fields = ("content", "reasoning_content", "tool_calls", "text", "finish_reason")
        return (
            bool(choices)
            and not obj.get("usage")
            and not any(c.get(k) or c["delta"].get(k) for c in choices for k in fields)
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return False


def _convert_block(block: bytes, openai: bool, as_bytes: bool = False) -> tuple[Any, JobError | None, bool]:
    """(output for one yield or None, error that ends the job, [DONE] seen) for whole events.

    The common block, plain ``data:`` events without an error, takes a fast path: an OpenAI stream's
    is passed on as it is (decoded once), a native stream's events are parsed in one call; anything
    else, or anything the fast path cannot read, goes through the full parser.
    """
    if b'"error"' not in block:
        fast = _plain_openai(block, as_bytes) if openai else _plain_native(block)
        if fast is not None:
            return fast
    return _convert(_parse(block), openai)


def _plain_openai(block: bytes, as_bytes: bool = False) -> tuple[Any, JobError | None, bool] | None:
    if plain_mid_stream(block):
        if as_bytes:
            return block, None, False
        return (block.decode("utf-8", errors="replace") or None), None, False
    plain = plain_events(block)
    if plain is None:
        return None
    done_at = plain.find(DONE_EVENT)  # in plain framing, only ever at an event's start
    if done_at >= 0:
        plain = plain[: done_at + len(DONE_EVENT)]  # nothing after [DONE]
    if as_bytes:
        return (plain or None), None, done_at >= 0
    return (plain.decode("utf-8", errors="replace") or None), None, done_at >= 0


def _plain_native(block: bytes) -> tuple[Any, JobError | None, bool] | None:
    """The merged chunk of a block of plain ``data: {...}`` events, its payloads parsed as one JSON
    array; None when a payload is not one JSON value (other framing, or an invalid event), so that
    the full parser takes the block and names what is wrong."""
    payloads = plain_payloads(block)
    if payloads is None:
        return None
    done = b"[DONE]" in payloads
    if done:  # a native stream's [DONE] only ends it; nothing after it counts
        payloads = payloads[: payloads.index(b"[DONE]")]
    if not payloads:
        return None, None, done
    try:
        objs = loads(b"[" + b",".join(payloads) + b"]")
    except ValueError:
        return None
    if not isinstance(objs, list) or len(objs) != len(payloads):
        return None
    chunks = [obj for obj in objs if isinstance(obj, dict)]
    return (merge_chunks(chunks) if chunks else None), None, done


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
            obj = loads(event.data)
        except ValueError:
            return (
                None,
                JobError(502, f"FastDeploy sent an invalid event: {event.data[:300]!r}", "server_error"),
                done,
            )
        if isinstance(obj, dict):
            chunks.append(obj)
    return (merge_chunks(chunks) if chunks else None), error, done
