"""The worker's own HTTP server on a RunPod load-balancing endpoint (``ENDPOINT_TYPE=load_balancer``).

RunPod sends requests straight to ``0.0.0.0:PORT`` (runpod/docs ``serverless/load-balancing/overview.mdx``).
Served there, through the same handler as a queue job (normalisation, field refusals, route allowlist,
error mapping) and answered by ``http_answers.reply``: the routes of ``worker_runtime/config/routes.py`` that
list this front door (OpenAI routes as an ``openai_route`` job; native ones take the job input as the
body, and a body whose only key is ``input`` is unwrapped, so a ``/runsync`` payload works as is).

Every other path is 404 and never reaches the engine. The health check (``HEALTH_CHECK_PATH`` on
``PORT_HEALTH``) answers 204 while the engine loads, 200 when it is ready, 503 once it died or the
worker is stopping. Request bodies above 30 MB (RunPod's payload limit) get 413; beyond
``MAX_CONCURRENCY`` running requests, 429 with ``Retry-After`` (nothing waits in a queue here). A
request takes its slot once its body is in; every wait on a caller is bounded (callers.py).
"""

from __future__ import annotations

import asyncio
import itertools
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from worker_runtime.config import routes
from worker_runtime.serve.callers import (
    CallerBounds,
    StallWatch,
    answer_and_close,
    parse_body,
    read_body,
    server_options,
)
from worker_runtime.serve.errors import JobError, shown
from worker_runtime.serve.http_answers import SHUTDOWN, error_response, reply

Handler = Callable[[dict[str, Any]], AsyncIterator[Any]]

# Method of each served path, and the paths whose body is the native job input (config/routes.py).
ROUTES: dict[str, str] = {r.path: r.method for r in routes.served_by(routes.LOAD_BALANCER)}
NATIVE_PATHS = frozenset(routes.paths(routes.LOAD_BALANCER, routes.NATIVE))
# Every path, a decoded newline in it included (which ".*" would miss, leaving aiohttp's plain-text 404).
ANY_PATH = r"/{tail:[\s\S]*}"
RETRY_AFTER_SECONDS = 1  # a full or loading worker: RunPod's client, or the caller, tries again
CUT_SECONDS = 0.5  # for requests cut at the end of the shutdown grace to send their error and end
CLOSE_SECONDS = 0.3  # then for the connections to close


class ListenError(RuntimeError):
    """A port the server cannot listen on; the message says which and what to do."""


class Health:
    """The health check's answer, from the worker's state."""

    def __init__(self, engine_dead: Callable[[], bool]) -> None:
        self.engine_dead = engine_dead
        self.ready = False
        self.stopping = False
        self.reported_dead = False  # the load balancer has been told: the worker may now exit

    def status(self) -> int:
        if self.engine_dead():
            self.reported_dead = True
            return 503
        if self.stopping:
            return 503
        return 200 if self.ready else 204


