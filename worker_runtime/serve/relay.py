"""The relay of an engine stream: split its bytes into events, merge what arrived together, convert
it to the job's outputs (an OpenAI stream's SSE text or bytes, a native stream's merged chunks), and
find the errors and the end in it. Walked once per read, in one generator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol

import aiohttp

from worker_runtime.engine.client import EngineClient
from worker_runtime.serve.chunk_merge import merge_chunks
from worker_runtime.serve.errors import JobError, engine_http_error, internal_error
from worker_runtime.serve.fastjson import loads
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


class EngineState(Protocol):
    """What the relay reads of the handler's state: the engine client and whether the engine died."""

    client: EngineClient

    async def engine_failure(self, wait: float) -> JobError | None: ...


async def connection_error(runtime: EngineState, exc: BaseException) -> JobError:
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


async def relay(
    runtime: EngineState, resp: aiohttp.ClientResponse, openai: bool, as_bytes: bool = False
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


async def _read(runtime: EngineState, content: Any) -> bytes:
    """Everything received so far, waiting for the first bytes; b"" at the end of the stream."""
    try:
        data: bytes = await content.readany()
        if data and _may_end(data):
            # [DONE] follows the last chunk at once: one loop turn lets it join this yield instead of
            # costing another platform POST.
            await asyncio.sleep(0)
            data += content.read_nowait()
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise await connection_error(runtime, exc) from None
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
