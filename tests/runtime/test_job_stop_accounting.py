"""A stopped job leaves nothing counted: the SDK cancels its task while it awaits a stream POST, and
the handler's generator stays suspended (runpod 1.12; docs/upstream-notes.md)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import worker_runtime.serve.handler as handler_module
from worker_runtime.engine.client import EngineClient
from worker_runtime.serve.handler import HandlerState, make_handler

WAIT = 30.0


def test_a_stopped_job_is_no_longer_in_flight_once_its_task_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    async def endless(
        runtime: HandlerState, job_input: Any, upstream: Any = None, **_: Any
    ) -> AsyncIterator[Any]:
        while True:
            yield {"choices": []}

    monkeypatch.setattr(handler_module, "run_job", endless)
    kept: list[Any] = []  # what a reference cycle does: the generator outlives its task
    runtime = HandlerState(EngineClient("http://unused", 10.0), "m", 4)

    async def run() -> tuple[int, int]:
        posting = asyncio.Event()

        async def sdk_job() -> None:
            gen = make_handler(runtime)({"id": "j", "input": {}})
            kept.append(gen)
            async for _output in gen:
                posting.set()
                await asyncio.Event().wait()  # the stream POST during which the stop comes

        task = asyncio.create_task(sdk_job())
        await asyncio.wait_for(posting.wait(), WAIT)
        during = runtime.in_flight
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)  # done callbacks run
        return during, runtime.in_flight

    during, after = asyncio.run(asyncio.wait_for(run(), WAIT))
    assert (during, after) == (1, 0)
    for gen in kept:  # closing it later counts nothing twice
        asyncio.run(gen.aclose())
    assert runtime.in_flight == 0
