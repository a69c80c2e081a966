"""The HTTP answer to one request served by the handler: shared by the two HTTP front doors, the local
RunPod-shaped server's ``/openai/v1`` (local.py) and the load-balancing server (load_balancer.py).

The handler's first output decides the answer: an error -> the job error's HTTP status and OpenAI
error body; a response object -> JSON; otherwise a stream of server-sent events, written as the handler
yields them: an OpenAI stream's SSE text as it is, a native stream's chunks as ``data: <JSON>`` events
ended by ``data: [DONE]``. A stream that fails once it has started ends with an error event, so that
the openai SDK raises instead of ending quietly; so does one still running when the shutdown grace is
over (its task cancelled with ``SHUTDOWN``). Every answer is written under the server's StallWatch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from worker_runtime.serve import fastjson
from worker_runtime.serve.callers import StallWatch, Watched
from worker_runtime.serve.errors import JobError, safe_dumps

SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
DONE = b"data: [DONE]\n\n"
ERROR_EVENT = b'data: {"error"'
SHUTDOWN = "shutdown"  # the cancel message of a request still running when the shutdown grace is over
SHUTDOWN_WRITE_SECONDS = 0.5  # for the shutdown error event to go out


def shutdown_error() -> JobError:
    return JobError(
        503,
        "this worker is shutting down and the request ran past its grace (SHUTDOWN_GRACE_SECONDS); "
        "send it again",
        "server_error",
        "shutting_down",
    )


def error_response(err: JobError, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=safe_dumps({"error": err.openai_error()}),
        status=err.status,
        content_type="application/json",
        headers=headers,
    )


def chunk_event(chunk: Any) -> bytes:
    """A native stream's chunk as one SSE event."""
    return b"data: " + fastjson.dumps(chunk) + b"\n\n"


def _is_error(item: Any) -> bool:
    return isinstance(item, dict) and "error" in item


async def reply(
    request: web.Request, outputs: AsyncIterator[Any], *, native_stream: bool, watch: StallWatch
) -> web.StreamResponse:
    """Answer ``request`` with what ``outputs`` (the handler's generator) yields.

    ``native_stream``: the job asked for a native stream (its chunks are dicts, like a response
    object). The caller closes ``outputs`` (on a client's disconnect too: that closes the engine
    request). A client that leaves mid-stream ends the answer; what it missed is nobody's.
    """
    with watch.watch(request) as watched:
        try:
            return await _reply(request, outputs, native_stream, watched)
        except asyncio.CancelledError as exc:
            if exc.args != (SHUTDOWN,):
                raise  # the caller left, or was cut: nobody to answer
            return await _shutdown_reply(request)


async def _reply(
    request: web.Request, outputs: AsyncIterator[Any], native_stream: bool, watched: Watched
) -> web.StreamResponse:
    try:
        first = await outputs.__anext__()
    except StopAsyncIteration:
        return error_response(JobError(502, "the handler produced no output", "server_error"))
    if _is_error(first):
        return error_response(JobError.from_payload(first["error"]))
    if not native_stream and not isinstance(first, (str, bytes)):  # non-stream: one response object
        answer = web.Response(body=fastjson.dumps(first), content_type="application/json")
        request["answer"] = answer
        # Written here, not once returned: a caller that takes nothing is cut like a stream's.
        await answer.prepare(request)
        watched.sent += answer.content_length or 0
        await answer.write_eof()
        return answer
    resp = web.StreamResponse(headers=SSE_HEADERS)
    request["answer"] = resp
    await resp.prepare(request)
    item: Any = first
    last = b""
    try:
        while True:
            if _is_error(item):
                # The handler ends a failed OpenAI stream with an error event of its own; any other
                # failure still reaches the client as one.
                if not last.startswith(ERROR_EVENT):
                    await resp.write(JobError.from_payload(item["error"]).sse_event().encode())
                break
            if isinstance(item, bytes):
                data = last = item
            elif isinstance(item, str):
                data = last = item.encode("utf-8")
            else:
                data = chunk_event(item)
            watched.sent += len(data)
            await resp.write(data)
            try:
                item = await outputs.__anext__()
            except StopAsyncIteration:
                if native_stream:
                    await resp.write(DONE)
                break
        await resp.write_eof()
    except ConnectionResetError:
        pass  # the client left: the caller closes the handler's generator, and with it the engine request
    return resp


async def _shutdown_reply(request: web.Request) -> web.StreamResponse:
    """The answer of a request cut at the end of the shutdown grace: an error event ending its stream,
    or a 503 when nothing was sent yet."""
    err = shutdown_error()
    resp = request.get("answer")
    if not isinstance(resp, web.StreamResponse) or not resp.prepared:
        return error_response(err, {"Connection": "close"})
    if resp.content_type != "text/event-stream":
        return resp  # a whole answer, already on its way
    with contextlib.suppress(Exception):
        await asyncio.wait_for(resp.write(err.sse_event().encode()), SHUTDOWN_WRITE_SECONDS)
        await asyncio.wait_for(resp.write_eof(), SHUTDOWN_WRITE_SECONDS)
    return resp
