"""The HTTP answer to one request served by the handler: shared by the two HTTP front doors, the local
RunPod-shaped server's ``/openai/v1`` (local.py) and the load-balancing server (load_balancer.py).

The handler's first output decides the answer: an error -> the job error's HTTP status and OpenAI
error body; a response object -> JSON; otherwise a stream of server-sent events, written as the handler
yields them: an OpenAI stream's SSE text as it is, a native stream's chunks as ``data: <JSON>`` events
ended by ``data: [DONE]``. A stream that fails once it has started ends with an error event, so that
the openai SDK raises instead of ending quietly.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web

from worker_runtime.serve.errors import JobError

SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
DONE = b"data: [DONE]\n\n"
ERROR_EVENT = 'data: {"error"'


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def error_response(err: JobError, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": err.openai_error()}, status=err.status, dumps=dumps, headers=headers)


def chunk_event(chunk: Any) -> bytes:
    """A native stream's chunk as one SSE event."""
    try:
        data = orjson.dumps(chunk)
    except TypeError:  # what orjson cannot write (a non-str key): the standard library can
        data = json.dumps(chunk, ensure_ascii=False).encode("utf-8")
    return b"data: " + data + b"\n\n"


def _is_error(item: Any) -> bool:
    return isinstance(item, dict) and "error" in item


async def reply(
    request: web.Request, outputs: AsyncIterator[Any], *, native_stream: bool
) -> web.StreamResponse:
    """Answer ``request`` with what ``outputs`` (the handler's generator) yields.

    ``native_stream``: the job asked for a native stream (its chunks are dicts, like a response
    object). The caller closes ``outputs`` (on a client's disconnect too: that closes the engine
    request). A client that leaves mid-stream ends the answer; what it missed is nobody's.
    """
    try:
        first = await outputs.__anext__()
    except StopAsyncIteration:
        return error_response(JobError(502, "the handler produced no output", "server_error"))
    if _is_error(first):
        return error_response(JobError.from_payload(first["error"]))
    if not native_stream and not isinstance(first, str):  # non-stream: one response object
        return web.json_response(first, dumps=dumps)
    resp = web.StreamResponse(headers=SSE_HEADERS)
    await resp.prepare(request)
    item: Any = first
    last = ""
    try:
        while True:
            if _is_error(item):
                # The handler ends a failed OpenAI stream with an error event of its own; any other
                # failure still reaches the client as one.
                if not last.startswith(ERROR_EVENT):
                    await resp.write(JobError.from_payload(item["error"]).sse_event().encode())
                break
            if isinstance(item, str):
                last = item
                await resp.write(item.encode("utf-8"))
            else:
                await resp.write(chunk_event(item))
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
