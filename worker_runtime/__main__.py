"""Entry point: ``python -m worker_runtime [--local [--port N] [--host H]] [runpod SDK flags]``.

Starts FastDeploy, waits until it is ready, then serves jobs: through the RunPod SDK (platform mode, a
queue endpoint; SDK flags such as ``--rp_serve_api`` pass through), through the local RunPod-shaped
endpoint (``--local``), or, with ``ENDPOINT_TYPE=load_balancer``, over HTTP on ``PORT`` for a
load-balancing endpoint (lb_server.py; its health check answers while the engine loads).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import gc
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from worker_runtime.engine_args import EnginePorts, engine_argv, engine_env
from worker_runtime.guided import missing_packages
from worker_runtime.model_cache import CacheUnavailable, WeightsPlan, plan_weights
from worker_runtime.ports import free_ports
from worker_runtime.settings import Settings, SettingsError, load_flag_table, load_settings
from worker_runtime.supervisor import DEFAULT_LOG_DIR, EngineStartError, Supervisor, log_tail, shm_warning

if TYPE_CHECKING:
    from worker_runtime.handler import Runtime
    from worker_runtime.lb_server import Handler

DEATH_DRAIN_SECONDS = 5.0  # time for in-flight jobs to report their failure before we exit
# At its own default, DEBUG, the runpod SDK prints every streamed output twice and a line per stream
# POST (rp_job.py, rp_http.py in 1.12): work per yield on the one loop that relays all of this
# worker's streams, and logs that hold the whole answer. INFO keeps its per-job lines.
SDK_LOG_LEVEL = "INFO"


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m worker_runtime", description=__doc__)
    parser.add_argument("--local", action="store_true", help="serve a local RunPod-shaped endpoint")
    parser.add_argument("--port", type=int, default=8000, help="local endpoint port (default 8000)")
    parser.add_argument("--host", default=None, help="local endpoint host (default: 0.0.0.0 in a container)")
    return parser.parse_known_args(argv)


def own_ports(args: argparse.Namespace, sdk_argv: list[str]) -> set[int]:
    """The ports this worker will listen on itself, which the engine must not take: --local's
    port, or the runpod SDK's test API port (runpod/serverless/__init__.py, v1.12.0, lines 56-64:
    ``--rp_serve_api``, ``--rp_api_port`` default 8000)."""
    if args.local:
        return {args.port}
    sdk = argparse.ArgumentParser(add_help=False)
    sdk.add_argument("--rp_serve_api", action="store_true")
    sdk.add_argument("--rp_api_port", default="8000")
    known, _ = sdk.parse_known_args(sdk_argv)
    if known.rp_serve_api and str(known.rp_api_port).isdigit():
        return {int(known.rp_api_port)}
    return set()


def start_engine(settings: Settings, reserved: set[int]) -> Supervisor:
    release = load_flag_table()["releases"][settings.fastdeploy_version]
    # The worker binds its own port only once the engine is up: until then it looks free.
    http, metrics, queue, cache = free_ports(4, exclude=reserved)
    argv = engine_argv(settings, release, EnginePorts(http, metrics, queue, cache), sys.executable)
    log_dir = os.environ.get("FD_LOG_DIR") or DEFAULT_LOG_DIR
    env = engine_env(settings, os.environ, log_dir)
    if os.environ.get("FD_API_KEY"):
        # The worker sends no key; the engine listens on 127.0.0.1 only and RunPod authenticates callers.
        print("FD_API_KEY is ignored: the engine is reachable only from this worker.", flush=True)
    print(f"Starting FastDeploy {settings.fastdeploy_version}: {shlex.join(argv)}", flush=True)
    supervisor = Supervisor(argv, env, f"http://127.0.0.1:{http}/health", log_dir)
    supervisor.start()
    assert supervisor.proc is not None
    print(f"engine pid {supervisor.proc.pid}, logs in {log_dir}", flush=True)
    return supervisor


def sdk_log_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The runpod SDK's log level, set before it is imported (it reads it then): the user's
    RUNPOD_LOG_LEVEL, else their RUNPOD_DEBUG_LEVEL (the SDK's older name), else ``SDK_LOG_LEVEL``."""
    level = environ.get("RUNPOD_LOG_LEVEL") or environ.get("RUNPOD_DEBUG_LEVEL") or SDK_LOG_LEVEL
    return {"RUNPOD_LOG_LEVEL": level}


def exit_on_engine_death(supervisor: Supervisor, settled: Callable[[], bool]) -> None:
    """Engine death while serving is fatal: let in-flight jobs fail (until ``settled()``, at most
    DEATH_DRAIN_SECONDS), then exit so RunPod replaces us."""

    def died(code: int) -> None:
        print(f"FastDeploy engine exited with code {code} while serving; exiting.", flush=True)
        print(log_tail(supervisor.log_dir), flush=True)
        deadline = time.monotonic() + DEATH_DRAIN_SECONDS
        while not settled() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the SDK posts the failed results
        sys.stdout.flush()
        os._exit(1)

    supervisor.on_death(died)


