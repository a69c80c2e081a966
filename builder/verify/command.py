"""The `test` verb: the variant's tests.json jobs against a local container of a built image, or with
`--endpoint ID` against a deployed endpoint (plus one streamed `openai` request). Exit 1 when any fails."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable

from builder.compat import load_compat
from builder.deploy.command import served_model
from builder.deploy.credentials import CredentialsError, api_key, job_base
from builder.deploy.overrides import OverrideError, parse_overrides
from builder.variant.pipeline import Prepared
from builder.verify.endpoint import smoke_test
from builder.verify.jobs import variant_tests
from builder.verify.local import LocalRun, run_local


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", metavar="REF", help="image to run (default: the variant's versioned tag)")
    p.add_argument("--endpoint", metavar="ID", help="smoke-test this deployed endpoint instead")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="local: set a setting in the container (checked by the runtime's settings); repeatable",
    )
    p.add_argument(
        "--docker-args",
        action="append",
        default=[],
        metavar="ARGS",
        help='local: extra `docker run` options, e.g. "--shm-size=32g --cpus 8"; repeatable',
    )
    gpus = p.add_mutually_exclusive_group()
    gpus.add_argument("--gpus", dest="gpus", action="store_true", default=None, help="local: --gpus all")
    gpus.add_argument("--no-gpus", dest="gpus", action="store_false", help="local: no GPUs")
    p.add_argument(
        "--ready-timeout",
        type=float,
        default=1200.0,
        metavar="S",
        help="local: seconds to wait for readiness",
    )


def run(args: argparse.Namespace, prepared: Prepared, image: str, say: Callable[[str], None] = print) -> int:
    resolved = prepared.resolved
    tests = variant_tests(resolved)
    try:
        env = parse_overrides(args.env, resolved, load_compat())
    except OverrideError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.endpoint:
        if args.env or args.docker_args:
            print("error: --env and --docker-args apply to a local test (drop --endpoint)", file=sys.stderr)
            return 2
        try:
            key = api_key()
        except CredentialsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        base = f"{job_base()}/{args.endpoint}"
        say(f"testing endpoint {args.endpoint}: {len(tests)} job(s) of tests.json and one openai stream")
        return smoke_test(base, key, tests, served_model(resolved, env), say)
    docker_args = [a for chunk in args.docker_args for a in shlex.split(chunk)]
    spec = LocalRun(
        image=image, docker_args=docker_args, env=env, gpus=args.gpus, ready_timeout=args.ready_timeout
    )
    say(f"testing {image}: {len(tests)} job(s) of tests.json against a local container")
    return run_local(spec, tests, say, sys.stdout)
