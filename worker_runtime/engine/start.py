"""Starting the engine: the settings and weights it runs with, the ports the worker keeps for itself, and
the FastDeploy process (stopped when the worker exits)."""

from __future__ import annotations

import argparse
import atexit
import os
import shlex
import sys
from collections.abc import Mapping

from worker_runtime.config.engine_args import EnginePorts, engine_argv, engine_env
from worker_runtime.config.settings import Settings, load_flag_table, load_settings
from worker_runtime.engine.backend_packages import BackendMissing, missing_packages
from worker_runtime.engine.model_cache import WeightsPlan, plan_weights
from worker_runtime.engine.ports import free_ports
from worker_runtime.engine.supervisor import DEFAULT_LOG_DIR, Supervisor, shm_warning


def prepare(environ: Mapping[str, str]) -> tuple[Settings, WeightsPlan]:
    """The worker's settings and weights plan, with their warnings printed. Raises SettingsError (exit 2),
    BackendMissing or CacheUnavailable (exit 1)."""
    settings = load_settings(environ)
    missing = missing_packages(settings.guided_decoding_backend)
    if missing:  # before the weights or the engine: FastDeploy would fail on it only after loading
        raise BackendMissing(missing)
    warning = shm_warning()
    if warning:
        print(warning, flush=True)
    weights = plan_weights(settings)
    for line in (weights.warning, weights.detail):
        if line:
            print(line, flush=True)
    return settings, weights


def own_ports(args: argparse.Namespace, sdk_argv: list[str]) -> set[int]:
    """The ports this worker will listen on itself, which the engine must not take: --local's
    port, or the runpod SDK's test API port (``--rp_serve_api``, ``--rp_api_port`` default 8000)."""
    if args.local:
        return {args.port}
    sdk = argparse.ArgumentParser(add_help=False)
    sdk.add_argument("--rp_serve_api", action="store_true")
    sdk.add_argument("--rp_api_port", default="8000")
    known, _ = sdk.parse_known_args(sdk_argv)
    if known.rp_serve_api and str(known.rp_api_port).isdigit():
        return {int(known.rp_api_port)}
    return set()


def lb_ports(settings: Settings) -> set[int]:
    """The ports a load-balancing worker listens on, which the engine must not take."""
    return {settings.port, settings.port_health or settings.port}


def start_engine(settings: Settings, reserved: set[int]) -> Supervisor:
    """Start FastDeploy on free ports outside ``reserved``; it is stopped when the worker exits."""
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
    atexit.register(supervisor.stop)
    return supervisor
