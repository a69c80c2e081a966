"""A fake RunPod job API (what the SDK's platform job loop talks to), as a real aiohttp server.

It speaks what runpod 1.12 sends in platform mode (``runpod.serverless.modules.rp_job``/``rp_http``/
``rp_ping``):

- job take: ``GET <RUNPOD_WEBHOOK_GET_JOB with $ID = worker id>&job_in_progress=0|1``, answered with
  one job ``{"id", "input"}`` or 204; when the SDK wants more than one job it calls the batch route
  (``/job-take/`` replaced by ``/job-take-batch/``, plus ``&batch_size=N``), answered with a list.
  Both are long polls: held until a job is queued or ``hold`` seconds passed.
- job stop: ``GET`` the job-take URL with ``/job-stop/``; 204 or ``{"jobsToStop": [ids]}``, long poll.
- stream and result: ``POST <RUNPOD_WEBHOOK_POST_STREAM|_OUTPUT with $RUNPOD_POD_ID, $ID>&isStream=...``,
  body JSON text (sent as ``application/x-www-form-urlencoded``): ``{"output": ...}`` or ``{"error": ...}``.
- heartbeat: ``GET <RUNPOD_WEBHOOK_PING with $RUNPOD_POD_ID>?job_id=...&runpod_version=...``.

It also plays the client side of RunPod's ``/openai/v1`` proxy as far as it is public, so that tests can
point the ``openai`` SDK at ``openai_base``: a request becomes a job ``{"openai_route", "openai_input"}``;
a stream relays each streamed output (SSE text) as it is posted and ends when the job does (what the
real proxy adds when a job fails mid-stream is not public: nothing is added here); otherwise the job's
one output is the answer, and a failed job answers with its error's status.

The server runs on its own event loop in a thread, so tests stay synchronous; every wait takes a timeout.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

API_KEY = "fake-platform-key"
ENDPOINT = "fake-endpoint"


@dataclass
class Post:
    """One stream or result POST as received."""

    at: float
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Job:
    id: str
    input: Any
    stream_delay: float = 0.0  # seconds the fake takes to answer each stream POST of this job
    taken_at: float | None = None
    stream: list[Post] = field(default_factory=list)
    result: Post | None = None

    @property
    def outputs(self) -> list[Any]:
        return [p.body.get("output") for p in self.stream]


@dataclass
class Take:
    """One job-take request: its route, query and the jobs it got."""

    at: float
    batch: bool
    query: dict[str, str]
    headers: dict[str, str]
    got: list[str] = field(default_factory=list)  # ids of the jobs it got


class FakePlatform:
    def __init__(self, hold: float = 0.5) -> None:
        self.hold = hold
        self.jobs: dict[str, Job] = {}
        self.takes: list[Take] = []
        self.pings: list[dict[str, Any]] = []
        self.unexpected: list[str] = []  # requests to routes the SDK should not call
        self.in_flight = 0
        self.max_in_flight = 0
        self._queue: collections.deque[str] = collections.deque()
        self._to_stop: list[str] = []
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._wake: asyncio.Event | None = None
        self._stop_wake: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> FakePlatform:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout)
        return self

    async def _serve(self) -> None:
        self._wake = asyncio.Event()
        self._stop_wake = asyncio.Event()
        app = web.Application()
        base = f"/v2/{ENDPOINT}"
        app.router.add_get(base + "/job-take/{worker}", self._take)
        app.router.add_get(base + "/job-take-batch/{worker}", self._take)
        app.router.add_get(base + "/job-stop/{worker}", self._job_stop)
        app.router.add_post(base + "/job-stream/{worker}/{job}", self._stream)
        app.router.add_post(base + "/job-done/{worker}/{job}", self._done)
        app.router.add_get(base + "/ping/{worker}", self._ping)
        app.router.add_route("*", base + "/openai/v1/{tail:.*}", self._openai)
        app.router.add_route("*", "/{tail:.*}", self._other)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def close(self, timeout: float = 10.0) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)

    def env(self, worker_id: str) -> dict[str, str]:
        """The variables RunPod gives a serverless worker, pointing here."""
        base = f"http://127.0.0.1:{self.port}/v2/{ENDPOINT}"
        return {
            "RUNPOD_WEBHOOK_GET_JOB": base + "/job-take/$ID?gpu=TEST_GPU",
            "RUNPOD_WEBHOOK_POST_OUTPUT": base + "/job-done/$RUNPOD_POD_ID/$ID?gpu=TEST_GPU",
            "RUNPOD_WEBHOOK_POST_STREAM": base + "/job-stream/$RUNPOD_POD_ID/$ID?gpu=TEST_GPU",
            "RUNPOD_WEBHOOK_PING": base + "/ping/$RUNPOD_POD_ID?gpu=TEST_GPU",
            "RUNPOD_PING_INTERVAL": "1000",
            "RUNPOD_AI_API_KEY": API_KEY,
            "RUNPOD_POD_ID": worker_id,
            "RUNPOD_POD_HOSTNAME": f"{worker_id}.fake",
            "RUNPOD_ENDPOINT_ID": ENDPOINT,
        }

    @property
    def openai_base(self) -> str:
        """Base URL for the openai SDK, as ``https://api.runpod.ai/v2/<endpoint>/openai/v1``."""
        return f"http://127.0.0.1:{self.port}/v2/{ENDPOINT}/openai/v1"

    # ---- test side (any thread) -----------------------------------------------------------------
    def submit(self, job_input: Any, stream_delay: float = 0.0) -> str:
        (job_id,) = self.submit_all([job_input], stream_delay)
        return job_id

    def submit_all(self, inputs: list[Any], stream_delay: float = 0.0) -> list[str]:
        """Queue jobs at once (one job-take can get them all)."""
        with self._cond:
            ids = [f"job-{next(self._ids)}" for _ in inputs]
            for job_id, job_input in zip(ids, inputs, strict=True):
                self.jobs[job_id] = Job(job_id, job_input, stream_delay)
                self._queue.append(job_id)
        self._loop.call_soon_threadsafe(self._set_wake)
        return ids

    def request_stop(self, job_id: str) -> None:
        """Make the next job-stop poll name this job (what the platform does on /cancel)."""
        with self._cond:
            self._to_stop.append(job_id)
        self._loop.call_soon_threadsafe(lambda: self._stop_wake and self._stop_wake.set())

    def wait_result(self, job_id: str, timeout: float) -> Job:
        self.wait_for(lambda: self.jobs[job_id].result is not None, timeout, f"result of {job_id}")
        return self.jobs[job_id]

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"fake platform: no {what} within {timeout} s")
                self._cond.wait(min(left, 0.1))

    # ---- server side (the fake's event loop) ----------------------------------------------------
    def _set_wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    @staticmethod
    def _headers(request: web.Request) -> dict[str, str]:
        return {k: v for k, v in request.headers.items()}

    async def _take(self, request: web.Request) -> web.Response:
        assert self._wake is not None
        batch = "/job-take-batch/" in request.path
        take = Take(time.monotonic(), batch, dict(request.query), self._headers(request))
        with self._cond:
            self.takes.append(take)
            self._cond.notify_all()
        wanted = int(request.query.get("batch_size", "1")) if batch else 1
        deadline = time.monotonic() + self.hold
        while True:
            with self._cond:
                picked = [self._queue.popleft() for _ in range(min(wanted, len(self._queue)))]
                if picked:
                    now = time.monotonic()
                    for job_id in picked:
                        self.jobs[job_id].taken_at = now
                    self.in_flight += len(picked)
                    self.max_in_flight = max(self.max_in_flight, self.in_flight)
                    take.got = picked
                    jobs = [{"id": j, "input": self.jobs[j].input} for j in picked]
                    self._cond.notify_all()
                    break
                self._wake.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return web.Response(status=204)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)
        return web.json_response(jobs if batch else jobs[0])

    async def _job_stop(self, request: web.Request) -> web.Response:
        assert self._stop_wake is not None
        deadline = time.monotonic() + self.hold
        while True:
            with self._cond:
                if self._to_stop:
                    ids, self._to_stop[:] = self._to_stop[:], []
                    return web.json_response({"jobsToStop": ids})
                self._stop_wake.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return web.Response(status=204)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop_wake.wait(), left)

    async def _read_post(self, request: web.Request) -> tuple[Job | None, Post]:
        raw = await request.text()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw
        post = Post(time.monotonic(), dict(request.query), self._headers(request), body)
        return self.jobs.get(request.match_info["job"]), post

    async def _stream(self, request: web.Request) -> web.Response:
        job, post = await self._read_post(request)
        if job is None:
            self.unexpected.append(f"stream POST for unknown job {request.path}")
            return web.Response(status=404)
        if job.stream_delay:
            await asyncio.sleep(job.stream_delay)
        with self._cond:
            job.stream.append(post)
            self._cond.notify_all()
        return web.Response(text="ok")

    async def _done(self, request: web.Request) -> web.Response:
        job, post = await self._read_post(request)
        if job is None:
            self.unexpected.append(f"result POST for unknown job {request.path}")
            return web.Response(status=404)
        with self._cond:
            if job.result is not None:
                self.unexpected.append(f"second result POST for {job.id}")
            else:
                self.in_flight -= 1
            job.result = post
            self._cond.notify_all()
        return web.Response(text="ok")

    async def _ping(self, request: web.Request) -> web.Response:
        with self._cond:
            self.pings.append({"query": dict(request.query), "headers": self._headers(request)})
            self._cond.notify_all()
        return web.Response(text="ok")

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        job_input: dict[str, Any] = {"openai_route": "/v1/" + request.match_info["tail"]}
        body = await request.json() if request.can_read_body else None
        if body is not None:
            job_input["openai_input"] = body
        job = self.jobs[self.submit(job_input)]
        if not (isinstance(body, dict) and body.get("stream")):
            while job.result is None:
                await asyncio.sleep(0.01)
            result = job.result.body
            if "error" not in result:
                return web.json_response(result["output"][0])
            try:
                error = json.loads(result["error"])
            except ValueError:
                error = {"message": result["error"], "status": 500}
            return web.json_response({"error": error}, status=error.get("status", 500))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        sent = 0
        while True:
            ended = job.result is not None  # the SDK posts every stream output before the result
            for post in job.stream[sent:]:
                output = post.body.get("output")
                await resp.write((output if isinstance(output, str) else json.dumps(output)).encode())
            sent = len(job.stream)
            if ended:
                break
            await asyncio.sleep(0.01)
        await resp.write_eof()
        return resp

    async def _other(self, request: web.Request) -> web.Response:
        self.unexpected.append(f"{request.method} {request.path_qs}")
        return web.Response(status=404)
