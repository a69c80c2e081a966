"""Run a deploy: read what RunPod has (by name), plan, then send only the writes the plan needs.

Three modes: live (reads and writes), `plan` (reads, prints the writes it would send, sends none),
`dry_run` (sends nothing at all: prints the requests a first deploy sends).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from builder.deploy.api import ApiError, Client, Request
from builder.deploy.plan import (
    MISSING,
    Change,
    EndpointKindChange,
    EndpointOptions,
    Step,
    endpoint_fields,
    endpoint_step,
    find_by_name,
    kind_change_refusal,
    registry_create,
    template_fields,
    template_step,
)
from builder.deploy.redact import MASK, Redactor, is_secret_name
from builder.variant.resolve import Resolved

Mode = Literal["live", "plan", "dry_run"]


@dataclass(frozen=True)
class RegistryCredentials:
    name: str
    username: str
    password: str


@dataclass
class Outcome:
    steps: list[Step] = field(default_factory=list)
    endpoint_id: str | None = None
    endpoint: dict[str, Any] | None = None

    @property
    def changed(self) -> bool:
        return any(s.action != "keep" for s in self.steps)


def placeholder(kind: str, name: str) -> str:
    return f"<id of the new {kind} {name}>"


def deploy(
    resolved: Resolved,
    image: str,
    opts: EndpointOptions,
    *,
    client: Client | None,
    mode: Mode,
    registry: RegistryCredentials | None,
    say: Callable[[str], None],
    redactor: Redactor,
    base_url: str,
) -> Outcome:
    """Create or update the registry credential, template and endpoint named `opts.name`."""
    out = Outcome()
    sender = _Sender(client, mode, say, redactor, base_url)
    report_exclusions(resolved, say)

    def current(kind: str, name: str, what: str) -> dict[str, Any] | None:
        """What RunPod has under that name (nothing is read in a dry run)."""
        if mode == "dry_run":
            return None
        assert client is not None
        return find_by_name(client.list(kind), name, what)

    def record(step: Step) -> Any:
        out.steps.append(step)
        _report(step, say, redactor)
        return sender.send(step.request) if step.request is not None else None

    # Read first: an endpoint of the other kind is refused before anything is written.
    endpoint_now = current("endpoints", opts.name, "endpoint")
    refuse_kind_change(endpoint_now, opts)

    registry_id: str | None = None
    if registry is not None:
        found = current("registries", registry.name, "registry credential")
        if found is not None:
            registry_id = str(found["id"])
            record(Step("registry", registry.name, "keep", None, (), registry_id))
        else:
            request = registry_create(registry.name, registry.username, registry.password)
            created = record(Step("registry", registry.name, "create", request))
            registry_id = str(created["id"]) if created else placeholder("registry credential", registry.name)

    step = template_step(
        opts.name,
        template_fields(resolved, image, registry_id, opts.ports),
        current("templates", opts.name, "template"),
    )
    answer = record(step)
    template_id = step.id if step.action != "create" else str(answer["id"]) if answer else None

    efields = endpoint_fields(resolved, image, registry_id, opts)
    step = endpoint_step(
        opts.name, template_id or placeholder("template", opts.name), efields, endpoint_now, opts.kind
    )
    out.endpoint_id, out.endpoint = step.id, endpoint_now
    answer = record(step)
    if answer:
        out.endpoint, out.endpoint_id = answer, str(answer.get("id"))
    if not out.changed:
        say(f"no change: template and endpoint {opts.name} already match (nothing was sent)")
    return out


def refuse_kind_change(found: dict[str, Any] | None, opts: EndpointOptions) -> None:
    suffix = "-lb" if opts.kind == "LOAD_BALANCER" else "-queue"
    problem = kind_change_refusal(found, opts.kind, opts.name + suffix)
    if problem:
        raise EndpointKindChange(problem)


class _Sender:
    """Sends a write (live) or prints it exactly (plan, dry run)."""

    def __init__(
        self, client: Client | None, mode: Mode, say: Callable[[str], None], redactor: Redactor, base: str
    ):
        self.client, self.mode, self.say, self.redactor, self.base = client, mode, say, redactor, base

    def send(self, request: Request) -> Any:
        if self.mode == "live":
            assert self.client is not None
            return self.client.call(request)
        self.say(show_request(request, self.base, self.redactor))
        return None


def show_request(request: Request, base: str, redactor: Redactor) -> str:
    lines = [f"  would send: {request.method} {base}{request.path}", f"    Authorization: Bearer {MASK}"]
    if request.body is not None:
        lines.append("    Content-Type: application/json")
        body = json.dumps(redactor.body(request.body), indent=2, sort_keys=True)
        lines += ["    " + line for line in body.splitlines()]
    return "\n".join(lines)


def show_value(path: str, value: Any, redactor: Redactor) -> str:
    if value == MISSING:
        return MISSING
    if path.startswith("env.") and is_secret_name(path[4:]) and value:
        return MASK
    return redactor.text(json.dumps(value, sort_keys=True))


def report_exclusions(resolved: Resolved, say: Callable[[str], None]) -> None:
    """Which GPU types of the pools the endpoint excludes (gpu.excludedTypes), and why."""
    if not resolved.exclusions:
        return
    say(f"excluded GPU types of the pools ({len(resolved.exclusions)}, sent as gpu.excludedTypes):")
    for gpu, why in sorted(resolved.exclusions.items()):
        say(f"  {gpu}: {why}")


def _report(step: Step, say: Callable[[str], None], redactor: Redactor) -> None:
    what = {"registry": "registry credential", "template": "template", "endpoint": "endpoint"}[step.kind]
    if step.action == "keep":
        say(f"{what} {step.name}: no change (id {step.id})")
    elif step.action == "create":
        say(f"{what} {step.name}: create")
    else:
        say(f"{what} {step.name}: update (id {step.id}), {len(step.changes)} field(s) changed")
        for change in step.changes:
            say(
                f"  {change.path}: {show_value(change.path, change.old, redactor)} -> "
                f"{show_value(change.path, change.new, redactor)}"
            )


__all__ = ["ApiError", "Change", "Outcome", "RegistryCredentials", "deploy", "show_request"]
