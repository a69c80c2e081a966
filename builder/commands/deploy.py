"""`build.py deploy NAME [options]`: create or update, by name, a RunPod template and serverless endpoint
for the variant's pushed image (REST v2), print what changed and how to call it; `--wait` smoke-tests it.

Exit status: 0 done (or nothing to do); 1 RunPod refused or could not be reached (one paragraph), no API
key, or the smoke test failed; 2 wrong input (`--env`, options, variant) before any request.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from pydantic import ValidationError

from builder.commands.common import add_selection, add_verb
from builder.commands.variant_image import add_image_choice, checked_overrides, one_variant
from builder.deploy.api import Client
from builder.deploy.apply import RegistryCredentials, deploy
from builder.deploy.credentials import CredentialsError, api_key, job_base, lb_base, management_base
from builder.deploy.how_to_call import health_path, print_calling, print_lb_calling, served_model
from builder.deploy.model_cache import model_reference, print_cache_step
from builder.deploy.plan import ENDPOINT_KINDS, EndpointOptions, lb_ports, pinned_health_port
from builder.deploy.redact import Redactor
from builder.errors import UsageError
from builder.variant.resolve import Resolved

NAME = "deploy"
HELP = "create or update the variant's RunPod template and serverless endpoint (REST v2), by name"
SCALERS = {"queue-delay": "QUEUE_DELAY", "request-count": "REQUEST_COUNT"}
FLASHBOOT = {"on": "FLASHBOOT", "off": "OFF", "priority": "PRIORITY_FLASHBOOT"}
# What Ctrl-C leaves (printed by the CLI in one line).
INTERRUPTED = (
    "RunPod may have the template but not yet the endpoint (or an update half applied); deploy creates "
    "or updates by name, so running the same command again is safe and completes it"
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = add_verb(subparsers, NAME, HELP, description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    add_selection(p, default_all=False)
    add_image_choice(p, "deploy")
    p.add_argument("--name", metavar="NAME", help="template and endpoint name (default: the variant name)")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a baked setting on the endpoint (checked by the runtime's settings); repeatable",
    )
    d = EndpointOptions.model_fields
    g = p.add_argument_group("endpoint")
    g.add_argument("--workers-min", type=int, default=d["workers_min"].default, metavar="N", help="default 0")
    g.add_argument("--workers-max", type=int, default=d["workers_max"].default, metavar="N", help="default 3")
    g.add_argument(
        "--idle-timeout", type=int, default=d["idle_timeout"].default, metavar="S", help="seconds, default 5"
    )
    g.add_argument(
        "--scaler",
        choices=sorted(SCALERS),
        help="autoscaling signal (default: queue-delay for a queue endpoint, request-count for a "
        "load-balancing one, which takes only that)",
    )
    g.add_argument(
        "--scaler-value",
        type=float,
        default=d["scaler_value"].default,
        metavar="V",
        help="seconds of queue delay (>= 0.5) or requests per worker (whole number); default 4",
    )
    g.add_argument("--flashboot", choices=sorted(FLASHBOOT), default="on", help="FlashBoot (default on)")
    g.add_argument("--network-volume", action="append", default=[], metavar="ID", help="repeatable")
    g.add_argument(
        "--execution-timeout",
        type=int,
        default=d["execution_timeout_s"].default,
        metavar="S",
        help="seconds a job may run (default 600)",
    )
    g.add_argument(
        "--registry-auth",
        metavar="NAME",
        help="name of the RunPod registry credential made from REGISTRY_USERNAME/REGISTRY_PASSWORD "
        "(default: HOST-USERNAME); reused when it exists",
    )
    g.add_argument("--no-registry-auth", action="store_true", help="public image: no registry credential")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print a first deploy's requests; send none")
    mode.add_argument("--plan", action="store_true", help="read what RunPod has, print the writes; send none")
    p.add_argument(
        "--no-image-check",
        action="store_true",
        help="do not ask the image's registry whether the image exists before deploying it",
    )
    p.add_argument("--wait", action="store_true", help="then wait for a ready worker and smoke-test it")
    p.add_argument(
        "--wait-timeout",
        type=float,
        default=1800.0,
        metavar="S",
        help="seconds --wait waits for a ready worker; default %(default)g",
    )
    return p


def registry_host(image: str) -> str:
    first = image.split("/", 1)[0]
    return first if "/" in image and ("." in first or ":" in first or first == "localhost") else "docker.io"


def registry_credentials(args: argparse.Namespace, image: str) -> RegistryCredentials | None:
    user, password = os.environ.get("REGISTRY_USERNAME", ""), os.environ.get("REGISTRY_PASSWORD", "")
    if args.no_registry_auth or not (user and password):
        return None
    name = args.registry_auth or re.sub(r"[^A-Za-z0-9._-]+", "-", f"{registry_host(image)}-{user}")
    return RegistryCredentials(name=name, username=user, password=password)


# EndpointOptions field -> the flag that sets it; a check of several fields -> the flags of the pair.
OPTION_FLAGS = {
    "name": "--name",
    "workers_min": "--workers-min",
    "workers_max": "--workers-max",
    "idle_timeout": "--idle-timeout",
    "scaler": "--scaler",
    "scaler_value": "--scaler-value",
    "flashboot": "--flashboot",
    "network_volumes": "--network-volume",
    "execution_timeout_s": "--execution-timeout",
}
PAIR_FLAGS = {"workers": "--workers-min/--workers-max", "scaler value": "--scaler/--scaler-value"}


def option_problem(args: argparse.Namespace, error: dict) -> str:
    """One pydantic error of EndpointOptions, named by the flag the user typed and its value."""
    message = error["msg"].removeprefix("Value error, ")
    field = str(error["loc"][0]) if error["loc"] else ""
    if field in OPTION_FLAGS:
        dest = OPTION_FLAGS[field][2:].replace("-", "_")
        value = getattr(args, dest, error.get("input"))
        return f"{OPTION_FLAGS[field]} {value}: {message}"
    flags = next((f for phrase, f in PAIR_FLAGS.items() if phrase in message), "options")
    return f"{flags}: {message}"


def options(args: argparse.Namespace, resolved: Resolved, env: dict[str, str]) -> EndpointOptions:
    kind = ENDPOINT_KINDS[resolved.endpoint_type]
    lb = kind == "LOAD_BALANCER"
    env = pinned_health_port(env) if lb else env
    scaler = SCALERS[args.scaler] if args.scaler else "REQUEST_COUNT" if lb else "QUEUE_DELAY"
    try:
        return EndpointOptions(
            name=args.name or resolved.name,
            workers_min=args.workers_min,
            workers_max=args.workers_max,
            idle_timeout=args.idle_timeout,
            scaler=scaler,
            scaler_value=args.scaler_value,
            flashboot=FLASHBOOT[args.flashboot],
            network_volumes=args.network_volume,
            execution_timeout_s=args.execution_timeout,
            env=env,
            kind=kind,
            ports=lb_ports(resolved, env) if lb else [],
        )
    except ValidationError as exc:
        raise UsageError("; ".join(option_problem(args, e) for e in exc.errors())) from None


def run(args: argparse.Namespace) -> int:
    prepared, image = one_variant(args)
    resolved = prepared.resolved
    env = checked_overrides(args.env, prepared)  # before any request
    opts = options(args, resolved, env)
    mode = "dry_run" if args.dry_run else "plan" if args.plan else "live"
    if args.wait:
        from builder.verify.stream import OPENAI_MISSING, OpenAIMissing, openai_available

        if mode != "live":
            raise UsageError("--wait tests a deployed endpoint: it does not go with --dry-run or --plan")
        if not openai_available():  # found out before anything is deployed
            raise OpenAIMissing(OPENAI_MISSING)
    key: str | None = None
    try:  # a local check: before the registry is asked anything
        key = api_key()
    except CredentialsError:
        if mode != "dry_run":
            raise
    if mode == "live" and not args.no_image_check:  # before any write (--plan and --dry-run send none)
        from builder.image.manifest_check import require_image

        require_image(image, resolved.name)
    registry = registry_credentials(args, image)
    redactor = Redactor([registry.password if registry else None])
    client = Client(management_base(), key, redactor) if key and mode != "dry_run" else None
    note = {"live": "", "plan": " (plan: no write is sent)", "dry_run": " (dry run: nothing is sent)"}[mode]
    print(f"deploying {image} as {opts.name}{note}")
    outcome = deploy(
        resolved, image, opts, client=client, mode=mode, registry=registry, say=print,
        redactor=redactor, base_url=management_base(),
    )  # fmt: skip
    endpoint_id = outcome.endpoint_id or "<endpoint id>"
    print_cache_step(model_reference(resolved, env), opts.name, endpoint_id, print)
    base = f"{job_base()}/{endpoint_id}"
    model = served_model(resolved, env)
    if opts.kind == "LOAD_BALANCER":
        base = lb_base(endpoint_id)
        print_lb_calling(endpoint_id, base, health_path(resolved, env), model, print)
    else:
        print_calling(endpoint_id, base, model, print)
    if not args.wait:
        return 0
    assert key is not None
    if opts.kind == "LOAD_BALANCER":
        from builder.verify.jobs import variant_tests
        from builder.verify.lb import test_endpoint

        health, tests = health_path(resolved, env), variant_tests(resolved)
        return test_endpoint(base, key, health, tests, model, args.wait_timeout, print, sys.stdout)
    from builder.verify.endpoint import smoke_test, wait_for_worker
    from builder.verify.jobs import JobClient, variant_tests

    if opts.workers_min > 0:
        problem = wait_for_worker(JobClient(base, key), args.wait_timeout, sys.stdout)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 1
    else:
        print("workers min is 0: a worker starts with the first job, so the smoke test starts now")
    return smoke_test(base, key, variant_tests(resolved), model, print)