class LBServer:
    def __init__(
        self,
        health: Health,
        max_concurrency: int,
        health_path: str,
        bounds: CallerBounds,
    ) -> None:
        self.health = health
        self.max_concurrency = max_concurrency
        self.health_path = health_path
        self.bounds = bounds
        self.watch = StallWatch(bounds.stall)
        self.handler: Handler | None = None  # set once the engine is ready
        self.in_flight = 0
        self.running: set[asyncio.Task[Any]] = set()  # the requests holding a slot
        self._ids = itertools.count(1)

    def app(self, *, serve_health: bool) -> web.Application:
        """The application on PORT (with the health check when it shares the port)."""
        # aiohttp's own limit stops a chunked body we could not size in advance; +1 so that a body of
        # exactly the limit passes.
        app = web.Application(client_max_size=self.bounds.max_body + 1)

        async def dispatch(request: web.Request) -> web.StreamResponse:
            if serve_health and request.path == self.health_path:
                return self.check(request)
            return await self.route(request)

        app.router.add_route("*", ANY_PATH, dispatch)
        return app

    def health_app(self) -> web.Application:
        """The application on PORT_HEALTH when it differs from PORT: the health check only."""
        app = web.Application()

        async def dispatch(request: web.Request) -> web.StreamResponse:
            if request.path == self.health_path:
                return self.check(request)
            return _not_found(request.path)

        app.router.add_route("*", ANY_PATH, dispatch)
        return app

    def check(self, request: web.Request) -> web.Response:
        if request.method not in ("GET", "HEAD"):
            return _bad_method(request.method, "GET")
        return web.Response(status=self.health.status())

    async def route(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        method = ROUTES.get(path)
        if method is None:
            return _not_found(path)
        if request.method != method:
            return _bad_method(request.method, method)
        refusal = self._refusal(count=False)
        if refusal is not None:
            return refusal
        job_input = await self._job_input(request, path)  # no slot is held while a body arrives
        if isinstance(job_input, web.StreamResponse):
            return job_input
        refusal = self._refusal()
        if refusal is not None:
            return refusal
        self.in_flight += 1
        task = asyncio.current_task()
        assert task is not None and self.handler is not None
        self.running.add(task)
        try:
            native_stream = (
                path in NATIVE_PATHS and isinstance(job_input, dict) and job_input.get("stream") is True
            )
            outputs = self.handler({"id": f"lb-{next(self._ids)}", "input": job_input, "bytes": True})
            try:
                return await reply(request, outputs, native_stream=native_stream, watch=self.watch)
            finally:
                await outputs.aclose()  # a client that left closes its engine request here
        finally:
            self.running.discard(task)
            self.in_flight -= 1

    async def drain(self, grace: float) -> None:
        """Running requests get ``grace`` seconds; those still running then end with the shutdown
        error (http_answers.SHUTDOWN), their engine requests closed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.running and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for task in list(self.running):
            task.cancel(SHUTDOWN)
        if self.running:
            await asyncio.wait(set(self.running), timeout=CUT_SECONDS)

    def _refusal(self, count: bool = True) -> web.Response | None:
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        if self.health.stopping:
            err = JobError(
                503, "this worker is shutting down; send the request again", "server_error", "shutting_down"
            )
            return error_response(err, {**retry, "Connection": "close"})
        if self.handler is None:
            err = JobError(503, "the engine is still loading; try again shortly", "server_error", "loading")
            return error_response(err, retry)
        if count and self.in_flight >= self.max_concurrency:
            err = JobError(
                429,
                f"this worker is serving its maximum of {self.max_concurrency} requests (MAX_CONCURRENCY); "
                "try again shortly",
                "rate_limit_error",
                "too_many_requests",
            )
            return error_response(err, retry)
        return None

    async def _job_input(self, request: web.Request, path: str) -> Any:
        """The job input the request stands for, or the error response that refuses it."""
        if request.method == "GET":
            return {"openai_route": path}
        raw = await read_body(request, self.bounds)
        if isinstance(raw, JobError):
            if raw.status == 408:  # the rest of the body is not worth waiting for
                return await answer_and_close(request, error_response(raw, {"Connection": "close"}))
            return error_response(raw, {"Connection": "close"})
        body = parse_body(raw)
        del raw  # a 30 MB body is not kept beside its parsed value
        if isinstance(body, JobError):
            return error_response(body)
        if path not in NATIVE_PATHS:
            return {"openai_route": path, "openai_input": body}
        if isinstance(body, dict) and set(body) == {"input"}:
            body = body["input"]  # a /runsync payload, {"input": {...}}
        return body  # anything but an object: the handler's normalisation says what is accepted


def _not_found(path: str) -> web.Response:
    err = JobError(
        404,
        f"{shown(path)} is not served here; routes: "
        + ", ".join(f"{method} {route}" for route, method in ROUTES.items()),
        code="not_found",
    )
    return error_response(err)


def _bad_method(method: str, allowed: str) -> web.Response:
    err = JobError(405, f"{method} is not supported here; use {allowed}", code="method_not_allowed")
    return error_response(err, {"Allow": allowed})


async def serve(
    server: LBServer,
    port: int,
    port_health: int,
    grace: float,
    start: Callable[[], Handler],
    stop_engine: Callable[[], object],
    host: str = "0.0.0.0",
) -> None:
    """Serve until SIGTERM or SIGINT, then stop the engine.

    The health check answers from the first moment (204: the engine loads). ``start`` (blocking, run
    in a thread) waits for the engine and returns the handler; its exception (the engine failed to
    start) propagates once the servers are closed and the engine stopped. On a signal: the listeners
    close, running requests get ``grace`` seconds to finish (a request on a kept-alive connection gets
    503), those still running end with the shutdown error and their engine requests are closed; then
    the connections close and ``stop_engine`` runs. aiohttp's own graceful shutdown is not used for
    the grace: it waits its timeout twice.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    apps = [(server.app(serve_health=port_health == port), port)]
    if port_health != port:
        apps.insert(0, (server.health_app(), port_health))
    runners = []
    sites = []
    try:
        for app, app_port in apps:
            runner = web.AppRunner(
                app, handle_signals=False, shutdown_timeout=CLOSE_SECONDS, **server_options(server.bounds)
            )
            await runner.setup()
            runners.append(runner)
            site = web.TCPSite(runner, host, app_port)
            try:
                await site.start()
            except OSError as exc:
                raise ListenError(
                    f"Cannot listen on {host}:{app_port}: {exc.strerror or exc}. Set PORT (and PORT_HEALTH) "
                    "to a free port this user may open, the same in the endpoint's configuration."
                ) from None
            sites.append(site)
        health_at = f"http://{host}:{port_health}{server.health_path}"
        print(f"Load-balancing server on http://{host}:{port} (health: {health_at})", flush=True)
        starting = asyncio.ensure_future(asyncio.to_thread(start))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            server.handler = starting.result()
            server.health.ready = True
            print("Ready: health check answers 200", flush=True)
            await stopping
        else:
            starting.add_done_callback(lambda f: f.exception())  # ends once the engine is stopped
        print(
            f"Stopping: no new requests; {server.in_flight} running get up to {grace:g} s "
            "(SHUTDOWN_GRACE_SECONDS)",
            flush=True,
        )
    finally:
        server.health.stopping = True
        for site in sites:
            await site.stop()  # no new connections
        await server.drain(grace)
        for runner in runners:
            await runner.cleanup()
        await asyncio.to_thread(stop_engine)