def main(argv: list[str] | None = None) -> int:
    args, rest = parse_args(sys.argv[1:] if argv is None else argv)
    sys.argv = [sys.argv[0], *rest]  # the RunPod SDK parses what is left (--rp_serve_api, ...)
    try:
        settings = load_settings(os.environ)
    except SettingsError as exc:
        print(exc, flush=True)
        return 2
    missing = missing_packages(settings.guided_decoding_backend)
    if missing:  # before any weights download or engine start: the engine would fail on it later
        print(missing, flush=True)
        return 1
    warning = shm_warning()
    if warning:
        print(warning, flush=True)
    try:
        weights = plan_weights(settings)
    except CacheUnavailable as exc:
        print(exc, flush=True)
        return 1
    for line in (weights.warning, weights.detail):
        if line:
            print(line, flush=True)

    load_balancer = settings.endpoint_type == "load_balancer" and not args.local
    if settings.endpoint_type == "load_balancer" and args.local:
        print(
            "ENDPOINT_TYPE=load_balancer: --local serves the RunPod-shaped local endpoint instead", flush=True
        )
    reserved = lb_ports(settings) if load_balancer else own_ports(args, rest)
    supervisor = start_engine(weights.settings, reserved)
    atexit.register(supervisor.stop)
    if load_balancer:
        return serve_load_balancer(settings, supervisor, weights)

    main_pid = os.getpid()

    def terminate(signum: int, frame: object) -> None:
        if os.getpid() != main_pid:
            # A forked helper inherited this handler (the RunPod SDK forks its heartbeat process before
            # installing its own handler, and terminates it at exit): it must not stop our engine.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        # Forward to the engine (graceful, then forced), stop what it left behind, then leave at once.
        stopper = threading.Thread(target=supervisor.stop, daemon=True)
        stopper.start()
        stopper.join(supervisor.stop_grace + 10)
        print(f"Received signal {signum}: engine stopped (code {supervisor.exit_code}).", flush=True)
        os._exit(0)

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
    from worker_runtime.handler import make_handler

    runtime = make_runtime(settings, supervisor, weights.served_name)
    exit_on_engine_death(supervisor, lambda: runtime.in_flight == 0)
    handler = make_handler(runtime)
    tune_gc()

    if args.local:
        from worker_runtime.local_server import default_host, serve

        signal.signal(signal.SIGINT, terminate)
        host = args.host or default_host()
        asyncio.run(serve(handler, settings.max_concurrency, host, args.port))
        return 0

    os.environ.update(sdk_log_env(os.environ))
    import runpod

    runpod.serverless.start(
        {
            "handler": handler,
            "return_aggregate_stream": True,
            "concurrency_modifier": runtime.concurrency_modifier,
        }
    )
    return 0


def lb_ports(settings: Settings) -> set[int]:
    """The ports a load-balancing worker listens on, which the engine must not take."""
    return {settings.port, settings.port_health or settings.port}


def make_runtime(settings: Settings, supervisor: Supervisor, served_name: str) -> Runtime:
    from worker_runtime.engine_client import EngineClient
    from worker_runtime.handler import Runtime

    return Runtime(
        EngineClient(supervisor.health_url.rsplit("/", 1)[0], settings.request_timeout),
        served_name,
        settings.max_concurrency,
        supervisor,
        logprobs=bool(settings.logprobs),
        guided_backend=settings.guided_decoding_backend,
    )


def serve_load_balancer(settings: Settings, supervisor: Supervisor, weights: WeightsPlan) -> int:
    """Serve a RunPod load-balancing endpoint (lb_server.py) until SIGTERM; 1 if the engine never
    got ready. An engine that dies while serving ends the worker with 1 (exit_on_engine_death)."""
    from worker_runtime.lb_server import Health, LBServer, ListenError, serve

    health = Health(supervisor.died.is_set)
    server = LBServer(health, settings.max_concurrency, settings.health_check_path)

    def start() -> Handler:
        took = supervisor.wait_ready(settings.engine_startup_timeout)
        print(f"FastDeploy ready after {took:.1f} s", flush=True)
        print(weights.ready_line(took), flush=True)
        from worker_runtime.handler import make_handler

        runtime = make_runtime(settings, supervisor, weights.served_name)
        # Exit once running requests have failed and the load balancer has seen the 503.
        exit_on_engine_death(supervisor, lambda: server.in_flight == 0 and health.reported_dead)
        tune_gc()
        return make_handler(runtime)

    port_health = settings.port_health or settings.port
    try:
        asyncio.run(
            serve(server, settings.port, port_health, settings.shutdown_grace_seconds, start, supervisor.stop)
        )
    except (EngineStartError, ListenError) as exc:
        print(exc, flush=True)
        return 1
    print(f"Stopped (engine exit code {supervisor.exit_code}).", flush=True)
    return 0


# CPython's defaults are (700, 10, 10). See tune_gc.
GC_THRESHOLDS = (20_000, 50, 100)


def tune_gc() -> None:
    """Fewer garbage collections while serving: each one pauses every job of the worker.

    What is loaded by now lives as long as the worker: frozen, full collections no longer scan it.
    The SDK keeps a job's outputs until the job ends (``return_aggregate_stream``), so a native
    stream's chunk objects pile up in the young generations and, at the default thresholds, set off
    a collection every few hundred tokens. Measured with bench/bench_platform.py (K=128 native
    streams): GC time in the worker 1.0 s -> 0.1 s per run, worker CPU per token -9 %, no pause
    over 25 ms (70 ms before). Cyclic garbage waits longer (at most ~20,000 young objects).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


if __name__ == "__main__":
    sys.exit(main())
