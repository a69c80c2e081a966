"""A local endpoint shaped like RunPod's, driving the same handler the platform drives.

Routes: POST /run, POST /runsync, GET /status/{id}, GET /stream/{id}, POST /cancel/{id}, GET /health,
and the OpenAI routes under /openai/v1 (config/routes.py) with real incremental SSE, so the official
``openai`` SDK works against ``http://HOST:PORT/openai/v1``.

Finished jobs stay readable for ``FINISHED_JOB_TTL`` seconds, and at most ``MAX_FINISHED_JOBS`` of
them are kept (oldest dropped first): a long-running local server does not grow without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from worker_runtime.config import routes
from worker_runtime.serve.callers import (
    DEFAULT_BOUNDS,
    CallerBounds,
    StallWatch,
    parse_body,
    read_body,
    server_options,
)
from worker_runtime.serve.errors import JobError, internal_error
from worker_runtime.serve.http_answers import error_response, reply
from worker_runtime.serve.normalize import route_refused

Handler = Callable[[dict[str, Any]], AsyncIterator[Any]]
STREAM_POLL_SECONDS = 10.0  # /stream/{id} waits this long for new output before answering empty
MAX_FINISHED_JOBS = 1000  # finished jobs kept for /status and /stream, oldest dropped first
FINISHED_JOB_TTL = 1800.0  # seconds a finished job stays readable (RunPod keeps /run results 30 min)
OPENAI_ROUTES = routes.paths(routes.LOCAL, routes.OPENAI)  # served under /openai/v1 (config/routes.py)


def default_host() -> str:
    """0.0.0.0 inside a container (the port is published), loopback elsewhere."""
    in_container = os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv")
    return "0.0.0.0" if in_container else "127.0.0.1"


@dataclass
class Job:
    id: str
    input: Any
    status: str = "IN_QUEUE"
    outputs: list[Any] = field(default_factory=list)
    error: str | None = None
    streamed: int = 0
    task: asyncio.Task[None] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def finished(self) -> bool:
        return self.status in ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.status == "COMPLETED":
            out["output"] = self.outputs
        if self.error is not None:
            out["error"] = self.error
        return out


class LocalServer:
    def __init__(
        self,
        handler: Handler,
        max_concurrency: int,
        bounds: CallerBounds = DEFAULT_BOUNDS,
        *,
        max_finished: int = MAX_FINISHED_JOBS,
        finished_ttl: float = FINISHED_JOB_TTL,
    ) -> None:
        self.handler = handler
        self.bounds = bounds
        self.watch = StallWatch(bounds.stall)
        self.jobs: dict[str, Job] = {}
        self.slots = asyncio.Semaphore(max_concurrency)
        self.max_finished = max_finished
        self.finished_ttl = finished_ttl
        self._finished: OrderedDict[str, float] = OrderedDict()  # job id -> when it ended

    def _retire(self, job: Job) -> None:
        """Note that ``job`` ended, then drop finished jobs beyond the count or past the TTL."""
        self._finished[job.id] = time.monotonic()
        self._prune()

    def _prune(self) -> None:
        expired = time.monotonic() - self.finished_ttl
        while self._finished:
            job_id, ended = next(iter(self._finished.items()))
            if len(self._finished) <= self.max_finished and ended > expired:
                break
            del self._finished[job_id]
            self.jobs.pop(job_id, None)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.bounds.max_body + 1)
        app.router.add_post("/run", self.run)
        app.router.add_post("/runsync", self.runsync)
        app.router.add_get("/status/{id}", self.status)
        app.router.add_get("/stream/{id}", self.stream)
        app.router.add_post("/cancel/{id}", self.cancel)
        app.router.add_get("/health", self.health)
        app.router.add_route("*", "/openai/v1/{tail:.*}", self.openai)
        app.on_shutdown.append(self._cancel_all)
        return app

    # ---------------------------------------------------------------- RunPod-shaped job API

    async def _execute(self, job: Job) -> None:
        try:
            await self._run(job)
        finally:
            self._retire(job)

    async def _run(self, job: Job) -> None:
        async with self.slots:
            job.status = "IN_PROGRESS"
            job.changed.set()
            gen = self.handler({"id": job.id, "input": job.input})
            try:
                async for item in gen:
                    if isinstance(item, dict) and "error" in item:
                        job.error, job.status = str(item["error"]), "FAILED"
                        return
                    job.outputs.append(item)
                    job.changed.set()
                job.status = "COMPLETED"
            except asyncio.CancelledError:
                job.status = "CANCELLED"
                raise
            except Exception as exc:  # the SDK reports a raised exception as a failed job too
                job.error = internal_error("internal error in the worker", exc).payload()
                job.status = "FAILED"
            finally:
                await gen.aclose()
                job.changed.set()

    async def _body(self, request: web.Request) -> Any:
        """The request's JSON body, or the error response that refuses it."""
        raw = await read_body(request, self.bounds)
        body = raw if isinstance(raw, JobError) else parse_body(raw)
        if isinstance(body, JobError):
            return error_response(body, {"Connection": "close"} if body.status != 400 else None)
        return body

    async def _submit(self, request: web.Request) -> Job | web.Response:
        payload = await self._body(request)
        if isinstance(payload, web.Response):
            return payload
        if not isinstance(payload, dict) or "input" not in payload:
            return web.json_response({"error": 'request body must be {"input": {...}}'}, status=400)
        self._prune()  # the TTL also runs out while no job finishes
        job = Job(id=f"local-{uuid.uuid4()}", input=payload["input"])
        self.jobs[job.id] = job
        job.task = asyncio.ensure_future(self._execute(job))
        return job

    async def run(self, request: web.Request) -> web.Response:
        job = await self._submit(request)
        if isinstance(job, web.Response):
            return job
        return web.json_response({"id": job.id, "status": job.status})

    async def runsync(self, request: web.Request) -> web.Response:
        job = await self._submit(request)
        if isinstance(job, web.Response):
            return job
        assert job.task is not None
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(job.task)
        return web.json_response(job.view())

    def _job(self, request: web.Request) -> Job | None:
        return self.jobs.get(request.match_info["id"])

    async def status(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return web.json_response({"error": "job not found"}, status=404)
        return web.json_response(job.view())

    async def stream(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return web.json_response({"error": "job not found"}, status=404)
        if job.streamed >= len(job.outputs) and not job.finished:
            job.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(job.changed.wait(), STREAM_POLL_SECONDS)
        new = job.outputs[job.streamed :]
        job.streamed += len(new)
        out: dict[str, Any] = {"id": job.id, "status": job.status, "stream": [{"output": x} for x in new]}
        if job.error is not None:
            out["error"] = job.error
        return web.json_response(out)

    async def cancel(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return web.json_response({"error": "job not found"}, status=404)
        if job.task is not None and not job.finished:
            job.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job.task
            job.status = "CANCELLED"
        return web.json_response({"id": job.id, "status": job.status})

    async def health(self, request: web.Request) -> web.Response:
        counts: dict[str, int] = {}
        for job in self.jobs.values():
            counts[job.status] = counts.get(job.status, 0) + 1
        return web.json_response({"status": "ok", "jobs": counts})

    async def _cancel_all(self, app: web.Application) -> None:
        for job in self.jobs.values():
            if job.task is not None and not job.task.done():
                job.task.cancel()

    # ---------------------------------------------------------------- OpenAI-compatible routes

    async def openai(self, request: web.Request) -> web.StreamResponse:
        route = "/v1/" + request.match_info["tail"]
        if route not in OPENAI_ROUTES:
            return error_response(route_refused(route, OPENAI_ROUTES))
        job_input: dict[str, Any] = {"openai_route": route}
        if request.method == "POST":
            body = await self._body(request)
            if isinstance(body, web.Response):
                return body
            job_input["openai_input"] = body
        elif request.method != "GET":
            return error_response(JobError(405, f"{request.method} is not supported", code="bad_method"))
        async with self.slots:
            gen = self.handler({"id": f"openai-{uuid.uuid4()}", "input": job_input, "bytes": True})
            try:
                return await reply(request, gen, native_stream=False, watch=self.watch)
            finally:
                await gen.aclose()  # on client disconnect too: closes the upstream request


async def serve(
    handler: Handler,
    max_concurrency: int,
    host: str,
    port: int,
    bounds: CallerBounds = DEFAULT_BOUNDS,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set (forever when None)."""
    stop = stop or asyncio.Event()
    server = LocalServer(handler, max_concurrency, bounds)
    runner = web.AppRunner(server.app(), handle_signals=False, **server_options(bounds))
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    print(f"Local RunPod-shaped endpoint on http://{host}:{port} (OpenAI: /openai/v1)", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
