"""Entry point: ``python -m worker_runtime [--local [--port N] [--host H]] [runpod SDK flags]``.

Starts FastDeploy, waits until it is ready, then serves jobs: through the RunPod SDK (platform mode, a
queue endpoint; SDK flags such as ``--rp_serve_api`` pass through), through the local RunPod-shaped
endpoint (``--local``), or, with ``ENDPOINT_TYPE=load_balancer``, over HTTP on ``PORT`` for a
load-balancing endpoint (serve/load_balancer.py; its health check answers while the engine loads).
"""

from __future__ import annotations

import argparse
import io
import os
import sys

from worker_runtime.config.settings import SettingsError
from worker_runtime.engine.backend_packages import BackendMissing
from worker_runtime.engine.model_cache import CacheUnavailable
from worker_runtime.engine.start import lb_ports, own_ports, prepare, start_engine
from worker_runtime.serve.start import serve_jobs, serve_load_balancer


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m worker_runtime", description=__doc__)
    parser.add_argument("--local", action="store_true", help="serve a local RunPod-shaped endpoint")
    parser.add_argument("--port", type=int, default=8000, help="local endpoint port (default 8000)")
    parser.add_argument("--host", default=None, help="local endpoint host (default: 0.0.0.0 in a container)")
    return parser.parse_known_args(argv)


def main(argv: list[str] | None = None) -> int:
    # A log line never fails on what a caller sent (a lone surrogate): written escaped instead.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    args, rest = parse_args(sys.argv[1:] if argv is None else argv)
    sys.argv = [sys.argv[0], *rest]  # the RunPod SDK parses what is left (--rp_serve_api, ...)
    try:
        settings, weights = prepare(os.environ)
    except SettingsError as exc:
        print(exc, flush=True)
        return 2
    except (CacheUnavailable, BackendMissing) as exc:
        print(exc, flush=True)
        return 1

    if settings.endpoint_type == "load_balancer" and not args.local:
        supervisor = start_engine(weights.settings, lb_ports(settings))
        return serve_load_balancer(settings, supervisor, weights)
    if settings.endpoint_type == "load_balancer":
        print(
            "ENDPOINT_TYPE=load_balancer: --local serves the RunPod-shaped local endpoint instead", flush=True
        )
    supervisor = start_engine(weights.settings, own_ports(args, rest))
    return serve_jobs(settings, supervisor, weights, (args.host, args.port) if args.local else None)


if __name__ == "__main__":
    sys.exit(main())
