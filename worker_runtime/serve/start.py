"""Serving once the engine is started, through one of three front doors: the runpod SDK (a queue
endpoint, queue.py), the local RunPod-shaped endpoint (``--local``, local.py), or HTTP on ``PORT`` for a
load-balancing endpoint (load_balancer.py; its health check answers while the engine loads)."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING

from worker_runtime.config.settings import Settings
from worker_runtime.engine.model_cache import WeightsPlan
from worker_runtime.engine.supervisor import EngineStartError, Supervisor
from worker_runtime.serve.lifecycle import exit_on_engine_death, make_handler_state, terminator, tune_gc

# After SIGTERM, a load-balancing worker exits within SHUTDOWN_GRACE_SECONDS + 2 s (docs/load-balancing.md):
# the grace, up to 0.8 s for cut requests to end and connections to close, then the engine's stop.
ENGINE_STOP_SECONDS = 1.0
LEFTOVERS_STOP_SECONDS = 0.2

if TYPE_CHECKING:
    from worker_runtime.serve.callers import CallerBounds
    from worker_runtime.serve.load_balancer import Handler


def serve_jobs(
    settings: Settings, supervisor: Supervisor, weights: WeightsPlan, local: tuple[str | None, int] | None
) -> int:
    """Wait for the engine, then serve jobs through the runpod SDK, or on ``local`` (host, port) with
    ``--local``; 1 if the engine never got ready."""
    terminate = terminator(supervisor)
    signal.signal(signal.SIGTERM, terminate)
    try:
        took = supervisor.wait_ready(settings.engine_startup_timeout)
    except EngineStartError as exc:
        print(exc, flush=True)
        supervisor.stop()
        return 1
    print(f"FastDeploy ready after {took:.1f} s", flush=True)
    print(weights.ready_line(took), flush=True)

    # Imported only now: the engine starts while these load, and settings errors need neither.
    from worker_runtime.serve.handler import make_handler

    runtime = make_handler_state(settings, supervisor, weights.served_name)
    exit_on_engine_death(supervisor, lambda: runtime.in_flight == 0)
    handler = make_handler(runtime)
    tune_gc()

    if local is not None:
        from worker_runtime.serve.local import default_host, serve

        signal.signal(signal.SIGINT, terminate)
        host, port = local
        bounds = caller_bounds(settings)
        asyncio.run(serve(handler, settings.max_concurrency, host or default_host(), port, bounds))
        return 0

    from worker_runtime.serve.queue import serve_queue

    serve_queue(handler, runtime.concurrency_modifier)
    return 0


def caller_bounds(settings: Settings) -> CallerBounds:
    from worker_runtime.serve.callers import bounds_of

    return bounds_of(settings.value)


def serve_load_balancer(settings: Settings, supervisor: Supervisor, weights: WeightsPlan) -> int:
    """Serve a RunPod load-balancing endpoint (load_balancer.py) until SIGTERM; 1 if the engine never
    got ready. An engine that dies while serving ends the worker with 1 (exit_on_engine_death)."""
    from worker_runtime.serve.load_balancer import Health, LBServer, ListenError, serve

    health = Health(supervisor.died.is_set)
    server = LBServer(health, settings.max_concurrency, settings.health_check_path, caller_bounds(settings))

    def start() -> Handler:
        took = supervisor.wait_ready(settings.engine_startup_timeout)
        print(f"FastDeploy ready after {took:.1f} s", flush=True)
        print(weights.ready_line(took), flush=True)
        from worker_runtime.serve.handler import make_handler

        runtime = make_handler_state(settings, supervisor, weights.served_name)
        # Exit once running requests have failed and the load balancer has seen the 503.
        exit_on_engine_death(supervisor, lambda: server.in_flight == 0 and health.reported_dead)
        tune_gc()
        return make_handler(runtime)

    def stop_engine() -> None:
        # Within the 2 s the worker has after the grace: an engine still up then is killed.
        supervisor.stop(grace=ENGINE_STOP_SECONDS, leftovers_grace=LEFTOVERS_STOP_SECONDS)

    port_health = settings.port_health or settings.port
    try:
        asyncio.run(
            serve(server, settings.port, port_health, settings.shutdown_grace_seconds, start, stop_engine)
        )
    except (EngineStartError, ListenError) as exc:
        print(exc, flush=True)
        return 1
    print(f"Stopped (engine exit code {supervisor.exit_code}).", flush=True)
    return 0
