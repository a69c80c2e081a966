"""The `deploy` verb: options, then apply.deploy, then what to call (ids, URLs, an `openai` snippet).

Exit codes: 0 done (or nothing to do), 1 RunPod refused or could not be reached (one paragraph), 2 bad
input (`--env`, options) before any request.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable

from pydantic import ValidationError

from builder.compat import load_compat
from builder.deploy.api import ApiError, Client
from builder.deploy.apply import RegistryCredentials, deploy
from builder.deploy.credentials import CredentialsError, api_key, job_base, management_base
from builder.deploy.overrides import OverrideError, parse_overrides
from builder.deploy.plan import EndpointOptions, PlanError
from builder.deploy.redact import Redactor
from builder.variant.pipeline import Prepared
from builder.variant.resolve import Resolved

SCALERS = {"queue-delay": "QUEUE_DELAY", "request-count": "REQUEST_COUNT"}
FLASHBOOT = {"on": "FLASHBOOT", "off": "OFF", "priority": "PRIORITY_FLASHBOOT"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", metavar="REF", help="image to deploy (default: the variant's versioned tag)")
    p.add_argument("--name", metavar="NAME", help="template and endpoint name (default: the variant name)")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a baked setting on the endpoint (checked by the runtime's settings); repeatable",
    )
    d = EndpointOptions.model_fields
    p.add_argument("--workers-min", type=int, default=d["workers_min"].default, metavar="N")
    p.add_argument("--workers-max", type=int, default=d["workers_max"].default, metavar="N")
    p.add_argument(
        "--idle-timeout", type=int, default=d["idle_timeout"].default, metavar="S", help="seconds (1-3600)"
    )
    p.add_argument("--scaler", choices=sorted(SCALERS), default="queue-delay", help="autoscaling signal")
    p.add_argument(
        "--scaler-value",
        type=float,
        default=d["scaler_value"].default,
        metavar="V",
        help="seconds of queue delay (>= 0.5) or requests per worker (whole number)",
    )
    p.add_argument("--flashboot", choices=sorted(FLASHBOOT), default="on", help="FlashBoot (default on)")
    p.add_argument("--network-volume", action="append", default=[], metavar="ID", help="repeatable")
    p.add_argument(
        "--execution-timeout",
        type=int,
        default=d["execution_timeout_s"].default,
        metavar="S",
        help="seconds a job may run",
    )
    p.add_argument(
        "--registry-auth",
        metavar="NAME",
        help="name of the RunPod registry credential made from REGISTRY_USERNAME/REGISTRY_PASSWORD "
        "(default: REGISTRY-USERNAME); reused when it exists",
    )
    p.add_argument("--no-registry-auth", action="store_true", help="public image: no registry credential")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print a first deploy's requests; send none")
    mode.add_argument("--plan", action="store_true", help="read what RunPod has, print the writes; send none")
    p.add_argument("--wait", action="store_true", help="then wait for a ready worker and smoke-test it")
    p.add_argument("--wait-timeout", type=float, default=1800.0, metavar="S", help="for --wait (seconds)")


def registry_host(image: str) -> str:
    first = image.split("/", 1)[0]
    return first if "/" in image and ("." in first or ":" in first or first == "localhost") else "docker.io"


def registry_credentials(args: argparse.Namespace, image: str) -> RegistryCredentials | None:
    user, password = os.environ.get("REGISTRY_USERNAME", ""), os.environ.get("REGISTRY_PASSWORD", "")
    if args.no_registry_auth or not (user and password):
        return None
    name = args.registry_auth or re.sub(r"[^A-Za-z0-9._-]+", "-", f"{registry_host(image)}-{user}")
    return RegistryCredentials(name=name, username=user, password=password)


def served_model(resolved: Resolved, env: dict[str, str]) -> str:
    baked = resolved.settings.get("SERVED_MODEL_NAME") or resolved.model_id
    return env.get("SERVED_MODEL_NAME") or str(baked)


def snippet(base: str, model: str) -> str:
    return "\n".join(
        [
            "import os",
            "from openai import OpenAI",
            "",
            f'client = OpenAI(base_url="{base}/openai/v1", api_key=os.environ["RUNPOD_API_KEY"])',
            "reply = client.chat.completions.create(",
            f'    model="{model}",',
            '    messages=[{"role": "user", "content": "Hello"}],',
            "    max_tokens=64,",
            ")",
            "print(reply.choices[0].message.content)",
        ]
    )


def options(args: argparse.Namespace, resolved: Resolved, env: dict[str, str]) -> EndpointOptions:
    return EndpointOptions(
        name=args.name or resolved.name,
        workers_min=args.workers_min,
        workers_max=args.workers_max,
        idle_timeout=args.idle_timeout,
        scaler=SCALERS[args.scaler],
        scaler_value=args.scaler_value,
        flashboot=FLASHBOOT[args.flashboot],
        network_volumes=args.network_volume,
        execution_timeout_s=args.execution_timeout,
        env=env,
    )


def run(args: argparse.Namespace, prepared: Prepared, image: str, say: Callable[[str], None] = print) -> int:
    resolved = prepared.resolved
    err = sys.stderr
    try:
        env = parse_overrides(args.env, resolved, load_compat())
        opts = options(args, resolved, env)
    except OverrideError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=err)
        return 2
    except ValidationError as exc:
        for e in exc.errors():
            print(f"error: deploy options: {e['msg']}", file=err)
        return 2
    mode = "dry_run" if args.dry_run else "plan" if args.plan else "live"
    registry = registry_credentials(args, image)
    redactor = Redactor([registry.password if registry else None])
    key: str | None = None
    try:
        key = api_key()
    except CredentialsError as exc:
        if mode != "dry_run":
            print(f"error: {exc}", file=err)
            return 1
    client = Client(management_base(), key, redactor) if key and mode != "dry_run" else None
    say(f"deploying {image} as {opts.name}" + {"live": "", "plan": " (plan: nothing is sent)",
                                                 "dry_run": " (dry run: nothing is sent)"}[mode])  # fmt: skip
    try:
        outcome = deploy(
            resolved, image, opts, client=client, mode=mode, registry=registry, say=say,
            redactor=redactor, base_url=management_base(),
        )  # fmt: skip
    except ApiError as exc:
        print(f"error: {redactor.text(str(exc))}", file=err)
        return 1
    except PlanError as exc:
        print(f"error: {exc}", file=err)
        return 1
    endpoint_id = outcome.endpoint_id if mode == "live" else outcome.endpoint_id or "<endpoint id>"
    base = f"{job_base()}/{endpoint_id}"
    model = served_model(resolved, env)
    say(f"endpoint id: {endpoint_id}")
    say(f"job API:     {base}  (POST /run, /runsync; GET /status/<job id>, /stream/<job id>, /health)")
    say(f"openai:      {base}/openai/v1  (model {model})")
    say("python:")
    say("\n".join("    " + line if line else "" for line in snippet(base, model).splitlines()))
    if not args.wait or mode != "live":
        return 0
    assert key is not None
    return smoke_after_deploy(resolved, base, key, opts, model, args.wait_timeout, say)


def smoke_after_deploy(
    resolved: Resolved,
    base: str,
    key: str,
    opts: EndpointOptions,
    model: str,
    timeout: float,
    say: Callable[[str], None],
) -> int:
    from builder.verify.endpoint import smoke_test, wait_for_worker
    from builder.verify.jobs import JobClient, variant_tests

    if opts.workers_min > 0:
        problem = wait_for_worker(JobClient(base, key), timeout, sys.stdout)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 1
    else:
        say("workers min is 0: a worker starts with the first job, so the smoke test starts now")
    return smoke_test(base, key, variant_tests(resolved), model, say)
