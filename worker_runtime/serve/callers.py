"""Bounds on every wait on a caller, shared by the two HTTP front doors (load_balancer.py, local.py).

* Headers: aiohttp's keep-alive timer is armed when a connection opens and after each answer, and
  closes the connection if no whole request head has arrived by then; set to ``CLIENT_HEADER_TIMEOUT``
  it bounds both an idle connection and a head sent one byte at a time.
* Body: ``read_body`` reads it under ``CLIENT_BODY_TIMEOUT``, before the request takes a slot.
* Writes: ``StallWatch`` cuts a connection whose caller has taken nothing of what we had for it for
  ``CLIENT_STALL_TIMEOUT`` seconds. The servers run with ``handler_cancellation``: a cut, like a caller
  that leaves, cancels the request's handler, which closes its engine request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import StreamReader, web

from worker_runtime.config.catalog import SETTINGS_BY_ENV
from worker_runtime.serve.errors import JobError
from worker_runtime.serve.fastjson import loads

MAX_BODY_BYTES = 30 * 1024 * 1024  # RunPod's payload limit on load-balancing endpoints (overview.mdx)
MAX_DEPTH = 1024  # orjson's nesting limit; deeper bodies are refused, never parsed recursively


@dataclass(frozen=True)
class CallerBounds:
    headers: float  # CLIENT_HEADER_TIMEOUT
    body: float  # CLIENT_BODY_TIMEOUT
    stall: float  # CLIENT_STALL_TIMEOUT
    max_body: int = MAX_BODY_BYTES


# The settings behind CallerBounds' fields, in order; their defaults live in the catalogue only.
BOUND_SETTINGS = ("CLIENT_HEADER_TIMEOUT", "CLIENT_BODY_TIMEOUT", "CLIENT_STALL_TIMEOUT")


def bounds_of(value: Callable[[str], Any]) -> CallerBounds:
    """The bounds whose settings ``value`` gives (by environment variable name)."""
    return CallerBounds(*(float(value(env)) for env in BOUND_SETTINGS))


DEFAULT_BOUNDS = bounds_of(lambda env: SETTINGS_BY_ENV[env].default)


def server_options(bounds: CallerBounds) -> dict[str, Any]:
    """Keyword arguments of ``web.AppRunner`` for a front door under these bounds."""
    return {
        "keepalive_timeout": bounds.headers,
        # A caller that leaves (or is cut) cancels its handler: its engine request closes, its slot frees.
        "handler_cancellation": True,
        "access_log": None,
    }


def too_large(size: int | None, limit: int) -> JobError:
    what = f"{size} bytes" if size is not None else "larger than that"
    return JobError(
        413,
        f"request body too large ({what}): the limit is {limit} bytes (30 MB, RunPod's payload "
        "limit on load-balancing endpoints); send large inputs by URL",
        code="payload_too_large",
    )


async def read_body(request: web.Request, bounds: CallerBounds) -> bytearray | JobError:
    """The request's body, or the error that refuses it: too large (413) or not all there within
    ``bounds.body`` seconds (408).

    Read into one buffer that the caller drops once parsed (``request.read()`` would keep a second
    copy for the request's lifetime: 30 MB more per large request).
    """
    if request.content_length is not None and request.content_length > bounds.max_body:
        return too_large(request.content_length, bounds.max_body)
    try:
        reading = _read(request.content, request.content_length, bounds.max_body)
        if request.content.is_eof():  # the usual case: the body came with the head, nothing to wait for
            return await reading
        return await asyncio.wait_for(reading, bounds.body)
    except asyncio.TimeoutError:
        return JobError(
            408,
            f"the request body did not arrive within {bounds.body:g} s (CLIENT_BODY_TIMEOUT)",
            code="request_timeout",
        )


async def _read(content: StreamReader, size: int | None, limit: int) -> bytearray | JobError:
    """The body, in a buffer of its announced size when it has one (growing it would copy it)."""
    if size is None:
        body = bytearray()
        while chunk := await content.readany():
            body += chunk
            if len(body) > limit:
                return too_large(None, limit)
        return body
    body = bytearray(size)
    view = memoryview(body)
    at = 0
    while at < size and (chunk := await content.readany()):
        view[at : at + len(chunk)] = chunk
        at += len(chunk)
    view.release()
    if at < size:
        del body[at:]
    return body


def parse_body(raw: bytes | bytearray) -> Any:
    """The JSON value of a request body; a JobError (400) for anything that is not one: invalid JSON,
    not UTF-8, nested deeper than MAX_DEPTH."""
    try:
        return loads(raw)
    except UnicodeDecodeError:
        reason = "it is not UTF-8"
    except ValueError:
        reason = f"it is not valid JSON, or nested deeper than {MAX_DEPTH} levels"
    return JobError(400, f"the request body must be JSON: {reason}", code="invalid_json")


async def answer_and_close(request: web.Request, answer: web.Response) -> web.Response:
    """Send ``answer``, then close the connection: what is left of the body is not worth waiting for."""
    await answer.prepare(request)
    await answer.write_eof()
    if request.transport is not None:
        request.transport.close()  # after the answer: a transport flushes what it holds before closing
    return answer


class Watched:
    """One answer being written: bytes handed to its connection so far."""

    __slots__ = ("sent", "since", "taken", "transport")

    def __init__(self, transport: asyncio.Transport, now: float) -> None:
        self.transport = transport
        self.sent = 0
        self.taken = 0
        self.since = now  # when the caller last took something, or had nothing waiting


class StallWatch:
    """Cuts the connections of callers that stopped reading what they asked for.

    Costs nothing per write but adding to ``Watched.sent``: one task samples every watched answer's
    write buffer a few times per bound. What the kernel took counts as taken; a caller that keeps
    nothing waiting, or takes some of it between samples, is never cut.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.watched: set[Watched] = set()
        self._task: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def watch(self, request: web.Request) -> Iterator[Watched | None]:
        transport = request.transport
        if transport is None:
            yield None
            return
        loop = asyncio.get_running_loop()
        item = Watched(transport, loop.time())  # type: ignore[arg-type]
        self.watched.add(item)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        try:
            yield item
        finally:
            self.watched.discard(item)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = max(0.05, min(1.0, self.timeout / 4))
        while self.watched:
            await asyncio.sleep(period)
            now = loop.time()
            for item in list(self.watched):
                if item.transport.is_closing():
                    continue
                waiting = item.transport.get_write_buffer_size()
                taken = item.sent - waiting
                if waiting == 0 or taken != item.taken:
                    item.taken, item.since = taken, now
                elif now - item.since >= self.timeout:
                    print(
                        f"cut a caller that took nothing for {self.timeout:g} s (CLIENT_STALL_TIMEOUT)",
                        flush=True,
                    )
                    item.transport.abort()
