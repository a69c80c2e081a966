"""`build.py test NAME [options]`: run the variant's `.runpod/tests.json` jobs as the Hub sends them,
against a local container of a built image, or with `--endpoint ID` against a deployed endpoint (plus one
streamed request through `/openai/v1` with the `openai` SDK). Exit status 1 when any job fails."""

from __future__ import annotations

import argparse
import shlex
import sys

from builder.commands.common import add_selection, add_verb
from builder.commands.deploy import add_image_choice, checked_overrides, one_variant
from builder.deploy.calling import served_model
from builder.deploy.credentials import api_key, job_base
from builder.errors import BuilderError, UsageError

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
    local.add_argument(
        "--ready-timeout", type=float, default=1200.0, metavar="S", help="seconds to wait for readiness"
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
    if args.endpoint:
        if args.env or args.docker_args or args.gpus is not None:
            raise UsageError("--env, --docker-args and --gpus go with a local test, not with --endpoint")
        key = api_key()
        print(f"testing endpoint {args.endpoint}: {len(tests)} job(s) of tests.json and one openai stream")
        return smoke_test(f"{job_base()}/{args.endpoint}", key, tests, served_model(resolved, env), print)
    if not args.image and image_missing(image):  # the variant's own tag: built here, never pulled
        registry = f" --registry {args.registry}" if args.registry else ""
        raise ImageNotBuilt(
            f"{image} is not among the engine's images: build it first: python build.py build "
            f"{resolved.name}{registry} (or name an image with --image)"
        )
    docker_args = [a for chunk in args.docker_args for a in shlex.split(chunk)]
    spec = LocalRun(image, docker_args, env, args.gpus, args.ready_timeout)
    print(f"testing {image}: {len(tests)} job(s) of tests.json against a local container")
    return run_local(spec, tests, print, sys.stdout)
