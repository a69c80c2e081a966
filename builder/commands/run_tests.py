"""`build.py test NAME [options]`: run the variant's `.runpod/tests.json` jobs as the Hub sends them,
against a local container of a built image, or with `--endpoint ID` against a deployed endpoint (plus one
streamed request through `/openai/v1` with the `openai` SDK). A load-balancing variant is tested as RunPod
reaches it: its health check is awaited (204, then 200), each job goes to the worker's HTTP route (an
`openai_route` job to that route, a native job to POST /generate) and the stream to `/v1`. Exit status 1
when any job fails."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import TYPE_CHECKING

from builder.commands.common import add_selection, add_verb
from builder.commands.variant_image import add_image_choice, checked_overrides, one_variant
from builder.deploy.credentials import api_key, job_base, lb_base
from builder.deploy.env_overrides import effective
from builder.deploy.how_to_call import health_path, served_model
from builder.errors import BuilderError, UsageError
from builder.variant.resolve import Resolved

if TYPE_CHECKING:
    from builder.verify.local import LbServing

NAME = "test"
HELP = "run the variant's tests.json jobs against a local container, or a deployed endpoint (--endpoint)"
# What Ctrl-C leaves (printed by the CLI in one line).
INTERRUPTED = "the test container was removed; no endpoint was touched"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = add_verb(subparsers, NAME, HELP)
    add_selection(p, default_all=False)
    add_image_choice(p, "run")
    p.add_argument("--endpoint", metavar="ID", help="smoke-test this deployed endpoint instead")
    local = p.add_argument_group("local container")
    local.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a setting in the container (checked by the runtime's settings); repeatable",
    )
    local.add_argument(
        "--docker-args",
        action="append",
        default=[],
        metavar="ARGS",
        help='extra `docker run` options, e.g. "--shm-size=32g --cpus 8"; repeatable',
    )
    gpus = local.add_mutually_exclusive_group()
    gpus.add_argument(
        "--gpus", dest="gpus", action="store_true", default=None, help="--gpus all (default: when present)"
    )
    gpus.add_argument("--no-gpus", dest="gpus", action="store_false", help="run without GPUs")
    p.add_argument(
        "--ready-timeout",
        type=float,
        default=1200.0,
        metavar="S",
        help="seconds to wait for readiness (a load-balancing endpoint's health check too); "
        "default %(default)g",
    )
    return p


class ImageNotBuilt(BuilderError):
    """`test NAME` before `build NAME`: said before Docker looks the image up in a registry."""


def run(args: argparse.Namespace) -> int:
    # Imported here: the job clients load `requests`, which no other verb needs.
    from builder.verify.endpoint import smoke_test
    from builder.verify.jobs import variant_tests
    from builder.verify.local import LocalRun, image_missing, run_local

    prepared, image = one_variant(args, image_needed=not args.endpoint)
    resolved = prepared.resolved
    tests = variant_tests(resolved)
    env = checked_overrides(args.env, prepared)
    lb = resolved.endpoint_type == "load_balancer"
    model = served_model(resolved, env)
    if args.endpoint:
        # A load-balancing endpoint deployed with another health check path is polled there.
        endpoint_env = lb and set(env) <= {"HEALTH_CHECK_PATH"}
        if (args.env and not endpoint_env) or args.docker_args or args.gpus is not None:
            raise UsageError(
                "--env, --docker-args and --gpus go with a local test, not with --endpoint (except "
                "--env HEALTH_CHECK_PATH=... for a load-balancing endpoint deployed with it)"
            )
        key = api_key()
        print(f"testing endpoint {args.endpoint}: {len(tests)} job(s) of tests.json and one openai stream")
        if lb:
            from builder.verify.lb import test_endpoint

            base, health = lb_base(args.endpoint), health_path(resolved, env)
            return test_endpoint(base, key, health, tests, model, args.ready_timeout, print, sys.stdout)
        return smoke_test(f"{job_base()}/{args.endpoint}", key, tests, model, print)
    if not args.image and image_missing(image):  # the variant's own tag: built here, never pulled
        registry = f" --registry {args.registry}" if args.registry else ""
        raise ImageNotBuilt(
            f"{image} is not among the engine's images: build it first: python build.py build "
            f"{resolved.name}{registry} (or name an image with --image)"
        )
    docker_args = [a for chunk in args.docker_args for a in shlex.split(chunk)]
    spec = LocalRun(image, docker_args, env, args.gpus, args.ready_timeout)
    kind = "its load-balancing HTTP server" if lb else "a local container"
    print(f"testing {image}: {len(tests)} job(s) of tests.json against {kind}")
    return run_local(spec, tests, print, sys.stdout, lb_serving(resolved, env, model) if lb else None)


def lb_serving(resolved: Resolved, env: dict[str, str], model: str) -> LbServing:
    """The ports and health path the container serves on: `--env` overrides, else the image's."""
    from builder.verify.local import LbServing

    port = int(effective(resolved, env, "PORT") or 80)
    health_port = int(effective(resolved, env, "PORT_HEALTH") or port)
    return LbServing(port, health_port, health_path(resolved, env), model)
